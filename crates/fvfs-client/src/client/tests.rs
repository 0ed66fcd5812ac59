//! Tests of the client against an in-process mock daemon (axum on 127.0.0.1) and a TLS
//! server with a freshly generated self-signed certificate.

use super::*;
use axum::body::Body;
use axum::http::{HeaderMap as AxHeaders, Request, StatusCode as AxStatus};
use axum::response::{IntoResponse, Response as AxResponse};
use parking_lot::Mutex;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONTENT: &[u8] = b"0123456789";

/// What the mock saw: method, raw path and query, headers, body.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    headers: AxHeaders,
    body: Vec<u8>,
}

fn stat_json(path: &str, size: u64) -> serde_json::Value {
    serde_json::json!({
        "path": path, "ino": 2, "kind": "file", "size": size, "mode": 420, "uid": 0,
        "gid": 0, "nlink": 1, "atime_ns": 0, "mtime_ns": 0, "ctime_ns": 0
    })
}

fn err_json(status: u16, code: &str) -> AxResponse {
    let body = serde_json::json!({"error": {"code": code, "message": format!("{code} here")}});
    (AxStatus::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

async fn mock(log: Arc<Mutex<Vec<Seen>>>, req: Request<Body>) -> AxResponse {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let uri = parts.uri.to_string();
    log.lock().push(Seen {
        method: parts.method.to_string(),
        uri: uri.clone(),
        headers: parts.headers.clone(),
        body: body.to_vec(),
    });
    let path = parts.uri.path();
    let json = |v: serde_json::Value| axum::Json(v).into_response();
    match path {
        "/v1/meta/missing" => err_json(404, "not_found"),
        // Each code of the vocabulary with its status, as fvfsd answers it.
        p if p.starts_with("/v1/meta/code/") => {
            let name = &p["/v1/meta/code/".len()..];
            let code = ErrorCode::ALL.iter().find(|c| c.as_str() == name).unwrap();
            err_json(code.http_status(), name)
        }
        "/v1/meta/proxy" => (AxStatus::BAD_GATEWAY, "<html>bad gateway</html>").into_response(),
        p if p.starts_with("/v1/meta/") => json(stat_json(p, 10)),
        "/v1/ls/d" => {
            let page = if parts.uri.query().unwrap_or("").contains("after=b") {
                serde_json::json!({"path": "/d", "entries": [stat_json("/d/c", 1)]})
            } else {
                serde_json::json!({"path": "/d", "entries": [stat_json("/d/a", 1),
                    stat_json("/d/b", 1)], "next": "b"})
            };
            json(page)
        }
        // Ignores Range: the whole file, 200.
        "/v1/files/whole" => CONTENT.into_response(),
        "/v1/files/ranged" => {
            let range = parts
                .headers
                .get("range")
                .and_then(|v| v.to_str().ok())
                .and_then(|r| r.strip_prefix("bytes="))
                .map(|r| r.to_string());
            let Some(r) = range else {
                return CONTENT.into_response();
            };
            let (a, b) = r.split_once('-').unwrap();
            let a: usize = a.parse().unwrap();
            if a >= CONTENT.len() {
                return err_json(416, "range_not_satisfiable");
            }
            let b: usize = if b.is_empty() {
                CONTENT.len() - 1
            } else {
                b.parse().unwrap()
            };
            let b = b.min(CONTENT.len() - 1);
            (
                AxStatus::PARTIAL_CONTENT,
                [("content-range", format!("bytes {a}-{b}/{}", CONTENT.len()))],
                CONTENT[a..=b].to_vec(),
            )
                .into_response()
        }
        p if p.starts_with("/v1/files/") && parts.method == "PUT" => (
            AxStatus::CREATED,
            axum::Json(stat_json(p, body.len() as u64)),
        )
            .into_response(),
        p if p.starts_with("/v1/blocks/") => CONTENT.into_response(),
        p if p.starts_with("/v1/mknod/") => {
            let mut st = stat_json(p.trim_start_matches("/v1/mknod"), 0);
            st["kind"] = "char_dev".into();
            st["rdev"] = 0x801.into();
            (AxStatus::CREATED, axum::Json(st)).into_response()
        }
        "/v1/link" => {
            let mut st = stat_json("/b", 10);
            st["nlink"] = 2.into();
            (AxStatus::CREATED, axum::Json(st)).into_response()
        }
        _ => err_json(404, "not_found"),
    }
}

async fn serve_mock() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l2 = log.clone();
    let app = axum::Router::new().fallback(move |req: Request<Body>| mock(l2.clone(), req));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), log)
}

