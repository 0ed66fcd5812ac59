//! Importing existing directory trees into a filesystem, in-process through the vfs
//! (no mount): one walker thread creates directories and symlinks, a bounded pool of
//! file copiers writes the regular files, and the tiering workers run meanwhile so an
//! import larger than the hot tier does not fill it.
//!
//! Invariants:
//! - Never runs while an embedded filesystem is mounted: it takes the `MountLock`.
//! - Resumable: a destination file with the source's size and mtime (ns) is complete and
//!   skipped; anything else under that name (a half-written copy) is truncated and
//!   rewritten. A file's mtime is set only after its data is committed (`release`), so an
//!   interrupted copy never looks complete.
//! - Directory times and modes are set after everything below them is imported (creating
//!   children changes a directory's mtime).
//! - A per-entry error is reported with its path through [`ImportProgress`] and the run
//!   goes on. Dedup is the engine's (content-addressed blocks): nothing here.

use crate::error::{EngineError, Result};
use crate::open::{Engine, EngineOpts, MountLock};
use crate::running::spawn_tiering;
use fvfs_vfs::worker::Workers;
use fvfs_vfs::{
    Attr, AttrChange, Ctx, FileKind, Ino, OpenFlags, Stats, TierPolicy, TimeSet, Vfs, VfsError,
    ROOT_INO,
};
use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, Mutex};

/// Bytes per `Vfs::write` call.
const PIECE: usize = 1 << 20;
/// How long the end of a run waits for queued copies to colder tiers.
const REPLICATE_WAIT: Duration = Duration::from_secs(600);

/// One source tree and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub dir: PathBuf,
    /// Absolute path inside the filesystem.
    pub dest: String,
}

#[derive(Clone, Debug)]
pub struct ImportArgs {
    pub meta_url: String,
    pub sources: Vec<Source>,
    /// Concurrent file copiers.
    pub jobs: usize,
    /// Replication and eviction while importing (from the config file, as for a mount).
    pub policy: TierPolicy,
}

/// Where an import reports its progress (a progress bar, a log).
pub trait ImportProgress: Send + Sync {
    /// `n` more bytes are to be copied.
    fn add_total(&self, n: u64);
    /// A file announced with `old` bytes has `new` (it changed since the walk).
    fn resize(&self, old: u64, new: u64);
    /// `n` bytes are done (copied or found already there).
    fn advance(&self, n: u64);
    /// A short status line ("12/40 files", "replicating to colder tiers").
    fn status(&self, msg: String);
    /// An entry failed (`warning` false) or was skipped with a warning.
    fn entry(&self, path: &Path, what: &str, warning: bool);
}

/// Why one entry could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Vfs(#[from] VfsError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Engine { what: String, source: VfsError },
    /// The destination holds something the source cannot replace.
    #[error("{0}")]
    Conflict(String),
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> ImportError {
    move |source| ImportError::Io { what, source }
}

fn eng(what: impl Into<String>) -> impl FnOnce(VfsError) -> ImportError {
    let what = what.into();
    move |source| ImportError::Engine { what, source }
}

/// What an import did.
#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    pub files: u64,
    /// Files already there with the same size and mtime.
    pub skipped: u64,
    pub bytes_read: u64,
    /// Plain bytes of the blocks the import added (what dedup did not find).
    pub unique_bytes_added: u64,
    pub symlinks: u64,
    pub symlinks_skipped: u64,
    pub dirs: u64,
    /// FIFOs, sockets and devices (not imported).
    pub other: u64,
    pub errors: u64,
    /// Block copies to colder tiers still queued at the end.
    pub queued: u64,
}

impl ImportReport {
    /// Bytes read over unique bytes added, when anything was added.
    pub fn dedup_ratio(&self) -> Option<f64> {
        (self.unique_bytes_added > 0)
            .then(|| self.bytes_read as f64 / self.unique_bytes_added as f64)
    }
}

/// Counters of one run, shared by the walker and the copiers.
#[derive(Default)]
struct Counters {
    files: AtomicU64,
    skipped: AtomicU64,
    bytes_read: AtomicU64,
    symlinks: AtomicU64,
    symlinks_skipped: AtomicU64,
    dirs: AtomicU64,
    other: AtomicU64,
    errors: AtomicU64,
    files_seen: AtomicU64,
}

impl Counters {
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// What the walker, the copiers and the summary share.
struct Run {
    vfs: Arc<Vfs>,
    progress: Arc<dyn ImportProgress>,
    n: Counters,
    rt: tokio::runtime::Handle,
}

impl Run {
    fn error(&self, path: &Path, e: impl std::fmt::Display) {
        self.n.errors.fetch_add(1, Ordering::Relaxed);
        self.progress.entry(path, &e.to_string(), false);
    }

