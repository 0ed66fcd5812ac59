//! What other processes see of the mount's metadata shipping, and how they ask it to
//! flush: `fvfsd status` and `fvfsd flush` run beside a mount and cannot reach its
//! shipper in memory.
//!
//! Owns two files beside an SQLite database `<db>`:
//! - `<db>.ship.json`: the mount's [`MetaShipping`] status, rewritten (temporary file and
//!   rename) whenever it changes; meaningful only while a mount holds the mount lock;
//! - `<db>.ship.flush`: present while a flush is asked for; the mount's worker removes it
//!   and uploads everything at its next step (within a second).
//!
//! Invariants: a flush waits for `synced_at_ms` to pass the instant the flush began, so
//! it reports success only when every commit before it is on the durable tier; with no
//! mount running, the flush ships a new generation itself while holding the mount lock,
//! so a mount that starts meanwhile cannot ship beside it.

use crate::open::MountLock;
use crate::{EngineError, Result};
use fvfs_meta::MetaUrl;
use fvfs_types::api::MetaShipping;
use fvfs_vfs::{MetaShipper, ShipConfig, ShipHook};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The status and request files of an SQLite filesystem (None for other stores).
pub fn files(meta_url: &str) -> Option<(PathBuf, PathBuf)> {
    match MetaUrl::parse(meta_url) {
        Ok(MetaUrl::Sqlite(db)) => Some((
            PathBuf::from(format!("{}.ship.json", db.display())),
            PathBuf::from(format!("{}.ship.flush", db.display())),
        )),
        _ => None,
    }
}

/// The hook a mount's shipping worker runs: it takes flush requests and publishes the
/// status for other processes.
pub fn hook(meta_url: &str) -> Option<ShipHook> {
    let (status, request) = files(meta_url)?;
    let mut last: Option<MetaShipping> = None;
    Some(Box::new(move |shipper: &MetaShipper| {
        if std::fs::remove_file(&request).is_ok() {
            shipper.request_flush();
        }
        let now = shipper.status();
        if last.as_ref() != Some(&now) {
            match write_status(&status, &now) {
                Ok(()) => last = Some(now),
                Err(e) => {
                    tracing::warn!(error = %e, path = %status.display(), "cannot publish the metadata shipping status")
                }
            }
        }
    }))
}

/// Removes a status file left by an earlier mount that shipped (this one does not).
pub(crate) fn forget_status(meta_url: &str) {
    if let Some((status, _)) = files(meta_url) {
        let _ = std::fs::remove_file(status);
    }
}

fn write_status(path: &Path, st: &MetaShipping) -> std::io::Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let text = serde_json::to_vec(st).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// The mount lock when no mount holds it (None: a mount runs).
fn lock_if_no_mount(meta_url: &str) -> Result<Option<MountLock>> {
    match MountLock::acquire(meta_url, Path::new("fvfsd flush (metadata shipping)")) {
        Ok(lock) => Ok(lock),
        Err(EngineError::Locked(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the process named in the mount lock file is alive (read only: taking the lock
/// to test it would refuse a mount starting at that instant).
fn mount_alive(meta_url: &str) -> bool {
    let Ok(MetaUrl::Sqlite(db)) = MetaUrl::parse(meta_url) else {
        return false;
    };
    let Ok(text) = std::fs::read_to_string(format!("{}.mount.lock", db.display())) else {
        return false;
    };
    text.strip_prefix("pid ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// The running mount's shipping status (None: no mount runs, or it ships nothing).
pub fn status_of_mount(meta_url: &str) -> Option<MetaShipping> {
    let (status, _) = files(meta_url)?;
    if !mount_alive(meta_url) {
        return None;
    }
    serde_json::from_slice(&std::fs::read(&status).ok()?).ok()
}

/// The outcome of a metadata flush.
#[derive(Debug)]
pub enum MetaFlush {
    /// Every commit before the flush is on the durable tier (`by`: the running mount or
    /// this process, with a new generation).
    Done { by_mount: bool },
    /// Not within the time allowed: what the shipper last said.
    Late(Option<MetaShipping>),
    /// The store ships no log (not SQLite).
    Unsupported,
    /// Shipping is turned off (`[backup] enabled = false`).
    Off,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// Puts every metadata commit made so far on the durable tier, through the running mount
/// when there is one (a request file it answers within a second), else here.
pub async fn flush(
    engine: &crate::Engine,
    meta_url: &str,
    cfg: ShipConfig,
    timeout: Duration,
) -> Result<MetaFlush> {
    let Some((status, request)) = files(meta_url) else {
        return Ok(MetaFlush::Unsupported);
    };
    if !cfg.enabled {
        return Ok(MetaFlush::Off);
    }
    let began = now_ms();
    if let Some(_lock) = lock_if_no_mount(meta_url)? {
        let shipper = MetaShipper::new(
            engine.meta.clone(),
            engine.store.tier().clone(),
            crate::paths::scratch_dir(meta_url),
            cfg,
        );
        let left = shipper.flush(timeout).await?;
        return Ok(match shipper.status() {
            st if st.generation.is_none() && st.bases == 0 && left == 0 => MetaFlush::Unsupported,
            _ if left == 0 => MetaFlush::Done { by_mount: false },
            st => MetaFlush::Late(Some(st)),
        });
    }
    std::fs::write(&request, b"").map_err(EngineError::io(format!(
        "cannot ask the mount to flush ({})",
        request.display()
    )))?;
    let deadline = Instant::now() + timeout;
    let mut seen = None;
    loop {
        if let Ok(text) = std::fs::read(&status) {
            if let Ok(st) = serde_json::from_slice::<MetaShipping>(&text) {
                if st.synced_at_ms.is_some_and(|t| t >= began) {
                    return Ok(MetaFlush::Done { by_mount: true });
                }
                seen = Some(st);
            }
        }
        if Instant::now() >= deadline {
            return Ok(MetaFlush::Late(seen));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Attaches the mount's shipper to its vfs and builds the worker with the hook.
pub(crate) fn worker(
    meta_url: &str,
    vfs: &fvfs_vfs::Vfs,
    shipper: &Arc<MetaShipper>,
) -> fvfs_vfs::MetaShipWorker {
    vfs.attach_shipper(shipper.clone());
    fvfs_vfs::MetaShipWorker::new(shipper.clone(), hook(meta_url))
}
