//! The HSM face: in-place tiering of native directories. A managed file's content is
//! archived as blocks of the engine's block store (held by the catalog through the
//! `Tiering` component, so GC, replication, eviction, scrubbing and fsck cover it), then
//! *released*: its blocks become holes in the native file (a sparse stub of the same
//! size), and a fanotify pre-content listener recalls the bytes a process is about to
//! touch before the kernel lets it proceed. Hot files are never in the path: no FUSE, no
//! event for a file that is not a stub.
//!
//! Layout: `marker.rs` the `trusted.fvfs.hsm` xattr a managed file carries, `catalog.rs`
//! catalog reads for tools without an engine, `handle.rs`
//! file handles (identity across renames), `archive.rs` storing a file's payload,
//! `release.rs` turning an archived file into a stub, `recall.rs` filling a stub's
//! ranges back, `fanotify/` the kernel interface, `listener.rs` the event loop, `keeper.rs` the
//! process that holds the listener's group while no daemon runs,
//! `export.rs` every archived file back as a plain file from its payload, `janitor.rs`
//! the space policy (archive and release the oldest qualifying files until
//! the filesystem is under its low mark), `recover.rs` finishing interrupted steps and watching the stubs again at start,
//! `requests.rs` the durable request queue the daemon serves (archive, release, recall,
//! pin, unpin),
//! `error.rs` [`HsmError`].
//!
//! Invariants:
//! - A file is released only after its payload is verified on the durable tier, under a
//!   write lease, with size, mtime and ctime equal to the archived ones, and only while
//!   a watch is registered for it (the listener's), so no process can open the stub
//!   without its reads reaching the listener.
//! - A recall writes payload bytes only (verified block by block against their BLAKE3
//!   ids) and never changes the file's size or times; a recall that fails makes the
//!   reader's call fail with EIO and leaves the stub as it was.
//! - The catalog is keyed by the id in the marker, never by path.

mod archive;
pub mod catalog;
pub mod doorbell;
pub mod error;
mod export;
pub mod failpoint;
pub mod fanotify;
pub mod handle;
mod janitor;
pub mod keeper;
mod listener;
pub mod marker;
mod recall;
mod recover;
mod release;
mod requests;

pub use archive::Archived;
pub use error::{HsmError, Result};
pub use export::Exported;
pub use janitor::{glob, usage_pct, JanitorPolicy, JanitorRun, JanitorWorker};
pub use listener::Listener;
pub use marker::{Marker, XATTR};
pub use recall::Recalled;
pub use recover::Recovered;
pub use requests::{RequestsWorker, OPS};

use fvfs_meta::{HsmDir, HsmFile, MetaStore};
use fvfs_vfs::Tiering;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Something that makes the kernel report accesses to a file (the fanotify listener):
/// a stub exists only while it is watched.
pub trait Watch: Send + Sync {
    fn watch(&self, fd: BorrowedFd<'_>) -> std::io::Result<()>;
    fn unwatch(&self, fd: BorrowedFd<'_>) -> std::io::Result<()>;
}

/// Tunables of the HSM face (`[hsm]`).
#[derive(Clone, Debug)]
pub struct HsmConfig {
    /// Recalls running at once across files.
    pub recall_concurrency: usize,
    /// Commands (`/proc/PID/comm`) that get the whole file recalled when they open a
    /// stub. These tools find data with `SEEK_DATA`, which the kernel reports to no
    /// listener, and would copy a stub's holes as zeros.
    pub whole_file_commands: Vec<String>,
    /// Bytes recalled per second at most, across files (0: no limit).
    pub recall_bytes_per_sec: u64,
    /// Commands that would recall everything they see (backup tools walking the tree):
    /// their opens of stubs get `bulk_policy`.
    pub bulk_commands: Vec<String>,
    pub bulk_policy: BulkPolicy,
}

/// What an open of a stub by one of `bulk_commands` gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkPolicy {
    /// The open fails with EAGAIN: the tool skips the file (and may retry later).
    Refuse,
    /// The whole file is recalled before the open returns, one bulk recall at a time, so
    /// interactive recalls are never queued behind a backup.
    Queue,
}

/// Sparse-aware copiers and archivers: they skip what `SEEK_DATA` calls holes.
pub const WHOLE_FILE_COMMANDS: &[&str] = &[
    "cp", "mv", "install", "tar", "bsdtar", "rsync", "cpio", "rclone",
];

/// Backup tools that read every file of a tree.
pub const BULK_COMMANDS: &[&str] = &["restic", "borg", "duplicity", "rdiff-backup", "bacula-fd"];

impl Default for HsmConfig {
    fn default() -> Self {
        HsmConfig {
            recall_concurrency: 4,
            whole_file_commands: WHOLE_FILE_COMMANDS.iter().map(|s| s.to_string()).collect(),
            recall_bytes_per_sec: 0,
            bulk_commands: BULK_COMMANDS.iter().map(|s| s.to_string()).collect(),
            bulk_policy: BulkPolicy::Queue,
        }
    }
}

/// Counters of what the face did since start.
#[derive(Default, Debug)]
pub struct HsmCounters {
    pub archived_bytes: AtomicU64,
    pub released_files: AtomicU64,
    pub recalls: AtomicU64,
    pub recalled_bytes: AtomicU64,
    pub recall_failures: AtomicU64,
}

/// The HSM face over one filesystem's engine.
pub struct Hsm {
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) tiering: Arc<Tiering>,
    pub(crate) cfg: HsmConfig,
    watch: Mutex<Option<Arc<dyn Watch>>>,
    /// One lock per catalog id being recalled: recalls of one file run one at a time, and
    /// the readers waiting behind one find their range resident when they get it.
    pub(crate) recall_locks: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) recall_slots: tokio::sync::Semaphore,
    /// Where the last recall of each file ended (read-ahead of sequential readers).
    pub(crate) recall_ends: Mutex<HashMap<u64, u64>>,
    /// Threads of this process punching a stub's recalled blocks out again
    /// (release.rs): the access event of each such punch is allowed without a recall
    /// (the thread holds the file's recall lock; any other thread's access waits for it).
    pub(crate) punching: Arc<Mutex<std::collections::HashSet<i32>>>,
    /// One bulk recall at a time (`BulkPolicy::Queue`).
    pub(crate) bulk_slot: tokio::sync::Semaphore,
    /// When the next recalled byte may be fetched (`recall_bytes_per_sec`).
    pace_next: Mutex<std::time::Instant>,
    /// Rung when a request is queued (doorbell.rs): the request worker looks at once.
    pub(crate) requests_wake: Arc<tokio::sync::Notify>,
    pub counters: HsmCounters,
}

