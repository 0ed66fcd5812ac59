//! BlockStore against real tiers: a local directory and an in-process S3 server.

use std::time::Duration;

use bytes::Bytes;
use fvfs_chunk::{BlockStore, BlockStoreConfig, ChunkError};
use fvfs_testkit::S3Server;
use fvfs_tier::{S3Credentials, Tier, TierOptions, TierSpec};
use fvfs_types::{Codec, Compression};
use rand::{RngCore, SeedableRng};

fn random(n: usize, seed: u64) -> Bytes {
    let mut v = vec![0u8; n];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    Bytes::from(v)
}

fn compressible(n: usize) -> Bytes {
    Bytes::from((0..n).map(|i| b"fvfs block "[i % 11]).collect::<Vec<u8>>())
}

fn fs_tier(dir: &std::path::Path) -> Tier {
    Tier::open(&TierSpec::parse(dir.to_str().expect("utf8")).expect("spec")).expect("tier")
}

/// An S3 tier (objects under `chunks/`) on a test server: the disk cache keeps copies of
/// its blocks (not of a directory tier on the cache's own disk).
async fn s3_tier(dir: &std::path::Path) -> (S3Server, Tier) {
    let srv = S3Server::start(&dir.join("s3"), "fvfs")
        .await
        .expect("s3 server");
    let spec = TierSpec::parse(&srv.location("chunks")).expect("spec");
    let tier = Tier::open_with(
        &spec,
        &TierOptions {
            credentials: Some(S3Credentials {
                access_key_id: srv.access_key.clone(),
                secret_access_key: srv.secret_key.clone(),
                session_token: None,
            }),
            ..TierOptions::default()
        },
    )
    .expect("tier");
    (srv, tier)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_fetch_and_caches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache_dir = dir.path().join("cache");
    let cfg = BlockStoreConfig {
        disk_cache: Some((cache_dir.clone(), 64 << 20)),
        ..BlockStoreConfig::default()
    };
    let (_srv, tier) = s3_tier(dir.path()).await;
    let store = BlockStore::new(tier, cfg.clone()).expect("store");

    let plain = compressible(1 << 20);
    let meta = store.upload(plain.clone()).await.expect("upload");
    assert_eq!(meta.codec, Codec::Zstd);
    assert_eq!(meta.size, 1 << 20);
    assert!(meta.stored_size < meta.size);
    assert!(store.tier().block_exists(&meta.id).await.expect("exists"));

    // Mem hit.
    assert_eq!(
        store
            .fetch(&meta.id, meta.codec, meta.size)
            .await
            .expect("fetch"),
        plain
    );
    let s = store.cache_stats();
    assert_eq!((s.mem_hits, s.misses), (1, 0));
    assert!(s.disk_bytes > 0 && s.mem_bytes > 0);

    // A fresh store (empty mem cache) finds it in the disk cache.
    let store2 = BlockStore::new(store.tier().clone(), cfg.clone()).expect("store2");
    assert_eq!(
        store2
            .fetch(&meta.id, meta.codec, meta.size)
            .await
            .expect("fetch"),
        plain
    );
    assert_eq!(store2.cache_stats().disk_hits, 1);

    // Without caches it comes from the tier; concurrent fetches share the GET.
    let raw = random(300_000, 9);
    let m2 = store.upload(raw.clone()).await.expect("upload raw");
    assert_eq!(m2.codec, Codec::Raw);
    let nocache = BlockStore::new(
        store.tier().clone(),
        BlockStoreConfig {
            mem_cache_bytes: 0,
            ..BlockStoreConfig::default()
        },
    )
    .expect("nocache");
    let fetches = (0..8).map(|_| nocache.fetch(&m2.id, m2.codec, m2.size));
    for r in futures::future::join_all(fetches).await {
        assert_eq!(r.expect("fetch"), raw);
    }
    assert!(nocache.cache_stats().misses <= 8);

    // Prefetch fills the mem cache.
    let store3 = BlockStore::new(store.tier().clone(), BlockStoreConfig::default()).expect("s3");
    store3.prefetch(m2.id, m2.codec, m2.size, 0);
    for _ in 0..100 {
        if store3.cache_stats().mem_bytes > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store3.cache_stats().mem_bytes, 300_000);

    // Missing block.
    let ghost = fvfs_chunk::block_id(b"never stored");
    let e = store
        .fetch(&ghost, Codec::Raw, 12)
        .await
        .expect_err("missing");
    assert!(e.is_not_found(), "{e}");

    // Delete removes everywhere.
    store.delete(&meta.id).await.expect("delete");
    store.delete(&meta.id).await.expect("delete again");
    assert!(!store.tier().block_exists(&meta.id).await.expect("exists"));
    assert!(store
        .fetch(&meta.id, meta.codec, meta.size)
        .await
        .expect_err("gone")
        .is_not_found());

    // Oversize.
    let big = Bytes::from(vec![0u8; (16 << 20) + 1]);
    assert!(matches!(
        store.upload(big).await,
        Err(ChunkError::TooLarge { .. })
    ));
}

