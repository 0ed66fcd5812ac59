//! `fvfsd hsm …`: the HSM face (native directories tiered in place) from the command
//! line. `add`, `status` and `ls` use the metadata directly; the operations on files are
//! requests queued in the metadata and carried out by the daemon (`fvfsd hsm run`, or
//! `fvfsd serve` with `[hsm] dirs`), which this command waits for.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use fvfs_engine::config::Config;
use fvfs_engine::hsm::{self, HsmRunning};
use fvfs_engine::{EngineOpts, MountLock, Running};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand)]
pub enum HsmCmd {
    /// Put a native directory under management.
    Add {
        dir: PathBuf,
    },
    /// Run the listener and the request worker (until SIGINT/SIGTERM).
    Run,
    /// Store files' payloads in the block store (they stay whole).
    Archive(Files),
    /// Turn archived files into stubs (payload verified on the durable tier first).
    Release(Files),
    /// Bring stubs' content back whole.
    Recall(Files),
    /// Never release these files (stubs are recalled first).
    Pin(Files),
    Unpin(Files),
    /// The state of each file.
    Status {
        paths: Vec<PathBuf>,
    },
    /// Every file in the catalog with its state and current path.
    Ls,
    /// Recreate every archived file under DEST from its payload (if the disk is lost).
    Export {
        dest: PathBuf,
    },
    /// The keeper process a daemon starts beside itself (`fvfs_hsm::keeper`): it holds
    /// the listener's fanotify group so the daemon's death leaves no stub reading as
    /// holes. Not for direct use.
    #[command(hide = true)]
    Keep {
        #[arg(long)]
        fs: uuid::Uuid,
        #[arg(long)]
        grace_secs: u64,
    },
}

/// The command a daemon runs its keeper with: this binary's `hsm keep`.
pub fn keeper_command() -> Option<Vec<std::ffi::OsString>> {
    match std::env::current_exe() {
        Ok(exe) => Some(vec![exe.into(), "hsm".into(), "keep".into()]),
        Err(e) => {
            tracing::warn!(error = %e, "cannot locate this binary to start the HSM keeper");
            None
        }
    }
}

#[derive(Args)]
pub struct Files {
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Seconds to wait for the daemon to carry the requests out (they stay queued after).
    #[arg(long, default_value_t = 600)]
    wait: u64,
}

pub fn run(cfg: &Config, meta_url: &str, cmd: HsmCmd) -> Result<i32> {
    let (op, files) = match cmd {
        HsmCmd::Add { dir } => {
            let id = hsm::add_dir(meta_url, &dir)?;
            println!("managed {} (id {id})", dir.display());
            return Ok(0);
        }
        HsmCmd::Run => return daemon(cfg, meta_url),
        HsmCmd::Keep { fs, grace_secs } => {
            fvfs_engine::hsm::keep(&fs, Duration::from_secs(grace_secs))?;
            return Ok(0);
        }
        HsmCmd::Status { paths } => return status(meta_url, &paths),
        HsmCmd::Ls => return list(meta_url),
        HsmCmd::Export { dest } => return export(meta_url, &dest),
        HsmCmd::Archive(f) => ("archive", f),
        HsmCmd::Release(f) => ("release", f),
        HsmCmd::Recall(f) => ("recall", f),
        HsmCmd::Pin(f) => ("pin", f),
        HsmCmd::Unpin(f) => ("unpin", f),
    };
    let show = |r: &hsm::Request| {
        let path = String::from_utf8_lossy(&r.path);
        if r.ok {
            println!("{path}: {}", r.message);
        } else {
            eprintln!("{path}: error: {}", r.message);
        }
    };
    let done = hsm::request(
        meta_url,
        op,
        &files.paths,
        Duration::from_secs(files.wait),
        &show,
    )?;
    let pending = done.iter().filter(|r| r.done.is_none()).count();
    if pending > 0 {
        eprintln!(
            "{pending} request(s) still queued after {} s: is `fvfsd hsm run` (or `fvfsd serve` with [hsm] dirs) running?",
            files.wait
        );
        return Ok(2);
    }
    Ok(if done.iter().all(|r| r.ok) { 0 } else { 1 })
}

fn daemon(cfg: &Config, meta_url: &str) -> Result<i32> {
    if cfg.hsm.dirs.is_empty() && hsm::dirs(meta_url)?.is_empty() {
        bail!("no directory is managed: `fvfsd hsm add DIR` or [hsm] dirs in the config");
    }
    let holder = PathBuf::from("(hsm run)");
    let _lock = MountLock::acquire(meta_url, &holder)?;
    let opts = EngineOpts {
        meta_url: meta_url.to_string(),
        cache_dir: cfg.daemon.cache_dir.clone(),
        // No disk cache unless configured: a recalled block is written back into the
        // native file, which is the cache.
        cache_size: cfg.daemon.cache_size.map(|b| b.0).unwrap_or(0),
        check_tier: true,
        // The archive's namespace mirrors the native directory, which has its own way
        // back for deleted files: no trash there.
        policy: fvfs_vfs::TierPolicy {
            trash_days: 0,
            ..cfg.policy()
        },
    };
    let run = Running::start(opts, "hsm")?;
    let result = HsmRunning::start(&run, &cfg.hsm, keeper_command()).map(|h| {
        say!("fvfs HSM running (pid {})", std::process::id());
        run.rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        });
        h.stop();
    });
    run.stop();
    result?;
    Ok(0)
}

fn export(meta_url: &str, dest: &std::path::Path) -> Result<i32> {
    let rt = tokio::runtime::Runtime::new()?;
    let show = |p: &std::path::Path| println!("{}", p.display());
    let done = rt.block_on(hsm::export(meta_url, dest, &show))?;
    for (p, why) in &done.failed {
        eprintln!("{}: error: {why}", p.display());
    }
    eprintln!("exported {} files, {} bytes", done.files, done.bytes);
    Ok(if done.failed.is_empty() { 0 } else { 1 })
}

fn status(meta_url: &str, paths: &[PathBuf]) -> Result<i32> {
    for p in paths {
        match hsm::status(meta_url, p)? {
            None => println!("{}: resident (unmanaged)", p.display()),
            Some((m, row)) => println!(
                "{}: {} id={} size={} blocks={}{}",
                p.display(),
                if m.released {
                    "released"
                } else {
                    row.state.name()
                },
                row.id,
                row.size,
                row.blocks.len(),
                if row.pinned { " pinned" } else { "" }
            ),
        }
    }
    Ok(0)
}

fn list(meta_url: &str) -> Result<i32> {
    for (row, path) in hsm::list(meta_url)? {
        let path = match path {
            Some(p) => p.display().to_string(),
            None => format!("(gone; was {})", String::from_utf8_lossy(&row.path)),
        };
        println!(
            "{:>6} {:<9} {:>12} {}{}",
            row.id,
            row.state.name(),
            row.size,
            path,
            if row.pinned { " [pinned]" } else { "" }
        );
    }
    Ok(0)
}
