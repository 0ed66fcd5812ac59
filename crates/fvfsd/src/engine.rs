//! Builds the engine a command needs (metadata store → tier → block store → vfs) and
//! owns the process-level guards: the exclusive mount lock of an embedded (SQLite)
//! filesystem and the default locations under the XDG directories.

use anyhow::{bail, Context, Result};
use fvfs_chunk::{BlockStore, BlockStoreConfig};
use fvfs_meta::{MetaStore, MetaUrl};
use fvfs_tier::{Tier, TierSpec};
use fvfs_types::Settings;
use fvfs_vfs::{TierPolicy, Vfs, VfsConfig};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default byte limit of the local block cache.
pub const DEFAULT_CACHE_SIZE: u64 = 10 << 30;
/// Memory cache of decoded blocks (kept small: the kernel page cache is the big one).
pub const MEM_CACHE: u64 = 32 << 20;

pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => home().join(fallback),
    }
}

/// `$FVFS_HOME`, else `$XDG_DATA_HOME/fvfs` (`~/.local/share/fvfs`).
pub fn data_dir() -> PathBuf {
    match std::env::var_os("FVFS_HOME") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => xdg("XDG_DATA_HOME", ".local/share").join("fvfs"),
    }
}

/// The daemon's state directory (tokens, certificate, control socket, URL file): the
/// configured one, else the directory of the SQLite database, else the data dir.
pub fn state_dir(configured: Option<&Path>, meta_url: &str) -> PathBuf {
    if let Some(d) = configured {
        return d.to_path_buf();
    }
    match MetaUrl::parse(meta_url) {
        Ok(MetaUrl::Sqlite(db)) => match db.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => data_dir(),
        },
        _ => data_dir(),
    }
}

/// `$XDG_CACHE_HOME/fvfs/<uuid>` (`~/.cache/fvfs/<uuid>`), or under `$FVFS_HOME/cache`.
pub fn default_cache_dir(settings: &Settings) -> PathBuf {
    let base = match std::env::var_os("FVFS_HOME") {
        Some(v) if !v.is_empty() => PathBuf::from(v).join("cache"),
        _ => xdg("XDG_CACHE_HOME", ".cache").join("fvfs"),
    };
    base.join(settings.uuid.to_string())
}

/// The writeback spool of a filesystem (writes not yet stored when a run stopped):
/// `<meta.db>.spool/` beside an SQLite database, else `spool/<uuid>` under the data dir.
pub fn spool_dir(meta_url: &str, settings: &Settings) -> PathBuf {
    match MetaUrl::parse(meta_url) {
        Ok(MetaUrl::Sqlite(db)) => PathBuf::from(format!("{}.spool", db.display())),
        _ => data_dir().join("spool").join(settings.uuid.to_string()),
    }
}

pub struct EngineOpts {
    pub meta_url: String,
    pub cache_dir: Option<PathBuf>,
    pub cache_size: u64,
    /// Check that the storage is reachable before going on.
    pub check_tier: bool,
    pub policy: TierPolicy,
}

pub struct Engine {
    pub meta: Arc<dyn MetaStore>,
    pub store: Arc<BlockStore>,
    pub policy: TierPolicy,
}

/// Opens an existing filesystem's metadata with a clear message when there is none.
pub fn open_meta(url: &str) -> Result<Arc<dyn MetaStore>> {
    fvfs_meta::open(url, false).with_context(|| format!("cannot open the metadata at {url}"))
}

pub async fn check_tier(tier: &Tier) -> Result<()> {
    match tokio::time::timeout(Duration::from_secs(30), tier.check()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e).with_context(|| format!("storage {} is not usable", tier.display())),
        Err(_) => bail!("storage {} did not answer within 30 s", tier.display()),
    }
}

