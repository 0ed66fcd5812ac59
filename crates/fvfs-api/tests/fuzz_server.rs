//! Not a test by default: serves the router (no auth) on 127.0.0.1 for a bounded time so
//! an external fuzzer (schemathesis) can run against it:
//! `FVFS_FUZZ_PORT=7999 FVFS_FUZZ_SECS=300 cargo test -p fvfs-api --test fuzz_server -- --ignored`

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn serve_for_fuzzing() {
    let port: u16 = std::env::var("FVFS_FUZZ_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(7999);
    let secs: u64 = std::env::var("FVFS_FUZZ_SECS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(120)
        .min(1800);
    let e = common::env();
    e.put("a.txt", b"hello\n").await;
    e.call("POST", "/v1/mkdir/dir", axum::body::Body::empty())
        .await;
    e.put("dir/b.bin", &common::data(100_000, 1)).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = e.app.clone();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(secs),
        axum::serve(listener, app),
    )
    .await;
}
