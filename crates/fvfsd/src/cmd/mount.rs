//! `fvfsd mount`: mounts a filesystem read-write. In the foreground it serves until
//! SIGINT/SIGTERM or an external `umount`/`fusermount3 -u`; otherwise it starts itself
//! in the foreground as a detached child, logging to a file, and returns once the mount
//! is live (or prints the child's error).
//!
//! Order at stop: the kernel session ends (unmount) → buffered writes are committed
//! (FUSE destroy, then a final flush retried for a bounded time; what still cannot be
//! committed goes to the writeback spool, replayed at the next start before anything is
//! served) → workers stop (bounded) → the session row is removed → the lock drops.
//! `fvfs_engine::Running` is that engine life cycle, shared with `serve`.

use anyhow::{bail, Context, Result};
use fvfs_engine::{EngineOpts, MountLock, Running};
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

impl MountArgs {
    /// How the engine of this mount is opened.
    pub fn engine_opts(&self) -> EngineOpts {
        EngineOpts {
            meta_url: self.meta_url.clone(),
            cache_dir: self.cache_dir.clone(),
            cache_size: self.cache_size,
            check_tier: true,
            policy: self.policy.clone(),
        }
    }
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

/// Serves the mount in this process until it is unmounted.
pub fn foreground(args: MountArgs) -> Result<()> {
    let mp = check_mountpoint(&args.mountpoint, args.allow_non_empty)?;
    let _lock = MountLock::acquire_mount(&args.meta_url, &mp)?;
    let run = Running::start(args.engine_opts(), &mp.display().to_string())?;
    let fs = Arc::new(fvfs_vfs::EngineOps::new(
        run.vfs.clone(),
        run.rt.handle().clone(),
    ));
    let mut session = fvfs_fuse::session(fs, &mp, &engine_mount(args.threads, args.flags))
        .with_context(|| format!("cannot mount at {}", mp.display()))?;
    fvfs_fuse::unmount_on_signals(run.rt.handle(), &mut session);
    tracing::info!(mountpoint = %mp.display(), storage = %run.durable_display(), "mounted");
    say!(
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
        read_only: false,
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
