//! `fvfsd status`: when a daemon runs (its control socket answers), what the daemon says
//! (`GET /v1/status` over the socket); otherwise, read from the metadata: settings, space,
//! inodes, blocks, dedup ratio and live sessions.
//!
//! Both forms print the SHA-256 of the daemon's TLS certificate (`<state>/tls/cert.pem`) in
//! the form `fvfsc` shows and pins (64 lowercase hex digits), so that a user can compare
//! it before `fvfsc login --replace-pin`.
//!
//! Invariants: the socket is asked with a bounded wait (5 s to connect/read/write), so a
//! hung daemon cannot hang `status`; a socket nobody answers on means "no daemon".

use crate::engine::open_meta;
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// One HTTP/1.1 request over the control socket: `Ok(None)` if no daemon answers there,
/// else the status and the body.
pub fn ask_daemon(socket: &Path, method: &str, path: &str) -> Result<Option<(u16, Vec<u8>)>> {
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
    s.read_to_end(&mut raw)
        .with_context(|| format!("no answer from the daemon on {}", socket.display()))?;
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        bail!("malformed answer from the daemon on {}", socket.display());
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed status line from the daemon")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked { dechunk(&body)? } else { body };
    Ok(Some((status, body)))
}

/// Decodes a chunked HTTP/1.1 body.
fn dechunk(mut b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            bail!("truncated chunked body");
        };
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(size_text, 16).context("bad chunk size")?;
        b = &b[eol + 2..];
        if n == 0 {
            return Ok(out);
        }
        if b.len() < n + 2 {
            bail!("truncated chunked body");
        }
        out.extend_from_slice(&b[..n]);
        b = &b[n + 2..];
    }
}

/// The fingerprint of the certificate in `state` (None before the first format/serve).
fn fingerprint(state: &Path) -> Result<Option<String>> {
    fvfs_api::tls::stored_fingerprint(state)
        .with_context(|| format!("cannot read the TLS certificate of {}", state.display()))
}

/// The `tls` and `api` lines: the certificate clients pin, and the URL the running daemon
/// wrote (its scheme says whether it serves that certificate).
fn print_tls(state: &Path) -> Result<()> {
    if let Some(fp) = fingerprint(state)? {
        println!("tls          sha256 {fp}");
    }
    if let Ok(url) = std::fs::read_to_string(state.join("fvfsd.url")) {
        println!("api          {}", url.trim());
    }
    Ok(())
}

/// Prints the daemon's status; false if no daemon answers on `socket`. `state` is the
/// daemon's state directory (its certificate).
pub fn from_daemon(socket: &Path, state: &Path, json: bool) -> Result<bool> {
    let Some((code, body)) = ask_daemon(socket, "GET", "/v1/status")? else {
        return Ok(false);
    };
    if code != 200 {
        bail!(
            "the daemon answered {code}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    if json {
        let mut v: serde_json::Value =
            serde_json::from_slice(&body).context("unexpected status from the daemon")?;
        if let Some(o) = v.as_object_mut() {
            o.insert("tls_fingerprint".into(), fingerprint(state)?.into());
        }
        println!("{v}");
        return Ok(true);
    }
    let st: fvfs_types::api::Status =
        serde_json::from_slice(&body).context("unexpected status from the daemon")?;
    println!("filesystem   {} ({})", st.name, st.uuid);
    println!(
        "daemon       fvfsd {} up {} s, socket {}",
        st.version,
        st.uptime_secs,
        socket.display()
    );
    println!(
        "mount        {}",
        st.mount.as_deref().unwrap_or("none (API only)")
    );
    print_tls(state)?;
    for (i, t) in st.tiers.iter().enumerate() {
        let wm = match (t.high_watermark, t.low_watermark) {
            (Some(h), Some(l)) => format!(", watermarks {} / {}", human(h), human(l)),
            (Some(h), None) => format!(", high watermark {}", human(h)),
            _ => String::new(),
        };
        let health = match (&t.healthy, &t.last_error) {
            (true, _) => "healthy".to_string(),
            (false, Some(e)) => format!("UNHEALTHY ({e})"),
            (false, None) => "UNHEALTHY".to_string(),
        };
        println!(
            "tier {i} {:<6} {}, {}{wm}, {health}: {}",
            t.name,
            if t.durable { "durable" } else { "cache" },
            human(t.bytes),
            t.location
        );
    }
    println!("replication  {} block copies pending", st.wal_pending);
    for (name, state) in &st.workers {
        println!("worker       {name}: {state}");
    }
    println!("files        {} ({})", st.files, human(st.bytes));
    Ok(true)
}

pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub async fn run(meta_url: &str, state: &Path) -> Result<()> {
    let meta = open_meta(meta_url)?;
    let s = meta.settings()?;
    let st = meta.stats()?;
    let sessions = meta.sessions()?;
    println!("filesystem   {} ({})", s.name, s.uuid);
    println!("format       version {}", s.format_version);
    println!("metadata     {}", meta.describe());
    if let Some(fp) = fingerprint(state)? {
        println!("tls          sha256 {fp}");
    }
    let tiers = s.tier_list();
    let usage = meta.tier_usage(tiers.len())?;
    let health = super::tiers::probe(&tiers).await;
    for (i, t) in tiers.iter().enumerate() {
        let role = super::tiers::role(t);
        let wm = match (t.high_watermark, t.low_watermark) {
            (Some(h), Some(l)) => format!(", watermarks {} / {}", human(h), human(l)),
            (Some(h), None) => format!(", high watermark {}", human(h)),
            _ => String::new(),
        };
        let h = match &health[i] {
            Ok(()) => "reachable".to_string(),
            Err(e) => format!("UNREACHABLE ({e})"),
        };
        println!(
            "tier {i} {:<6} {role}, {} in {} blocks{wm}, {h}: {}",
            t.name,
            human(usage[i].bytes),
            usage[i].blocks,
            fvfs_tier::redact(&t.location)
        );
    }
    let (_, pending) = meta.queue_list(0)?;
    println!("replication  {pending} block copies pending (fvfsd wal)");
    for (name, value) in meta.counters()? {
        println!("counter      {name} = {value}");
    }
    println!(
        "blocks       FastCDC min {} / avg {} / max {}, compression {:?}",
        human(s.cdc.min as u64),
        human(s.cdc.avg as u64),
        human(s.cdc.max as u64),
        s.compression
    );
    println!("inodes       {}", st.inodes);
    println!("file bytes   {}", human(st.logical_bytes));
    println!(
        "stored       {} in {} blocks ({} before compression)",
        human(st.stored_bytes),
        st.blocks,
        human(st.unique_bytes)
    );
    let ratio = if st.unique_bytes > 0 {
        st.referenced_bytes as f64 / st.unique_bytes as f64
    } else {
        1.0
    };
    println!(
        "dedup ratio  {ratio:.2} (referenced {} / unique {})",
        human(st.referenced_bytes),
        human(st.unique_bytes)
    );
    println!(
        "garbage      {} blocks awaiting collection",
        st.garbage_blocks
    );
    if sessions.is_empty() {
        println!("sessions     none");
    }
    for x in sessions {
        let age = (fvfs_vfs::now_ns() - x.heartbeat) / 1_000_000_000;
        println!(
            "session {:<4} {} pid {} at {} (heartbeat {age} s ago)",
            x.id, x.host, x.pid, x.mountpoint
        );
    }
    Ok(())
}
