//! Connection bounds and API hygiene through the real `fvfsd serve` over TCP: idle, half
//! sent, keep-alive, HTTP/2 and TLS connections closed by the `[daemon]` timeouts; the
//! connection cap answering 503 while the FUSE mount keeps working; accept errors at a
//! full descriptor table backing off without stopping the listener; the device table
//! capped with names and user agents truncated; block responses cached privately.

mod common;

use common::api::{error_code, header, raw, ApiDaemon};
use common::Fixture;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Extra time allowed past a timeout before a test calls it missed (a loaded machine).
const SLACK: Duration = Duration::from_secs(8);

/// A config with mDNS off and these `[daemon]` lines.
fn config(f: &mut Fixture, daemon: &str) {
    let p = f.dir.path().join("limits.toml");
    std::fs::write(&p, format!("[daemon]\nmdns = false\n{daemon}\n")).unwrap();
    f.config = Some(p);
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A connection that sent `head` and got `200` for it, kept open (keep-alive); `None` if
/// the answer was `503` (past the cap).
fn keep_alive(addr: &str, head: &str) -> Option<TcpStream> {
    let mut s = connect(addr);
    write!(s, "{head}\r\nHost: x\r\n\r\n").unwrap();
    let mut r = Vec::new();
    let mut b = [0u8; 1];
    while !r.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "the answer ended early: {r:?}");
        r.push(b[0]);
    }
    let text = String::from_utf8(r).unwrap();
    let len: usize = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    match text.split(' ').nth(1) {
        Some("200") => Some(s),
        Some("503") => None,
        _ => panic!("unexpected answer: {text}"),
    }
}

/// Reads until the daemon closes `s` (EOF or reset); panics if that takes longer than
/// `max` from `since`. Returns the bytes read and when the close came.
fn until_closed<S: Read>(s: &mut S, since: Instant, max: Duration) -> (Vec<u8>, Duration) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                assert!(
                    since.elapsed() < max,
                    "still open after {:?}",
                    since.elapsed()
                );
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break, // reset
        }
        assert!(
            since.elapsed() < max,
            "still open after {:?}",
            since.elapsed()
        );
    }
    (out, since.elapsed())
}

/// Asserts that a close at `when` came from a timeout of `t`: not before it (less a
/// margin for the connect), and before `t + SLACK`.
fn closed_by(what: &str, when: Duration, t: Duration) {
    closed_within(what, when, t, t + SLACK);
}

/// [`closed_by`] with the latest acceptable close given.
fn closed_within(what: &str, when: Duration, t: Duration, before: Duration) {
    assert!(
        when + Duration::from_millis(300) >= t && when < before,
        "{what}: closed after {when:?}; the timeout is {t:?}, the bound {before:?}"
    );
}

/// One keep-alive request; reads exactly one response (Content-Length body).
fn keep_alive_get(s: &mut TcpStream, addr: &str, path: &str, token: &str) -> (u16, Vec<u8>) {
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "closed mid-head");
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (head.split(' ').nth(1).unwrap().parse().unwrap(), body)
}

/// The client side of an HTTP/2 connection: its request handle (while it lives, the client
/// keeps the connection open) and its task, which ends when the connection closes.
type H2 = (
    hyper::client::conn::http2::SendRequest<String>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
);

/// `GET /v1/status` over HTTP/2 with prior knowledge (h2c); returns the status and the
/// connection.
async fn h2_status(addr: &str, token: &str) -> (u16, H2) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let task = tokio::spawn(conn);
    let req = hyper::Request::get(format!("http://{addr}/v1/status"))
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    while let Some(f) =
        std::future::poll_fn(|cx| hyper::body::Body::poll_frame(std::pin::Pin::new(&mut body), cx))
            .await
    {
        f.unwrap();
    }
    (status, (send, task))
}

