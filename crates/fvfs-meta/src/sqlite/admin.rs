//! Settings, sessions, statistics and the consistency checks behind `fvfsd fsck`.

use super::data::{block_from_row, decode_refs, BLOCK_COLS};
use crate::error::{MetaError, Result};
use crate::types::*;
use fvfs_types::{BlockId, FileKind, Ino, Settings, FORMAT_VERSION, ROOT_INO};
use rusqlite::{params, OptionalExtension, Transaction};
use std::collections::HashMap;

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

pub(crate) fn register_session(
    tx: &Transaction<'_>,
    host: &str,
    pid: u32,
    mountpoint: &str,
    now: i64,
) -> Result<u64> {
    tx.execute(
        "INSERT INTO sessions (host, pid, mountpoint, started, heartbeat) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![host, pid, mountpoint, now],
    )?;
    Ok(tx.last_insert_rowid() as u64)
}

pub(crate) fn heartbeat(tx: &Transaction<'_>, id: u64, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE sessions SET heartbeat = ?2 WHERE id = ?1",
        params![id as i64, now],
    )?;
    Ok(())
}

pub(crate) fn end_session(tx: &Transaction<'_>, id: u64) -> Result<()> {
    tx.execute("DELETE FROM sessions WHERE id = ?1", [id as i64])?;
    Ok(())
}

pub(crate) fn sessions(tx: &Transaction<'_>) -> Result<Vec<Session>> {
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
}

