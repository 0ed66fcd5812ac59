//! Allocation accounting for `st_blocks` on SQLite: `chunks.alloc_bytes` holds each
//! chunk's allocated size ([`crate::alloc::chunk_alloc`]) and `inodes.alloc_bytes` their
//! sum, so `getattr` reads one column.
//!
//! Invariant: every transaction that adds or removes slices of a chunk calls
//! [`refresh`] for that chunk before it commits (commit, compaction, truncate, the fsck
//! repair); a chunk row that is gone counts 0.

use crate::alloc::chunk_alloc;
use crate::error::Result;
use crate::sql::{params, Tx};
use fvfs_types::Ino;

fn recompute_chunk(tx: &dyn Tx, ino: Ino, chunk: u64) -> Result<()> {
    let slices = {
        let mut stmt = tx.prepare_cached(
            "SELECT pos, len, zero FROM slices WHERE ino = ?1 AND chunk = ?2 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![ino as i64, chunk as i64], |r| {
            Ok((
                r.get::<i64>(0)? as u64,
                r.get::<i64>(1)? as u64,
                r.get::<bool>(2)?,
            ))
        })?;
        rows.collect::<Result<Vec<_>>>()?
    };
    tx.prepare_cached("UPDATE chunks SET alloc_bytes = ?3 WHERE ino = ?1 AND idx = ?2")?
        .execute(params![
            ino as i64,
            chunk as i64,
            chunk_alloc(&slices) as i64
        ])?;
    Ok(())
}

fn sum_inode(tx: &dyn Tx, ino: Ino) -> Result<()> {
    tx.prepare_cached(
        "UPDATE inodes SET alloc_bytes =
           (SELECT COALESCE(SUM(alloc_bytes), 0) FROM chunks WHERE ino = ?1)
         WHERE ino = ?1",
    )?
    .execute(params![ino as i64])?;
    Ok(())
}

/// Recomputes the given chunks of `ino` and the inode's total.
pub(crate) fn refresh(tx: &dyn Tx, ino: Ino, chunks: impl IntoIterator<Item = u64>) -> Result<()> {
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
pub(crate) fn refresh_inode(tx: &dyn Tx, ino: Ino) -> Result<()> {
    let chunks = {
        let mut stmt = tx.prepare_cached("SELECT idx FROM chunks WHERE ino = ?1")?;
        let rows = stmt.query_map(params![ino as i64], |r| r.get::<i64>(0))?;
        rows.collect::<Result<Vec<_>>>()?
    };
    for c in chunks {
        recompute_chunk(tx, ino, c as u64)?;
    }
    sum_inode(tx, ino)
}

/// Fills the accounting of a whole database (the schema migration that introduced it).
pub(crate) fn refresh_all(tx: &dyn Tx) -> Result<()> {
    let inos = {
        let mut stmt = tx.prepare("SELECT DISTINCT ino FROM chunks")?;
        let rows = stmt.query_map(params![], |r| r.get::<i64>(0))?;
        rows.collect::<Result<Vec<_>>>()?
    };
    for ino in inos {
        refresh_inode(tx, ino as u64)?;
    }
    Ok(())
}
