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
