//! Allocation accounting for `st_blocks`: how much of a file is stored data, holes
//! (never-written ranges, truncate-extended ranges, punched or truncated-away ranges)
//! excluded.
//!
//! A chunk's allocated size is the number of bytes of the [`ALLOC_UNIT`] grid (4 KiB, as
//! ext4's blocks) that the chunk's *visible data* touches: the newest-wins overlay of its
//! slices, where a zero slice hides what lies below it. `chunks.alloc_bytes` holds it per
//! chunk and `inodes.alloc_bytes` their sum, so `getattr` reads one column.
//!
//! Invariant: every transaction that adds or removes slices of a chunk calls
//! [`refresh`] for that chunk before it commits (commit, compaction, truncate, the fsck
//! repair); a chunk row that is gone counts 0.

use crate::error::Result;
use fvfs_types::Ino;
use rusqlite::{params, Transaction};

/// The grid on which allocation is counted (ext4's block size).
pub const ALLOC_UNIT: u64 = 4096;

/// Allocated bytes of one chunk from its slices `(pos, len, zero)`, oldest first.
pub(crate) fn chunk_alloc(slices: &[(u64, u64, bool)]) -> u64 {
    // Walk newest to oldest; `covered` holds what newer slices already decided (sorted,
    // disjoint), `data` the visible parts of data slices.
    let mut covered: Vec<(u64, u64)> = Vec::new();
    let mut data: Vec<(u64, u64)> = Vec::new();
    for &(pos, len, zero) in slices.iter().rev() {
        let (lo, hi) = (pos, pos + len);
        if lo >= hi {
            continue;
        }
        let mut cur = lo;
        for &(s, e) in &covered {
            if e <= cur {
                continue;
            }
            if s >= hi {
                break;
            }
            if s > cur && !zero {
                data.push((cur, s));
            }
            cur = cur.max(e);
            if cur >= hi {
                break;
            }
        }
        if cur < hi && !zero {
            data.push((cur, hi));
        }
        covered.push((lo, hi));
        covered.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(covered.len());
        for (s, e) in covered {
            match merged.last_mut() {
                Some(m) if s <= m.1 => m.1 = m.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        covered = merged;
    }
    // Round each data run out to the grid, merge, and measure.
    let mut units: Vec<(u64, u64)> = data
        .into_iter()
        .map(|(s, e)| {
            (
                s / ALLOC_UNIT * ALLOC_UNIT,
                e.div_ceil(ALLOC_UNIT) * ALLOC_UNIT,
            )
        })
        .collect();
    units.sort_unstable();
    let mut total = 0;
    let mut run: Option<(u64, u64)> = None;
    for (s, e) in units {
        run = match run {
            Some((rs, re)) if s <= re => Some((rs, re.max(e))),
            Some((rs, re)) => {
                total += re - rs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((rs, re)) = run {
        total += re - rs;
    }
    total
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1024;

    #[test]
    fn overlay_and_grid() {
        assert_eq!(chunk_alloc(&[]), 0);
        // One aligned MiB of data.
        assert_eq!(chunk_alloc(&[(0, 1 << 20, false)]), 1 << 20);
        // One byte takes a unit; a run across a unit boundary takes both.
        assert_eq!(chunk_alloc(&[(5, 1, false)]), 4 * K);
        assert_eq!(chunk_alloc(&[(4 * K - 1, 2, false)]), 8 * K);
        // Two runs in one unit count it once.
        assert_eq!(chunk_alloc(&[(0, 10, false), (100, 10, false)]), 4 * K);
        // A zero slice (punch, truncate) hides the data under it...
        assert_eq!(
            chunk_alloc(&[(0, 64 * K, false), (8 * K, 16 * K, true)]),
            48 * K
        );
        // ...but not data written after it.
        assert_eq!(
            chunk_alloc(&[(0, 64 * K, false), (8 * K, 16 * K, true), (8 * K, 4 * K, false)]),
            52 * K
        );
        // A zero slice over nothing, or alone, allocates nothing.
        assert_eq!(chunk_alloc(&[(0, 1 << 20, true)]), 0);
        // An unaligned hole inside data keeps the partial units at its edges.
        assert_eq!(
            chunk_alloc(&[(0, 64 * K, false), (K, 10 * K, true)]),
            64 * K - 4 * K
        );
        // Overwrites of the same range count once.
        assert_eq!(
            chunk_alloc(&[(0, 8 * K, false), (0, 8 * K, false), (4 * K, 8 * K, false)]),
            12 * K
        );
    }
}
