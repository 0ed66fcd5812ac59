//! `fvfsc mount`: resolves the daemon, then hands the client to
//! `fvfs_client::mount::run`, which blocks serving FUSE on its own runtime. Without
//! `--foreground` the mount is served by a detached copy of this program (`--foreground`,
//! new session, output to `<config dir>/mount.log`) and this process returns once the
//! kernel lists the mount, or fails with the child's last log line.
//!
//! Invariants: the child gets the resolved URL and token through the environment
//! (`FVFSD_URL`, `FVFS_TOKEN`), never on its command line; the wait for the mount is
//! bounded (30 s). `fvfsc pending` reads the mount's spool of uploads not made yet.

use crate::{format, Cli, Cmd};
use anyhow::{bail, Context};
use fvfs_client::config;
use fvfs_client::mount::{self, MountOptions};
use fvfs_client::Client;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long the background start waits for the mount to appear.
const START_WAIT: Duration = Duration::from_secs(30);

/// Resolves the endpoint (async part); `serve` then runs the mount off the runtime.
pub async fn prepare(cli: &Cli) -> anyhow::Result<Client> {
    if let Cmd::Mount { mountpoint, .. } = &cli.cmd {
        mount::check_mountpoint(mountpoint)?;
    }
    crate::connect(cli).await
}

/// Serves the mount in this process (blocking) or starts it in the background.
pub fn serve(cli: &Cli, client: Client) -> anyhow::Result<()> {
    let Cmd::Mount {
        mountpoint,
        cache_dir,
        cache_size,
        foreground,
    } = &cli.cmd
    else {
        bail!("not a mount command");
    };
    if *foreground {
        mount::run(
            client,
            MountOptions {
                mountpoint: mountpoint.clone(),
                cache_dir: cache_dir.clone(),
                cache_size: *cache_size,
            },
        )?;
        return Ok(());
    }
    background(&client, mountpoint)
}

/// `fvfsc pending`: the spool's entries, oldest first.
pub fn pending(json: bool, cache_dir: Option<&Path>) -> anyhow::Result<()> {
    let list = mount::pending_uploads(cache_dir)?;
    if json {
        return crate::print_json(&list);
    }
    if list.is_empty() {
        println!("no pending uploads");
        return Ok(());
    }
    for p in &list {
        let state = if p.retrying {
            "retrying (mounted)"
        } else {
            "next mount uploads it"
        };
        println!(
            "{:>9}  {}  {}  {}  {}",
            format::human_bytes(p.len),
            format::date_ns(p.spooled_ns),
            p.path,
            state,
            p.data.display()
        );
    }
    Ok(())
}

/// The last non-empty line of `t`, without our `fvfsc: ` prefix.
fn last_line(t: &str) -> Option<String> {
    t.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("fvfsc: ").to_string())
}

fn background(client: &Client, mountpoint: &Path) -> anyhow::Result<()> {
    let mp: PathBuf = mount::check_mountpoint(mountpoint)?;
    let dir = config::config_dir()?;
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let log_path = dir.join("mount.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| log_path.display().to_string())?;
    let log_len = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe().context("cannot find this program to start the mount")?;
    let ep = client.endpoint();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .arg("--foreground")
        .env("FVFSD_URL", &ep.url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.try_clone().context("mount log")?);
    match &ep.token {
        Some(t) => cmd.env("FVFS_TOKEN", t),
        None => cmd.env_remove("FVFS_TOKEN"),
    };
    // SAFETY: setsid is async-signal-safe; the child leaves our session and terminal so
    // it outlives the shell that started it.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the background mount")?;
    let deadline = Instant::now() + START_WAIT;
    loop {
        if mount::is_mounted(&mp) {
            println!(
                "mounted {} at {} (log: {})",
                ep.url,
                mp.display(),
                log_path.display()
            );
            return Ok(());
        }
        if let Some(status) = child.try_wait().context("background mount")? {
            let why = std::fs::read_to_string(&log_path)
                .ok()
                .and_then(|t| t.get(log_len as usize..).and_then(last_line))
                .unwrap_or_else(|| format!("exited with {status}"));
            bail!("mount failed: {why}");
        }
        if Instant::now() >= deadline {
            bail!(
                "the mount did not appear within {} s; see {} (the mount process {} keeps trying)",
                START_WAIT.as_secs(),
                log_path.display(),
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