    fn warn(&self, path: &Path, what: &str) {
        self.progress.entry(path, what, true);
    }

    fn message(&self) {
        let done = Counters::get(&self.n.files) + Counters::get(&self.n.skipped);
        self.progress.status(format!(
            "{done}/{} files",
            Counters::get(&self.n.files_seen)
        ));
    }
}

/// A regular file for a copier.
struct FileJob {
    src: PathBuf,
    parent: Ino,
    name: Vec<u8>,
    meta: Metadata,
}

/// A directory whose mode, owner and times are applied at the end.
struct DirAttrs {
    ino: Ino,
    src: PathBuf,
    meta: Metadata,
}

fn ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

fn mtime_ns(m: &Metadata) -> i64 {
    ns(m.mtime(), m.mtime_nsec())
}

fn atime_ns(m: &Metadata) -> i64 {
    ns(m.atime(), m.atime_nsec())
}

fn is_errno(e: &VfsError, errno: i32) -> bool {
    e.errno() == errno
}

/// mkdir, or the existing directory of that name.
fn mkdir_or_existing(
    vfs: &Vfs,
    parent: Ino,
    name: &[u8],
    perm: u32,
) -> Result<(Attr, bool), ImportError> {
    match vfs.mkdir(Ctx::root(), parent, name, perm, 0) {
        Ok(a) => Ok((a, true)),
        Err(e) if is_errno(&e, libc::EEXIST) => {
            let a = vfs.lookup(parent, name)?;
            if a.kind != FileKind::Dir {
                return Err(ImportError::Conflict(
                    "exists in the filesystem and is not a directory".into(),
                ));
            }
            Ok((a, false))
        }
        Err(e) => Err(e.into()),
    }
}

/// mkdir -p of an absolute path inside the filesystem; returns its inode.
fn mkdir_p(vfs: &Vfs, dest: &str) -> Result<Ino, ImportError> {
    let mut ino = ROOT_INO;
    for c in Path::new(dest).components() {
        if let Component::Normal(name) = c {
            ino = match mkdir_or_existing(vfs, ino, name.as_bytes(), 0o755) {
                Ok((a, _)) => a.ino,
                Err(ImportError::Vfs(e)) => {
                    return Err(eng(format!("cannot create {dest} in the filesystem"))(e))
                }
                Err(e) => return Err(e),
            };
        }
    }
    Ok(ino)
}

/// Sets perm (not for symlinks), owner and times from the source.
async fn apply_attrs(vfs: &Vfs, ino: Ino, m: &Metadata, perm: bool) -> Result<(), ImportError> {
    let ch = AttrChange {
        perm: perm.then_some(m.mode() & 0o7777),
        uid: Some(m.uid()),
        gid: Some(m.gid()),
        size: None,
        atime: TimeSet::At(atime_ns(m)),
        mtime: TimeSet::At(mtime_ns(m)),
    };
    vfs.setattr(Ctx::root(), ino, ch).await?;
    Ok(())
}

/// Imports the trees into the filesystem at `args.meta_url`, reporting through
/// `progress`. An entry that fails is reported and counted; the run goes on.
pub fn import(args: ImportArgs, progress: Arc<dyn ImportProgress>) -> Result<ImportReport> {
    let _lock = MountLock::acquire(&args.meta_url, Path::new("(fvfsd migrate)")).map_err(|e| {
        EngineError::Locked(format!(
            "cannot migrate while the filesystem is mounted or another migrate runs: unmount it first ({e})"
        ))
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.jobs.clamp(2, 8))
        .thread_name("fvfs-import")
        .enable_all()
        .build()
        .map_err(EngineError::io("cannot start the runtime"))?;
    rt.block_on(run_import(args, progress))
}

async fn run_import(args: ImportArgs, progress: Arc<dyn ImportProgress>) -> Result<ImportReport> {
    let engine = Engine::open(EngineOpts {
        policy: args.policy.clone(),
        ..EngineOpts::direct(&args.meta_url, true)
    })
    .await?;
    let vfs = engine.vfs()?;
    let workers = Workers::new();
    spawn_tiering(&workers, &vfs);
    let before: Stats = vfs.stats()?;
    let run = Arc::new(Run {
        vfs: vfs.clone(),
        progress,
        n: Counters::default(),
        rt: tokio::runtime::Handle::current(),
    });

    let jobs = args.jobs.max(1);
    let (tx, rx) = mpsc::channel::<FileJob>(jobs * 8);
    let rx = Arc::new(Mutex::new(rx));
    let mut copiers = tokio::task::JoinSet::new();
    for _ in 0..jobs {
        let (run, rx) = (run.clone(), rx.clone());
        copiers.spawn(async move {
            loop {
                let job = rx.lock().await.recv().await;
                let Some(job) = job else { break };
                if let Err(e) = copy_file(&run, &job).await {
                    run.error(&job.src, e);
                }
                run.message();
            }
        });
    }
    let walker = {
        let run = run.clone();
        let sources = args.sources.clone();
        tokio::task::spawn_blocking(move || {
            let mut dirs = Vec::new();
            for s in &sources {
                walk_source(&run, s, &tx, &mut dirs);
            }
            dirs
        })
    };
    let task_failed = |e: tokio::task::JoinError| {
        EngineError::Vfs(VfsError::Internal(format!("an import task failed: {e}")))
    };
    let dirs = walker.await.map_err(task_failed)?;
    while let Some(r) = copiers.join_next().await {
        r.map_err(task_failed)?;
    }
    // Deepest first is not needed (a setattr does not touch the parent), but children's
    // creation is over now, so the times stick.
    for d in dirs.iter().rev() {
        if let Err(e) = apply_attrs(&vfs, d.ino, &d.meta, true).await {
            run.error(&d.src, e);
        }
    }
    // Small files closed into the write journal are stored as blocks first.
    vfs.writeback_pass().await?;
    vfs.sync_metadata()?;
    run.progress.status("replicating to colder tiers".into());
    vfs.tiering().request_flush();
    let queued = vfs.tiering().replicate_all(REPLICATE_WAIT).await?;
    workers.shutdown(Duration::from_secs(10)).await;

    let after = vfs.stats()?;
    let n = &run.n;
    Ok(ImportReport {
        files: Counters::get(&n.files),
        skipped: Counters::get(&n.skipped),
        bytes_read: Counters::get(&n.bytes_read),
        unique_bytes_added: after.unique_bytes.saturating_sub(before.unique_bytes),
        symlinks: Counters::get(&n.symlinks),
        symlinks_skipped: Counters::get(&n.symlinks_skipped),
        dirs: Counters::get(&n.dirs),
        other: Counters::get(&n.other),
        errors: Counters::get(&n.errors),
        queued,
    })
}

/// Walks one source tree depth-first: creates directories and symlinks here, queues
/// regular files for the copiers, records directories for their final attributes.
fn walk_source(run: &Run, s: &Source, tx: &mpsc::Sender<FileJob>, dirs: &mut Vec<DirAttrs>) {
    let meta = match std::fs::symlink_metadata(&s.dir) {
        Ok(m) => m,
        Err(e) => return run.error(&s.dir, e),
    };
    let root = match mkdir_p(&run.vfs, &s.dest) {
        Ok(ino) => ino,
        Err(e) => return run.error(&s.dir, e),
    };
    run.n.dirs.fetch_add(1, Ordering::Relaxed);
    // The filesystem root keeps its own attributes.
    if root != ROOT_INO {
        dirs.push(DirAttrs {
            ino: root,
            src: s.dir.clone(),
            meta,
        });
    }
    let mut stack = vec![(s.dir.clone(), root)];
    while let Some((dir, ino)) = stack.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                run.error(&dir, format!("cannot list: {e}"));
                continue;
            }
        };
        let mut entries: Vec<_> = Vec::new();
        for e in rd {
            match e {
                Ok(e) => entries.push(e),
                Err(e) => run.error(&dir, format!("cannot list: {e}")),
            }
        }
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let name = e.file_name();
            let meta = match e.metadata() {
                Ok(m) => m,
                Err(e) => {
                    run.error(&path, e);
                    continue;
                }
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                match mkdir_or_existing(&run.vfs, ino, name.as_bytes(), meta.mode() & 0o7777) {
                    Ok((a, _)) => {
                        run.n.dirs.fetch_add(1, Ordering::Relaxed);
                        dirs.push(DirAttrs {
                            ino: a.ino,
                            src: path.clone(),
                            meta,
                        });
                        stack.push((path, a.ino));
                    }
                    Err(e) => run.error(&path, e),
                }
            } else if ft.is_file() {
                run.n.files_seen.fetch_add(1, Ordering::Relaxed);
                run.progress.add_total(meta.len());
                let job = FileJob {
                    src: path,
                    parent: ino,
                    name: name.as_bytes().to_vec(),
                    meta,
                };
                if tx.blocking_send(job).is_err() {
                    // Every copier is gone (they only stop when the channel closes).
                    return;
                }
            } else if ft.is_symlink() {
                if let Err(e) = import_symlink(run, &path, ino, &name, &meta) {
                    run.error(&path, e);
                }
            } else {
                run.n.other.fetch_add(1, Ordering::Relaxed);
                let kind = if ft.is_fifo() {
                    "FIFO"
                } else if ft.is_socket() {
                    "socket"
                } else {
                    "device"
                };
                run.warn(&path, &format!("{kind} skipped"));
            }
        }
        run.message();
    }
}

