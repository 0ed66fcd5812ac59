//! Opening a filesystem: the metadata store, its tiers (hottest first), the block store
//! with its local cache, and the [`Vfs`] over them. Also the exclusive lock an embedded
//! (SQLite) filesystem is served under.
//!
//! Invariants: the durable tier must answer the reachability check when one is asked
//! for (a hotter tier that does not is only logged: writes and reads skip it until it
//! answers); one process at a time holds the mount lock of an SQLite filesystem, and
//! every command that changes tiers, runs GC or imports takes it too.

use crate::error::{EngineError, Result};
use crate::paths::default_cache_dir;
use fvfs_chunk::{BlockStore, BlockStoreConfig};
use fvfs_meta::{MetaStore, MetaUrl};
use fvfs_tier::{Tier, TierSpec};
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
/// How long a tier may take to answer the reachability check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// What to open and how.
#[derive(Clone, Debug)]
pub struct EngineOpts {
    pub meta_url: String,
    /// The local block cache (default: under the XDG cache directory).
    pub cache_dir: Option<PathBuf>,
    /// Bytes of local block cache; 0 for none.
    pub cache_size: u64,
    /// Check that the storage is reachable before going on.
    pub check_tier: bool,
    pub policy: TierPolicy,
}

impl EngineOpts {
    /// Every tier, no local cache, no reachability check unless asked: for commands that
    /// work on the stored data directly (fsck, gc, flush, pin, warmup, status).
    pub fn direct(meta_url: &str, check_tier: bool) -> EngineOpts {
        EngineOpts {
            meta_url: meta_url.to_string(),
            cache_dir: None,
            cache_size: 0,
            check_tier,
            policy: TierPolicy::default(),
        }
    }
}

/// An opened filesystem: the metadata, the block store and the policy to run them with.
/// The metadata and the block store stay inside the engine: faces use [`Vfs`].
pub struct Engine {
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) store: Arc<BlockStore>,
    pub(crate) policy: TierPolicy,
    pub(crate) meta_url: String,
}

/// Opens an existing filesystem's metadata with a clear message when there is none.
pub(crate) fn open_meta(url: &str) -> Result<Arc<dyn MetaStore>> {
    fvfs_meta::open(url, false).map_err(|source| EngineError::OpenMeta {
        url: url.to_string(),
        source,
    })
}

/// The settings of the filesystem at `meta_url`.
pub fn read_settings(meta_url: &str) -> Result<fvfs_types::Settings> {
    Ok(open_meta(meta_url)?.settings()?)
}

/// The owner (uid, gid) of the filesystem's root directory.
pub fn root_owner(meta_url: &str) -> Result<(u32, u32)> {
    let a = open_meta(meta_url)?.getattr(fvfs_types::ROOT_INO)?;
    Ok((a.uid, a.gid))
}

/// True when `meta_url` names an embedded database that does not exist yet (a first run
/// formats it); a server database is never new.
pub fn is_new(meta_url: &str) -> Result<bool> {
    Ok(match MetaUrl::parse(meta_url)? {
        MetaUrl::Sqlite(p) => !p.exists(),
        MetaUrl::Postgres(_) => false,
    })
}

/// Asks a tier whether it is usable, within [`CHECK_TIMEOUT`].
pub async fn check_tier(tier: &Tier) -> Result<()> {
    match tokio::time::timeout(CHECK_TIMEOUT, tier.check()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(EngineError::TierUnusable {
            tier: tier.display(),
            source: Box::new(source),
        }),
        Err(_) => Err(EngineError::TierTimeout(tier.display())),
    }
}

/// Opens the storage at `location` and checks that it answers.
pub async fn check_location(location: &str) -> Result<()> {
    let tier = Tier::open(&TierSpec::parse(location)?)?;
    check_tier(&tier).await
}

