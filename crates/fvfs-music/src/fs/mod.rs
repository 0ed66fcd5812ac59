//! The read-only FUSE view of the music library: [`MusicFs`] implements
//! `fvfs_fuse::FsOps`, each method a thin call into the core (`tree.rs`: names,
//! listings and attributes from the index; `content.rs`: track, cover and overlay bytes
//! through the cache) whose [`FsError`] becomes an errno in [`FsError::errno`], the one
//! table.
//!
//! Layout of a mount: with one view, the view's tree at the root; with every view, one
//! directory per view. Beside them at the root, `.search/<query>/` (the tracks a search
//! finds) and `.collections/<name>/` (saved searches). Album directories (those holding
//! tracks) show `cover.jpg` (or `.png`) when a track has embedded art.
//!
//! Invariants:
//! - Mounting reads nothing but the view list: every name is looked up when asked
//!   (lazily, one indexed query), so mount time does not grow with the library.
//! - Sizes are exact at lookup: a track's from the index (or its overlay, built from the
//!   head of the file), a cover's from the picture.
//! - Nothing is ever written: every change answers EROFS (the kernel mount is read-only
//!   too), and a write open is refused at open.
//! - Inode numbers are stable (inode.rs).

mod content;
mod inode;
mod listing;
mod tree;

pub use inode::Node;

