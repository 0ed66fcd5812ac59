//! This process's session and the reaper of other hosts' sessions.
//!
//! A serving process registers a session row at start (fvfs-engine's `Running`), which
//! owns its file locks (locks.rs) and the orphans its unlinks leave (inodes it may still
//! have open). [`SessionWorker`] heartbeats it every [`heartbeat_of`] the timeout and, on
//! the same beat, reaps: a session whose heartbeat is older than the timeout belongs to
//! a host that died or lost the metadata server; any live process ends it (its row and
//! locks in one transaction, `AdminStore::reap_session`, which re-checks the heartbeat),
//! then purges the orphans that no live session owns and the upload temporaries of
//! sessions that are gone.
//!
//! Invariants:
//! - a session is reaped only after `timeout` without a heartbeat, measured on the
//!   reaper's clock against the heartbeat the dead host wrote (hosts' clocks must agree
//!   to well within the timeout: NTP);
//! - an orphan open in this process is never purged here (`purge_if_orphan` checks);
//! - when this process's own session was reaped (it was cut off for longer than the
//!   timeout), it registers a new one and says so: its locks are gone, and other hosts
//!   may have taken them.

use crate::worker::{Worker, WorkerState};
use crate::{now_ns, Result, Vfs};
use futures::future::BoxFuture;
use fvfs_meta::MetaError;
use std::sync::Arc;
use std::time::Duration;

/// How long a session may go without a heartbeat before another host ends it.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);

/// The heartbeat interval for a timeout: five beats per timeout, at most 12 s.
pub fn heartbeat_of(timeout: Duration) -> Duration {
    (timeout / 5).clamp(Duration::from_millis(100), Duration::from_secs(12))
}

/// Who registered the session (to register it again after it was reaped).
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub host: String,
    pub pid: u32,
    pub label: String,
}

pub struct SessionWorker {
    vfs: Arc<Vfs>,
    info: SessionInfo,
    timeout: Duration,
}

impl SessionWorker {
    /// The worker of `vfs`'s session (`Vfs::session`, registered by the caller).
    pub fn new(vfs: &Arc<Vfs>, info: SessionInfo, timeout: Duration) -> SessionWorker {
        SessionWorker {
            vfs: vfs.clone(),
            info,
            timeout,
        }
    }

    fn beat(&self) -> Result<()> {
        let meta = &self.vfs.meta;
        let id = self.vfs.session();
        match meta.heartbeat(id, now_ns()) {
            Err(MetaError::SessionGone(_)) => {
                let new = meta.register_session(
                    &self.info.host,
                    self.info.pid,
                    &self.info.label,
                    now_ns(),
                )?;
                self.vfs.set_session(new);
                tracing::error!(
                    old = id,
                    new,
                    "this host's session was ended by another host (no heartbeat reached the \
                     metadata within the session timeout): its file locks are lost; \
                     registered a new session"
                );
                Ok(())
            }
            other => Ok(other?),
        }
    }

    /// Ends the sessions past the timeout; returns how many.
    fn reap(&self) -> Result<usize> {
        let meta = &self.vfs.meta;
        let timeout_ns = i64::try_from(self.timeout.as_nanos()).unwrap_or(i64::MAX);
        let horizon = now_ns().saturating_sub(timeout_ns);
        let mut reaped = 0;
        for s in meta.sessions()? {
            if s.id == self.vfs.session() || s.heartbeat >= horizon {
                continue;
            }
            if meta.reap_session(s.id, horizon)? {
                reaped += 1;
                tracing::warn!(
                    session = s.id,
                    host = %s.host,
                    pid = s.pid,
                    mountpoint = %s.mountpoint,
                    silent_secs = (now_ns() - s.heartbeat) / 1_000_000_000,
                    "ended a session that stopped heartbeating: its file locks are released \
                     and its unlinked files purged"
                );
            }
        }
        Ok(reaped)
    }
}

impl Worker for SessionWorker {
    type Error = crate::VfsError;
    fn name(&self) -> String {
        "session".into()
    }
    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState>> {
        Box::pin(async move {
            self.beat()?;
            if self.reap()? > 0 {
                let purged = self.vfs.purge_unowned_orphans()?;
                let swept = self.vfs.sweep_uploads()?;
                if purged + swept > 0 {
                    tracing::info!(
                        purged,
                        swept,
                        "freed the unlinked files and unfinished uploads of ended sessions"
                    );
                }
            }
            Ok(WorkerState::Idle)
        })
    }
    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(heartbeat_of(self.timeout)))
    }
}

impl Vfs {
    /// Purges the orphans no live session owns and this process does not have open;
    /// returns how many.
    pub fn purge_unowned_orphans(&self) -> Result<usize> {
        let mut n = 0;
        for ino in self.meta.unowned_orphans()? {
            if !self.handles.is_open(ino) {
                self.purge_if_orphan(ino)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
