//! Settings, lifecycle, durability, sessions, counters and statistics on SQLite
//! ([`AdminStore`]); the snapshot itself is in backup.rs.

use super::{Engine, SqlStore};
use crate::error::{MetaError, Result};
use crate::sql::{params, OptionalExtension, Tx};
use crate::store::AdminStore;
use crate::types::*;
use fvfs_types::{FileKind, Settings, FORMAT_VERSION, ROOT_INO};

pub(crate) fn format(
    tx: &dyn Tx,
    path: &str,
    settings: &Settings,
    uid: u32,
    gid: u32,
    now: i64,
) -> Result<()> {
    let exists = tx
        .query_row(
            "SELECT 1 FROM settings WHERE key = 'settings'",
            params![],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if exists {
        return Err(MetaError::AlreadyFormatted(path.to_string()));
    }
    let json = serde_json::to_string(settings).map_err(|e| MetaError::Corrupt(e.to_string()))?;
    tx.execute(
        "INSERT INTO settings (key, value) VALUES ('settings', ?1)",
        params![json],
    )?;
    tx.execute(
        "INSERT INTO inodes (ino, kind, perm, uid, gid, size, nlink, atime, mtime, ctime, parent)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, 2, ?6, ?6, ?6, ?1)",
        params![ROOT_INO as i64, FileKind::Dir.code(), 0o755, uid, gid, now],
    )?;
    Ok(())
}

pub(crate) fn settings(tx: &dyn Tx, path: &str) -> Result<Settings> {
    let json: String = tx
        .query_row(
            "SELECT value FROM settings WHERE key = 'settings'",
            params![],
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

pub(crate) fn set_settings(tx: &dyn Tx, s: &Settings) -> Result<()> {
    let cur = settings(tx, "")?;
    if cur.uuid != s.uuid || cur.format_version != s.format_version {
        return Err(MetaError::Invalid("settings of another filesystem"));
    }
    let json = serde_json::to_string(s).map_err(|e| MetaError::Corrupt(e.to_string()))?;
    tx.execute(
        "UPDATE settings SET value = ?1 WHERE key = 'settings'",
        params![json],
    )?;
    Ok(())
}

impl<E: Engine> AdminStore for SqlStore<E> {
    fn format(&self, settings: &Settings, uid: u32, gid: u32, now: i64) -> Result<()> {
        let path = self.engine.location();
        self.write(|tx| format(tx, &path, settings, uid, gid, now))
    }
    fn settings(&self) -> Result<Settings> {
        let path = self.engine.location();
        self.read(|tx| settings(tx, &path))
    }
    fn describe(&self) -> String {
        self.engine.describe()
    }
    fn sync(&self) -> Result<()> {
        self.engine.sync()
    }
    fn release_memory(&self) {
        self.engine.release_memory()
    }
    fn snapshot(&self, dest: &std::path::Path) -> Result<()> {
        self.engine.snapshot(dest)
    }
    fn begin_log_shipping(&self, dest: &std::path::Path) -> Result<Option<u32>> {
        self.engine.begin_log_shipping(dest)
    }
    fn take_log(&self) -> Result<Vec<LogFrames>> {
        self.engine.take_log()
    }
    fn leave_checkpoints(&self) -> Result<()> {
        self.engine.leave_checkpoints()
    }
    fn set_settings(&self, s: &Settings) -> Result<()> {
        self.write(|tx| set_settings(tx, s))
    }

    fn register_session(&self, host: &str, pid: u32, mountpoint: &str, now: i64) -> Result<u64> {
        let id = self.write(|tx| {
            tx.query_row(
                "INSERT INTO sessions (host, pid, mountpoint, started, heartbeat)
         VALUES (?1, ?2, ?3, ?4, ?4) RETURNING id",
                params![host, pid, mountpoint, now],
                |r| r.get::<u64>(0),
            )
        })?;
        self.session.store(id, std::sync::atomic::Ordering::Relaxed);
        Ok(id)
    }

    fn heartbeat(&self, id: u64, now: i64) -> Result<()> {
        let found = self.write(|tx| {
            tx.execute(
                "UPDATE sessions SET heartbeat = ?2 WHERE id = ?1",
                params![id as i64, now],
            )
        })?;
        if found == 0 {
            return Err(MetaError::SessionGone(id));
        }
        Ok(())
    }

    fn end_session(&self, id: u64) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM locks WHERE session = ?1", params![id as i64])?;
            tx.execute("DELETE FROM sessions WHERE id = ?1", params![id as i64])?;
            Ok(())
        })
    }

    fn reap_session(&self, id: u64, before: i64) -> Result<bool> {
        self.write(|tx| {
            let gone = tx.execute(
                "DELETE FROM sessions WHERE id = ?1 AND heartbeat < ?2",
                params![id as i64, before],
            )?;
            if gone > 0 {
                tx.execute("DELETE FROM locks WHERE session = ?1", params![id as i64])?;
            }
            Ok(gone > 0)
        })
    }

    fn sessions(&self) -> Result<Vec<Session>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT id, host, pid, mountpoint, started, heartbeat FROM sessions ORDER BY id",
            )?;
            let rows = stmt.query_map(params![], |r| {
                Ok(Session {
                    id: r.get::<i64>(0)? as u64,
                    host: r.get(1)?,
                    pid: r.get(2)?,
                    mountpoint: r.get(3)?,
                    started: r.get(4)?,
                    heartbeat: r.get(5)?,
                })
            })?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn bump_counter(&self, name: &str, delta: i64) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO counters (name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = counters.value + excluded.value",
            )?
            .execute(params![name, delta])?;
            Ok(())
        })
    }

    fn counters(&self) -> Result<Vec<(String, i64)>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached("SELECT name, value FROM counters ORDER BY name")?;
            let rows = stmt.query_map(params![], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn stats(&self) -> Result<Stats> {
        self.read(|tx| {
            let (inodes, logical): (i64, i64) = tx.query_row(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN kind = 1 THEN size ELSE 0 END), 0) FROM inodes",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
            let (blocks, unique, stored, referenced): (i64, i64, i64, i64) = tx.query_row(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(stored_size), 0),
                COALESCE(SUM(size * refcount), 0) FROM blocks WHERE refcount > 0",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            let garbage: i64 = tx.query_row(
                "SELECT COUNT(*) FROM blocks WHERE refcount = 0",
                params![],
                |r| r.get(0),
            )?;
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