/// A file's size and times as `fstat` gives them: what release compares with the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub atime: libc::timespec,
    pub mtime: libc::timespec,
    pub regular: bool,
}

pub(crate) fn stamp(fd: BorrowedFd<'_>, path: &Path) -> Result<Stamp> {
    use std::os::fd::AsRawFd;
    // SAFETY: st is plain data the kernel fills; fd is open.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(HsmError::io("stat", path, std::io::Error::last_os_error()));
    }
    Ok(Stamp {
        size: st.st_size as u64,
        mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
        ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec,
        atime: libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        mtime: libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
        regular: st.st_mode & libc::S_IFMT == libc::S_IFREG,
    })
}

/// Sets a file's atime and mtime back (after fvfs wrote into it).
pub(crate) fn restore_times(fd: BorrowedFd<'_>, path: &Path, s: &Stamp) -> Result<()> {
    use std::os::fd::AsRawFd;
    let times = [s.atime, s.mtime];
    // SAFETY: fd is open; times is two valid timespecs.
    if unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) } < 0 {
        return Err(HsmError::io(
            "restore the times of",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Opens `path` without following a final symlink and without touching its atime.
pub(crate) fn open_file(path: &Path, write: bool) -> Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOATIME)
        .open(path)
        .map_err(|e| HsmError::io("open", path, e))?;
    Ok(f.into())
}

impl Hsm {
    pub fn new(meta: Arc<dyn MetaStore>, tiering: Arc<Tiering>, cfg: HsmConfig) -> Arc<Hsm> {
        let slots = cfg.recall_concurrency.max(1);
        Arc::new(Hsm {
            meta,
            tiering,
            cfg,
            watch: Mutex::new(None),
            recall_locks: Mutex::new(HashMap::new()),
            recall_slots: tokio::sync::Semaphore::new(slots),
            bulk_slot: tokio::sync::Semaphore::new(1),
            recall_ends: Mutex::new(HashMap::new()),
            punching: Default::default(),
            pace_next: Mutex::new(std::time::Instant::now()),
            requests_wake: Arc::new(tokio::sync::Notify::new()),
            counters: HsmCounters::default(),
        })
    }

    /// What wakes the request worker (`doorbell::listen` rings it).
    pub fn requests_wake(&self) -> Arc<tokio::sync::Notify> {
        self.requests_wake.clone()
    }

    /// Registers the listener's watch: from now on files can be released.
    pub fn set_watch(&self, w: Option<Arc<dyn Watch>>) {
        *self.watch.lock() = w;
    }

    pub(crate) fn watch(&self) -> Option<Arc<dyn Watch>> {
        self.watch.lock().clone()
    }

    /// Puts `dir` under management; returns its id.
    pub fn add_dir(&self, dir: &Path) -> Result<u64> {
        catalog::add_dir(self.meta.as_ref(), dir)
    }

    pub fn config(&self) -> &HsmConfig {
        &self.cfg
    }

    pub fn dirs(&self) -> Result<Vec<HsmDir>> {
        Ok(self.meta.hsm_dirs()?)
    }

    /// The managed directory holding `path` and the path relative to it.
    pub(crate) fn locate(&self, path: &Path) -> Result<(HsmDir, PathBuf, PathBuf)> {
        let canon = path
            .canonicalize()
            .map_err(|e| HsmError::io("resolve", path, e))?;
        for d in self.meta.hsm_dirs()? {
            if let Ok(rel) = canon.strip_prefix(&d.path) {
                let rel = rel.to_path_buf();
                return Ok((d, canon, rel));
            }
        }
        Err(HsmError::NotManaged(path.to_path_buf()))
    }

    /// The catalog row of `id`.
    pub fn file(&self, id: u64) -> Result<HsmFile> {
        self.meta.hsm_get(id)?.ok_or(HsmError::UnknownId(id))
    }

    /// The marker and catalog row of the file at `path` (None when it carries none).
    pub fn status(&self, path: &Path) -> Result<Option<(Marker, HsmFile)>> {
        catalog::status_of(self.meta.as_ref(), path)
    }

    /// Waits until `bytes` more may be recalled under `recall_bytes_per_sec`: each
    /// recall books its time after the previous one, so the rate holds across files.
    pub(crate) async fn pace(&self, bytes: u64) {
        let rate = self.cfg.recall_bytes_per_sec;
        if rate == 0 {
            return;
        }
        let wait = {
            let mut next = self.pace_next.lock();
            let now = std::time::Instant::now();
            let start = (*next).max(now);
            *next = start + std::time::Duration::from_secs_f64(bytes as f64 / rate as f64);
            start - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    pub(crate) fn recall_lock(&self, id: u64) -> Arc<tokio::sync::Mutex<()>> {
        self.recall_locks.lock().entry(id).or_default().clone()
    }
}