use crate::cache::MusicCache;
use crate::origin::OriginSet;
use crate::search::TrackSearch;
use bytes::Bytes;
use fvfs_fuse::ops::{self, Attr, Ctx, DirEntry, Errno, FsOps, Opened};
use fvfs_meta::MetaStore;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why an operation of the view failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such entry")]
    NotFound,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("the music view is read-only")]
    ReadOnly,
    #[error("unknown handle")]
    BadHandle,
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    #[error("music index: {0}")]
    Meta(#[from] fvfs_meta::MetaError),
    #[error("reading a track: {0}")]
    Io(#[from] std::io::Error),
}

impl FsError {
    /// The one table from the view's errors to errnos.
    pub fn errno(&self) -> Errno {
        match self {
            FsError::NotFound => Errno::ENOENT,
            FsError::NotDir => Errno::ENOTDIR,
            FsError::IsDir => Errno::EISDIR,
            FsError::ReadOnly => Errno::EROFS,
            FsError::BadHandle => Errno::EBADF,
            FsError::Cache(_) | FsError::Meta(_) | FsError::Io(_) => Errno::EIO,
        }
    }
}

pub type Result<T, E = FsError> = std::result::Result<T, E>;

/// How a view is mounted.
#[derive(Clone, Debug, Default)]
pub struct MusicFsConfig {
    /// The view shown at the root; None shows every view as a top directory.
    pub view: Option<String>,
    /// Serve FLAC and MP3 files with the index's tags spliced in front of their audio.
    pub overlay: bool,
    /// Owner of every node.
    pub uid: u32,
    pub gid: u32,
    /// Fetch ahead on sequential reads, and the next track of an album.
    pub prefetch: bool,
    /// Results listed in a search directory at most.
    pub search_limit: usize,
}

/// The read-only music view (see the module docs).
pub struct MusicFs {
    core: tree::Core,
}

impl MusicFs {
    /// A view over the index in `meta`, reading through `cache` from `origins`. Reads
    /// only the list of views.
    pub fn new(
        meta: Arc<dyn MetaStore>,
        origins: OriginSet,
        cache: Arc<MusicCache>,
        search: Option<Arc<dyn TrackSearch>>,
        rt: tokio::runtime::Handle,
        cfg: MusicFsConfig,
    ) -> Result<MusicFs> {
        Ok(MusicFs {
            core: tree::Core::new(meta, origins, cache, search, rt, cfg)?,
        })
    }

    /// The operation counters (name, count), for `status`.
    pub fn op_counts(&self) -> Vec<(&'static str, u64)> {
        self.core.stats.counts()
    }
}

/// Per-operation counters, and the metrics facade.
#[derive(Default)]
pub(crate) struct OpStats {
    counts: Mutex<HashMap<&'static str, u64>>,
}

impl OpStats {
    fn record(&self, op: &'static str, started: Instant) {
        *self.counts.lock().entry(op).or_default() += 1;
        crate::fs::record_metric(op, started.elapsed());
    }

    fn counts(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<_> = self.counts.lock().iter().map(|(k, v)| (*k, *v)).collect();
        v.sort();
        v
    }
}

fn record_metric(op: &'static str, elapsed: Duration) {
    crate::metrics::fuse_op(op, elapsed);
}

fn record_bytes(n: u64) {
    crate::metrics::bytes_read(n);
}

fn done<T>(stats: &OpStats, op: &'static str, started: Instant, r: Result<T>) -> ops::Result<T> {
    stats.record(op, started);
    r.map_err(|e| {
        if matches!(e, FsError::Cache(_) | FsError::Meta(_) | FsError::Io(_)) {
            tracing::warn!(op, error = %e, "music view operation failed");
        }
        e.errno()
    })
}

/// Handles of open files and directories.
pub(crate) struct Handles<T> {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<T>>>,
}

impl<T> Default for Handles<T> {
    fn default() -> Self {
        Handles {
            next: AtomicU64::new(1),
            open: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Handles<T> {
    fn insert(&self, v: T) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.lock().insert(fh, Arc::new(v));
        fh
    }
    fn get(&self, fh: u64) -> Result<Arc<T>> {
        self.open.lock().get(&fh).cloned().ok_or(FsError::BadHandle)
    }
    fn remove(&self, fh: u64) {
        self.open.lock().remove(&fh);
    }
}

impl FsOps for MusicFs {
    const TTL: Duration = Duration::from_secs(10);

    fn lookup(&self, _ctx: &Ctx, parent: u64, name: &OsStr) -> ops::Result<Attr> {
        let t = Instant::now();
        done(
            &self.core.stats,
            "lookup",
            t,
            self.core.lookup(parent, name),
        )
    }

    fn getattr(&self, _ctx: &Ctx, ino: u64, _fh: Option<u64>) -> ops::Result<Attr> {
        let t = Instant::now();
        done(&self.core.stats, "getattr", t, self.core.getattr(ino))
    }

    fn open(&self, _ctx: &Ctx, ino: u64, flags: i32) -> ops::Result<Opened> {
        let t = Instant::now();
        let r = if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
            Err(FsError::ReadOnly)
        } else {
            self.core.open(ino)
        };
        done(&self.core.stats, "open", t, r)
    }

    fn read(&self, _ctx: &Ctx, ino: u64, fh: u64, offset: u64, size: u32) -> ops::Result<Bytes> {
        let t = Instant::now();
        done(
            &self.core.stats,
            "read",
            t,
            self.core.read(ino, fh, offset, size),
        )
    }

    fn release(&self, _ctx: &Ctx, _ino: u64, fh: u64) -> ops::Result<()> {
        self.core.files.remove(fh);
        Ok(())
    }

    fn opendir(&self, _ctx: &Ctx, ino: u64) -> ops::Result<Opened> {
        let t = Instant::now();
        done(&self.core.stats, "opendir", t, self.core.opendir(ino))
    }

    fn readdir(&self, _ctx: &Ctx, ino: u64, fh: u64, offset: u64) -> ops::Result<Vec<DirEntry>> {
        let t = Instant::now();
        done(
            &self.core.stats,
            "readdir",
            t,
            self.core.readdir(ino, fh, offset),
        )
    }

    fn releasedir(&self, _ctx: &Ctx, _ino: u64, fh: u64) -> ops::Result<()> {
        self.core.dirs.remove(fh);
        Ok(())
    }

    fn statfs(&self, _ctx: &Ctx, _ino: u64) -> ops::Result<ops::StatFs> {
        let t = Instant::now();
        done(&self.core.stats, "statfs", t, self.core.statfs())
    }

    fn getxattr(&self, _ctx: &Ctx, _ino: u64, _name: &OsStr) -> ops::Result<Vec<u8>> {
        Err(Errno(libc::ENODATA))
    }

    fn listxattr(&self, _ctx: &Ctx, _ino: u64) -> ops::Result<Vec<Vec<u8>>> {
        Ok(Vec::new())
    }
}
