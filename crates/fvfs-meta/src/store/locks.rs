//! [`LockStore`]: advisory file locks (fcntl and flock) that every host of a shared
//! filesystem sees. A lock belongs to an *owner* — the kernel's lock owner of one mount
//! (a process's file table for fcntl, an open file description for flock) — within a
//! session, so owners of different hosts never collide.
//!
//! Invariants:
//! - an owner's ranges on one inode never overlap, and adjacent ranges of one kind are
//!   merged (POSIX: a new lock replaces the owner's older locks on its range, splitting
//!   them);
//! - a read range may overlap other owners' read ranges; a write range overlaps no other
//!   owner's range;
//! - ending a session (cleanly or by the reaper) drops its locks in the same transaction.

use crate::error::Result;
use fvfs_types::Ino;

/// A lock's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    Read,
    Write,
}

impl LockKind {
    pub fn code(self) -> i64 {
        match self {
            LockKind::Read => 0,
            LockKind::Write => 1,
        }
    }
}

/// Who asks: the session and the owner within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockOwner {
    pub session: u64,
    pub owner: u64,
}

/// One held range, inclusive at both ends (`end` = `i64::MAX as u64`: to the end of file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileLock {
    pub owner: LockOwner,
    pub start: u64,
    pub end: u64,
    pub kind: LockKind,
    pub pid: u32,
}

pub trait LockStore {
    /// Sets `kind` on `start..=end` for `who` (`None`: unlocks the range), atomically.
    /// Refused when another owner holds a conflicting range: returns that lock and
    /// changes nothing. Unlocking never conflicts.
    fn set_lock(
        &self,
        ino: Ino,
        who: LockOwner,
        pid: u32,
        start: u64,
        end: u64,
        kind: Option<LockKind>,
    ) -> Result<Option<FileLock>>;
    /// The first lock of another owner that would conflict with `kind` on `start..=end`.
    fn test_lock(
        &self,
        ino: Ino,
        who: LockOwner,
        start: u64,
        end: u64,
        kind: LockKind,
    ) -> Result<Option<FileLock>>;
    /// Drops every range `who` holds on `ino` (close(2) of a POSIX lock holder, the last
    /// close of a flock holder).
    fn release_locks(&self, ino: Ino, who: LockOwner) -> Result<()>;
    /// Every lock of `ino`, by owner and start (for status and tests).
    fn locks(&self, ino: Ino) -> Result<Vec<FileLock>>;
}
