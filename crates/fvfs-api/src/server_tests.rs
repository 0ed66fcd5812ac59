//! Tests of the listeners with the auth layer: real sockets on 127.0.0.1 and a temp dir.

use super::*;
use crate::auth::{guard, Access, Caller, NewToken, SeenFn, TokenStore};
use axum::routing::get;
use axum::Extension;
use parking_lot::Mutex;
use std::os::unix::fs::PermissionsExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn app() -> Router {
    async fn who(Extension(c): Extension<Caller>) -> String {
        match c {
            Caller::Local => "local".into(),
            Caller::Token(t) => t.name,
        }
    }
    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_millis(500)).await;
        "slow"
    }
    Router::new()
        .route("/x", get(who).put(who))
        .route("/slow", get(slow))
}

/// One request with `Connection: close`; returns (status, body).
async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}x-fvfs-device: testbox\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("response in time");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

async fn tcp(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    request(s, method, path, token).await
}

type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

fn recorder() -> (Seen, SeenFn) {
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let f: SeenFn = Arc::new(move |d, a, t, _| s2.lock().push((d.into(), a.into(), t.into())));
    (seen, f)
}

#[tokio::test]
async fn tcp_tokens_and_drain() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(TokenStore::open(&dir.path().join("tokens.json")).unwrap());
    let (_, admin) = store.create("admin", NewToken::default()).unwrap();
    let (_, ro) = store
        .create(
            "viewer",
            NewToken {
                read_only: true,
                ..Default::default()
            },
        )
        .unwrap();
    let (seen, f) = recorder();
    let app = guard(app(), Access::Tokens(store.clone()), Some(f));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let srv = tokio::spawn(serve_tcp(
        l,
        app,
        None,
        cancel.clone(),
        Duration::from_secs(5),
        ServerLimits::default(),
    ));

    let (st, body) = tcp(addr, "GET", "/x", None).await;
    assert_eq!(st, 401);
    assert!(body.contains("\"unauthorized\""), "{body}");
    assert_eq!(tcp(addr, "GET", "/x", Some("fvfs_wrong")).await.0, 401);
    assert_eq!(
        tcp(addr, "GET", "/x", Some(&admin)).await,
        (200, "admin".into())
    );
    assert_eq!(tcp(addr, "PUT", "/x", Some(&admin)).await.0, 200);
    assert_eq!(tcp(addr, "GET", "/x", Some(&ro)).await.0, 200);
    let (st, body) = tcp(addr, "PUT", "/x", Some(&ro)).await;
    assert_eq!(st, 403);
    assert!(body.contains("\"forbidden\""), "{body}");
    // Revoked by another store (as `fvfsd token revoke` does): refused at the next request.
    TokenStore::open(&dir.path().join("tokens.json"))
        .unwrap()
        .revoke("admin")
        .unwrap();
    assert_eq!(tcp(addr, "GET", "/x", Some(&admin)).await.0, 401);
    {
        let seen = seen.lock();
        assert!(seen.contains(&("testbox".into(), "127.0.0.1".into(), "admin".into())));
    }

    // A request in flight when the listener is cancelled still completes.
    let slow = tokio::spawn(async move { tcp(addr, "GET", "/slow", Some(&ro)).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    cancel.cancel();
    assert_eq!(slow.await.unwrap(), (200, "slow".into()));
    tokio::time::timeout(Duration::from_secs(10), srv)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn unix_socket_is_local_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fvfsd.sock");
    // A stale socket file (nobody answers) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let (seen, f) = recorder();
    let app = guard(app(), Access::Local, Some(f));
    let l = bind_unix(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A second daemon is refused while this one answers.
    assert_eq!(
        bind_unix(&path).unwrap_err().kind(),
        io::ErrorKind::AddrInUse
    );
    let cancel = CancellationToken::new();
    let p2 = path.clone();
    let srv = tokio::spawn(async move {
        serve_unix_listener(l, &p2, app, cancel.clone(), Duration::from_secs(5))
            .await
            .map(|_| cancel)
    });
    let s = tokio::net::UnixStream::connect(&path).await.unwrap();
    assert_eq!(request(s, "PUT", "/x", None).await, (200, "local".into()));
    assert_eq!(seen.lock()[0].2, "local");
    srv.abort();
    let _ = srv.await;
    // Aborting drops the loop: the socket file goes with it.
    assert!(!path.exists());
}

#[tokio::test]
async fn unix_socket_removed_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let cancel = CancellationToken::new();
    let app = guard(app(), Access::Local, None);
    let (p2, c2) = (path.clone(), cancel.clone());
    let srv = tokio::spawn(async move { serve_unix(&p2, app, c2, Duration::from_secs(5)).await });
    for _ in 0..100 {
        if path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = tokio::net::UnixStream::connect(&path).await.unwrap();
    assert_eq!(request(s, "GET", "/x", None).await.0, 200);
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), srv)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!path.exists());
}