#[test]
fn idle_and_slow_connections_are_closed_by_the_timeouts() {
    let Some(mut f) = Fixture::new() else { return };
    // Distinct values, so each close shows which timeout made it.
    config(
        &mut f,
        "header_timeout_secs = 6\nidle_timeout_secs = 2\nbody_timeout_secs = 3",
    );
    let (header_t, idle_t, body_t) = (
        Duration::from_secs(6),
        Duration::from_secs(2),
        Duration::from_secs(3),
    );
    let d = ApiDaemon::start(&f, &[]);
    let addr = d.addr.clone();

    // A TCP connection that sends nothing, and one with half a request head.
    let t = Instant::now();
    let mut silent = connect(&addr);
    let mut half = connect(&addr);
    half.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // An HTTP/1 keep-alive connection after one request.
    let mut ka = connect(&addr);
    assert_eq!(
        keep_alive_get(&mut ka, &addr, "/v1/status", &d.token).0,
        200
    );
    let t_ka = Instant::now();
    for s in [&silent, &half, &ka] {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    // Well before hyper's own header timer (6 s) would: the idle timeout closed it.
    let (got, when) = until_closed(&mut ka, t_ka, header_t + SLACK);
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    closed_within(
        "keep-alive",
        when,
        idle_t,
        header_t - Duration::from_secs(1),
    );
    for (what, s) in [("silent", &mut silent), ("half head", &mut half)] {
        let (got, when) = until_closed(s, t, header_t + SLACK);
        assert!(
            got.is_empty(),
            "{what}: {:?}",
            String::from_utf8_lossy(&got)
        );
        closed_by(what, when, header_t);
    }

    // HTTP/2 (h2c): one request, then idle.
    f.rt.block_on(async {
        let (status, (send, conn)) = h2_status(&addr, &d.token).await;
        assert_eq!(status, 200);
        let t = Instant::now();
        let ended = tokio::time::timeout(idle_t + SLACK, conn)
            .await
            .expect("the idle HTTP/2 connection is closed in time");
        ended.unwrap().expect("closed with GOAWAY, not an error");
        closed_by("HTTP/2", t.elapsed(), idle_t);
        assert!(send.is_closed(), "the client saw the close");
    });

    // A request body that goes idle: the PUT fails, nothing is stored, the connection ends.
    let mut s = connect(&addr);
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        s,
        "PUT /v1/files/idle-body HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\n0123456789",
        d.token
    )
    .unwrap();
    let t = Instant::now();
    let (got, when) = until_closed(&mut s, t, body_t + SLACK);
    closed_by("idle body", when, body_t);
    let (status, body) = {
        let (code, _, body) = common::read_response(&mut std::io::Cursor::new(got));
        (code, body)
    };
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert_eq!(error_code(&body), "length_mismatch");
    let msg = String::from_utf8_lossy(&body).into_owned();
    assert!(
        msg.contains("the request body sent no data for 3 s"),
        "{msg}"
    );
    let auth = format!("Authorization: Bearer {}", d.token);
    let (code, _, _) = raw(
        &addr,
        &format!("GET /v1/meta/idle-body HTTP/1.1\r\n{auth}"),
        b"",
    );
    assert_eq!(code, 404, "a failed upload leaves nothing");
    d.stop();
}

