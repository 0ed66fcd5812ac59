//! `fvfsd migrate`: a one-time import of existing directory trees into an fvfs filesystem,
//! in-process through the vfs API (no mount). Owns the mapping of source trees to
//! destination paths, the crawl (one walker thread creating directories and symlinks, a
//! bounded pool of `--jobs` file copiers) and the summary it prints.
//!
//! Invariants:
//! - Never runs while an embedded filesystem is mounted: it takes the same `MountLock`.
//! - Resumable: a destination file with the source's size and mtime (ns) is complete and
//!   skipped; anything else under that name (a half-written copy) is truncated and
//!   rewritten. A file's mtime is set only after its data is committed (`release`), so an
//!   interrupted copy never looks complete.
//! - Directory times and modes are set after everything below them is imported (creating
//!   children changes a directory's mtime).
//! - A per-entry error is reported with its path and the run goes on; the exit status is 1
//!   if there was any. Dedup is the engine's (content-addressed blocks): nothing here.

use crate::cmd::status::human;
use crate::engine::{Engine, EngineOpts, MountLock};
use anyhow::{bail, Context, Result};
use fvfs_vfs::worker::Workers;
use fvfs_vfs::{
    Attr, Ctx, EvictorWorker, FileKind, Ino, OpenFlags, ReplicatorWorker, TierEventsWorker,
    TierPolicy, TimeSet, Vfs, VfsError, ROOT_INO,
};
use indicatif::{ProgressBar, ProgressStyle};
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
pub struct MigrateArgs {
    pub meta_url: String,
    pub sources: Vec<Source>,
    /// Concurrent file copiers.
    pub jobs: usize,
    /// Replication and eviction while importing (from the config file, as for a mount).
    pub policy: TierPolicy,
}

/// Maps the command line to sources: `--local-src D` → `<dest>/local/<basename D>`,
/// `--nas-src D` → `<dest>/nas/<basename D>`, `--src D:/path` → `/path`.
pub fn plan(
    local: &[PathBuf],
    nas: &[PathBuf],
    explicit: &[String],
    dest: &str,
) -> Result<Vec<Source>> {
    check_dest(dest)?;
    let mut out = Vec::new();
    for (dirs, tier) in [(local, "local"), (nas, "nas")] {
        for d in dirs {
            let base = d
                .canonicalize()
                .with_context(|| format!("source {}", d.display()))?;
            let name = base
                .file_name()
                .with_context(|| format!("source {} has no name to import it under", d.display()))?
                .to_string_lossy()
                .into_owned();
            out.push(Source {
                dir: d.clone(),
                dest: format!("{}/{tier}/{name}", dest.trim_end_matches('/')),
            });
        }
    }
    for s in explicit {
        // The last ':' followed by an absolute path splits DIR from DEST.
        let split = s
            .char_indices()
            .rev()
            .find(|&(i, c)| c == ':' && s[i + 1..].starts_with('/'))
            .map(|(i, _)| i);
        let Some(i) = split else {
            bail!("--src {s:?}: expected DIR:/path/in/fvfs");
        };
        let (dir, path) = (&s[..i], &s[i + 1..]);
        if dir.is_empty() {
            bail!("--src {s:?}: the source directory is empty");
        }
        check_dest(path)?;
        out.push(Source {
            dir: PathBuf::from(dir),
            dest: path.to_string(),
        });
    }
    if out.is_empty() {
        bail!("nothing to import: give --local-src, --nas-src or --src DIR:/path");
    }
    for s in &out {
        let m = std::fs::metadata(&s.dir)
            .with_context(|| format!("cannot read source {}", s.dir.display()))?;
        if !m.is_dir() {
            bail!("source {} is not a directory", s.dir.display());
        }
    }
    Ok(out)
}

fn check_dest(dest: &str) -> Result<()> {
    if !dest.starts_with('/') {
        bail!("destination {dest:?} must be an absolute path inside the filesystem");
    }
    if Path::new(dest)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        bail!("destination {dest:?} must not contain '..'");
    }
    Ok(())
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
    bar: ProgressBar,
    n: Counters,
    rt: tokio::runtime::Handle,
}

impl Run {
    fn error(&self, path: &Path, e: impl std::fmt::Display) {
        self.n.errors.fetch_add(1, Ordering::Relaxed);
        self.bar
            .suspend(|| eprintln!("fvfsd: error: {}: {e:#}", path.display()));
    }

