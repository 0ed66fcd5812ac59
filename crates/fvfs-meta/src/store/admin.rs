//! [`AdminStore`]: the filesystem as a whole — settings and formatting, durability and
//! snapshots, sessions of the processes using it, durable counters and statistics.

use crate::error::Result;
use crate::types::*;
use fvfs_types::Settings;

pub trait AdminStore {
    /// Writes the settings and creates the root directory. Fails if already formatted.
    fn format(&self, settings: &Settings, root_uid: u32, root_gid: u32, now: i64) -> Result<()>;
    fn settings(&self) -> Result<Settings>;
    /// Replaces the settings (tier changes). The uuid and format version must not change.
    fn set_settings(&self, settings: &Settings) -> Result<()>;
    /// A human name of the store for messages (no secrets).
    fn describe(&self) -> String;
    /// Makes every committed operation durable against power loss. Every operation is
    /// atomic and survives a crash of the process when it returns; `sync` adds the
    /// device flush (fsync/fsyncdir/close call it).
    fn sync(&self) -> Result<()>;
    /// Gives memory the store holds only for speed (page caches) back, when idle.
    fn release_memory(&self) {}
    /// Writes a consistent copy of the whole metadata database to `dest`, a new local file
    /// (an existing one is an error). The copy is one point in time, standalone (SQLite:
    /// no `-wal`/`-shm`), durable when this returns, and opens with [`crate::open`].
    /// Concurrent operations go on while it runs. Used by the metadata backup.
    fn snapshot(&self, dest: &std::path::Path) -> Result<()>;
    /// Starts continuous log shipping, or a new generation of it: writes to `dest` (a new
    /// local file) the base that the frames of later [`AdminStore::take_log`] calls apply
    /// to, and returns its page size. `None`: this store has no log to ship.
    fn begin_log_shipping(&self, _dest: &std::path::Path) -> Result<Option<u32>> {
        Ok(None)
    }
    /// The log of the transactions committed since the last call (or since the base),
    /// oldest first. [`crate::MetaError::LogGap`]: continuity is lost, begin anew.
    fn take_log(&self) -> Result<Vec<LogFrames>> {
        Ok(Vec::new())
    }
    /// This process runs beside the one that ships the log: it must not checkpoint.
    fn leave_checkpoints(&self) -> Result<()> {
        Ok(())
    }

    /// Registers a session of a process using the filesystem and makes it this store
    /// handle's own: orphans its unlinks leave belong to it until it ends.
    fn register_session(&self, host: &str, pid: u32, mountpoint: &str, now: i64) -> Result<u64>;
    /// Records that the session is alive at `now`. [`crate::MetaError::SessionGone`]: its
    /// row is gone (a reaper ended it): the process must stop using the filesystem.
    fn heartbeat(&self, session: u64, now: i64) -> Result<()>;
    /// Ends a session: its row and its file locks go; its orphans become unowned.
    fn end_session(&self, session: u64) -> Result<()>;
    /// Ends the session as [`AdminStore::end_session`] if its last heartbeat is before
    /// `before` (checked in the same transaction: a session that just heartbeated
    /// survives). Returns whether it ended it.
    fn reap_session(&self, session: u64, before: i64) -> Result<bool>;
    fn sessions(&self) -> Result<Vec<Session>>;

    /// Adds to a durable counter (corruptions repaired, blocks evicted, …).
    fn bump_counter(&self, name: &str, delta: i64) -> Result<()>;
    fn counters(&self) -> Result<Vec<(String, i64)>>;
    fn stats(&self) -> Result<Stats>;
}
