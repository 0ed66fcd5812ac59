//! The HTTP API spoken raw (HTTP/1.1 written by hand, so that nothing normalises what
//! is sent) to the real `fvfsd serve` on 127.0.0.1: Range, ETag, tokens (none, wrong,
//! read-only, revoked), metrics; and bad input: path traversal in every spelling,
//! oversized bodies, a wrong hash, truncated uploads and a client killed mid-PUT — each
//! refused with a JSON error, and nothing half-written ever visible.

mod common;

use common::api::{error_code, get, header, raw, ApiDaemon as Daemon};
use common::{data, Fixture};
use std::io::Write;
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn raw_http_range_etag_and_tokens() {
    let Some(f) = Fixture::new() else { return };
    let d = Daemon::start(&f, &[]);
    let body = data(1 << 20, 2);
    d.ok(&["put", "-", "/r.bin"]);
    let src = f.dir.path().join("r.bin");
    std::fs::write(&src, &body).unwrap();
    d.ok(&["put", src.to_str().unwrap(), "/r.bin"]);

    // No token, a wrong token: 401 with a JSON error and WWW-Authenticate.
    let (st, h, b) = raw(&d.addr, "GET /v1/files/r.bin HTTP/1.1", b"");
    assert_eq!(st, 401);
    assert_eq!(error_code(&b), "unauthorized");
    assert!(header(&h, "www-authenticate")
        .unwrap_or("")
        .starts_with("Bearer"));
    let (st, _, _) = raw(
        &d.addr,
        "GET /v1/status HTTP/1.1\r\nAuthorization: Bearer fvfs_0000000000000000000000000000000000000000",
        b"",
    );
    assert_eq!(st, 401);
    let (st, _, _) = raw(&d.addr, "GET /metrics HTTP/1.1", b"");
    assert_eq!(st, 401, "/metrics needs a token too");

    // Whole file, ETag, If-None-Match.
    let (st, h, b) = get(&d, "/v1/files/r.bin", "");
    assert_eq!(st, 200);
    assert!(b == body);
    let etag = header(&h, "etag").expect("an ETag").to_string();
    assert_eq!(header(&h, "accept-ranges"), Some("bytes"));
    let (st, _, b) = get(&d, "/v1/files/r.bin", &format!("If-None-Match: {etag}"));
    assert_eq!(st, 304);
    assert!(b.is_empty());

    // Ranges: a-b, a-, -n; unsatisfiable.
    let (st, h, b) = get(&d, "/v1/files/r.bin", "Range: bytes=100-199");
    assert_eq!(st, 206);
    assert_eq!(b, &body[100..200]);
    assert_eq!(header(&h, "content-range"), Some("bytes 100-199/1048576"));
    let (st, _, b) = get(&d, "/v1/files/r.bin", "Range: bytes=1048000-");
    assert_eq!(st, 206);
    assert_eq!(b, &body[1048000..]);
    let (st, _, b) = get(&d, "/v1/files/r.bin", "Range: bytes=-10");
    assert_eq!(st, 206);
    assert_eq!(b, &body[body.len() - 10..]);
    let (st, h, _) = get(&d, "/v1/files/r.bin", "Range: bytes=2000000-");
    assert_eq!(st, 416);
    assert_eq!(header(&h, "content-range"), Some("bytes */1048576"));

    // A new content has a new ETag; the old one no longer matches.
    d.ok(&["put", "-", "/r.bin"]);
    let (st, h, _) = get(&d, "/v1/files/r.bin", &format!("If-None-Match: {etag}"));
    assert_eq!(st, 200);
    assert_ne!(header(&h, "etag"), Some(etag.as_str()));

    // Metrics with a token: per-route counters.
    let (st, _, b) = get(&d, "/metrics", "");
    assert_eq!(st, 200);
    let text = String::from_utf8_lossy(&b);
    assert!(text.contains("fvfs_http_requests_total"), "{text}");
    assert!(text.contains("fvfs_wal_pending"), "{text}");

    // A read-only token reads but cannot write; a revoked token is refused at once.
    let out = f.ok(&["token", "create", "laptop", "--read-only"]);
    let ro = out
        .split_whitespace()
        .find(|w| w.starts_with("fvfs_"))
        .expect("the new token is printed")
        .to_string();
    let (st, _, _) = raw(
        &d.addr,
        &format!("GET /v1/files/r.bin HTTP/1.1\r\nAuthorization: Bearer {ro}"),
        b"",
    );
    assert_eq!(st, 200);
    let (st, _, b) = raw(
        &d.addr,
        &format!("PUT /v1/files/x HTTP/1.1\r\nAuthorization: Bearer {ro}\r\nContent-Length: 1"),
        b"x",
    );
    assert_eq!(st, 403);
    assert_eq!(error_code(&b), "forbidden");
    f.ok(&["token", "revoke", "laptop"]);
    let (st, _, _) = raw(
        &d.addr,
        &format!("GET /v1/files/r.bin HTTP/1.1\r\nAuthorization: Bearer {ro}"),
        b"",
    );
    assert_eq!(st, 401, "a revoked token is refused without a restart");
    d.assert_not_logged(&ro);
    // The token file is private and holds no secret.
    let tokens = std::fs::read_to_string(d.state.join("tokens.json")).unwrap();
    assert!(!tokens.contains(&d.token));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.state.join("tokens.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    d.stop();
}

/// Names of upload temporaries left in the namespace (there must be none).
fn leftovers(f: &Fixture) -> i64 {
    f.count("SELECT COUNT(*) FROM dentries WHERE CAST(name AS TEXT) LIKE '.fvfs-put.%'")
}

#[test]
fn bad_input_is_refused_and_loses_nothing() {
    let Some(f) = Fixture::new() else { return };
    let d = Daemon::start(&f, &[]);
    let auth = format!("Authorization: Bearer {}", d.token);
    let old = data(200_000, 3);
    let src = f.dir.path().join("old.bin");
    std::fs::write(&src, &old).unwrap();
    d.ok(&["put", src.to_str().unwrap(), "/keep.bin"]);

    // Path traversal in every spelling: 400 (or 404 when the router never matched), never
    // a file outside the namespace.
    for p in [
        "/v1/files/../../etc/passwd",
        "/v1/files/a/../../etc/passwd",
        "/v1/files/%2e%2e/%2e%2e/etc/passwd",
        "/v1/files/a%2f..%2f..%2fetc%2fpasswd",
        "/v1/files/a%00b",
        "/v1/files/%ff%fe",
        "/v1/files/./keep.bin",
        "/v1/meta/..",
        "/v1/ls/..%2f..",
    ] {
        let (st, _, b) = raw(&d.addr, &format!("GET {p} HTTP/1.1\r\n{auth}"), b"");
        assert!(
            st == 400 || st == 404,
            "{p}: {st} {}",
            String::from_utf8_lossy(&b)
        );
        assert!(
            !String::from_utf8_lossy(&b).contains("root:"),
            "{p} leaked a host file"
        );
    }
    let long = "a".repeat(300);
    let (st, _, b) = raw(
        &d.addr,
        &format!("GET /v1/meta/{long} HTTP/1.1\r\n{auth}"),
        b"",
    );
    assert_eq!((st, error_code(&b).as_str()), (400, "name_too_long"));

    // An oversized body is refused before it is read.
    let (st, _, b) = raw(
        &d.addr,
        &format!("PUT /v1/files/huge HTTP/1.1\r\n{auth}\r\nContent-Length: 1125899906842624"),
        b"",
    );
    assert_eq!((st, error_code(&b).as_str()), (413, "payload_too_large"));
    let (st, _, _) = raw(
        &d.addr,
        &format!(
            "POST /v1/rename HTTP/1.1\r\n{auth}\r\nContent-Type: application/json\r\nContent-Length: 200000"
        ),
        &vec![b' '; 200_000],
    );
    assert_eq!(st, 413);

    // A hash that does not match: nothing changes.
    let (st, _, b) = raw(
        &d.addr,
        &format!(
            "PUT /v1/files/keep.bin HTTP/1.1\r\n{auth}\r\nContent-Length: 5\r\nx-fvfs-blake3: {}",
            "0".repeat(64)
        ),
        b"12345",
    );
    assert_eq!((st, error_code(&b).as_str()), (422, "hash_mismatch"));
    assert!(get(&d, "/v1/files/keep.bin", "").2 == old);

    // A truncated upload (the client closes after part of its Content-Length): the old
    // content stays, a new name never appears.
    for target in ["keep.bin", "new.bin"] {
        let mut s = TcpStream::connect(&d.addr).unwrap();
        write!(
            s,
            "PUT /v1/files/{target} HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: 5000000\r\n\r\n"
        )
        .unwrap();
        s.write_all(&data(1_000_000, 4)).unwrap();
        drop(s);
    }
    f.wait_until(30, "the truncated uploads are cleaned up", |f| {
        leftovers(f) == 0
    });
    assert!(get(&d, "/v1/files/keep.bin", "").2 == old);
    assert_eq!(get(&d, "/v1/meta/new.bin", "").0, 404);

    // A client killed in the middle of a PUT: the same.
    let mut child = d
        .fvfsc()
        .args(["put", "-", "/keep.bin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&data(8 << 20, 5)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    let _ = child.wait();
    drop(stdin);
    f.wait_until(30, "the killed upload is cleaned up", |f| leftovers(f) == 0);
    assert!(
        get(&d, "/v1/files/keep.bin", "").2 == old,
        "a killed PUT changed the file"
    );
    // The daemon still serves.
    assert_eq!(get(&d, "/v1/status", "").0, 200);
    d.stop();
}

#[test]
fn a_daemon_killed_mid_put_leaves_nothing_after_restart() {
    let Some(f) = Fixture::new() else { return };
    let mut d = Daemon::start(&f, &[]);
    let auth = format!("Authorization: Bearer {}", d.token);
    let old = data(300_000, 7);
    let src = f.dir.path().join("old.bin");
    std::fs::write(&src, &old).unwrap();
    d.ok(&["put", src.to_str().unwrap(), "/keep.bin"]);

    // An upload in progress (its temporary exists), then kill -9 of the daemon.
    let mut s = TcpStream::connect(&d.addr).unwrap();
    write!(
        s,
        "PUT /v1/files/keep.bin HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: 50000000\r\n\r\n"
    )
    .unwrap();
    s.write_all(&data(2_000_000, 8)).unwrap();
    f.wait_until(30, "the upload's temporary exists", |f| leftovers(f) == 1);
    d.daemon.child.kill().unwrap();
    d.daemon.child.wait().unwrap();
    drop(s);
    assert_eq!(leftovers(&f), 1, "the killed daemon left its temporary");

    // The next start removes it; the old content is intact.
    let d = Daemon::start(&f, &[]);
    assert_eq!(leftovers(&f), 0, "the restart swept the unfinished upload");
    assert!(get(&d, "/v1/files/keep.bin", "").2 == old);
    let ls = d.json(&["ls", "/"]);
    assert_eq!(ls["entries"].as_array().unwrap().len(), 1, "{ls}");
    d.stop();
}
