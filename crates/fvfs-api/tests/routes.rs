//! The `/v1` routes on a real engine, driven through `router(state)` without a network.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{data, env, env_with, Env};
use fvfs_api::Limits;

async fn get_bytes(e: &Env, path: &str) -> Vec<u8> {
    let r = e.get(&format!("/v1/files/{path}")).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{:?}",
        String::from_utf8_lossy(&r.body)
    );
    r.body.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_round_trip_and_streamed_20mib() {
    let e = env();
    let r = e.put("a/b.txt", b"hello").await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "no parent without parents=true"
    );
    let r = e
        .call(
            "PUT",
            "/v1/files/a/b.txt?parents=true&mode=384",
            Body::from("hello"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let st = r.json();
    assert_eq!(st["path"], "/a/b.txt");
    assert_eq!(st["size"], 5);
    assert_eq!(st["mode"], 0o600);
    assert_eq!(st["kind"], "file");
    assert!(st["etag"].as_str().unwrap().starts_with('"'));
    assert_eq!(get_bytes(&e, "a/b.txt").await, b"hello");
    let r = e.put("a/b.txt", b"bye").await;
    assert_eq!(r.status, StatusCode::OK, "replaced");
    assert_eq!(get_bytes(&e, "a/b.txt").await, b"bye");

    // 20 MiB streamed in 64 KiB frames, with its hash.
    let big = data(20 << 20, 7);
    let frames: Vec<Result<bytes::Bytes, std::io::Error>> = big
        .chunks(64 << 10)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let req = Request::builder()
        .method("PUT")
        .uri("/v1/files/big.bin")
        .header("content-length", big.len())
        .header("x-fvfs-blake3", blake3::hash(&big).to_hex().as_str())
        .body(Body::from_stream(futures::stream::iter(frames)))
        .unwrap();
    let r = e.send(req).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{:?}",
        String::from_utf8_lossy(&r.body)
    );
    let got = get_bytes(&e, "big.bin").await;
    assert_eq!(got.len(), big.len());
    assert!(got == big, "20 MiB round trip differs");
    // No temporary file is left or listed.
    let ls = e.get("/v1/ls").await.json();
    let names: Vec<_> = ls["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["/a", "/big.bin"]);
    let raw = e
        .vfs
        .list_sorted(fvfs_vfs::ROOT_INO, None, 100, |_| true)
        .unwrap()
        .0;
    assert_eq!(raw.len(), 2, "a temporary upload file was left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_etag_and_head() {
    let e = env();
    let body = data(100_000, 1);
    e.put("f", &body).await;
    let req = |range: &str| {
        Request::builder()
            .uri("/v1/files/f")
            .header("range", range)
            .body(Body::empty())
            .unwrap()
    };
    let r = e.send(req("bytes=10-19")).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header("content-range"), "bytes 10-19/100000");
    assert_eq!(&r.body[..], &body[10..20]);
    let r = e.send(req("bytes=-5")).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.body[..], &body[99_995..]);
    let r = e.send(req("bytes=99990-")).await;
    assert_eq!(&r.body[..], &body[99_990..]);
    let r = e.send(req("bytes=100000-")).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), "bytes */100000");
    assert_eq!(r.code(), "range_not_satisfiable");
    let r = e.send(req("bytes=0-1,5-6")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), 100_000);

    let r = e.get("/v1/files/f").await;
    let tag = r.header("etag").to_string();
    assert_eq!(tag.len(), 34);
    assert_eq!(r.header("accept-ranges"), "bytes");
    assert!(!r.header("last-modified").is_empty());
    assert_eq!(r.header("content-length"), "100000");
    let inm = |v: &str| {
        Request::builder()
            .uri("/v1/files/f")
            .header("if-none-match", v)
            .body(Body::empty())
            .unwrap()
    };
    let r = e.send(inm(&tag)).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());
    assert_eq!(e.send(inm("*")).await.status, StatusCode::NOT_MODIFIED);
    assert_eq!(e.send(inm("\"other\"")).await.status, StatusCode::OK);
    // Meta reports the same ETag.
    assert_eq!(e.get("/v1/meta/f").await.json()["etag"], tag.as_str());

    let r = e.call("HEAD", "/v1/files/f", Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), "100000");
    assert!(r.body.is_empty());

    // Overwrite: the ETag changes, the old one no longer matches.
    let mut body2 = body.clone();
    body2[500] ^= 0xff;
    e.put("f", &body2).await;
    let r = e.send(inm(&tag)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.header("etag"), tag);
    assert!(r.body[..] == body2[..]);

    // A directory is 409 is_dir.
    e.call("POST", "/v1/mkdir/d", Body::empty()).await;
    let r = e.get("/v1/files/d").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "is_dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_uploads_change_nothing() {
    let e = env_with(Limits {
        max_upload: 1 << 20,
        max_json: 64 << 10,
    });
    e.put("f", b"old content").await;
    // Hash mismatch: 422, old content stays.
    let req = Request::builder()
        .method("PUT")
        .uri("/v1/files/f")
        .header(
            "x-fvfs-blake3",
            blake3::hash(b"something else").to_hex().as_str(),
        )
        .body(Body::from("new content"))
        .unwrap();
    let r = e.send(req).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "hash_mismatch");
    assert_eq!(get_bytes(&e, "f").await, b"old content");
    // A bad hash header is 400.
    let req = Request::builder()
        .method("PUT")
        .uri("/v1/files/f")
        .header("x-fvfs-blake3", "xyz")
        .body(Body::from("new"))
        .unwrap();
    assert_eq!(e.send(req).await.status, StatusCode::BAD_REQUEST);

    // Short body (declared length not reached): nothing appears.
    let req = Request::builder()
        .method("PUT")
        .uri("/v1/files/g")
        .header("content-length", "1000")
        .body(Body::from(vec![1u8; 10]))
        .unwrap();
    let r = e.send(req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "length_mismatch");
    assert_eq!(e.get("/v1/meta/g").await.status, StatusCode::NOT_FOUND);
    // A body that fails midway (client gone): nothing appears.
    let frames: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(bytes::Bytes::from(vec![2u8; 5000])),
        Err(std::io::Error::other("connection reset")),
    ];
    let req = Request::builder()
        .method("PUT")
        .uri("/v1/files/f")
        .body(Body::from_stream(futures::stream::iter(frames)))
        .unwrap();
    let r = e.send(req).await;
    assert_eq!(r.code(), "length_mismatch");
    assert_eq!(get_bytes(&e, "f").await, b"old content");

    // Oversized Content-Length: 413 before reading.
    let req = Request::builder()
        .method("PUT")
        .uri("/v1/files/h")
        .header("content-length", (2u64 << 20).to_string())
        .body(Body::from(vec![0u8; 10]))
        .unwrap();
    let r = e.send(req).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "payload_too_large");
    // Oversized body without Content-Length: stopped at the limit.
    let frames: Vec<Result<bytes::Bytes, std::io::Error>> = (0..40)
        .map(|_| Ok(bytes::Bytes::from(vec![3u8; 64 << 10])))
        .collect();
    let req = Request::builder()
        .method("PUT")
        .uri("/v1/files/h")
        .body(Body::from_stream(futures::stream::iter(frames)))
        .unwrap();
    assert_eq!(e.send(req).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(e.get("/v1/meta/h").await.status, StatusCode::NOT_FOUND);
    // Give the spawned cleanups a moment, then check no temporary file is left.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let raw = e
        .vfs
        .list_sorted(fvfs_vfs::ROOT_INO, None, 100, |_| true)
        .unwrap()
        .0;
    let names: Vec<_> = raw
        .iter()
        .map(|d| String::from_utf8_lossy(&d.name).into_owned())
        .collect();
    assert_eq!(names, ["f"]);

    // JSON over max_json: 413 with our body.
    let big = serde_json::json!({ "from": "x".repeat(70 << 10), "to": "y" });
    let r = e.post_json("/v1/rename", big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "payload_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_and_bad_paths_are_400() {
    let e = env();
    e.put("ok", b"x").await;
    for p in [
        "..",
        "%2e%2e",
        "a/../../etc/passwd",
        "%2F..%2F..%2Fetc",
        "%00",
        "a%00b",
        "%ff",
        "./ok",
        ".fvfs-put.x",
    ] {
        for (m, prefix) in [
            ("GET", "/v1/files/"),
            ("GET", "/v1/meta/"),
            ("PUT", "/v1/files/"),
            ("DELETE", "/v1/files/"),
            ("GET", "/v1/ls/"),
        ] {
            let r = e.call(m, &format!("{prefix}{p}"), Body::from("x")).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{m} {prefix}{p}");
            assert_eq!(r.code(), "invalid_path", "{m} {prefix}{p}");
        }
    }
    let long = "n".repeat(256);
    let r = e.put(&long, b"x").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "name_too_long");
    // Encoded names are decoded once.
    let r = e.put("sp%20ace%25", b"y").await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["path"], "/sp ace%");
    let r = e
        .post_json(
            "/v1/rename",
            serde_json::json!({"from": "ok", "to": "../x"}),
        )
        .await;
    assert_eq!(r.code(), "invalid_path");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_paging() {
    let e = env();
    e.call("POST", "/v1/mkdir/d", Body::empty()).await;
    for i in (0..25).rev() {
        let r = e
            .put(&format!("d/f{i:02}"), format!("{i}").as_bytes())
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let uri = match &after {
            Some(a) => format!("/v1/ls/d?limit=10&after={a}"),
            None => "/v1/ls/d?limit=10".to_string(),
        };
        let l = e.get(&uri).await.json();
        for x in l["entries"].as_array().unwrap() {
            seen.push(x["path"].as_str().unwrap().to_string());
        }
        match l["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    let want: Vec<_> = (0..25).map(|i| format!("/d/f{i:02}")).collect();
    assert_eq!(seen, want);
    assert_eq!(e.get("/v1/ls/d?limit=0").await.code(), "invalid_argument");
    assert_eq!(e.get("/v1/ls/d?limit=x").await.code(), "invalid_argument");
    assert_eq!(e.get("/v1/ls/d/f01").await.code(), "not_dir");
    assert_eq!(e.get("/v1/ls/nope").await.code(), "not_found");
    let root = e.get("/v1/ls/").await.json();
    assert_eq!(root["path"], "/");
    assert_eq!(root["entries"][0]["kind"], "dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_operations() {
    let e = env();
    let r = e.call("POST", "/v1/mkdir/x", Body::empty()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["mode"], 0o755);
    let r = e.call("POST", "/v1/mkdir/x", Body::empty()).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "exists")
    );
    let r = e
        .post_json(
            "/v1/mkdir/x/y/z",
            serde_json::json!({"parents": true, "mode": 448, "uid": 1234, "gid": 4321}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let st = r.json();
    assert_eq!(
        (st["mode"].as_u64(), st["uid"].as_u64(), st["gid"].as_u64()),
        (Some(448), Some(1234), Some(4321))
    );
    let r = e
        .post_json("/v1/mkdir/x/y/z", serde_json::json!({"parents": true}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = e.call("POST", "/v1/mkdir/n", Body::from("null")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        e.post_json("/v1/mkdir/q", serde_json::json!({"bogus": 1}))
            .await
            .code(),
        "invalid_argument"
    );
    assert_eq!(
        e.call("POST", "/v1/mkdir/q", Body::from("{not json"))
            .await
            .code(),
        "invalid_argument"
    );

    e.put("x/file", b"content").await;
    let r = e
        .post_json("/v1/symlink/x/link", serde_json::json!({"target": "file"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let st = r.json();
    assert_eq!(
        (st["kind"].as_str(), st["target"].as_str()),
        (Some("symlink"), Some("file"))
    );
    assert_eq!(
        e.post_json("/v1/symlink/x/l2", serde_json::json!({}))
            .await
            .code(),
        "invalid_argument"
    );
    assert_eq!(e.get("/v1/meta/x/link").await.json()["kind"], "symlink");

    // setattr
    let req = Request::builder()
        .method("PATCH")
        .uri("/v1/meta/x/file")
        .body(Body::from(
            r#"{"mode": 384, "size": 3, "mtime_ns": 1000000000}"#,
        ))
        .unwrap();
    let r = e.send(req).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    let st = r.json();
    assert_eq!(
        (
            st["mode"].as_u64(),
            st["size"].as_u64(),
            st["mtime_ns"].as_i64()
        ),
        (Some(384), Some(3), Some(1_000_000_000))
    );
    assert_eq!(get_bytes(&e, "x/file").await, b"con");
    let req = Request::builder()
        .method("PATCH")
        .uri("/v1/meta/x")
        .body(Body::from(r#"{"size": 3}"#))
        .unwrap();
    assert_eq!(e.send(req).await.code(), "is_dir");

    // rename
    let r = e
        .post_json(
            "/v1/rename",
            serde_json::json!({"from": "/x/file", "to": "/moved"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["path"], "/moved");
    assert_eq!(get_bytes(&e, "moved").await, b"con");
    e.put("other", b"o").await;
    let r = e
        .post_json(
            "/v1/rename",
            serde_json::json!({"from": "other", "to": "moved", "noreplace": true}),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "exists")
    );
    let r = e
        .post_json(
            "/v1/rename",
            serde_json::json!({"from": "other", "to": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "file over a directory");
    let r = e
        .post_json(
            "/v1/rename",
            serde_json::json!({"from": "nope", "to": "x2"}),
        )
        .await;
    assert_eq!(r.code(), "not_found");

    // delete
    let r = e.call("DELETE", "/v1/files/x", Body::empty()).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "not_empty")
    );
    assert_eq!(
        e.call("DELETE", "/v1/files/x/link", Body::empty())
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        e.call("DELETE", "/v1/files/x/y/z", Body::empty())
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        e.call("DELETE", "/v1/files/moved", Body::empty())
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(e.get("/v1/meta/moved").await.code(), "not_found");
    assert_eq!(
        e.call("DELETE", "/v1/files/", Body::empty()).await.code(),
        "invalid_path"
    );
    // A parent that is a file.
    assert_eq!(e.put("other/sub", b"s").await.code(), "not_dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_and_blocks_reproduce_the_file() {
    let e = env();
    let body = data(5 << 20, 3);
    e.put("m.bin", &body).await;
    let m = e.get("/v1/manifest/m.bin").await.json();
    assert_eq!(m["size"], body.len() as u64);
    assert_eq!(m["etag"], e.get("/v1/meta/m.bin").await.json()["etag"]);
    let mut rebuilt = vec![0u8; body.len()];
    let pieces = m["pieces"].as_array().unwrap();
    assert!(pieces.len() >= 2, "5 MiB with 1 MiB average blocks");
    for p in pieces {
        let id = p["id"].as_str().unwrap();
        let r = e.get(&format!("/v1/blocks/{id}")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(blake3::hash(&r.body).to_hex().as_str(), id);
        assert_eq!(r.body.len() as u64, p["block_len"].as_u64().unwrap());
        assert_eq!(r.header("etag"), format!("\"{id}\""));
        assert_eq!(
            r.header("cache-control"),
            "private, max-age=31536000, immutable"
        );
        let (off, len, bo) = (
            p["offset"].as_u64().unwrap() as usize,
            p["len"].as_u64().unwrap() as usize,
            p["block_offset"].as_u64().unwrap() as usize,
        );
        rebuilt[off..off + len].copy_from_slice(&r.body[bo..bo + len]);
    }
    assert!(rebuilt == body);
    let id = pieces[0]["id"].as_str().unwrap();
    let req = Request::builder()
        .uri(format!("/v1/blocks/{id}"))
        .header("if-none-match", format!("\"{id}\""))
        .body(Body::empty())
        .unwrap();
    assert_eq!(e.send(req).await.status, StatusCode::NOT_MODIFIED);
    let r = e.get(&format!("/v1/blocks/{}", "0".repeat(64))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(e.get("/v1/blocks/xyz").await.code(), "invalid_argument");
    assert_eq!(
        e.get("/v1/manifest/").await.code(),
        "not_found",
        "no route for an empty manifest path"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_admin_openapi_metrics() {
    let e = env();
    let r = e.get("/v1/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let j = r.json();
    assert_eq!(j["error"]["code"], "not_found");
    assert!(j["error"]["message"].is_string());
    let r = e.call("DELETE", "/v1/status", Body::empty()).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.json()["error"]["code"].is_string());
    assert_eq!(e.get("/v1/meta/missing").await.code(), "not_found");

    let s = e.get("/v1/status").await;
    assert_eq!(s.status, StatusCode::OK);
    let s = s.json();
    assert_eq!(s["tiers"].as_array().unwrap().len(), 1);
    assert_eq!(s["wal_pending"], 0);
    assert_eq!(
        e.get("/v1/devices").await.json()["devices"],
        serde_json::json!([])
    );
    let w = e.get("/v1/admin/wal?limit=5").await.json();
    assert_eq!(w["pending"], 0);
    let f = e.call("POST", "/v1/admin/flush", Body::empty()).await;
    assert_eq!(f.status, StatusCode::OK);
    assert_eq!(f.json()["pending"], 0);
    let ev = e.call("POST", "/v1/admin/evict", Body::empty()).await;
    assert_eq!(ev.json()["evicted_bytes"], 0);
    assert_eq!(
        e.call("POST", "/v1/admin/evict?tier=nope", Body::empty())
            .await
            .code(),
        "not_found"
    );

    let spec = e.get("/v1/openapi.json").await.json();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    assert!(spec["paths"]["/v1/files/{path}"]["put"].is_object());
    assert!(spec["paths"]["/v1/files/{path}"]["get"].is_object());
    for p in [
        "/v1/ls",
        "/v1/ls/{path}",
        "/v1/meta/{path}",
        "/v1/mkdir/{path}",
        "/v1/symlink/{path}",
        "/v1/rename",
        "/v1/manifest/{path}",
        "/v1/blocks/{id}",
        "/v1/status",
        "/v1/devices",
        "/v1/admin/evict",
        "/v1/admin/flush",
        "/v1/admin/wal",
        "/v1/openapi.json",
        "/metrics",
    ] {
        assert!(spec["paths"][p].is_object(), "{p} missing from the spec");
    }
    assert!(spec["paths"]["/v1/files/{path}"]["head"].is_object());
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());

    e.put("f", b"x").await;
    let m = e.get("/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    let text = String::from_utf8(m.body.to_vec()).unwrap();
    for name in [
        "fvfs_http_requests_total",
        "fvfs_http_request_duration_seconds_bucket",
        "fvfs_tier_bytes",
        "fvfs_wal_pending",
        "fvfs_cache_hits_total",
        "fvfs_cache_misses_total",
        "fvfs_evicted_bytes_total",
        "fvfs_corruptions_repaired_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    assert!(text.contains("route=\"/v1/files/{*path}\""));
    assert!(!text.contains("route=\"/v1/files/f\""));
}
