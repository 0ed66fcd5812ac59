//! Allocation accounting for `st_blocks` on SQLite: `chunks.alloc_bytes` holds each
//! chunk's allocated size ([`crate::alloc::chunk_alloc`]) and `inodes.alloc_bytes` their
//! sum, so `getattr` reads one column.
//!
//! Invariant: every transaction that adds or removes slices of a chunk calls
//! [`refresh`] for that chunk before it commits (commit, compaction, truncate, the fsck
//! repair); a chunk row that is gone counts 0.

use crate::alloc::chunk_alloc;
use crate::error::Result;
use fvfs_types::Ino;
use rusqlite::{params, Transaction};

fn recompute_chunk(tx: &Transaction<'_>, ino: Ino, chunk: u64) -> Result<()> {
    let slices = {
        let mut stmt = tx.prepare_cached(
            "SELECT pos, len, zero FROM slices WHERE ino = ?1 AND chunk = ?2 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![ino as i64, chunk as i64], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, bool>(2)?,
            ))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    tx.prepare_cached("UPDATE chunks SET alloc_bytes = ?3 WHERE ino = ?1 AND idx = ?2")?
        .execute(params![
            ino as i64,
            chunk as i64,
            chunk_alloc(&slices) as i64
        ])?;
    Ok(())
}

fn sum_inode(tx: &Transaction<'_>, ino: Ino) -> Result<()> {
    tx.prepare_cached(
        "UPDATE inodes SET alloc_bytes =
           (SELECT COALESCE(SUM(alloc_bytes), 0) FROM chunks WHERE ino = ?1)
         WHERE ino = ?1",
    )?
    .execute([ino as i64])?;
    Ok(())
}

/// Recomputes the given chunks of `ino` and the inode's total.
pub(crate) fn refresh(
    tx: &Transaction<'_>,
    ino: Ino,
    chunks: impl IntoIterator<Item = u64>,
) -> Result<()> {
    let mut done: Vec<u64> = Vec::new();
    for c in chunks {
        if !done.contains(&c) {
            recompute_chunk(tx, ino, c)?;
            done.push(c);
        }
    }
    sum_inode(tx, ino)
}

/// Recomputes every chunk of `ino` and its total.
pub(crate) fn refresh_inode(tx: &Transaction<'_>, ino: Ino) -> Result<()> {
    let chunks = {
        let mut stmt = tx.prepare_cached("SELECT idx FROM chunks WHERE ino = ?1")?;
        let rows = stmt.query_map([ino as i64], |r| r.get::<_, i64>(0))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    for c in chunks {
        recompute_chunk(tx, ino, c as u64)?;
    }
    sum_inode(tx, ino)
}

/// Fills the accounting of a whole database (the schema migration that introduced it).
pub(crate) fn refresh_all(tx: &Transaction<'_>) -> Result<()> {
    let inos = {
        let mut stmt = tx.prepare("SELECT DISTINCT ino FROM chunks")?;
        let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    for ino in inos {
        refresh_inode(tx, ino as u64)?;
    }
    Ok(())
}
