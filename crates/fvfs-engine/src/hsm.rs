//! The HSM face as the daemon runs it: its `[hsm]` settings, starting it beside a running
//! engine (the same `Tiering`, so its payloads share the workers, the tiers and the GC of
//! the mount's files), and what a command-line tool asks of it through the metadata (the
//! durable request queue, catalog reads).
//!
//! Invariant: the listener is up and every stub watched before `start` returns; the
//! request worker starts after it, so no release runs without a watch.

use crate::error::Result;
use crate::open::open_meta;
use crate::Running;
use fvfs_hsm::keeper::KeeperSpec;
use fvfs_hsm::{
    BulkPolicy, Hsm, HsmConfig, JanitorPolicy, JanitorWorker, Listener, RequestsWorker,
};
use fvfs_meta::HsmRequest;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use fvfs_hsm::{Marker, OPS};
/// The catalog's types, for callers of [`list`], [`dirs`] and [`status`].
pub use fvfs_meta::{HsmDir, HsmFile, HsmState};
/// A request and its outcome.
pub type Request = HsmRequest;

/// `[hsm]` in the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmSection {
    /// Directories to manage (also `fvfsd hsm add DIR`).
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
    /// Recalls running at once across files (default 4).
    pub recall_concurrency: Option<usize>,
    /// Commands that get the whole file at open (default: cp, mv, install, tar, bsdtar,
    /// rsync, cpio, restic, borg, rclone).
    pub whole_file_commands: Option<Vec<String>>,
    /// Bytes recalled per second at most (0 or absent: no limit).
    pub recall_bytes_per_sec: Option<crate::config::ByteSize>,
    /// Backup tools whose opens of stubs get `bulk_policy` (default: restic, borg,
    /// duplicity, rdiff-backup, bacula-fd).
    pub bulk_commands: Option<Vec<String>>,
    /// "queue" (default: whole-file recall, one at a time) or "refuse" (EAGAIN).
    pub bulk_policy: Option<String>,
    /// Seconds an access to a stub waits for a daemon that died to be back before it
    /// fails with EIO (default 30); the keeper process holds the stubs meanwhile.
    pub keeper_grace_secs: Option<u64>,
    /// `[hsm.janitor]`: frees space by policy; off when absent.
    pub janitor: Option<JanitorSection>,
}

/// `[hsm.janitor]`; every key has the default of `fvfs_hsm::JanitorPolicy`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JanitorSection {
    pub high_pct: Option<f64>,
    pub low_pct: Option<f64>,
    pub min_atime_age_secs: Option<u64>,
    pub min_mtime_age_secs: Option<u64>,
    pub min_size: Option<crate::config::ByteSize>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub extensions: Vec<String>,
    pub bytes_per_sec: Option<crate::config::ByteSize>,
    pub interval_secs: Option<u64>,
}

impl JanitorSection {
    /// The policy, or why it is unusable.
    pub fn policy(&self) -> std::result::Result<JanitorPolicy, String> {
        let d = JanitorPolicy::default();
        let p = JanitorPolicy {
            high_pct: self.high_pct.unwrap_or(d.high_pct),
            low_pct: self.low_pct.unwrap_or(d.low_pct),
            min_atime_age: self
                .min_atime_age_secs
                .map(Duration::from_secs)
                .unwrap_or(d.min_atime_age),
            min_mtime_age: self
                .min_mtime_age_secs
                .map(Duration::from_secs)
                .unwrap_or(d.min_mtime_age),
            min_size: self.min_size.map(|b| b.0).unwrap_or(d.min_size),
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            extensions: self.extensions.clone(),
            bytes_per_sec: self.bytes_per_sec.map(|b| b.0).unwrap_or(d.bytes_per_sec),
            interval: self
                .interval_secs
                .map(Duration::from_secs)
                .unwrap_or(d.interval),
        };
        if !(0.0..=100.0).contains(&p.low_pct)
            || !(0.0..=100.0).contains(&p.high_pct)
            || p.low_pct > p.high_pct
        {
            return Err(format!(
                "[hsm.janitor] needs 0 <= low_pct <= high_pct <= 100 (got low {} high {})",
                p.low_pct, p.high_pct
            ));
        }
        Ok(p)
    }
}

impl HsmSection {
    fn config(&self) -> Result<HsmConfig> {
        let d = HsmConfig::default();
        let bulk_policy = match self.bulk_policy.as_deref() {
            None | Some("queue") => BulkPolicy::Queue,
            Some("refuse") => BulkPolicy::Refuse,
            Some(other) => {
                return Err(crate::EngineError::Config(format!(
                    "[hsm] bulk_policy = {other:?}: use \"queue\" or \"refuse\""
                )))
            }
        };
        Ok(HsmConfig {
            recall_concurrency: self.recall_concurrency.unwrap_or(d.recall_concurrency),
            whole_file_commands: self
                .whole_file_commands
                .clone()
                .unwrap_or(d.whole_file_commands),
            recall_bytes_per_sec: self.recall_bytes_per_sec.map(|b| b.0).unwrap_or(0),
            bulk_commands: self.bulk_commands.clone().unwrap_or(d.bulk_commands),
            bulk_policy,
        })
    }
}

/// The HSM face of a running daemon.
pub struct HsmRunning {
    pub hsm: Arc<Hsm>,
    listener: Listener,
}

