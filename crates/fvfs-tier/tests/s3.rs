//! fvfs-tier against a real (in-process) S3 server: fvfs-testkit's s3s-fs.

use std::time::{Duration, Instant};

use bytes::Bytes;
use fvfs_testkit::S3Server;
use fvfs_tier::{S3Credentials, Tier, TierError, TierOptions, TierSpec};
use fvfs_types::BlockId;

fn tier_for(srv: &S3Server, prefix: &str) -> Tier {
    let spec = TierSpec::parse(&srv.location(prefix)).expect("spec");
    let opts = TierOptions {
        credentials: Some(S3Credentials {
            access_key_id: srv.access_key.clone(),
            secret_access_key: srv.secret_key.clone(),
            session_token: None,
        }),
        ..TierOptions::default()
    };
    Tier::open_with(&spec, &opts).expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_block_round_trip_and_outage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = S3Server::start(dir.path(), "fvfs").await.expect("server");
    let t = tier_for(&srv, "fs1");
    t.check().await.expect("check");

    let data = Bytes::from(vec![42u8; 300_000]);
    let id = BlockId(*blake3::hash(&data).as_bytes());
    assert!(!t.block_exists(&id).await.expect("exists"));
    assert!(t.get_block(&id).await.expect_err("missing").is_not_found());
    t.put_block(&id, data.clone()).await.expect("put");
    assert!(t.block_exists(&id).await.expect("exists"));
    assert_eq!(t.get_block(&id).await.expect("get"), data);
    assert!(dir
        .path()
        .join("fvfs/fs1")
        .join(Tier::block_key(&id))
        .is_file());
    assert_eq!(t.used_bytes().await.expect("used"), 300_000);
    assert_eq!(t.list("blocks/").await.expect("list").len(), 1);
    t.delete_block(&id).await.expect("delete");
    t.delete_block(&id).await.expect("delete missing");
    assert!(!t.block_exists(&id).await.expect("exists"));

    // Wrong credentials: a clear "denied" error, not "unreachable".
    let spec = TierSpec::parse(&srv.location("fs1")).expect("spec");
    let bad = Tier::open_with(
        &spec,
        &TierOptions {
            credentials: Some(S3Credentials {
                access_key_id: srv.access_key.clone(),
                secret_access_key: "wrong".into(),
                session_token: None,
            }),
            ..TierOptions::default()
        },
    )
    .expect("open");
    let e = bad.check().await.expect_err("bad secret");
    assert!(!e.is_unreachable(), "{e}");
    assert!(!e.to_string().contains("wrong"), "{e}");

    // S3 down: Unreachable, in bounded time.
    srv.stop().await;
    let start = Instant::now();
    let e = t.check().await.expect_err("server stopped");
    assert!(matches!(e, TierError::Unreachable { .. }), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert!(e.to_string().contains(&srv.endpoint), "{e}");
    let e = t.get_block(&id).await.expect_err("get while down");
    assert!(e.is_unreachable(), "{e}");

    // And back.
    srv.restart().await.expect("restart");
    t.check().await.expect("check after restart");
}

/// An endpoint that accepts TCP connections but never answers (a hung server or a
/// black-holed network path): `check` must give up within its 10 s bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_endpoint_is_unreachable_in_bounded_time() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let spec = TierSpec::parse(&format!(
        "s3://fvfs/x?endpoint=http://{addr}&region=us-east-1&path_style=true"
    ))
    .expect("spec");
    let opts = TierOptions {
        credentials: Some(S3Credentials {
            access_key_id: "ak".into(),
            secret_access_key: "sk".into(),
            session_token: None,
        }),
        ..TierOptions::default()
    };
    let t = Tier::open_with(&spec, &opts).expect("open");
    let start = Instant::now();
    let e = t.check().await.expect_err("silent server");
    let took = start.elapsed();
    assert!(e.is_unreachable(), "{e}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    drop(listener);
}

/// The test server's GET bodies (read in 256 KiB pieces, fvfs-testkit `s3_get.rs`) are
/// the object's exact bytes: whole, ranged inside, across and at the end of pieces, and
/// a suffix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_and_ranged_gets_of_a_large_object_are_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = S3Server::start(dir.path(), "fvfs").await.expect("server");
    let t = tier_for(&srv, "big");
    let data = Bytes::from(fvfs_testkit::pseudo_random(3 * (1 << 20) + 12_345, 11));
    t.put_object("obj", data.clone()).await.expect("put");
    assert!(
        t.get_object("obj").await.expect("get") == data,
        "whole object"
    );
    let op = t.operator();
    let n = data.len() as u64;
    for (a, b) in [
        (0, 1),
        (1, 300_000),
        (262_143, 262_145),
        (262_144, 2 * 262_144 + 7),
        (n - 5, n),
        (100, n),
    ] {
        let got = op.read_with("obj").range(a..b).await.expect("range");
        // Compared without printing: a mismatch would dump megabytes.
        assert!(
            got.to_bytes() == data.slice(a as usize..b as usize),
            "range {a}..{b} differs"
        );
    }
}

/// An object uploaded from a file by parts (a multipart upload on S3) reads back whole,
/// and a file of exactly one part and an empty one as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_object_from_a_file_by_parts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = S3Server::start(dir.path(), "fvfs").await.expect("server");
    let t = tier_for(&srv, "parts");
    let src = tempfile::tempdir().expect("tempdir");
    for (name, len) in [
        ("three", 2 * fvfs_tier::FILE_PART + 12_345),
        ("one", fvfs_tier::FILE_PART),
        ("empty", 0),
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let path = src.path().join(name);
        std::fs::write(&path, &data).expect("write");
        let key = format!("meta/{name}");
        t.put_object_from_file(&key, &path).await.expect("put");
        let got = t.get_object(&key).await.expect("get");
        assert_eq!(got.len(), len, "{name}");
        assert!(got == data, "{name}: the object differs from the file");
    }
    let missing = src.path().join("absent");
    assert!(t.put_object_from_file("meta/x", &missing).await.is_err());
    assert!(t
        .get_object("meta/x")
        .await
        .expect_err("none")
        .is_not_found());
}
