//! The reference model (`fvfs_testkit::model`) run on the engine, no root and no FUSE:
//! random sequences of namespace and data operations run on `EngineOps` (the engine's
//! FUSE face over `Vfs`: real SQLite metadata, a real block store on a local directory)
//! and on an in-memory tree. Every operation's outcome (success or its errno) must match
//! the model's, and after every operation every listing, every file's bytes, size and
//! link count must match too.
//!
//! Operations: create, mkdir, write at an offset (holes included), write + fsync,
//! truncate, rename (files and directories, over files, over empty and non-empty
//! directories, into its own subtree), link, unlink, unlink while a handle is open (the
//! handle still reads the bytes), rmdir, and reopening the engine from its metadata. The
//! engine offers every operation: nothing is skipped.
//!
//! Cases per run: `FVFS_MODEL_CASES` (default 10,000 sequences of up to 23 operations,
//! about 130 s on 2 cores through `EngineOps`).
//! A failing sequence is shrunk and its seed kept in `tests/model.proptest-regressions`,
//! which is committed: every later run replays it first.

use fvfs_chunk::{BlockStore, BlockStoreConfig};
use fvfs_meta::MetaStore;
use fvfs_testkit::model::{self, Face, OnOps};
use fvfs_tier::{Tier, TierSpec};
use fvfs_types::{CdcParams, Compression, Settings, TierSettings, FORMAT_VERSION};
use fvfs_vfs::{EngineOps, Vfs, VfsConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// An engine on a temporary directory, as a face.
struct Env {
    _dir: tempfile::TempDir,
    url: String,
    tier: PathBuf,
    rt: tokio::runtime::Handle,
    ops: Option<EngineOps>,
    vfs: Option<Arc<Vfs>>,
    /// Acknowledge fsync and close from the write journal (the local-hottest-tier shape),
    /// or store blocks at every fsync (the remote-hottest-tier shape).
    journal: bool,
}

fn settings(loc: &str) -> Settings {
    Settings {
        uuid: "6f1c1d6e-0000-4000-8000-00000000000a".parse().unwrap(),
        name: "model".into(),
        format_version: FORMAT_VERSION,
        cdc: CdcParams::default(),
        compression: Compression::Zstd,
        storage: vec![loc.into()],
        created: 0,
        tiers: vec![TierSettings {
            name: "t0".into(),
            location: loc.into(),
            high_watermark: None,
            low_watermark: None,
            durable: true,
            keep_copy: false,
        }],
    }
}

impl Env {
    fn new(rt: tokio::runtime::Handle, journal: bool) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let tier = dir.path().join("tier");
        std::fs::create_dir(&tier).unwrap();
        let url = fvfs_meta::testing::meta_url(dir.path());
        let meta = fvfs_meta::open(&url, true).unwrap();
        meta.format(
            &settings(&tier.display().to_string()),
            0,
            0,
            fvfs_vfs::now_ns(),
        )
        .unwrap();
        let mut e = Env {
            _dir: dir,
            url,
            tier,
            rt,
            ops: None,
            vfs: None,
            journal,
        };
        e.open(meta);
        e
    }
    fn open(&mut self, meta: Arc<dyn MetaStore>) {
        let loc = self.tier.display().to_string();
        let t = Tier::open(&TierSpec::parse(&loc).unwrap()).unwrap();
        let cfg = BlockStoreConfig {
            compression: Compression::Zstd,
            mem_cache_bytes: 0,
            disk_cache: None,
            upload_concurrency: 2,
        };
        let store = Arc::new(BlockStore::with_tiers(vec![t], 0, cfg).unwrap());
        let cfg = VfsConfig {
            purge_orphans: true,
            write_journal: self.journal,
            ..VfsConfig::default()
        };
        let vfs = Vfs::new(meta, store, cfg).unwrap();
        // What a dropped engine left in the write journal is stored first, as at a mount.
        self.rt.block_on(vfs.replay_journal()).unwrap();
        self.ops = Some(EngineOps::new(vfs.clone(), self.rt.clone()));
        self.vfs = Some(vfs);
    }
    /// Drops the engine and builds a new one from the metadata on disk.
    fn reopen(&mut self) {
        self.ops = None;
        let old = self.vfs.take().unwrap();
        assert_eq!(Arc::strong_count(&old), 1, "the engine is still referenced");
        drop(old);
        let meta = fvfs_meta::open(&self.url, false).unwrap();
        self.open(meta);
    }
}

impl Face for Env {
    type Ops = EngineOps;
    fn ops(&self) -> &EngineOps {
        self.ops.as_ref().unwrap()
    }
    fn reopen(&mut self) {
        Env::reopen(self)
    }
}

#[test]
fn the_engine_matches_the_model() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cases = model::cases("FVFS_MODEL_CASES", 10_000);
    model::run("engine model", cases, file!(), || {
        OnOps::new(Env::new(rt.handle().clone(), true))
    });
}

/// The same model over the shape without the write journal (each fsync stores blocks,
/// provisional slices for tails).
#[test]
fn the_engine_without_the_write_journal_matches_the_model() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cases = model::cases("FVFS_MODEL_CASES", 10_000) / 3;
    model::run("engine model, no journal", cases, file!(), || {
        OnOps::new(Env::new(rt.handle().clone(), false))
    });
}
