//! Payloads held without an inode (`Tiering::put_held`): they share blocks with files by
//! dedup, survive GC after every file that shared them is gone, replicate to the durable
//! tier like file blocks, become garbage once released and go after the GC grace; fsck
//! counts holder rows as references and reports a holder row whose block is missing. The
//! tiering component works without a `Vfs` (no namespace): held blocks replicate, are
//! evicted by watermarks (blocks a `BlockUsers` has in use last) and read back from the
//! durable tier. Real SQLite metadata and directory tiers (a hot tier and a durable one),
//! no mocks.

use bytes::Bytes;
use fvfs_chunk::{BlockStore, BlockStoreConfig};
use fvfs_tier::{Tier, TierSpec};
use fvfs_types::{CdcParams, Compression, Settings, TierSettings, FORMAT_VERSION, ROOT_INO};
use fvfs_vfs::{BlockUsers, Ctx, TierPolicy, Tiering, Vfs, VfsConfig};
use std::collections::BTreeSet;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

struct Env {
    _dir: tempfile::TempDir,
    db: PathBuf,
    meta: Arc<dyn fvfs_meta::MetaStore>,
    store: Arc<BlockStore>,
}

fn tier(name: &str, location: &str, durable: bool) -> TierSettings {
    TierSettings {
        durable,
        ..TierSettings::new(name, location)
    }
}

fn env(hot_high: Option<u64>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (hot, cold) = (dir.path().join("hot"), dir.path().join("cold"));
    std::fs::create_dir(&hot).unwrap();
    std::fs::create_dir(&cold).unwrap();
    let (hot, cold) = (hot.display().to_string(), cold.display().to_string());
    let db = dir.path().join("meta.db");
    let meta = fvfs_meta::open(&format!("sqlite://{}", db.display()), true).unwrap();
    let settings = Settings {
        uuid: "6f1c1d6e-0000-4000-8000-000000000002".parse().unwrap(),
        name: "t".into(),
        format_version: FORMAT_VERSION,
        cdc: CdcParams::default(),
        compression: Compression::Zstd,
        storage: vec![cold.clone()],
        created: 0,
        tiers: vec![
            TierSettings {
                high_watermark: hot_high,
                ..tier("hot", &hot, false)
            },
            tier("cold", &cold, true),
        ],
    };
    meta.format(&settings, 0, 0, fvfs_vfs::now_ns()).unwrap();
    let tiers = [&hot, &cold]
        .iter()
        .map(|l| Tier::open(&TierSpec::parse(l).unwrap()).unwrap())
        .collect();
    let cfg = BlockStoreConfig {
        compression: Compression::Zstd,
        mem_cache_bytes: 0,
        disk_cache: None,
        upload_concurrency: 4,
    };
    let store = Arc::new(BlockStore::with_tiers(tiers, 1, cfg).unwrap());
    Env {
        _dir: dir,
        db,
        meta,
        store,
    }
}

impl Env {
    fn vfs(&self, gc_grace: Duration) -> Arc<Vfs> {
        let cfg = VfsConfig {
            gc_grace,
            ..VfsConfig::default()
        };
        Vfs::new(self.meta.clone(), self.store.clone(), cfg).unwrap()
    }

    /// The tiering component alone: no namespace, no inode.
    fn tiering(&self, gc_grace: Duration) -> Arc<Tiering> {
        Tiering::new(
            self.meta.clone(),
            self.store.clone(),
            TierPolicy::default(),
            gc_grace,
        )
        .unwrap()
    }
}

/// A face with some blocks in use (a recall in progress, say).
struct InUse(HashSet<fvfs_types::BlockId>);

impl BlockUsers for InUse {
    fn blocks_in_use(&self) -> HashSet<fvfs_types::BlockId> {
        self.0.clone()
    }
}

use fvfs_testkit::pseudo_random as payload;

async fn write_file(vfs: &Vfs, name: &[u8], data: &[u8]) -> u64 {
    let (a, fh) = vfs
        .create(Ctx::root(), ROOT_INO, name, 0o644, 0, libc::O_RDWR)
        .unwrap();
    vfs.write(fh, 0, data).await.unwrap();
    vfs.release(fh).await.unwrap();
    // Stored now, not left in the write journal for the writeback worker.
    vfs.flush_inode(a.ino).await.unwrap();
    a.ino
}