    fn warn(&self, path: &Path, what: &str) {
        self.bar
            .suspend(|| eprintln!("fvfsd: warning: {}: {what}", path.display()));
    }

    fn message(&self) {
        let done = Counters::get(&self.n.files) + Counters::get(&self.n.skipped);
        self.bar.set_message(format!(
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
fn mkdir_or_existing(vfs: &Vfs, parent: Ino, name: &[u8], perm: u32) -> Result<(Attr, bool)> {
    match vfs.mkdir(Ctx::root(), parent, name, perm, 0) {
        Ok(a) => Ok((a, true)),
        Err(e) if is_errno(&e, libc::EEXIST) => {
            let a = vfs.lookup(parent, name)?;
            if a.kind != FileKind::Dir {
                bail!("exists in the filesystem and is not a directory");
            }
            Ok((a, false))
        }
        Err(e) => Err(e.into()),
    }
}

/// mkdir -p of an absolute path inside the filesystem; returns its inode.
fn mkdir_p(vfs: &Vfs, dest: &str) -> Result<Ino> {
    let mut ino = ROOT_INO;
    for c in Path::new(dest).components() {
        if let Component::Normal(name) = c {
            ino = mkdir_or_existing(vfs, ino, name.as_bytes(), 0o755)
                .with_context(|| format!("cannot create {dest} in the filesystem"))?
                .0
                .ino;
        }
    }
    Ok(ino)
}

/// Sets perm (not for symlinks), owner and times from the source.
async fn apply_attrs(vfs: &Vfs, ino: Ino, m: &Metadata, perm: bool) -> Result<()> {
    vfs.setattr(
        Ctx::root(),
        ino,
        perm.then_some(m.mode() & 0o7777),
        Some(m.uid()),
        Some(m.gid()),
        None,
        TimeSet::At(atime_ns(m)),
        TimeSet::At(mtime_ns(m)),
    )
    .await?;
    Ok(())
}

/// Imports the trees; returns the exit status (1 if any entry failed).
pub fn run(args: MigrateArgs) -> Result<i32> {
    let _lock = MountLock::acquire(&args.meta_url, Path::new("(fvfsd migrate)")).with_context(
        || "cannot migrate while the filesystem is mounted or another migrate runs: unmount it first",
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.jobs.clamp(2, 8))
        .thread_name("fvfs-migrate")
        .enable_all()
        .build()?;
    rt.block_on(migrate(args))
}

async fn migrate(args: MigrateArgs) -> Result<i32> {
    let engine = Engine::open(EngineOpts {
        meta_url: args.meta_url.clone(),
        cache_dir: None,
        cache_size: 0,
        check_tier: true,
        policy: args.policy.clone(),
    })
    .await?;
    let vfs = engine.vfs()?;
    // As in a mount: copies to colder tiers and eviction run while importing, so an
    // import larger than the hot tier does not fill it.
    let workers = Workers::new();
    workers.spawn(TierEventsWorker::new(&vfs));
    workers.spawn(ReplicatorWorker::new(&vfs));
    workers.spawn(EvictorWorker::new(&vfs));
    let before = engine.meta.stats()?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let run = Arc::new(Run {
        vfs: vfs.clone(),
        bar,
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
    let dirs = walker.await.context("the directory walker failed")?;
    while let Some(r) = copiers.join_next().await {
        r.context("a file copier failed")?;
    }
    // Deepest first is not needed (a setattr does not touch the parent), but children's
    // creation is over now, so the times stick.
    for d in dirs.iter().rev() {
        if let Err(e) = apply_attrs(&vfs, d.ino, &d.meta, true).await {
            run.error(&d.src, e);
        }
    }
    vfs.sync_metadata()
        .context("cannot make the metadata durable")?;
    run.bar.set_message("replicating to colder tiers");
    vfs.request_flush();
    let queued = vfs
        .replicate_all(REPLICATE_WAIT)
        .await
        .context("cannot replicate the imported blocks")?;
    workers.shutdown(Duration::from_secs(10)).await;
    run.bar.finish_and_clear();

    let after = engine.meta.stats()?;
    let n = &run.n;
    let read = Counters::get(&n.bytes_read);
    let added = after.unique_bytes.saturating_sub(before.unique_bytes);
    let ratio = if added > 0 {
        format!("{:.2}", read as f64 / added as f64)
    } else {
        "n/a".into()
    };
    println!("files imported      {}", Counters::get(&n.files));
    println!(
        "files skipped       {} (already there)",
        Counters::get(&n.skipped)
    );
    println!("bytes read          {read} ({})", human(read));
    println!("unique bytes added  {added} ({})", human(added));
    println!("dedup ratio         {ratio}");
    println!(
        "symlinks            {} ({} already there)",
        Counters::get(&n.symlinks),
        Counters::get(&n.symlinks_skipped)
    );
    println!("dirs                {}", Counters::get(&n.dirs));
    println!("other kinds skipped {}", Counters::get(&n.other));
    if queued > 0 {
        println!("replication         {queued} block copies still queued (the next mount or serve makes them)");
    }
    let errors = Counters::get(&n.errors);
    println!("errors              {errors}");
    Ok(if errors > 0 { 1 } else { 0 })
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
                run.bar.inc_length(meta.len());
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
) -> Result<()> {
    let target = std::fs::read_link(path).context("cannot read the link")?;
    let target = target.as_os_str().as_bytes();
    let name = name.as_bytes();
    match run.vfs.lookup(parent, name) {
        Ok(a) if a.kind == FileKind::Symlink && run.vfs.readlink(a.ino)? == target => {
            run.n.symlinks_skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        Ok(a) if a.kind == FileKind::Dir => {
            bail!("exists in the filesystem as a directory");
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
async fn copy_file(run: &Run, job: &FileJob) -> Result<()> {
    let vfs = &run.vfs;
    let existing = match vfs.lookup(job.parent, &job.name) {
        Ok(a) => Some(a),
        Err(e) if is_errno(&e, libc::ENOENT) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(a) = &existing {
        if a.kind != FileKind::File {
            bail!("exists in the filesystem and is not a regular file");
        }
        if a.size == job.meta.len() && a.mtime == mtime_ns(&job.meta) {
            run.n.skipped.fetch_add(1, Ordering::Relaxed);
            run.bar.inc(job.meta.len());
            return Ok(());
        }
    }
    let mut src = tokio::fs::File::open(&job.src)
        .await
        .context("cannot open")?;
    // Attributes of the content actually read (the walk's may be stale).
    let meta = src.metadata().await.context("cannot stat")?;
    if meta.len() != job.meta.len() {
        let total = run.bar.length().unwrap_or(0) + meta.len();
        run.bar.set_length(total.saturating_sub(job.meta.len()));
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
    released.context("cannot commit the data")?;
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
) -> Result<()> {
    let vfs = &run.vfs;
    if truncate {
        vfs.setattr(
            Ctx::root(),
            ino,
            None,
            None,
            None,
            Some(0),
            TimeSet::Omit,
            TimeSet::Omit,
        )
        .await
        .context("cannot truncate the half-written copy")?;
    }
    let mut buf = vec![0u8; PIECE];
    let mut off = 0u64;
    loop {
        let mut len = 0;
        while len < PIECE {
            let n = src.read(&mut buf[len..]).await.context("cannot read")?;
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
                .context("cannot write into the filesystem")? as usize;
            if n == 0 {
                bail!(
                    "the filesystem accepted no bytes at offset {}",
                    off + done as u64
                );
            }
            done += n;
        }
        off += len as u64;
        run.n.bytes_read.fetch_add(len as u64, Ordering::Relaxed);
        run.bar.inc(len as u64);
        if len < PIECE {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_src_splits_at_the_last_colon_before_an_absolute_path() {
        let d = std::env::temp_dir();
        let arg = format!("{}:/imp/a:b", d.display());
        let p = plan(&[], &[], &[arg], "/").unwrap();
        assert_eq!(p[0].dir, d);
        assert_eq!(p[0].dest, "/imp/a:b");
        assert!(plan(&[], &[], &["nodest".into()], "/").is_err());
        assert!(plan(&[], &[], &[format!("{}:/x/../y", d.display())], "/").is_err());
        assert!(plan(&[], &[], &[], "/").is_err());
    }

    #[test]
    fn local_and_nas_go_under_dest_by_basename() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("photos");
        std::fs::create_dir(&a).unwrap();
        let p = plan(
            std::slice::from_ref(&a),
            std::slice::from_ref(&a),
            &[],
            "/imported/",
        )
        .unwrap();
        assert_eq!(p[0].dest, "/imported/local/photos");
        assert_eq!(p[1].dest, "/imported/nas/photos");
        let p = plan(&[a], &[], &[], "/").unwrap();
        assert_eq!(p[0].dest, "/local/photos");
    }
}