impl Engine {
    /// Opens the filesystem and, with `opts.check_tier`, checks that its storage answers.
    pub async fn open(opts: EngineOpts) -> Result<Engine> {
        let check = opts.check_tier;
        let engine = Engine::open_unchecked(opts)?;
        crate::startup::mark("metadata and tiers opened");
        if check {
            let tiers = engine.store.tiers();
            let durable = engine.store.durable();
            check_tier(&tiers[durable]).await?;
            let names = engine.meta.settings()?.tier_names();
            for (i, t) in tiers.iter().enumerate() {
                if i != durable {
                    if let Err(e) = check_tier(t).await {
                        tracing::warn!(tier = %names[i], error = %e, "tier not usable at start");
                    }
                }
            }
            crate::startup::mark("tiers checked");
        }
        Ok(engine)
    }

    /// Opens the filesystem without asking its storage anything (no I/O on the tiers).
    pub fn open_unchecked(opts: EngineOpts) -> Result<Engine> {
        let meta = open_meta(&opts.meta_url)?;
        let settings = meta.settings()?;
        let list = settings.tier_list();
        let mut tiers = Vec::with_capacity(list.len());
        for t in &list {
            let spec_err = |source| EngineError::TierSpec {
                name: t.name.clone(),
                location: fvfs_tier::redact(&t.location),
                source: Box::new(source),
            };
            let spec = TierSpec::parse(&t.location).map_err(spec_err)?;
            tiers.push(Tier::open(&spec).map_err(spec_err)?);
        }
        let durable = settings.durable_tier();
        let cache_dir = opts
            .cache_dir
            .clone()
            .unwrap_or_else(|| default_cache_dir(&settings));
        let disk_cache = if opts.cache_size > 0 {
            std::fs::create_dir_all(&cache_dir).map_err(EngineError::io(format!(
                "cannot create the cache directory {}",
                cache_dir.display()
            )))?;
            Some((cache_dir, opts.cache_size))
        } else {
            None
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
            meta_url: opts.meta_url,
        })
    }

    /// [`Engine::open`] with [`EngineOpts::direct`].
    pub async fn open_direct(meta_url: &str, check_tier: bool) -> Result<Engine> {
        Engine::open(EngineOpts::direct(meta_url, check_tier)).await
    }

    pub fn meta_url(&self) -> &str {
        &self.meta_url
    }

    /// Whether several hosts may mount this filesystem at once: its metadata is on a
    /// server (PostgreSQL), not embedded.
    pub fn shared(&self) -> bool {
        is_shared(&self.meta_url)
    }

    /// The durable tier, as shown to users.
    pub fn durable_display(&self) -> String {
        self.store.tier().display()
    }

    /// The engine of the process that owns the filesystem (holds the mount lock).
    pub fn vfs(&self) -> Result<Arc<Vfs>> {
        self.vfs_with(VfsConfig::default())
    }

    /// An engine for a command that may run beside a live mount (flush, pin, warmup):
    /// it leaves orphans to the mount.
    pub fn vfs_beside_mount(&self) -> Result<Arc<Vfs>> {
        // The mount ships the metadata log: a checkpoint here could let SQLite reuse
        // the log before the mount has taken it.
        self.meta.leave_checkpoints()?;
        self.vfs_with(VfsConfig {
            purge_orphans: false,
            ..VfsConfig::default()
        })
    }

    /// The vfs with explicit tunables (the engine's policy replaces `cfg.policy`).
    /// The vfs `fvfsd gc` works through, with its grace period. A dry run may run beside
    /// a mount: it then leaves orphans and checkpoints to the mount.
    pub fn vfs_for_gc(&self, grace: std::time::Duration, dry_run: bool) -> Result<Arc<Vfs>> {
        if dry_run {
            self.meta.leave_checkpoints()?;
        }
        self.vfs_with(VfsConfig {
            gc_grace: grace,
            purge_orphans: !dry_run,
            ..VfsConfig::default()
        })
    }

    pub fn vfs_with(&self, cfg: VfsConfig) -> Result<Arc<Vfs>> {
        let cfg = VfsConfig {
            policy: self.policy.clone(),
            shared: cfg.shared || self.shared(),
            ..cfg
        };
        Ok(Vfs::new(self.meta.clone(), self.store.clone(), cfg)?)
    }

    /// Checks every block against its stored object (and fixes what is safe with
    /// `repair`); `progress(done, total)` is called as blocks are checked.
    pub async fn fsck(
        &self,
        repair: bool,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<fvfs_vfs::fsck::FsckReport> {
        Ok(fvfs_vfs::fsck::fsck(&self.meta, &self.store, repair, progress).await?)
    }
}