fn client(url: &str) -> Client {
    Client::new(Endpoint {
        url: format!("{url}/"),
        token: Some("tok".into()),
        fingerprint: None,
    })
    .unwrap()
}

async fn collect(s: ByteStream) -> Vec<u8> {
    let chunks: Vec<Bytes> = s.try_collect().await.unwrap();
    chunks.concat()
}

#[test]
fn paths_are_encoded_per_segment() {
    assert_eq!(encode_path("/a/b c"), "a/b%20c");
    assert_eq!(encode_path("//a//b/"), "a/b");
    assert_eq!(encode_path("/"), "");
    assert_eq!(encode_path("/é/%?#+&"), "%C3%A9/%25%3F%23%2B%26");
    assert_eq!(encode_path("a-b_c.d~e"), "a-b_c.d~e");
}

#[test]
fn host_port_keys() {
    assert_eq!(host_port("https://NAS:7734/x").as_deref(), Some("nas:7734"));
    assert_eq!(host_port("https://nas").as_deref(), Some("nas:443"));
    assert_eq!(host_port("http://nas/").as_deref(), Some("nas:80"));
    assert_eq!(host_port("https://[::1]:9").as_deref(), Some("[::1]:9"));
    assert_eq!(host_port("https://[::1]").as_deref(), Some("[::1]:443"));
    assert_eq!(host_port("nas:1"), None);
}

#[test]
fn blocks_are_verified() {
    let data = Bytes::from_static(b"block bytes");
    let id = blake3::hash(&data).to_hex().to_string();
    assert_eq!(verify_block(&id, data.clone()).unwrap(), data);
    let wrong = blake3::hash(b"other").to_hex().to_string();
    let e = verify_block(&wrong, data).unwrap_err().to_string();
    assert!(e.contains("discarded"), "{e}");
}

#[tokio::test]
async fn requests_carry_headers_and_encoded_paths() {
    let (url, log) = serve_mock().await;
    let c = client(&url);
    let st = c.stat("/a b/ü").await.unwrap();
    assert_eq!(st.path, "/v1/meta/a%20b/%C3%BC");
    let seen = log.lock()[0].clone();
    assert_eq!(seen.uri, "/v1/meta/a%20b/%C3%BC");
    assert_eq!(seen.headers["authorization"], "Bearer tok");
    assert_eq!(seen.headers["user-agent"], format!("fvfsc/{VERSION}"));
    assert_eq!(seen.headers[HEADER_DEVICE], hostname().as_str());
}

/// The client's half of the errno round trip (fvfs-api's error tests do the engine's half):
/// every code, read back from a daemon's answer, gives the mount the code's own errno.
#[tokio::test]
async fn every_code_reaches_the_mount_as_its_errno() {
    let (url, _log) = serve_mock().await;
    let c = client(&url);
    for &code in ErrorCode::ALL {
        let e = c.stat(&format!("/code/{code}")).await.unwrap_err();
        match &e {
            ClientError::Api {
                status, code: got, ..
            } => {
                assert_eq!((*status, *got), (code.http_status(), code), "{e}")
            }
            other => panic!("{code}: {other:?}"),
        }
        let errno = crate::mount::errno_of(&e);
        assert_eq!(errno, fvfs_fuse::Errno::from_i32(code.errno()), "{code}");
    }
}