fn import_symlink(
    run: &Run,
    path: &Path,
    parent: Ino,
    name: &OsStr,
    meta: &Metadata,
) -> Result<(), ImportError> {
    let target = std::fs::read_link(path).map_err(io("cannot read the link"))?;
    let target = target.as_os_str().as_bytes();
    let name = name.as_bytes();
    match run.vfs.lookup(parent, name) {
        Ok(a) if a.kind == FileKind::Symlink && run.vfs.readlink(a.ino)? == target => {
            run.n.symlinks_skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        Ok(a) if a.kind == FileKind::Dir => {
            return Err(ImportError::Conflict(
                "exists in the filesystem as a directory".into(),
            ));
        }
        // A different link or a file: the source wins.
        Ok(_) => run.vfs.unlink(parent, name)?,
        Err(e) if is_errno(&e, libc::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let a = run.vfs.symlink(Ctx::root(), parent, name, target)?;
    run.rt.block_on(apply_attrs(&run.vfs, a.ino, meta, false))?;
    run.n.symlinks.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Copies one regular file unless the destination already has its size and mtime.
async fn copy_file(run: &Run, job: &FileJob) -> Result<(), ImportError> {
    let vfs = &run.vfs;
    let existing = match vfs.lookup(job.parent, &job.name) {
        Ok(a) => Some(a),
        Err(e) if is_errno(&e, libc::ENOENT) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(a) = &existing {
        if a.kind != FileKind::File {
            return Err(ImportError::Conflict(
                "exists in the filesystem and is not a regular file".into(),
            ));
        }
        if a.size == job.meta.len() && a.mtime == mtime_ns(&job.meta) {
            run.n.skipped.fetch_add(1, Ordering::Relaxed);
            run.progress.advance(job.meta.len());
            return Ok(());
        }
    }
    let mut src = tokio::fs::File::open(&job.src)
        .await
        .map_err(io("cannot open"))?;
    // Attributes of the content actually read (the walk's may be stale).
    let meta = src.metadata().await.map_err(io("cannot stat"))?;
    if meta.len() != job.meta.len() {
        // The walk announced the old size: replace it by the one being copied.
        run.progress.resize(job.meta.len(), meta.len());
    }
    let write = OpenFlags {
        read: false,
        write: true,
        append: false,
    };
    let (ino, fh) = match &existing {
        Some(a) => {
            let fh = vfs.open(a.ino, write)?;
            (a.ino, fh)
        }
        None => {
            let (a, fh) =
                vfs.create(Ctx::root(), job.parent, &job.name, 0o600, 0, libc::O_WRONLY)?;
            (a.ino, fh)
        }
    };
    let copied = copy_data(run, &mut src, ino, fh, existing.is_some()).await;
    let released = vfs.release(fh).await;
    copied?;
    released.map_err(eng("cannot commit the data"))?;
    apply_attrs(vfs, ino, &meta, true).await?;
    run.n.files.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

async fn copy_data(
    run: &Run,
    src: &mut tokio::fs::File,
    ino: Ino,
    fh: u64,
    truncate: bool,
) -> Result<(), ImportError> {
    let vfs = &run.vfs;
    if truncate {
        vfs.setattr(Ctx::root(), ino, AttrChange::size(0))
            .await
            .map_err(eng("cannot truncate the half-written copy"))?;
    }
    let mut buf = vec![0u8; PIECE];
    let mut off = 0u64;
    loop {
        let mut len = 0;
        while len < PIECE {
            let n = src.read(&mut buf[len..]).await.map_err(io("cannot read"))?;
            if n == 0 {
                break;
            }
            len += n;
        }
        if len == 0 {
            break;
        }
        let mut done = 0;
        while done < len {
            let n = vfs
                .write(fh, off + done as u64, &buf[done..len])
                .await
                .map_err(eng("cannot write into the filesystem"))? as usize;
            if n == 0 {
                return Err(ImportError::Conflict(format!(
                    "the filesystem accepted no bytes at offset {}",
                    off + done as u64
                )));
            }
            done += n;
        }
        off += len as u64;
        run.n.bytes_read.fetch_add(len as u64, Ordering::Relaxed);
        run.progress.advance(len as u64);
        if len < PIECE {
            break;
        }
    }
    Ok(())
}