#[test]
fn tls_connections_are_closed_by_the_timeouts() {
    let Some(mut f) = Fixture::new() else { return };
    config(
        &mut f,
        "header_timeout_secs = 6\nidle_timeout_secs = 2\nbody_timeout_secs = 30",
    );
    let (header_t, idle_t) = (Duration::from_secs(6), Duration::from_secs(2));
    let d = ApiDaemon::start(&f, &["--tls"]);
    assert!(d.url.starts_with("https://"), "{}", d.url);
    let addr = d.addr.clone();
    let cfg = Arc::new(common::tls::pinned_client(&d.state));
    let handshake = |s: TcpStream| {
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(cfg.clone(), name).unwrap();
        let mut s = s;
        while conn.is_handshaking() {
            conn.complete_io(&mut s).expect("TLS handshake");
        }
        rustls::StreamOwned::new(conn, s)
    };

    // No ClientHello at all.
    let t = Instant::now();
    let mut silent = connect(&addr);
    // A TLS connection idle after the handshake.
    let tcp = connect(&addr);
    let mut idle = handshake(tcp);
    // A TLS keep-alive connection idle after one request.
    let mut ka = handshake(connect(&addr));
    write!(
        ka,
        "GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        d.token
    )
    .unwrap();
    ka.flush().unwrap();
    let mut first = [0u8; 12];
    ka.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let t_ka = Instant::now();
    silent
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    idle.sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    ka.sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    // Well before hyper's own header timer (6 s) would: the idle timeout closed it.
    let (rest, when) = until_closed(&mut ka, t_ka, header_t + SLACK);
    assert!(!rest.is_empty(), "the rest of the response");
    closed_within(
        "TLS keep-alive",
        when,
        idle_t,
        header_t - Duration::from_secs(1),
    );
    let (got, when) = until_closed(&mut idle, t, header_t + SLACK);
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    closed_by("TLS idle after the handshake", when, header_t);
    let (got, when) = until_closed(&mut silent, t, header_t + SLACK);
    assert!(got.is_empty());
    closed_by("no ClientHello", when, header_t);
    d.stop();
}

#[test]
fn at_the_connection_cap_503_while_the_mount_works() {
    let Some(mut f) = Fixture::new() else { return };
    let mnt = f.mnt.display().to_string();
    let cache = f.cache.display().to_string();
    config(
        &mut f,
        &format!(
            "mount_path = \"{mnt}\"\ncache_dir = \"{cache}\"\nmax_connections = 8\nheader_timeout_secs = 10\nidle_timeout_secs = 10"
        ),
    );
    let mut d = f.serve(&["--port", "0"]);
    let addr = d.url.strip_prefix("http://").unwrap().to_string();
    let token = f.admin_token();
    let auth = format!("Authorization: Bearer {token}");
    assert!(common::is_mounted(&f.mnt), "the daemon's mount is up");
    let status = format!("GET /v1/status HTTP/1.1\r\n{auth}");
    assert_eq!(raw(&addr, &status, b"").0, 200);

    // Eight idle keep-alive connections take every slot. Each is held only once its own
    // request was answered 200: a connection the client has closed may keep its slot a
    // moment longer on the server, and a connection accepted meanwhile is refused (counted).
    let t = Instant::now();
    let mut held: Vec<TcpStream> = Vec::new();
    let mut early = 0;
    while held.len() < 8 {
        match keep_alive(&addr, &status) {
            Some(s) => held.push(s),
            None => {
                early += 1;
                assert!(early < 50, "slots never freed");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    // One more is answered 503, token or not, with the API's error body, and closed.
    for head in [status.clone(), "GET /v1/status HTTP/1.1".to_string()] {
        let (code, h, body) = raw(&addr, &head, b"");
        assert_eq!(code, 503, "{}", String::from_utf8_lossy(&body));
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"error":{"code":"unavailable","message":"too many connections; retry later"}}"#
        );
        assert_eq!(header(&h, "content-type"), Some("application/json"));
        assert_eq!(header(&h, "retry-after"), Some("1"));
        assert_eq!(header(&h, "connection"), Some("close"));
    }
    // The FUSE mount is in-process but owes nothing to the listener.
    let data = common::data(3 << 20, 8);
    std::fs::write(f.path("at-cap.bin"), &data).unwrap();
    assert!(std::fs::read(f.path("at-cap.bin")).unwrap() == data);
    assert!(
        t.elapsed() < Duration::from_secs(9),
        "the checks at the cap took {:?}: the held connections may have timed out",
        t.elapsed()
    );
    // Once the idle ones are closed (by the header timeout), requests are served again,
    // the file written through the mount included.
    for s in &held {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    for s in &mut held {
        until_closed(s, t, Duration::from_secs(10) + SLACK);
    }
    let (code, _, body) = raw(&addr, &status, b"");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let (code, _, body) = raw(
        &addr,
        &format!("GET /v1/files/at-cap.bin HTTP/1.1\r\n{auth}"),
        b"",
    );
    assert_eq!(code, 200);
    assert!(body == data);
    let (code, _, body) = raw(&addr, &format!("GET /metrics HTTP/1.1\r\n{auth}"), b"");
    assert_eq!(code, 200);
    let metrics = String::from_utf8(body).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == format!("fvfs_api_connections_refused_total {}", 2 + early)),
        "{metrics}"
    );
    let st = d.stop(60);
    assert!(st.success(), "fvfsd serve exited with {st}");
}

