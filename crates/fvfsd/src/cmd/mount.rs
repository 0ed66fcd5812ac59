//! `fvfsd mount`: mounts a filesystem read-write. In the foreground it serves until
//! SIGINT/SIGTERM or an external `umount`/`fusermount3 -u`; otherwise it starts itself
//! in the foreground as a detached child, logging to a file, and returns once the mount
//! is live (or prints the child's error).
//!
//! Order at stop: the kernel session ends (unmount) → buffered writes are committed
//! (FUSE destroy, then a final flush retried for a bounded time; what still cannot be
//! committed goes to the writeback spool, replayed at the next start before anything is
//! served) → workers stop (bounded) → the session row is removed → the lock drops.
//! [`Running`] is that engine life cycle, shared with `serve`.

use crate::engine::{Engine, EngineOpts, MountLock};
use anyhow::{bail, Context, Result};
use fvfs_vfs::worker::Workers;
use fvfs_vfs::{GcWorker, SessionWorker, Vfs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct MountArgs {
    pub meta_url: String,
    pub mountpoint: PathBuf,
    pub cache_dir: Option<PathBuf>,
    pub cache_size: u64,
    pub threads: usize,
    pub allow_non_empty: bool,
    /// Replication and eviction policy (from the config file).
    pub policy: fvfs_vfs::TierPolicy,
    /// The config file, handed to the background process.
    pub config: Option<PathBuf>,
    /// `nosuid`/`nodev` unless the config says `mount_suid`/`mount_dev`.
    pub flags: fvfs_fuse::MountFlags,
}

/// True if `path` is a mount point now (from /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    fvfs_fuse::is_mounted(path)
}

/// fvfs-fuse's mountpoint checks (an existing directory, not mounted, empty unless
/// allowed) and /dev/fuse; returns the canonical mountpoint.
pub fn check_mountpoint(mp: &Path, allow_non_empty: bool) -> Result<PathBuf> {
    let mp = fvfs_fuse::check_mountpoint(mp, allow_non_empty).map_err(|e| match e {
        fvfs_fuse::MountpointError::NotEmpty(_) => {
            anyhow::anyhow!("{e} (pass --allow-non-empty to do it anyway)")
        }
        e => e.into(),
    })?;
    fvfs_fuse::check_dev_fuse()?;
    Ok(mp)
}

/// The engine as a serving process runs it: the runtime, the metadata and block store,
/// the background workers and this process's session row.
pub struct Running {
    pub engine: Engine,
    pub vfs: Arc<Vfs>,
    pub workers: Arc<Workers>,
    session_id: u64,
    spool: fvfs_vfs::Spool,
    /// Last: dropped after everything that may still use it.
    pub rt: tokio::runtime::Runtime,
}

impl Running {
    /// Opens the engine of `args.meta_url`, ends the sessions of dead processes of this
    /// host, registers this one (as `label`) and starts the workers. The caller holds the
    /// mount lock.
    pub fn start(args: &MountArgs, label: &str) -> Result<Running> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .thread_name("fvfs-rt")
            .enable_all()
            .build()?;
        let engine = rt.block_on(Engine::open(EngineOpts {
            meta_url: args.meta_url.clone(),
            cache_dir: args.cache_dir.clone(),
            cache_size: args.cache_size,
            check_tier: true,
            policy: args.policy.clone(),
        }))?;
        let vfs = engine.vfs()?;
        // Writes a previous run could not store, before anything else touches the files.
        let spool =
            fvfs_vfs::Spool::open(&crate::engine::spool_dir(&args.meta_url, vfs.settings()))?;
        let replayed = rt.block_on(vfs.replay_spool(&spool))?;
        if replayed > 0 {
            tracing::info!(entries = replayed, dir = %spool.dir().display(), "committed the writeback spool");
        }
        // With the mount lock held no other process uploads: hidden upload temporaries
        // are what a killed daemon left behind.
        match vfs.sweep_uploads() {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed unfinished uploads of a previous run"),
            Err(e) => tracing::warn!(error = %e, "cannot sweep unfinished uploads"),
        }
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Sessions of processes on this host that died without a clean stop (kill -9,
        // power loss) are over: with the mount lock held, no other process serves this
        // filesystem.
        for old in engine.meta.sessions()? {
            let alive = std::path::Path::new(&format!("/proc/{}", old.pid)).exists();
            if old.host == host && !alive {
                engine.meta.end_session(old.id)?;
            }
        }
        let session_id =
            engine
                .meta
                .register_session(&host, std::process::id(), label, fvfs_vfs::now_ns())?;
        let workers = Arc::new(Workers::new());
        {
            let _guard = rt.enter();
            workers.spawn(GcWorker::new(&vfs));
            workers.spawn(fvfs_vfs::TierEventsWorker::new(&vfs));
            workers.spawn(fvfs_vfs::ReplicatorWorker::new(&vfs));
            workers.spawn(fvfs_vfs::EvictorWorker::new(&vfs));
            workers.spawn(fvfs_vfs::ScrubWorker::new(&vfs));
            workers.spawn(SessionWorker::new(engine.meta.clone(), session_id));
            workers.spawn(fvfs_vfs::WritebackWorker::new(&vfs));
            workers.spawn(fvfs_vfs::MetaBackupWorker::new(
                engine.meta.clone(),
                engine.store.tier().clone(),
                crate::cmd::restore::scratch_dir(&args.meta_url),
                fvfs_vfs::META_BACKUP_INTERVAL,
                fvfs_vfs::META_BACKUP_KEEP,
            ));
        }
        Ok(Running {
            rt,
            engine,
            vfs,
            workers,
            session_id,
            spool,
        })
    }