/// A directory tier on the disk cache's own filesystem is not copied into the cache: its
/// blocks are as local as the cache's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_tier_on_the_cache_disk_is_not_cached_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = BlockStoreConfig {
        mem_cache_bytes: 0,
        disk_cache: Some((dir.path().join("cache"), 64 << 20)),
        ..BlockStoreConfig::default()
    };
    let store = BlockStore::new(fs_tier(&dir.path().join("tier")), cfg).expect("store");
    let plain = random(300_000, 4);
    let meta = store.upload(plain.clone()).await.expect("upload");
    let got = store.fetch(&meta.id, meta.codec, meta.size).await;
    assert_eq!(got.expect("fetch"), plain);
    let s = store.cache_stats();
    assert_eq!((s.disk_bytes, s.disk_hits, s.misses), (0, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_is_never_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache_dir = dir.path().join("cache");
    let (srv, tier) = s3_tier(dir.path()).await;
    let cfg = BlockStoreConfig {
        compression: Compression::None,
        mem_cache_bytes: 0,
        disk_cache: Some((cache_dir.clone(), 64 << 20)),
        ..BlockStoreConfig::default()
    };
    let store = BlockStore::new(tier.clone(), cfg.clone()).expect("store");
    let plain = random(200_000, 1);
    let meta = store.upload(plain.clone()).await.expect("upload");

    // Corrupt the disk-cache copy: it is dropped and the tier copy served.
    let hex = meta.id.to_hex();
    let cached = cache_dir.join(&hex[0..2]).join(&hex[2..4]).join(&hex);
    let mut bytes = std::fs::read(&cached).expect("cached file");
    bytes[1000] ^= 1;
    std::fs::write(&cached, &bytes).expect("corrupt cache");
    assert_eq!(
        store
            .fetch(&meta.id, meta.codec, meta.size)
            .await
            .expect("fetch"),
        plain
    );
    assert_eq!(store.cache_stats().misses, 1);

    // Corrupt the tier copy (and drop the cache): Corrupt, not wrong bytes.
    let obj = srv
        .root()
        .join(&srv.bucket)
        .join("chunks")
        .join(Tier::block_key(&meta.id));
    let mut bytes = std::fs::read(&obj).expect("object file");
    bytes[5] ^= 0x80;
    std::fs::write(&obj, &bytes).expect("corrupt object");
    store.evict_cached(&meta.id).await;
    match store.fetch(&meta.id, meta.codec, meta.size).await {
        Err(ChunkError::Corrupt { id }) => assert_eq!(id, meta.id),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A truncated object too.
    std::fs::write(&obj, &bytes[..100]).expect("truncate");
    match store.fetch(&meta.id, meta.codec, meta.size).await {
        Err(ChunkError::Corrupt { id }) => assert_eq!(id, meta.id),
        other => panic!("expected Corrupt for a truncated object, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_store_over_s3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (srv, tier) = s3_tier(dir.path()).await;
    tier.check().await.expect("check");
    let store = BlockStore::new(
        tier,
        BlockStoreConfig {
            mem_cache_bytes: 0,
            ..BlockStoreConfig::default()
        },
    )
    .expect("store");
    let mut metas = Vec::new();
    for seed in 0..4 {
        let plain = if seed % 2 == 0 {
            random(500_000, seed)
        } else {
            compressible(700_000)
        };
        metas.push((store.upload(plain.clone()).await.expect("upload"), plain));
    }
    for (m, plain) in &metas {
        assert_eq!(
            &store.fetch(&m.id, m.codec, m.size).await.expect("fetch"),
            plain
        );
    }
    assert_eq!(store.cache_stats().misses, 4);

    // S3 down: a clear, bounded error; back up: served again.
    srv.stop().await;
    let (m, _) = &metas[0];
    let e = store.fetch(&m.id, m.codec, m.size).await.expect_err("down");
    assert!(e.is_unreachable(), "{e}");
    srv.restart().await.expect("restart");
    let (m, plain) = &metas[0];
    assert_eq!(
        &store.fetch(&m.id, m.codec, m.size).await.expect("fetch"),
        plain
    );
    store.delete(&m.id).await.expect("delete");
    assert!(!store.tier().block_exists(&m.id).await.expect("exists"));
}
