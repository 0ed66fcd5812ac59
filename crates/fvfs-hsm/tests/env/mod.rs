//! The HSM test fixture shared by `stubs.rs` and `policies.rs`: a managed directory on a
//! loop-mounted ext4 image, the real engine (SQLite metadata, a hot directory tier and a
//! durable S3 tier served by the in-process test server) and the real fanotify listener.

#![allow(dead_code)]

use crate::common::Ext4;
use fvfs_chunk::{BlockStore, BlockStoreConfig};
use fvfs_hsm::{Hsm, HsmConfig, Listener, Marker};
use fvfs_meta::MetaStore;
use fvfs_testkit::S3Server;
use fvfs_tier::{S3Credentials, Tier, TierOptions, TierSpec};
use fvfs_types::{CdcParams, Compression, Settings, TierSettings, FORMAT_VERSION};
use fvfs_vfs::{TierPolicy, Tiering};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Fields drop in this order: the listener before the engine, the image last.
pub struct Env {
    pub listener: Option<Listener>,
    pub hsm: Arc<Hsm>,
    pub tiering: Arc<Tiering>,
    pub meta: Arc<dyn MetaStore>,
    pub s3: S3Server,
    pub rt: tokio::runtime::Runtime,
    pub data: PathBuf,
    pub fs: Ext4,
}

pub fn tier(name: &str, location: &str, durable: bool) -> TierSettings {
    TierSettings {
        durable,
        ..TierSettings::new(name, location)
    }
}

pub use fvfs_testkit::pseudo_random as payload;

impl Env {
    /// A managed directory `data` on a fresh image; with `hot`, a hot directory tier in
    /// front of the durable S3 tier.
    pub fn new(image_mib: u64, hot: bool) -> Option<Env> {
        Env::with_config(image_mib, hot, HsmConfig::default())
    }

    pub fn with_config(image_mib: u64, hot: bool, hsm_cfg: HsmConfig) -> Option<Env> {
        let fs = Ext4::with_size_mib(image_mib)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let scratch = fs.scratch().to_path_buf();
        let s3 = rt
            .block_on(S3Server::start(&scratch.join("s3"), "fvfs"))
            .unwrap();
        let hot_dir = scratch.join("hot");
        std::fs::create_dir(&hot_dir).unwrap();
        let mut tiers = Vec::new();
        if hot {
            tiers.push(tier("hot", &hot_dir.display().to_string(), false));
        }
        tiers.push(tier("s3", &s3.location("blocks"), true));
        let meta = fvfs_meta::open(
            &format!("sqlite://{}", scratch.join("meta.db").display()),
            true,
        )
        .unwrap();
        let settings = Settings {
            uuid: "6f1c1d6e-0000-4000-8000-000000000010".parse().unwrap(),
            name: "hsm".into(),
            format_version: FORMAT_VERSION,
            cdc: CdcParams::default(),
            compression: Compression::Zstd,
            storage: vec![],
            created: 0,
            tiers: tiers.clone(),
        };
        meta.format(&settings, 0, 0, fvfs_vfs::now_ns()).unwrap();
        let opts = TierOptions {
            credentials: Some(S3Credentials {
                access_key_id: s3.access_key.clone(),
                secret_access_key: s3.secret_key.clone(),
                session_token: None,
            }),
            op_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(2),
            retries: 0,
            check_timeout: Duration::from_secs(2),
        };
        let opened = tiers
            .iter()
            .map(|t| Tier::open_with(&TierSpec::parse(&t.location).unwrap(), &opts).unwrap())
            .collect();
        let cfg = BlockStoreConfig {
            compression: Compression::Zstd,
            mem_cache_bytes: 0,
            disk_cache: None,
            upload_concurrency: 4,
        };
        let store = Arc::new(BlockStore::with_tiers(opened, tiers.len() - 1, cfg).unwrap());
        let tiering = Tiering::new(
            meta.clone(),
            store,
            TierPolicy::default(),
            Duration::from_secs(3600),
        )
        .unwrap();
        let hsm = Hsm::new(meta.clone(), tiering.clone(), hsm_cfg);
        let data = fs.path("data");
        std::fs::create_dir(&data).unwrap();
        hsm.add_dir(&data).unwrap();
        let listener = Listener::start(hsm.clone(), rt.handle().clone(), None).unwrap();
        Some(Env {
            fs,
            rt,
            s3,
            meta,
            tiering,
            hsm,
            listener: Some(listener),
            data,
        })
    }

    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.data.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    pub fn archive(&self, p: &Path) -> u64 {
        match self.rt.block_on(self.hsm.archive(p)).unwrap() {
            fvfs_hsm::Archived::New { id, .. } => id,
            other => panic!("{other:?}"),
        }
    }

    pub fn flush(&self) {
        let left = self
            .rt
            .block_on(self.tiering.replicate_all(Duration::from_secs(60)))
            .unwrap();
        assert_eq!(left, 0);
    }

    pub fn release(&self, p: &Path) -> u64 {
        self.rt.block_on(self.hsm.release(p)).unwrap()
    }

    /// Archive, replicate, release: `p` becomes a stub with no data blocks on disk.
    pub fn stub(&self, p: &Path) -> u64 {
        let id = self.archive(p);
        self.flush();
        self.release(p);
        // Punched: at most one filesystem block remains (ext4 keeps a large xattr there).
        let m = std::fs::metadata(p).unwrap();
        assert!(
            m.blocks() * 512 <= m.blksize(),
            "{} punched: {} blocks",
            p.display(),
            m.blocks()
        );
        id
    }

    pub fn marker(&self, p: &Path) -> Option<Marker> {
        let f = std::fs::File::open(p).unwrap();
        fvfs_hsm::marker::read(f.as_fd(), p).unwrap()
    }

    /// Waits until the recall that answered a read at `off` of `p` is done: a reader is
    /// answered once its pages are durable, the rest of their blocks and the catalog
    /// record follow under the file's recall lock, which another access at the same
    /// (now resident) offset waits for.
    pub fn settle(&self, p: &Path, off: u64) {
        let mut b = [0u8; 1];
        std::fs::File::open(p)
            .unwrap()
            .read_exact_at(&mut b, off)
            .unwrap();
    }

    pub fn recalled_bytes(&self) -> u64 {
        self.hsm.counters.recalled_bytes.load(Ordering::Relaxed)
    }

    /// Stops the listener and starts a new one (as a restarted daemon would).
    pub fn restart_listener(&mut self) {
        if let Some(l) = self.listener.take() {
            l.stop();
        }
        self.listener =
            Some(Listener::start(self.hsm.clone(), self.rt.handle().clone(), None).unwrap());
    }
}

pub fn sh(cmd: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