async fn on_tier(store: &BlockStore, ids: &BTreeSet<fvfs_types::BlockId>, tier: usize) -> usize {
    let mut n = 0;
    for id in ids {
        n += store.exists_on(id, tier).await.unwrap() as usize;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_blocks_outlive_files_replicate_and_go_after_release_and_grace() {
    let env = env(None);
    let now = env.vfs(Duration::ZERO);
    let later = env.vfs(Duration::from_secs(3600));
    let data = payload(6 << 20, 7);

    // A file and a held copy of the same bytes share their blocks.
    let ino = write_file(&now, b"f", &data).await;
    let file_ids: BTreeSet<_> = env
        .meta
        .file_blocks(ino)
        .unwrap()
        .iter()
        .map(|b| b.id)
        .collect();
    let refs = now
        .tiering()
        .put_held("hsm", b"obj", Bytes::from(data.clone()))
        .await
        .unwrap();
    let ids: BTreeSet<_> = refs.iter().map(|r| r.id).collect();
    assert!(ids.len() > 1, "several blocks");
    assert_eq!(ids, file_ids, "the held payload dedups against the file");
    // Again under the same holder: nothing more is held.
    let again = now
        .tiering()
        .put_held("hsm", b"obj", Bytes::from(data.clone()))
        .await
        .unwrap();
    assert_eq!(again, refs);
    for id in &ids {
        assert_eq!(env.meta.get_block(id).unwrap().unwrap().refcount, 2);
    }

    // Every file that shared the blocks goes; a GC pass (no grace) keeps them.
    now.unlink(ROOT_INO, b"f").unwrap();
    now.tiering().gc_pass(10_000).await.unwrap();
    for id in &ids {
        assert_eq!(env.meta.get_block(id).unwrap().unwrap().refcount, 1);
    }
    assert_eq!(
        &now.tiering().read_held("hsm", b"obj", &refs).await.unwrap()[..],
        &data[..]
    );
    assert!(now
        .tiering()
        .read_held("hsm", b"other", &refs)
        .await
        .is_err());

    // Held blocks replicate to the durable tier like any other.
    assert_eq!(
        now.tiering()
            .replicate_all(Duration::from_secs(60))
            .await
            .unwrap(),
        0
    );
    assert_eq!(on_tier(&env.store, &ids, 1).await, ids.len());
    for id in &ids {
        assert_eq!(env.meta.get_block(id).unwrap().unwrap().tiers, 0b11);
    }

    let report = fvfs_vfs::fsck::fsck(&env.meta, &env.store, false, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(report.problems(), 0, "{report:?}");

    // Released: garbage, kept through the grace, deleted after it.
    let released: BTreeSet<_> = now
        .tiering()
        .release_held("hsm", b"obj")
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(released, ids);
    assert_eq!(
        later.tiering().gc_pass(10_000).await.unwrap(),
        0,
        "within the grace"
    );
    assert_eq!(on_tier(&env.store, &ids, 1).await, ids.len());
    assert_eq!(now.tiering().gc_pass(10_000).await.unwrap(), ids.len());
    for id in &ids {
        assert!(env.meta.get_block(id).unwrap().is_none());
    }
    assert_eq!(on_tier(&env.store, &ids, 0).await, 0);
    assert_eq!(on_tier(&env.store, &ids, 1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_only_blocks_replicate_and_fsck_reports_a_holder_row_whose_block_is_missing() {
    let env = env(None);
    let vfs = env.tiering(Duration::from_secs(3600));
    let refs = vfs
        .put_held("music", b"song", Bytes::from(payload(100_000, 3)))
        .await
        .unwrap();
    vfs.put_held("music", b"copy", Bytes::from(payload(100_000, 3)))
        .await
        .unwrap();
    // Blocks only a holder references are queued to the durable tier too.
    let ids: BTreeSet<_> = refs.iter().map(|r| r.id).collect();
    assert_eq!(
        on_tier(&env.store, &ids, 1).await,
        0,
        "written to the hot tier"
    );
    assert_eq!(vfs.replicate_all(Duration::from_secs(60)).await.unwrap(), 0);
    assert_eq!(on_tier(&env.store, &ids, 1).await, ids.len());
    let fsck = |repair| fvfs_vfs::fsck::fsck(&env.meta, &env.store, repair, &|_, _| {});
    let r = fsck(false).await.unwrap();
    assert_eq!(r.problems(), 0, "{r:?}");

    // The block row goes behind the store's back (a damaged database).
    let id = refs[0].id;
    let c = rusqlite::Connection::open(&env.db).unwrap();
    c.execute("DELETE FROM blocks WHERE id = ?1", [&id.0[..]])
        .unwrap();
    drop(c);
    let r = fsck(false).await.unwrap();
    assert_eq!(r.dangling_holds.len(), 2, "{r:?}");
    assert!(r.dangling_holds.iter().all(|(_, b)| *b == id));
    assert_eq!(r.problems(), 2, "{r:?}");
    let r = fsck(true).await.unwrap();
    assert_eq!(r.repaired.len(), 1, "{r:?}");
    assert_eq!(fsck(false).await.unwrap().problems(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiering_alone_evicts_held_blocks_by_watermark_in_use_last_and_reads_them_back() {
    // Two 100 kB payloads fill the hot tier past its 150 kB high watermark (low: 120 kB):
    // one payload's blocks must go, and the ones a user has in use stay.
    let env = env(Some(150_000));
    let t = env.tiering(Duration::from_secs(3600));
    let (a, b) = (payload(100_000, 3), payload(100_000, 4));
    let refs_a = t
        .put_held("hsm", b"a", Bytes::from(a.clone()))
        .await
        .unwrap();
    let refs_b = t
        .put_held("hsm", b"b", Bytes::from(b.clone()))
        .await
        .unwrap();
    let ids_a: BTreeSet<_> = refs_a.iter().map(|r| r.id).collect();
    let ids_b: BTreeSet<_> = refs_b.iter().map(|r| r.id).collect();
    assert_eq!(on_tier(&env.store, &ids_a, 0).await, ids_a.len());
    assert_eq!(on_tier(&env.store, &ids_b, 0).await, ids_b.len());
    let users: Arc<dyn BlockUsers> = Arc::new(InUse(ids_a.iter().copied().collect()));
    t.add_users(Arc::downgrade(&users));

    // Nothing is evicted before its durable copy exists.
    assert_eq!(t.evict_tier(0, false).await.unwrap(), 0);
    assert_eq!(t.replicate_all(Duration::from_secs(60)).await.unwrap(), 0);
    let evicted = t.evict_tier(0, false).await.unwrap();
    assert_eq!(evicted as usize, ids_b.len());
    assert_eq!(
        on_tier(&env.store, &ids_a, 0).await,
        ids_a.len(),
        "in use: kept"
    );
    assert_eq!(on_tier(&env.store, &ids_b, 0).await, 0, "evicted");
    for id in &ids_b {
        assert_eq!(env.meta.get_block(id).unwrap().unwrap().tiers, 0b10);
    }
    // Read back from the durable tier.
    assert_eq!(
        &t.read_held("hsm", b"b", &refs_b).await.unwrap()[..],
        &b[..]
    );
    assert_eq!(
        &t.read_held("hsm", b"a", &refs_a).await.unwrap()[..],
        &a[..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_writer_stores_a_payload_larger_than_its_window_as_put_held_would() {
    let env = env(None);
    let t = env.tiering(Duration::from_secs(3600));
    let data = payload(40 << 20, 11);
    let mut w = t.held_writer("hsm", b"big");
    for piece in data.chunks(1 << 20) {
        w.write(piece).await.unwrap();
    }
    let p = w.finish().await.unwrap();
    assert_eq!(p.len, data.len() as u64);
    assert_eq!(p.hash, *blake3::hash(&data).as_bytes());
    assert_eq!(p.refs.iter().map(|r| r.len as u64).sum::<u64>(), p.len);
    // The same cut points as the whole payload at once: the window is invisible.
    let whole = t
        .put_held("hsm", b"whole", Bytes::from(data.clone()))
        .await
        .unwrap();
    assert_eq!(p.refs, whole);
    assert_eq!(
        &t.read_held("hsm", b"big", &p.refs).await.unwrap()[..],
        &data[..]
    );
    // Not durable until replicated, then verified there.
    assert!(!t.durable_verified(&p.refs).await.unwrap());
    assert_eq!(t.replicate_all(Duration::from_secs(60)).await.unwrap(), 0);
    assert!(t.durable_verified(&p.refs).await.unwrap());
    // One corrupt durable copy among them (the copies are read back in parallel) and
    // the payload does not verify.
    let cold = env._dir.path().join("cold");
    let copies = walk(&cold);
    assert!(copies.len() > 8, "more blocks than are verified at once");
    let victim = &copies[copies.len() / 2];
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(victim, bytes).unwrap();
    assert!(!t.durable_verified(&p.refs).await.unwrap());
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A held writer given up with a window uploading (its caller failed, or was cancelled)
/// leaves no pin behind: blocks it re-uploaded that are garbage still go at the next GC
/// pass once those uploads end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_writer_given_up_mid_upload_leaves_no_block_pinned() {
    let env = env(None);
    let t = env.tiering(Duration::ZERO);
    // Garbage blocks: a payload held, then released.
    let data = payload(33 << 20, 12);
    let refs = t
        .put_held("hsm", b"old", Bytes::from(data.clone()))
        .await
        .unwrap();
    let ids: BTreeSet<_> = refs.iter().map(|r| r.id).collect();
    t.release_held("hsm", b"old").unwrap();
    // The same bytes again: one full window, whose uploads (each pinning its block) are
    // still running when the writer is dropped.
    let mut w = t.held_writer("hsm", b"new");
    w.write(&data).await.unwrap();
    drop(w);
    // The uploads (a few ms each) pin their blocks and end meanwhile.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while t.pinned_blocks() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} blocks still pinned after the writer was dropped",
            t.pinned_blocks()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(t.gc_pass(10_000).await.unwrap(), ids.len());
    for id in &ids {
        assert!(env.meta.get_block(id).unwrap().is_none());
    }
}