/// Accepts exactly the certificate with the pinned SHA-256.
#[derive(Debug)]
struct Pin(String, Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Pin {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if crate::tls::fingerprint(end_entity) == self.0 {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("fingerprint mismatch".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

async fn tls_connect(
    addr: SocketAddr,
    fp: &str,
) -> io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pin(fp.to_string(), provider)))
        .with_no_client_auth();
    let conn = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    conn.connect(name, tcp).await
}

#[tokio::test]
async fn https_with_the_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let fp = crate::tls::ensure(dir.path(), "testhost").unwrap();
    let (cfg, fp2) = crate::tls::load(dir.path()).unwrap();
    assert_eq!(fp, fp2);
    let store = Arc::new(TokenStore::open(&dir.path().join("tokens.json")).unwrap());
    let (_, admin) = store.create("admin", NewToken::default()).unwrap();
    let app = guard(app(), Access::Tokens(store), None);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let srv = tokio::spawn(serve_tcp(
        l,
        app,
        Some(cfg),
        cancel.clone(),
        Duration::from_secs(5),
        ServerLimits::default(),
    ));
    let s = tls_connect(addr, &fp).await.unwrap();
    assert_eq!(
        request(s, "GET", "/x", Some(&admin)).await,
        (200, "admin".into())
    );
    let s = tls_connect(addr, &fp).await.unwrap();
    assert_eq!(request(s, "GET", "/x", None).await.0, 401);
    // A different pin is refused by the client.
    assert!(tls_connect(addr, &"0".repeat(64)).await.is_err());
    // Plain HTTP on the TLS port gets no answer.
    let (st, _) = tcp(addr, "GET", "/x", Some(&admin)).await;
    assert_eq!(st, 0);
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), srv)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Limits for the bound tests: 30 s for whatever a test does not exercise.
fn bounded(max: usize, header: u64, idle: u64, body: u64) -> ServerLimits {
    ServerLimits {
        max_connections: max,
        header_timeout: Duration::from_secs(header),
        idle_timeout: Duration::from_secs(idle),
        body_timeout: Duration::from_secs(body),
        tls_handshake_timeout: Duration::from_secs(30),
    }
}

/// The test routes plus `/echo` (the length of the body read, or the read error) and
/// `/big` (64 MiB).
fn bounded_app() -> Router {
    async fn echo(body: axum::body::Body) -> (axum::http::StatusCode, String) {
        match axum::body::to_bytes(body, usize::MAX).await {
            Ok(b) => (axum::http::StatusCode::OK, b.len().to_string()),
            Err(e) => (axum::http::StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
    async fn big() -> Vec<u8> {
        vec![7u8; BIG]
    }
    guard(app(), Access::Local, None)
        .route("/echo", axum::routing::put(echo))
        .route("/big", get(big))
}

const BIG: usize = 64 << 20;

/// A TCP listener serving [`bounded_app`] within `limits`.
async fn serve_bounded(limits: ServerLimits) -> (SocketAddr, CancellationToken) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let cancel = CancellationToken::new();
    tokio::spawn(serve_tcp(
        l,
        bounded_app(),
        None,
        cancel.clone(),
        Duration::from_secs(5),
        limits,
    ));
    (addr, cancel)
}

/// Reads until the peer closes (EOF or reset), at most `max`; returns the bytes read and
/// when the close came (from `since`).
async fn until_closed<S: AsyncRead + Unpin>(
    s: &mut S,
    since: std::time::Instant,
    max: Duration,
) -> (Vec<u8>, Duration) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(max, read_all)
        .await
        .expect("the server closed the connection in time");
    (out, since.elapsed())
}

/// Reads one keep-alive response (head and Content-Length body) within 10 s; returns
/// (status, body).
async fn read_one(s: &mut tokio::net::TcpStream) -> (u16, String) {
    let read = async {
        let mut raw = Vec::new();
        let mut b = [0u8; 1];
        while !raw.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut b).await.unwrap(), 1, "closed mid-head");
            raw.push(b[0]);
        }
        let head = String::from_utf8(raw).unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap();
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, String::from_utf8(body).unwrap())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a response within 10 s")
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[tokio::test]
async fn silent_and_half_sent_connections_close_at_the_header_timeout() {
    let (addr, _c) = serve_bounded(bounded(8, 2, 30, 30)).await;
    // Nothing sent at all: hyper-util's protocol sniffing alone would wait forever.
    let t = std::time::Instant::now();
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Half a request head.
    let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    // The HTTP/2 preface and nothing more.
    let mut h2 = tokio::net::TcpStream::connect(addr).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    for (what, s) in [("silent", &mut silent), ("half head", &mut half)] {
        let (got, when) = until_closed(s, t, Duration::from_secs(10)).await;
        assert!(
            got.is_empty(),
            "{what}: {:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(
            secs(when) >= 1.5 && secs(when) < 6.0,
            "{what}: closed after {when:?}, the header timeout is 2 s"
        );
    }
    let (_, when) = until_closed(&mut h2, t, Duration::from_secs(10)).await;
    assert!(secs(when) >= 1.5 && secs(when) < 6.0, "h2: {when:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_closes_at_the_idle_timeout() {
    // The idle timeout (1 s) under the header timeout (5 s): the watchdog, not hyper's
    // header timer, closes it.
    let (addr, _c) = serve_bounded(bounded(8, 5, 1, 30)).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    for _ in 0..3 {
        // Requests 0.5 s apart keep it open past the idle timeout.
        s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_one(&mut s).await, (200, "local".into()));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let t = std::time::Instant::now();
    let (got, when) = until_closed(&mut s, t, Duration::from_secs(10)).await;
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert!(
        secs(when) >= 0.3 && secs(when) < 3.0,
        "closed {when:?} after the last sleep; idle timeout 1 s"
    );
}

#[tokio::test]
async fn a_request_body_that_goes_idle_fails_and_a_slow_one_passes() {
    let (addr, _c) = serve_bounded(bounded(8, 30, 30, 1)).await;
    // A byte every 400 ms: slow, never idle for 1 s.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        s.write_all(b"z").await.unwrap();
    }
    assert_eq!(read_one(&mut s).await, (200, "5".into()));
    // 10 bytes of 100, then silence.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let (status, body) = read_one(&mut s).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("the request body sent no data for 1 s"),
        "{body}"
    );
    assert!(
        secs(t.elapsed()) >= 0.8 && secs(t.elapsed()) < 4.0,
        "{:?}",
        t.elapsed()
    );
    // The rest of that body can never be read: the connection ends.
    let (got, _) = until_closed(&mut s, t, Duration::from_secs(5)).await;
    assert!(got.is_empty());
}