impl Engine {
    pub async fn open(opts: EngineOpts) -> Result<Engine> {
        let meta = open_meta(&opts.meta_url)?;
        let settings = meta.settings()?;
        let list = settings.tier_list();
        let mut tiers = Vec::with_capacity(list.len());
        for t in &list {
            let spec = TierSpec::parse(&t.location).with_context(|| {
                format!("tier {:?} ({})", t.name, fvfs_tier::redact(&t.location))
            })?;
            tiers.push(Tier::open(&spec)?);
        }
        let durable = settings.durable_tier();
        if opts.check_tier {
            // The durable tier must answer; a hotter tier that does not is skipped for
            // writes and reads until it answers again.
            check_tier(&tiers[durable]).await?;
            for (i, t) in tiers.iter().enumerate() {
                if i != durable {
                    if let Err(e) = check_tier(t).await {
                        tracing::warn!(tier = %list[i].name, error = %format!("{e:#}"), "tier not usable at start");
                    }
                }
            }
        }
        let cache_dir = opts
            .cache_dir
            .clone()
            .or_else(|| Some(default_cache_dir(&settings)));
        let disk_cache = match &cache_dir {
            Some(d) if opts.cache_size > 0 => {
                std::fs::create_dir_all(d).with_context(|| {
                    format!("cannot create the cache directory {}", d.display())
                })?;
                Some((d.clone(), opts.cache_size))
            }
            _ => None,
        };
        let store = BlockStore::with_tiers(
            tiers,
            durable,
            BlockStoreConfig {
                compression: settings.compression,
                mem_cache_bytes: MEM_CACHE,
                disk_cache,
                upload_concurrency: 16,
            },
        )?;
        Ok(Engine {
            meta,
            store: Arc::new(store),
            policy: opts.policy,
        })
    }

    /// Every tier, no local cache, no reachability check: for commands that work on the
    /// stored data directly (fsck, gc, flush, pin, warmup).
    pub async fn open_direct(meta_url: &str, check_tier: bool) -> Result<Engine> {
        Engine::open(EngineOpts {
            meta_url: meta_url.to_string(),
            cache_dir: None,
            cache_size: 0,
            check_tier,
            policy: TierPolicy::default(),
        })
        .await
    }

    /// The engine of the process that owns the filesystem (holds the mount lock).
    pub fn vfs(&self) -> Result<Arc<Vfs>> {
        let cfg = VfsConfig {
            policy: self.policy.clone(),
            ..VfsConfig::default()
        };
        Ok(Vfs::new(self.meta.clone(), self.store.clone(), cfg)?)
    }

    /// An engine for a command that may run beside a live mount (flush, pin, warmup):
    /// it leaves orphans to the mount.
    pub fn vfs_beside_mount(&self) -> Result<Arc<Vfs>> {
        let cfg = VfsConfig {
            policy: self.policy.clone(),
            purge_orphans: false,
            ..VfsConfig::default()
        };
        Ok(Vfs::new(self.meta.clone(), self.store.clone(), cfg)?)
    }
}

/// The replication and eviction policy a config file asks for.
pub fn policy(cfg: &crate::config::Config) -> TierPolicy {
    let mut p = TierPolicy::default();
    if let Some(mb) = cfg.upload.flush_size_mb {
        p.flush_bytes = mb << 20;
    }
    if let Some(s) = cfg.upload.flush_interval_secs {
        p.flush_interval = Duration::from_secs(s);
    }
    if let Some(s) = cfg.eviction.interval_secs {
        p.evict_interval = Duration::from_secs(s.max(1));
    }
    if let Some(w) = cfg.eviction.recency_weight {
        p.recency_weight = w;
    }
    if let Some(w) = cfg.eviction.frequency_weight {
        p.frequency_weight = w;
    }
    if let Some(r) = cfg.eviction.scrub_blocks_per_sec {
        p.scrub_blocks_per_sec = r;
    }
    p
}

/// Held while a process serves an embedded filesystem: a second mount is refused.
pub struct MountLock {
    _file: File,
}

impl MountLock {
    /// Takes the lock of an SQLite filesystem; other metadata stores need none.
    pub fn acquire(meta_url: &str, mountpoint: &Path) -> Result<Option<MountLock>> {
        let MetaUrl::Sqlite(db) = MetaUrl::parse(meta_url)? else {
            return Ok(None);
        };
        let path = PathBuf::from(format!("{}.mount.lock", db.display()));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            bail!(
                "the filesystem {} is already mounted ({}); an embedded (SQLite) filesystem can be mounted once",
                meta_url,
                holder.trim()
            );
        }
        f.set_len(0)?;
        f.rewind()?;
        writeln!(f, "pid {} at {}", std::process::id(), mountpoint.display())?;
        Ok(Some(MountLock { _file: f }))
    }
}