/// The soft and hard open-file limits of a process, from /proc.
fn nofile(pid: u32) -> (libc::rlim_t, libc::rlim_t) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let v: Vec<libc::rlim_t> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (v[0], v[1])
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn accept_errors_back_off_and_the_listener_recovers() {
    let Some(mut f) = Fixture::new() else { return };
    config(&mut f, "header_timeout_secs = 3\nidle_timeout_secs = 3");
    // Started with a soft limit under the hard one: the daemon raises it.
    let mut own = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut own) }, 0);
    assert!(own.rlim_max >= 512, "hard limit {}", own.rlim_max);
    let lowered = libc::rlimit {
        rlim_cur: own.rlim_max / 2,
        rlim_max: own.rlim_max,
    };
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
    let d = ApiDaemon::start(&f, &[]);
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &own) }, 0);
    let pid = d.daemon.child.id();
    assert_eq!(nofile(pid), (own.rlim_max, own.rlim_max));
    let log = std::fs::read_to_string(&d.log).unwrap();
    let want = format!("before={} after={}", own.rlim_max / 2, own.rlim_max);
    assert!(
        log.lines()
            .any(|l| l.contains("open-file limit") && l.contains(&want)),
        "no debug line with {want}"
    );

    // Now a small table (the soft limit: raising a hard one back needs a capability):
    // the listener runs into EMFILE.
    let limit = open_fds(pid) as libc::rlim_t + 40;
    let small = libc::rlimit {
        rlim_cur: limit,
        rlim_max: own.rlim_max,
    };
    assert_eq!(
        unsafe {
            libc::prlimit(
                pid as i32,
                libc::RLIMIT_NOFILE,
                &small,
                std::ptr::null_mut(),
            )
        },
        0
    );
    let addr = d.addr.clone();
    let t = Instant::now();
    let mut held: Vec<TcpStream> = (0..120).map(|_| connect(&addr)).collect();
    // Accepts fail for a while (the idle ones hold the table for 3 s).
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        open_fds(pid) as libc::rlim_t >= limit - 2,
        "the descriptor table is not full: {} of {limit}",
        open_fds(pid)
    );
    // The held ones get closed by the header timeout, the backlog is accepted in turn,
    // and a request is answered again: the listener never stopped.
    for s in &held {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    for s in &mut held {
        until_closed(s, t, Duration::from_secs(40));
    }
    let (code, _, body) = raw(
        &addr,
        &format!(
            "GET /v1/status HTTP/1.1\r\nAuthorization: Bearer {}",
            d.token
        ),
        b"",
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    // Backing off, logged at most once per 10 s.
    let log = std::fs::read_to_string(&d.log).unwrap();
    let warned = log
        .lines()
        .filter(|l| l.contains("accept failed; backing off"))
        .count();
    let secs = t.elapsed().as_secs() as usize;
    assert!(
        warned >= 1 && warned <= secs / 10 + 1,
        "{warned} accept warnings in {secs} s"
    );
    assert!(log.contains("Too many open files"), "the EMFILE was logged");
    // Restored for the stop (which opens files).
    assert_eq!(
        unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, &own, std::ptr::null_mut()) },
        0
    );
    d.stop();
}