pub(crate) fn stats(tx: &Transaction<'_>) -> Result<Stats> {
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
    let garbage: i64 = tx.query_row("SELECT COUNT(*) FROM blocks WHERE refcount = 0", [], |r| {
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
}

pub(crate) fn blocks_page(
    tx: &Transaction<'_>,
    after: Option<BlockId>,
    limit: usize,
) -> Result<Vec<BlockRow>> {
    let after = after.map(|a| a.0.to_vec()).unwrap_or_default();
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {BLOCK_COLS} FROM blocks WHERE id > ?1 ORDER BY id LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![after, limit as i64], block_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Calls `f(ino, slice id, refs)` for every slice.
fn for_each_slice(tx: &Transaction<'_>, mut f: impl FnMut(Ino, u64, Vec<BlockRef>)) -> Result<()> {
    let mut stmt = tx.prepare("SELECT ino, id, blocks FROM slices")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let blob: Vec<u8> = r.get(2)?;
        f(
            r.get::<_, i64>(0)? as u64,
            r.get::<_, i64>(1)? as u64,
            decode_refs(&blob)?,
        );
    }
    Ok(())
}

pub(crate) fn refcount_mismatches(tx: &Transaction<'_>) -> Result<Vec<(BlockId, u64, u64)>> {
    let mut counted: HashMap<BlockId, u64> = HashMap::new();
    for_each_slice(tx, |_, _, refs| {
        for r in refs {
            *counted.entry(r.id).or_default() += 1;
        }
    })?;
    let mut out = Vec::new();
    let mut stmt = tx.prepare(&format!("SELECT {BLOCK_COLS} FROM blocks"))?;
    let rows = stmt.query_map([], block_from_row)?;
    for row in rows {
        let b = row?;
        let c = counted.get(&b.id).copied().unwrap_or(0);
        if c != b.refcount {
            out.push((b.id, b.refcount, c));
        }
    }
    Ok(out)
}

pub(crate) fn dangling_block_refs(tx: &Transaction<'_>) -> Result<Vec<(Ino, u64, BlockId)>> {
    let mut refs = Vec::new();
    for_each_slice(tx, |ino, sid, blocks| {
        for b in blocks {
            refs.push((ino, sid, b.id));
        }
    })?;
    let mut stmt = tx.prepare_cached("SELECT 1 FROM blocks WHERE id = ?1")?;
    let mut out = Vec::new();
    for (ino, sid, id) in refs {
        if stmt
            .query_row([&id.0[..]], |_| Ok(()))
            .optional()?
            .is_none()
        {
            out.push((ino, sid, id));
        }
    }
    Ok(out)
}

pub(crate) fn nlink_mismatches(tx: &Transaction<'_>) -> Result<Vec<(Ino, u32, u32)>> {
    let mut stmt = tx.prepare(
        "SELECT i.ino, i.nlink, i.kind,
           (SELECT COUNT(*) FROM dentries d WHERE d.ino = i.ino),
           (SELECT COUNT(*) FROM dentries d WHERE d.parent = i.ino AND d.kind = 2)
         FROM inodes i",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)? as u64,
            r.get::<_, u32>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, u32>(3)?,
            r.get::<_, u32>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (ino, nlink, kind, names, subdirs) = row?;
        let expected = if kind == FileKind::Dir.code() {
            2 + subdirs
        } else {
            names
        };
        if nlink != expected {
            out.push((ino, nlink, expected));
        }
    }
    Ok(out)
}

pub(crate) fn dangling_dentries(tx: &Transaction<'_>) -> Result<Vec<(Ino, Vec<u8>, Ino)>> {
    let mut stmt = tx.prepare(
        "SELECT d.parent, d.name, d.ino FROM dentries d LEFT JOIN inodes i ON i.ino = d.ino
         WHERE i.ino IS NULL",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)? as u64,
            r.get(1)?,
            r.get::<_, i64>(2)? as u64,
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn set_refcount(tx: &Transaction<'_>, id: &BlockId, refcount: u64) -> Result<()> {
    tx.execute(
        "UPDATE blocks SET refcount = ?2 WHERE id = ?1",
        params![&id.0[..], refcount as i64],
    )?;
    Ok(())
}

pub(crate) fn set_nlink(tx: &Transaction<'_>, ino: Ino, nlink: u32) -> Result<()> {
    tx.execute(
        "UPDATE inodes SET nlink = ?2 WHERE ino = ?1",
        params![ino as i64, nlink],
    )?;
    if nlink == 0 {
        tx.execute(
            "INSERT OR IGNORE INTO orphans (ino) VALUES (?1)",
            [ino as i64],
        )?;
    }
    Ok(())
}

pub(crate) fn remove_dentry(tx: &Transaction<'_>, parent: Ino, name: &[u8]) -> Result<()> {
    tx.execute(
        "DELETE FROM dentries WHERE parent = ?1 AND name = ?2",
        params![parent as i64, name],
    )?;
    Ok(())
}

pub(crate) fn drop_slices_referencing(tx: &Transaction<'_>, id: &BlockId) -> Result<u64> {
    let mut victims = Vec::new();
    for_each_slice(tx, |ino, sid, refs| {
        if refs.iter().any(|r| r.id == *id) {
            victims.push((ino, sid, refs));
        }
    })?;
    for (_, sid, refs) in &victims {
        for r in refs {
            tx.execute(
                "UPDATE blocks SET refcount = MAX(refcount - 1, 0) WHERE id = ?1",
                [&r.id.0[..]],
            )?;
        }
        tx.execute("DELETE FROM slices WHERE id = ?1", [*sid as i64])?;
    }
    let mut inos: Vec<Ino> = victims.iter().map(|v| v.0).collect();
    inos.sort_unstable();
    inos.dedup();
    for ino in inos {
        super::alloc::refresh_inode(tx, ino)?;
    }
    Ok(victims.len() as u64)
}

pub(crate) fn inodes_referencing(
    tx: &Transaction<'_>,
    id: &BlockId,
    limit: usize,
) -> Result<Vec<Ino>> {
    let mut out = Vec::new();
    for_each_slice(tx, |ino, _, refs| {
        if out.len() < limit && !out.contains(&ino) && refs.iter().any(|r| r.id == *id) {
            out.push(ino);
        }
    })?;
    Ok(out)
}
