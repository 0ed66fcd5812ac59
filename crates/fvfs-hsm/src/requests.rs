//! The request queue the daemon serves: `fvfsd hsm archive|release|recall|pin|unpin PATH`
//! (and, later, the janitor) add rows to `hsm_requests` in the metadata store; the
//! `hsm-requests` worker carries out those due and records each outcome, which the
//! requester waits for. The queue is durable: requests made while no daemon runs, or
//! pending when it was killed, are carried out when it starts. The worker looks at the
//! queue every second, and at once when a requester on its host rings (doorbell.rs).
//!
//! Invariant: a request is marked done only after its operation returned; one that
//! failed is done with its error (a retry is a new request).

use crate::error::{HsmError, Result};
use crate::marker;
use crate::{open_file, Hsm};
use fvfs_meta::{HsmRequest, HsmState};
use fvfs_vfs::worker::{Worker, WorkerState};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The operations a request may name.
pub const OPS: &[&str] = &["archive", "release", "recall", "pin", "unpin"];

/// Requests carried out per pass.
const BATCH: usize = 64;
/// Done requests are kept this long for their requester, then pruned.
const KEEP_DONE_NS: i64 = 24 * 3600 * 1_000_000_000;

impl Hsm {
    /// Carries out one operation on `path`; returns what to tell the requester.
    pub async fn execute(&self, op: &str, path: &Path) -> Result<String> {
        match op {
            "archive" => match self.archive(path).await? {
                crate::Archived::New { id, bytes } => {
                    Ok(format!("archived (id {id}, {bytes} bytes)"))
                }
                crate::Archived::Already { id } => Ok(format!("already archived (id {id})")),
            },
            "release" => self
                .release(path)
                .await
                .map(|id| format!("released (id {id})")),
            "recall" => self.recall_path(path).await.map(|r| {
                format!(
                    "recalled ({} bytes{})",
                    r.bytes,
                    if r.whole { ", whole" } else { "" }
                )
            }),
            "pin" => self
                .set_pinned(path, true)
                .await
                .map(|_| "pinned".to_string()),
            "unpin" => self
                .set_pinned(path, false)
                .await
                .map(|_| "unpinned".to_string()),
            other => Err(HsmError::BadRequest(other.to_string())),
        }
    }

    /// Recalls the whole stub at `path`. With a listener in this process the recall goes
    /// through it (an mmap of the whole file is one event for the whole range), so this
    /// process's own descriptor never writes into a watched file.
    pub async fn recall_path(&self, path: &Path) -> Result<crate::Recalled> {
        let (_, canon, _) = self.locate(path)?;
        if self.watch().is_none() {
            let fd = open_file(&canon, true)?;
            return self.recall_fd(fd.as_fd(), &canon, None).await;
        }
        let before = self
            .counters
            .recalled_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        let p = canon.clone();
        tokio::task::spawn_blocking(move || map_whole(&p))
            .await
            .map_err(|e| HsmError::Listener(format!("recall task: {e}")))??;
        let fd = open_file(&canon, false)?;
        let whole = !matches!(marker::read(fd.as_fd(), &canon)?, Some(m) if m.released);
        let after = self
            .counters
            .recalled_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        Ok(crate::Recalled {
            bytes: after.saturating_sub(before),
            whole,
        })
    }

    /// Pins (never released; a stub is recalled whole first) or unpins an archived file.
    pub async fn set_pinned(&self, path: &Path, pinned: bool) -> Result<()> {
        let (_, canon, _) = self.locate(path)?;
        let fd = open_file(&canon, false)?;
        let Some(m) = marker::read(fd.as_fd(), &canon)? else {
            return Err(HsmError::NotArchived(canon));
        };
        drop(fd);
        if pinned && m.released {
            self.recall_path(&canon).await?;
        }
        let mut row = self.file(m.id)?;
        row.pinned = pinned;
        self.meta.hsm_put(&row)?;
        Ok(())
    }

    /// Carries out the requests due now; returns how many.
    pub async fn serve_requests(&self) -> Result<usize> {
        let now = fvfs_vfs::now_ns();
        let due = self.meta.hsm_requests_due(now, BATCH)?;
        for r in &due {
            self.serve_one(r).await?;
        }
        if !due.is_empty() {
            self.meta.hsm_requests_prune(now - KEEP_DONE_NS)?;
        }
        Ok(due.len())
    }

    async fn serve_one(&self, r: &HsmRequest) -> Result<()> {
        let path = PathBuf::from(String::from_utf8_lossy(&r.path).into_owned());
        let (ok, message) = match self.execute(&r.op, &path).await {
            Ok(m) => (true, m),
            Err(e) => {
                tracing::warn!(op = %r.op, path = %path.display(), error = %e, "HSM request failed");
                (false, e.to_string())
            }
        };
        self.meta
            .hsm_request_done(r.id, ok, &message, fvfs_vfs::now_ns())?;
        Ok(())
    }

    /// Counts of catalog rows per state, and pinned ones.
    pub fn counts(&self) -> Result<Vec<(HsmState, u64, u64)>> {
        let mut out = Vec::new();
        for s in [HsmState::Archiving, HsmState::Archived, HsmState::Released] {
            let rows = self.meta.hsm_list(Some(s))?;
            out.push((s, rows.len() as u64, rows.iter().map(|r| r.size).sum()));
        }
        Ok(out)
    }
}

/// Maps the whole file once (one pre-content event for the whole range), then unmaps.
fn map_whole(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path).map_err(|e| HsmError::io("open", path, e))?;
    let len = f
        .metadata()
        .map_err(|e| HsmError::io("stat", path, e))?
        .len() as usize;
    if len == 0 {
        return Ok(());
    }
    // SAFETY: a read-only shared mapping of an open file, unmapped below; nothing reads it.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(HsmError::io(
            "recall (mmap)",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: ptr/len are the mapping made above.
    unsafe { libc::munmap(ptr, len) };
    Ok(())
}

/// Serves the request queue: polls every second, or sooner when woken.
pub struct RequestsWorker {
    hsm: Weak<Hsm>,
}

impl RequestsWorker {
    pub fn new(hsm: &Arc<Hsm>) -> RequestsWorker {
        RequestsWorker {
            hsm: Arc::downgrade(hsm),
        }
    }
}

impl Worker for RequestsWorker {
    type Error = HsmError;
    fn name(&self) -> String {
        "hsm-requests".into()
    }
    fn work(&mut self) -> futures::future::BoxFuture<'_, Result<WorkerState>> {
        Box::pin(async move {
            let Some(hsm) = self.hsm.upgrade() else {
                return Ok(WorkerState::Done);
            };
            let n = hsm.serve_requests().await?;
            Ok(if n >= BATCH {
                WorkerState::Busy
            } else {
                WorkerState::Idle
            })
        })
    }
    /// A second, or until a requester on this host rings (doorbell.rs).
    fn wait_for_work(&mut self) -> futures::future::BoxFuture<'_, ()> {
        let wake = self.hsm.upgrade().map(|h| h.requests_wake());
        Box::pin(async move {
            let tick = tokio::time::sleep(Duration::from_secs(1));
            match wake {
                Some(w) => {
                    tokio::select! {
                        _ = tick => {}
                        _ = w.notified() => {}
                    }
                }
                None => tick.await,
            }
        })
    }
}