/// Whether several hosts may mount the filesystem at `meta_url` at once (its metadata is
/// on a server).
pub fn is_shared(meta_url: &str) -> bool {
    matches!(MetaUrl::parse(meta_url), Ok(MetaUrl::Postgres(_)))
}

/// Held while a process serves a filesystem or changes it offline.
///
/// SQLite: an exclusive flock on a file beside the database — one process at a time,
/// mounts and offline commands alike (the database is one host's file).
/// PostgreSQL: an advisory lock of the server ([`fvfs_meta::postgres::MountLease`]),
/// shared by the mounts of all hosts ([`MountLock::acquire_mount`]) and exclusive for
/// the commands that must run alone (`load`, `restore`, `migrate`, tier changes:
/// [`MountLock::acquire`]). docs/SEMANTICS.md, "Several hosts".
pub struct MountLock {
    _file: Option<File>,
    _lease: Option<fvfs_meta::postgres::MountLease>,
}

impl MountLock {
    /// Takes the filesystem for `holder` (a mountpoint or a command, written into an
    /// SQLite lock file for the refusal message) alone: no mount, on any host, and no
    /// other such command runs meanwhile.
    pub fn acquire(meta_url: &str, holder: &Path) -> Result<Option<MountLock>> {
        MountLock::take(meta_url, holder, false)
    }

    /// Takes the filesystem for a serving process (a mount, `serve`): with SQLite alone,
    /// as [`MountLock::acquire`]; with PostgreSQL beside the mounts of other hosts.
    pub fn acquire_mount(meta_url: &str, holder: &Path) -> Result<Option<MountLock>> {
        MountLock::take(meta_url, holder, true)
    }

    fn take(meta_url: &str, holder: &Path, mount: bool) -> Result<Option<MountLock>> {
        let url = MetaUrl::parse(meta_url)?;
        let db = match &url {
            MetaUrl::Sqlite(db) => db.clone(),
            MetaUrl::Postgres(raw) => {
                let shown = url.display();
                return match fvfs_meta::postgres::MountLease::take(raw, &shown, mount) {
                    Ok(Some(lease)) => Ok(Some(MountLock {
                        _file: None,
                        _lease: Some(lease),
                    })),
                    Ok(None) if mount => Err(EngineError::Locked(format!(
                        "the filesystem {shown} is being changed by a command that runs alone \
                         (`fvfsd load`, `restore`, `migrate` or a tier change): mount it when \
                         that command has finished"
                    ))),
                    Ok(None) => Err(EngineError::Locked(format!(
                        "the filesystem {shown} is mounted (`fvfsd status` lists the sessions \
                         of every host): {} must run alone; unmount it on every host first",
                        holder.display()
                    ))),
                    Err(source) => Err(EngineError::OpenMeta { url: shown, source }),
                };
            }
        };
        let path = PathBuf::from(format!("{}.mount.lock", db.display()));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(EngineError::io(format!(
                "cannot open lock file {}",
                path.display()
            )))?;
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let mut held_by = String::new();
            let _ = f.read_to_string(&mut held_by);
            return Err(EngineError::Locked(format!(
                "the filesystem {} is already mounted ({}); an embedded (SQLite) filesystem can be mounted once",
                meta_url,
                held_by.trim()
            )));
        }
        let write = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.rewind()?;
            writeln!(f, "pid {} at {}", std::process::id(), holder.display())
        };
        write(&mut f).map_err(EngineError::io(format!("cannot write {}", path.display())))?;
        Ok(Some(MountLock {
            _file: Some(f),
            _lease: None,
        }))
    }
}