    /// Commits what is buffered, stops the workers (bounded) and removes the session row.
    /// Call once nothing writes any more (unmounted, listeners drained).
    pub fn stop(self) {
        self.rt.block_on(async {
            let spool = Some(&self.spool);
            if let Err(e) = self.vfs.stop_writeback(spool, fvfs_vfs::STOP_RETRY).await {
                tracing::error!(error = %e, "final flush failed");
            }
            self.workers.shutdown(Duration::from_secs(10)).await;
        });
        if let Err(e) = self.engine.meta.end_session(self.session_id) {
            tracing::warn!(error = %e, "could not remove the session row");
        }
    }
}

/// Serves the mount in this process until it is unmounted.
pub fn foreground(args: MountArgs) -> Result<()> {
    let mp = check_mountpoint(&args.mountpoint, args.allow_non_empty)?;
    let _lock = MountLock::acquire(&args.meta_url, &mp)?;
    let run = Running::start(&args, &mp.display().to_string())?;
    let fs = Arc::new(fvfs_vfs::EngineOps::new(
        run.vfs.clone(),
        run.rt.handle().clone(),
    ));
    let mut session = fvfs_fuse::session(fs, &mp, &engine_mount(args.threads, args.flags))
        .with_context(|| format!("cannot mount at {}", mp.display()))?;
    fvfs_fuse::unmount_on_signals(run.rt.handle(), &mut session);
    tracing::info!(mountpoint = %mp.display(), storage = %run.engine.store.tier().display(), "mounted");
    eprintln!(
        "fvfs mounted at {} (pid {})",
        mp.display(),
        std::process::id()
    );
    let served = session.run();
    run.stop();
    tracing::info!("unmounted");
    served.context("the FUSE session ended with an error")
}

/// How the engine is mounted (`fvfs` in the mount table).
pub fn engine_mount(threads: usize, flags: fvfs_fuse::MountFlags) -> fvfs_fuse::MountConfig {
    fvfs_fuse::MountConfig {
        fsname: "fvfs".into(),
        threads,
        flags,
    }
}

/// Starts `fvfsd mount --foreground` detached and waits until the mount is live.
pub fn background(args: MountArgs, log: &Path) -> Result<()> {
    let mp = check_mountpoint(&args.mountpoint, args.allow_non_empty)?;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log file {}", log.display()))?;
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("mount")
        .arg("--foreground")
        .arg("--meta")
        .arg(&args.meta_url)
        .arg("--cache-size")
        .arg(args.cache_size.to_string())
        .arg("--threads")
        .arg(args.threads.to_string());
    if let Some(d) = &args.cache_dir {
        cmd.arg("--cache-dir").arg(d);
    }
    if args.allow_non_empty {
        cmd.arg("--allow-non-empty");
    }
    if let Some(c) = &args.config {
        cmd.env("FVFS_CONFIG", c);
    }
    cmd.arg(&mp)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    // SAFETY: setsid() is async-signal-safe; it detaches the child from our terminal.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the mount process")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if is_mounted(&mp) {
            println!(
                "fvfs mounted at {} (pid {}, log {})",
                mp.display(),
                child.id(),
                log.display()
            );
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("the mount process exited ({status}):\n{}", tail.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    bail!(
        "the mount did not come up within 60 s; see {}",
        log.display()
    )
}