#[test]
fn device_table_is_capped_and_blocks_are_cached_privately() {
    let Some(mut f) = Fixture::new() else { return };
    config(&mut f, "");
    let d = ApiDaemon::start(&f, &[]);
    let addr = d.addr.clone();
    // A read-only token suffices to be recorded.
    let ro = f
        .ok(&["token", "create", "viewer", "--read-only"])
        .trim()
        .to_string();
    let mut s = connect(&addr);
    for i in 0..300 {
        write!(
            s,
            "GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ro}\r\nx-fvfs-device: dev-{i}\r\nUser-Agent: probe/{i}\r\n\r\n"
        )
        .unwrap();
        let mut r = Vec::new();
        let mut b = [0u8; 1];
        while !r.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut b).unwrap(), 1);
            r.push(b[0]);
        }
        let head = String::from_utf8(r).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap();
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
    }
    drop(s);
    // A long name (under the 255 bytes a header may carry) and a long User-Agent.
    let long_name = format!("{}{}", "n".repeat(64), "z".repeat(136));
    let long_ua = format!("{}{}", "u".repeat(256), "v".repeat(744));
    let (code, _, _) = raw(
        &addr,
        &format!(
            "GET /v1/status HTTP/1.1\r\nAuthorization: Bearer {ro}\r\nx-fvfs-device: {long_name}\r\nUser-Agent: {long_ua}"
        ),
        b"",
    );
    assert_eq!(code, 200);
    // The list itself is the admin's.
    let (code, _, body) = raw(
        &addr,
        &format!(
            "GET /v1/devices HTTP/1.1\r\nAuthorization: Bearer {}\r\nx-fvfs-device: lister",
            d.token
        ),
        b"",
    );
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let devices = v["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 256, "the table holds its cap, no more");
    let names: Vec<&str> = devices
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    // The most recent survive (the lister, the long name, dev-299 … dev-46); the least
    // recently seen went.
    assert!(names.contains(&"lister") && names.contains(&"dev-299") && names.contains(&"dev-46"));
    assert!(!names.contains(&"dev-45") && !names.contains(&"dev-0"));
    let long = devices
        .iter()
        .find(|d| d["name"].as_str().unwrap().starts_with("nnn"))
        .expect("the long name is listed");
    assert_eq!(long["name"], "n".repeat(64));
    assert_eq!(long["user_agent"], "u".repeat(256));
    assert!(
        body.len() < 256 * 1024,
        "/v1/devices is {} bytes",
        body.len()
    );

    // Block responses need a token: cached privately, never by a shared cache.
    let auth = format!("Authorization: Bearer {}", d.token);
    let payload = common::data(100_000, 3);
    let (code, _, _) = raw(
        &addr,
        &format!(
            "PUT /v1/files/cc.bin HTTP/1.1\r\n{auth}\r\nContent-Length: {}",
            payload.len()
        ),
        &payload,
    );
    assert_eq!(code, 201);
    let (code, _, body) = raw(
        &addr,
        &format!("GET /v1/manifest/cc.bin HTTP/1.1\r\n{auth}"),
        b"",
    );
    assert_eq!(code, 200);
    let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = m["pieces"][0]["id"].as_str().unwrap().to_string();
    let (code, h, body) = raw(
        &addr,
        &format!("GET /v1/blocks/{id} HTTP/1.1\r\n{auth}"),
        b"",
    );
    assert_eq!(code, 200);
    assert!(body == payload);
    assert_eq!(
        header(&h, "cache-control"),
        Some("private, max-age=31536000, immutable")
    );
    let (code, h, _) = raw(
        &addr,
        &format!("GET /v1/blocks/{id} HTTP/1.1\r\n{auth}\r\nIf-None-Match: \"{id}\""),
        b"",
    );
    assert_eq!(code, 304);
    assert_eq!(
        header(&h, "cache-control"),
        Some("private, max-age=31536000, immutable")
    );
    d.stop();
}
