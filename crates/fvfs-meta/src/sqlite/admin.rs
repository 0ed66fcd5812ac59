//! Settings, lifecycle, durability, sessions, counters and statistics on SQLite
//! ([`AdminStore`]); the snapshot itself is in backup.rs.

use super::SqliteStore;
use crate::error::{MetaError, Result};
use crate::store::AdminStore;
use crate::types::*;
use fvfs_types::{FileKind, Settings, FORMAT_VERSION, ROOT_INO};
use rusqlite::{params, OptionalExtension, Transaction};

pub(crate) fn format(
    tx: &Transaction<'_>,
    path: &str,
    settings: &Settings,
    uid: u32,
    gid: u32,
    now: i64,
) -> Result<()> {
    let exists = tx
        .query_row("SELECT 1 FROM settings WHERE key = 'settings'", [], |_| {
            Ok(())
        })
        .optional()?
        .is_some();
    if exists {
        return Err(MetaError::AlreadyFormatted(path.to_string()));
    }
    let json = serde_json::to_string(settings).map_err(|e| MetaError::Corrupt(e.to_string()))?;
    tx.execute(
        "INSERT INTO settings (key, value) VALUES ('settings', ?1)",
        [json],
    )?;
    tx.execute(
        "INSERT INTO inodes (ino, kind, perm, uid, gid, size, nlink, atime, mtime, ctime, parent)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, 2, ?6, ?6, ?6, ?1)",
        params![ROOT_INO as i64, FileKind::Dir.code(), 0o755, uid, gid, now],
    )?;
    Ok(())
}

pub(crate) fn settings(tx: &Transaction<'_>, path: &str) -> Result<Settings> {
    let json: String = tx
        .query_row(
            "SELECT value FROM settings WHERE key = 'settings'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| MetaError::NotFormatted(path.to_string()))?;
    let s: Settings =
        serde_json::from_str(&json).map_err(|e| MetaError::Corrupt(format!("settings: {e}")))?;
    if s.format_version > FORMAT_VERSION {
        return Err(MetaError::TooNew {
            found: s.format_version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(s)
}

pub(crate) fn set_settings(tx: &Transaction<'_>, s: &Settings) -> Result<()> {
    let cur = settings(tx, "")?;
    if cur.uuid != s.uuid || cur.format_version != s.format_version {
        return Err(MetaError::Invalid("settings of another filesystem"));
    }
    let json = serde_json::to_string(s).map_err(|e| MetaError::Corrupt(e.to_string()))?;
    tx.execute(
        "UPDATE settings SET value = ?1 WHERE key = 'settings'",
        [json],
    )?;
    Ok(())
}

impl AdminStore for SqliteStore {
    fn format(&self, settings: &Settings, uid: u32, gid: u32, now: i64) -> Result<()> {
        let path = self.path.display().to_string();
        self.write(|tx| format(tx, &path, settings, uid, gid, now))
    }
    fn settings(&self) -> Result<Settings> {
        let path = self.path.display().to_string();
        self.read(|tx| settings(tx, &path))
    }
    fn describe(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
    fn sync(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        // Not under the writer's lock: a commit that completed before this call is in the
        // file's page cache and the flush takes it; one appended meanwhile may be flushed
        // in part, which SQLite's recovery ignores (its commit frame is missing or fails
        // the checksum). So commits go on while the device flushes.
        let wal = self.wal_path();
        let io = |source| MetaError::Io {
            path: wal.display().to_string(),
            source,
        };
        let id = match std::fs::metadata(&wal) {
            Ok(m) => (m.dev(), m.ino()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        let mut cached = self.wal.lock();
        if cached.as_ref().is_none_or(|(_, was)| *was != id) {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .open(&wal)
                .map_err(io)?;
            *cached = Some((f, id));
        }
        cached
            .as_ref()
            .expect("set above")
            .0
            .sync_data()
            .map_err(io)
    }
    fn release_memory(&self) {
        self.shrink_memory();
    }
    fn snapshot(&self, dest: &std::path::Path) -> Result<()> {
        super::backup::snapshot(self, dest)
    }
    fn begin_log_shipping(&self, dest: &std::path::Path) -> Result<Option<u32>> {
        SqliteStore::begin_log_shipping(self, dest).map(Some)
    }
    fn take_log(&self) -> Result<Vec<LogFrames>> {
        SqliteStore::take_log(self)
    }
    fn leave_checkpoints(&self) -> Result<()> {
        SqliteStore::leave_checkpoints(self)
    }
    fn set_settings(&self, s: &Settings) -> Result<()> {
        self.write(|tx| set_settings(tx, s))
    }

    fn register_session(&self, host: &str, pid: u32, mountpoint: &str, now: i64) -> Result<u64> {
        self.write(|tx| {
    tx.execute(
        "INSERT INTO sessions (host, pid, mountpoint, started, heartbeat) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![host, pid, mountpoint, now],
    )?;
    Ok(tx.last_insert_rowid() as u64)
})
    }

    fn heartbeat(&self, id: u64, now: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE sessions SET heartbeat = ?2 WHERE id = ?1",
                params![id as i64, now],
            )?;
            Ok(())
        })
    }

    fn end_session(&self, id: u64) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM sessions WHERE id = ?1", [id as i64])?;
            Ok(())
        })
    }

    fn sessions(&self) -> Result<Vec<Session>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT id, host, pid, mountpoint, started, heartbeat FROM sessions ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Session {
                    id: r.get::<_, i64>(0)? as u64,
                    host: r.get(1)?,
                    pid: r.get(2)?,
                    mountpoint: r.get(3)?,
                    started: r.get(4)?,
                    heartbeat: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn bump_counter(&self, name: &str, delta: i64) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO counters (name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            )?
            .execute(params![name, delta])?;
            Ok(())
        })
    }

    fn counters(&self) -> Result<Vec<(String, i64)>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached("SELECT name, value FROM counters ORDER BY name")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn stats(&self) -> Result<Stats> {
        self.read(|tx| {
            let (inodes, logical): (i64, i64) = tx.query_row(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN kind = 1 THEN size ELSE 0 END), 0) FROM inodes",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
            let (blocks, unique, stored, referenced): (i64, i64, i64, i64) = tx.query_row(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(stored_size), 0),
                COALESCE(SUM(size * refcount), 0) FROM blocks WHERE refcount > 0",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            let garbage: i64 =
                tx.query_row("SELECT COUNT(*) FROM blocks WHERE refcount = 0", [], |r| {
                    r.get(0)
                })?;
            Ok(Stats {
                inodes: inodes as u64,
                logical_bytes: logical as u64,
                blocks: blocks as u64,
                unique_bytes: unique as u64,
                stored_bytes: stored as u64,
                referenced_bytes: referenced as u64,
                garbage_blocks: garbage as u64,
            })
        })
    }
}