#[tokio::test]
async fn errors_are_typed() {
    let (url, _log) = serve_mock().await;
    let c = client(&url);
    match c.stat("/missing").await {
        Err(ClientError::Api {
            status: 404,
            code: ErrorCode::NotFound,
            message,
        }) => {
            assert_eq!(message, "not_found here")
        }
        other => panic!("{other:?}"),
    }
    match c.stat("/proxy").await {
        Err(ClientError::Api {
            status: 502,
            code: ErrorCode::Unavailable,
            message,
        }) => {
            assert!(message.contains("not an fvfsd error body"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // Nothing listens on a port we just closed.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    match client(&dead).status().await {
        Err(ClientError::Connect { url, .. }) => assert_eq!(url, dead),
        other => panic!("{other:?}"),
    }
    assert!(Client::new(Endpoint {
        url: "ftp://x".into(),
        token: None,
        fingerprint: None
    })
    .is_err());
}

#[tokio::test]
async fn ls_follows_pages() {
    let (url, log) = serve_mock().await;
    let l = client(&url).ls("/d").await.unwrap();
    let names: Vec<_> = l.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(names, ["/d/a", "/d/b", "/d/c"]);
    assert_eq!(log.lock()[1].uri, "/v1/ls/d?after=b");
}

#[tokio::test]
async fn ranges_with_206_200_and_416() {
    let (url, log) = serve_mock().await;
    let c = client(&url);
    assert_eq!(
        collect(c.get("/ranged", 0, None).await.unwrap()).await,
        CONTENT
    );
    assert!(log.lock()[0].headers.get("range").is_none());
    assert_eq!(
        collect(c.get("/ranged", 3, Some(4)).await.unwrap()).await,
        b"3456"
    );
    assert_eq!(log.lock()[1].headers["range"], "bytes=3-6");
    assert_eq!(
        collect(c.get("/ranged", 7, None).await.unwrap()).await,
        b"789"
    );
    assert_eq!(
        collect(c.get("/ranged", 8, Some(100)).await.unwrap()).await,
        b"89"
    );
    assert!(collect(c.get("/ranged", 10, None).await.unwrap())
        .await
        .is_empty());
    // A server that ignores Range: the client skips and truncates.
    assert_eq!(
        collect(c.get("/whole", 3, Some(4)).await.unwrap()).await,
        b"3456"
    );
    assert_eq!(
        collect(c.get("/whole", 8, None).await.unwrap()).await,
        b"89"
    );
    assert!(collect(c.get("/whole", 3, Some(0)).await.unwrap())
        .await
        .is_empty());
}

#[tokio::test]
async fn put_streams_with_length_hash_and_query() {
    let (url, log) = serve_mock().await;
    let c = client(&url);
    let parts: Vec<std::io::Result<Bytes>> = vec![
        Ok(Bytes::from_static(b"hello ")),
        Ok(Bytes::from_static(b"world")),
    ];
    let body: ByteStream = Box::pin(futures::stream::iter(parts));
    let hash = blake3::hash(b"hello world").to_hex().to_string();
    let opts = CreateRequest {
        mode: Some(0o600),
        parents: Some(true),
        ..Default::default()
    };
    let st = c
        .put("/x/y z", body, Some(11), Some(&hash), &opts)
        .await
        .unwrap();
    assert_eq!(st.size, 11);
    let seen = log.lock()[0].clone();
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.uri, "/v1/files/x/y%20z?mode=384&parents=true");
    assert_eq!(seen.headers["content-length"], "11");
    assert_eq!(seen.headers[HEADER_BLAKE3], hash.as_str());
    assert_eq!(seen.body, b"hello world");
}

#[tokio::test]
async fn mknod_and_link() {
    let (url, log) = serve_mock().await;
    let c = client(&url);
    let req = MknodRequest {
        kind: Kind::CharDev,
        mode: Some(0o600),
        uid: Some(1),
        gid: None,
        rdev: 0x801,
    };
    let st = c.mknod("/dev node", &req).await.unwrap();
    assert_eq!((st.kind, st.rdev), (Kind::CharDev, 0x801));
    let st = c
        .link(&LinkRequest {
            from: "/a".into(),
            to: "/b".into(),
        })
        .await
        .unwrap();
    assert_eq!(st.nlink, 2);
    let seen = log.lock().clone();
    assert_eq!(seen[0].uri, "/v1/mknod/dev%20node");
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["kind"], "char_dev");
    assert_eq!(body["rdev"], 0x801);
    assert_eq!(
        (seen[1].method.as_str(), seen[1].uri.as_str()),
        ("POST", "/v1/link")
    );
    let body: serde_json::Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(
        (body["from"].as_str(), body["to"].as_str()),
        (Some("/a"), Some("/b"))
    );
}

#[tokio::test]
async fn block_with_wrong_bytes_is_refused() {
    let (url, _log) = serve_mock().await;
    let c = client(&url);
    let good = blake3::hash(CONTENT).to_hex().to_string();
    assert_eq!(c.block(&good).await.unwrap(), CONTENT);
    let bad = blake3::hash(b"x").to_hex().to_string();
    assert!(c.block(&bad).await.is_err());
    assert!(c.block("nothex").await.is_err());
}

/// A TLS server answering every request with a fixed `Status`; returns its URL, the
/// certificate's fingerprint and the head of every request it decrypted.
async fn serve_tls() -> (String, String, Arc<Mutex<Vec<String>>>) {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let log = heads.clone();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let der = ck.cert.der().clone();
    let fp = fingerprint(der.as_ref());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..32 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                log.lock()
                    .push(String::from_utf8_lossy(&buf).to_ascii_lowercase());
                let body = serde_json::json!({"version": "t", "uuid": "u", "name": "n",
                    "uptime_secs": 1, "tiers": [], "wal_pending": 0, "workers": {},
                    "files": 0, "bytes": 0})
                .to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (format!("https://127.0.0.1:{}", addr.port()), fp, heads)
}

#[tokio::test]
async fn tls_pin_accepts_exactly_the_pinned_certificate() {
    let (url, fp, heads) = serve_tls().await;
    assert_eq!(probe_fingerprint(&url).await.unwrap(), fp);
    assert_eq!(heads.lock().len(), 1, "the probe made one request");

    let pinned = Client::new(Endpoint {
        url: url.clone(),
        token: None,
        fingerprint: Some(fp.to_uppercase()),
    })
    .unwrap();
    assert_eq!(pinned.status().await.unwrap().uuid, "u");

    assert_eq!(heads.lock().len(), 2);

    // A wrong pin: refused in the handshake, so the token never leaves the client.
    let wrong = "00".repeat(32);
    let c = Client::new(Endpoint {
        url: url.clone(),
        token: Some("s3cret-token".into()),
        fingerprint: Some(wrong.clone()),
    })
    .unwrap();
    match c.status().await {
        Err(ClientError::Connect { msg, .. }) => {
            assert!(
                msg.contains(&wrong)
                    && msg.contains(&fp)
                    && msg.contains("fvfsd status")
                    && msg.contains(&format!("fvfsc login --replace-pin {fp} {url}")),
                "{msg}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        heads.lock().len(),
        2,
        "no request crossed a refused handshake"
    );

    // --replace-pin: a wrong fingerprint is refused, the right one accepted; the probe
    // carries no token either way.
    let e = crate::config::check_replacement(&url, &wrong)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&wrong) && e.contains(&fp), "{e}");
    let colons: Vec<String> = fp
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    assert_eq!(
        crate::config::check_replacement(&url, &colons.join(":"))
            .await
            .unwrap(),
        fp
    );
    let heads = heads.lock().clone();
    assert_eq!(heads.len(), 4, "{heads:?}");
    assert!(
        heads.iter().all(|h| !h.contains("authorization")),
        "no token was sent: {heads:?}"
    );
    // Without a pin the self-signed certificate fails the system roots.
    let c = Client::new(Endpoint {
        url,
        token: None,
        fingerprint: None,
    })
    .unwrap();
    assert!(matches!(c.status().await, Err(ClientError::Connect { .. })));
}

#[test]
fn debug_output_hides_the_token() {
    let ep = Endpoint {
        url: "http://x:1".into(),
        token: Some("s3cret".into()),
        fingerprint: None,
    };
    let d = format!("{ep:?}");
    assert!(!d.contains("s3cret") && d.contains("redacted"), "{d}");
}
