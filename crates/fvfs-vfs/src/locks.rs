//! File locks (fcntl byte ranges and flock) of a filesystem that other hosts mount too:
//! held in the metadata ([`fvfs_meta::LockStore`]) under this process's session, so a
//! lock taken on one host is seen by every other, and ends with the session (a clean
//! stop, or the reaper of a host that stopped heartbeating: session.rs).
//!
//! Invariants:
//! - an owner is the kernel's lock owner of this mount; with the session it is unique
//!   among hosts;
//! - a waiting request (F_SETLKW, flock without LOCK_NB) retries with backoff and gives up
//!   (EINTR) once its file is closed: a killed waiter takes no lock for a dead owner;
//! - a close asks the metadata to drop locks only for the (inode, owner) pairs this
//!   process locked (`Vfs::lockers`, with the handle of the last request), so closes of
//!   files never locked cost nothing; the release of a handle drops the locks taken
//!   through it (POSIX drops a process's locks at any close of the file, and a waiter
//!   granted between the kernel's flush and release would otherwise keep one).
//!
//! With an embedded store (one host) the kernel keeps locks itself and none of this runs.

use crate::{Result, Vfs, VfsError};
use fvfs_meta::{FileLock, LockOwner};
use fvfs_types::Ino;
use std::time::Duration;

pub use fvfs_meta::LockKind;

/// The first and the longest pause between two attempts of a waiting lock request.
const WAIT_FIRST: Duration = Duration::from_millis(5);
const WAIT_MAX: Duration = Duration::from_millis(200);

/// One request of the kernel: fcntl F_GETLK/F_SETLK/F_SETLKW or flock (a whole-file
/// range whose owner is the open file description).
#[derive(Clone, Copy, Debug)]
pub struct LockRequest {
    pub owner: u64,
    /// Inclusive range.
    pub start: u64,
    pub end: u64,
    /// `None`: unlock.
    pub kind: Option<LockKind>,
    pub pid: u32,
}

impl Vfs {
    fn lock_owner(&self, owner: u64) -> LockOwner {
        LockOwner {
            session: self.session(),
            owner,
        }
    }

    /// F_GETLK: the first lock of another owner that `req` would conflict with.
    pub fn test_lock(&self, ino: Ino, req: &LockRequest) -> Result<Option<FileLock>> {
        let Some(kind) = req.kind else {
            return Ok(None);
        };
        let who = self.lock_owner(req.owner);
        Ok(self.meta.test_lock(ino, who, req.start, req.end, kind)?)
    }

    /// F_SETLK (`wait` false: [`VfsError::Locked`] when another owner is in the way) and
    /// F_SETLKW (`wait`: retries until granted, [`VfsError::Interrupted`] once the file
    /// handle `fh` is closed).
    pub async fn set_lock(&self, fh: u64, req: &LockRequest, wait: bool) -> Result<()> {
        let ino = self.handles.get(fh)?.ino;
        let who = self.lock_owner(req.owner);
        // Recorded before the request: a lock granted while its handle is being
        // released is then still dropped by that release.
        if req.kind.is_some() {
            self.lockers.lock().insert((ino, req.owner), fh);
        }
        let mut pause = WAIT_FIRST;
        loop {
            let refused = self
                .meta
                .set_lock(ino, who, req.pid, req.start, req.end, req.kind)?;
            if refused.is_none() {
                return Ok(());
            }
            if !wait {
                return Err(VfsError::Locked);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(WAIT_MAX);
            if self.handles.get(fh).is_err() {
                return Err(VfsError::Interrupted);
            }
        }
    }

    /// A close through lock owner `owner`: drops its locks on `ino` (fcntl: any close of
    /// the file by the process; flock: the last close of the open file description).
    pub fn release_locks(&self, ino: Ino, owner: u64) -> Result<()> {
        if self.lockers.lock().remove(&(ino, owner)).is_some() {
            self.meta.release_locks(ino, self.lock_owner(owner))?;
        }
        Ok(())
    }

    /// The release of handle `fh` (of `ino`): drops the locks taken through it.
    pub(crate) fn release_handle_locks(&self, ino: Ino, fh: u64) -> Result<()> {
        let owners: Vec<u64> = {
            let mut lockers = self.lockers.lock();
            let owners: Vec<u64> = lockers
                .iter()
                .filter(|(k, f)| k.0 == ino && **f == fh)
                .map(|(k, _)| k.1)
                .collect();
            for o in &owners {
                lockers.remove(&(ino, *o));
            }
            owners
        };
        for o in owners {
            self.meta.release_locks(ino, self.lock_owner(o))?;
        }
        Ok(())
    }
}