#[tokio::test]
async fn a_client_that_reads_nothing_loses_the_connection() {
    let (addr, _c) = serve_bounded(bounded(8, 30, 30, 1)).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // The socket buffers fill within the first second; then 1 s with nothing read.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let t = std::time::Instant::now();
    let (got, _) = until_closed(&mut s, t, Duration::from_secs(10)).await;
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(
        got.len() < BIG,
        "the whole body arrived: the stalled connection was kept"
    );
}

#[tokio::test]
async fn past_the_cap_a_503_then_served_again() {
    let (addr, _c) = serve_bounded(bounded(2, 30, 30, 30)).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_one(&mut s).await, (200, "local".into()));
        held.push(s);
    }
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let (raw, _) = until_closed(&mut s, t, Duration::from_secs(10)).await;
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines: Vec<String> = head.lines().map(str::to_ascii_lowercase).collect();
    assert_eq!(lines.remove(0), "http/1.1 503 service unavailable");
    lines.retain(|l| !l.starts_with("date:"));
    lines.sort();
    let want = r#"{"error":{"code":"unavailable","message":"too many connections; retry later"}}"#;
    assert_eq!(body, want);
    assert_eq!(
        lines,
        [
            "connection: close".to_string(),
            format!("content-length: {}", want.len()),
            "content-type: application/json".into(),
            "retry-after: 1".into()
        ]
    );
    // A held connection goes: its slot serves the next one.
    drop(held.pop());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (st, body) = tcp(addr, "GET", "/x", None).await;
        if st == 200 {
            assert_eq!(body, "local");
            break;
        }
        assert_eq!(st, 503);
        assert!(
            std::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn accept_backoff_doubles_to_a_second_and_resets() {
    let mut b = AcceptBackoff::new();
    let e = io::Error::from_raw_os_error(libc::EMFILE);
    let ms: Vec<u128> = (0..10).map(|_| b.failed(&e, "t").as_millis()).collect();
    assert_eq!(ms, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    b.succeeded();
    assert_eq!(b.failed(&e, "t"), Duration::from_millis(5));
}

#[tokio::test]
async fn log_every_holds_back_repeats() {
    let l = LogEvery::new(Duration::from_millis(300));
    assert_eq!(l.hit(), Some(0));
    assert_eq!(l.hit(), None);
    assert_eq!(l.hit(), None);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(l.hit(), Some(2));
    assert_eq!(l.hit(), None);
}
