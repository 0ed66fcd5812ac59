//! A minimal client of the daemon's control socket (HTTP/1.1 over a Unix socket), for
//! local tools that ask a running daemon before reading the metadata themselves.
//!
//! Invariants: every wait is bounded (5 s to connect, read and write), so a hung daemon
//! cannot hang a tool; a socket nobody answers on means "no daemon" (`Ok(None)`).

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the daemon sent a {what}"),
    )
}

/// One HTTP/1.1 request over the control socket: `Ok(None)` if no daemon answers there,
/// else the status and the body.
pub fn ask(socket: &Path, method: &str, path: &str) -> io::Result<Option<(u16, Vec<u8>)>> {
    let mut s = match std::os::unix::net::UnixStream::connect(socket) {
        Ok(s) => s,
        Err(_) => return Ok(None),
    };
    let t = Some(Duration::from_secs(5));
    s.set_read_timeout(t)?;
    s.set_write_timeout(t)?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: fvfsd/{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(bad("malformed answer (no end of head)"));
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("malformed status line"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked { dechunk(&body)? } else { body };
    Ok(Some((status, body)))
}

/// Decodes a chunked HTTP/1.1 body.
fn dechunk(mut b: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return Err(bad("truncated chunked body"));
        };
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(size_text, 16).map_err(|_| bad("bad chunk size"))?;
        b = &b[eol + 2..];
        if n == 0 {
            return Ok(out);
        }
        if b.len() < n + 2 {
            return Err(bad("truncated chunked body"));
        }
        out.extend_from_slice(&b[..n]);
        b = &b[n + 2..];
    }
}