impl HsmRunning {
    /// Puts the configured directories under management, starts the listener (after
    /// finishing interrupted steps and watching every stub) and the request worker.
    /// `keeper` is the command that runs `fvfs_hsm::keeper::run` (the daemon's own
    /// binary); without it, the death of this process lets stubs read as holes.
    pub fn start(
        run: &Running,
        section: &HsmSection,
        keeper: Option<Vec<std::ffi::OsString>>,
    ) -> Result<HsmRunning> {
        let hsm = Hsm::new(
            run.engine.meta.clone(),
            run.vfs.tiering().clone(),
            section.config()?,
        );
        for d in &section.dirs {
            hsm.add_dir(d)?;
        }
        let janitor = match &section.janitor {
            Some(j) => Some(j.policy().map_err(crate::EngineError::Config)?),
            None => None,
        };
        let keeper = keeper.map(|command| KeeperSpec {
            command,
            fs: run.vfs.settings().uuid,
            grace: Duration::from_secs(section.keeper_grace_secs.unwrap_or(30)),
        });
        let listener = Listener::start(hsm.clone(), run.rt.handle().clone(), keeper.as_ref())?;
        {
            let _guard = run.rt.enter();
            run.workers.spawn(RequestsWorker::new(&hsm));
            let fs = run.vfs.settings().uuid;
            if let Err(e) = fvfs_hsm::doorbell::listen(&fs, hsm.requests_wake()) {
                tracing::warn!(error = %e, "no HSM request doorbell (another daemon of this filesystem on this host?); requests are taken every second");
            }
            if let Some(policy) = janitor {
                run.workers.spawn(JanitorWorker::new(&hsm, policy));
            }
        }
        tracing::info!(dirs = hsm.dirs()?.len(), mode = ?listener.mode(), "HSM listener running");
        Ok(HsmRunning { hsm, listener })
    }

    /// Stops the listener. With stubs left, the keeper fails their accesses (EIO) until a
    /// daemon runs again; with none, it exits.
    pub fn stop(self) {
        self.listener.stop();
    }
}

/// Runs the HSM keeper of filesystem `fs` (`fvfs_hsm::keeper::run`) until its daemon
/// stops cleanly.
pub fn keep(fs: &uuid::Uuid, grace: Duration) -> Result<()> {
    fvfs_hsm::keeper::run(fs, grace)
        .map_err(|e| fvfs_hsm::HsmError::Listener(format!("keeper: {e}")).into())
}

/// Puts `dir` under management in the filesystem at `meta_url`.
pub fn add_dir(meta_url: &str, dir: &Path) -> Result<u64> {
    let meta = open_meta(meta_url)?;
    Ok(fvfs_hsm::catalog::add_dir(meta.as_ref(), dir)?)
}

/// The managed directories.
pub fn dirs(meta_url: &str) -> Result<Vec<HsmDir>> {
    Ok(open_meta(meta_url)?.hsm_dirs()?)
}

/// The marker and catalog row of the file at `path`.
pub fn status(meta_url: &str, path: &Path) -> Result<Option<(Marker, HsmFile)>> {
    let meta = open_meta(meta_url)?;
    Ok(fvfs_hsm::catalog::status_of(meta.as_ref(), path)?)
}

/// Every catalog row with the path its file is at now (None: gone).
pub fn list(meta_url: &str) -> Result<Vec<(HsmFile, Option<PathBuf>)>> {
    let meta = open_meta(meta_url)?;
    let dirs = meta.hsm_dirs()?;
    Ok(meta
        .hsm_list(None)?
        .into_iter()
        .map(|r| {
            let p = fvfs_hsm::catalog::current_path(&dirs, &r);
            (r, p)
        })
        .collect())
}

/// Recreates every archived file under `dest` from the payloads alone (beside a running
/// daemon or without one); `progress(path)` after each file.
pub async fn export(
    meta_url: &str,
    dest: &Path,
    progress: &(dyn Fn(&Path) + Sync),
) -> Result<fvfs_hsm::Exported> {
    let engine = crate::Engine::open_direct(meta_url, false).await?;
    let vfs = engine.vfs_beside_mount()?;
    let hsm = Hsm::new(
        engine.meta.clone(),
        vfs.tiering().clone(),
        HsmConfig::default(),
    );
    Ok(hsm.export(dest, progress).await?)
}

/// Queues `op` on each path for the daemon and waits (up to `wait`) for every outcome;
/// `progress` sees each one as it arrives. Requests left pending stay queued and are
/// returned as such (`done` None).
pub fn request(
    meta_url: &str,
    op: &str,
    paths: &[PathBuf],
    wait: Duration,
    progress: &dyn Fn(&HsmRequest),
) -> Result<Vec<HsmRequest>> {
    let meta = open_meta(meta_url)?;
    let mut ids = Vec::new();
    for p in paths {
        // Absolute, so the daemon finds it whatever its working directory.
        let abs =
            std::path::absolute(p).map_err(|e| fvfs_hsm::HsmError::io("resolve", p.clone(), e))?;
        ids.push(meta.hsm_request(op, abs.as_os_str().as_encoded_bytes(), fvfs_vfs::now_ns())?);
    }
    // A daemon on this host takes them at once; one elsewhere within a second.
    fvfs_hsm::doorbell::ring(&meta.settings()?.uuid);
    let deadline = Instant::now() + wait;
    let mut out: Vec<Option<HsmRequest>> = vec![None; ids.len()];
    loop {
        for (i, id) in ids.iter().enumerate() {
            if out[i].is_none() {
                if let Some(r) = meta.hsm_request_get(*id)?.filter(|r| r.done.is_some()) {
                    progress(&r);
                    out[i] = Some(r);
                }
            }
        }
        if out.iter().all(Option::is_some) || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let mut res = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        match out[i].take() {
            Some(r) => res.push(r),
            None => res.push(meta.hsm_request_get(*id)?.unwrap_or(HsmRequest {
                id: *id,
                op: op.to_string(),
                path: paths[i].as_os_str().as_encoded_bytes().to_vec(),
                due: 0,
                done: None,
                ok: false,
                message: String::new(),
            })),
        }
    }
    Ok(res)
}
