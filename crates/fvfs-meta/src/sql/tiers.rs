//! Tiering state on SQLite ([`TierStore`]): the `wal_pending` replication queue, tier
//! bitmasks of blocks, per-tier usage, eviction candidates, access statistics and pins.
//!
//! Invariants: a `wal_pending` row exists at most once per (block, tier) (unique index);
//! `queue_done` removes the row and sets the tier bit in the same transaction, so after a
//! crash a copy is either queued or recorded, never neither. `blocks.pins` counts the
//! pinned files referencing a block (the `pinned` table lists those files).

use super::data::{block_from_row, decode_refs, BLOCK_COLS};
use super::{Engine, SqlStore};
use crate::error::{MetaError, Result};
use crate::sql::{params, OptionalExtension, Row, Tx};
use crate::store::TierStore;
use crate::types::*;
use fvfs_types::{BlockId, Ino, Settings};

/// Queues (block, tier) rows for `blocks` and every bit of `mask` they lack.
pub(crate) fn enqueue(tx: &dyn Tx, blocks: &[BlockId], mask: u32, now: i64) -> Result<()> {
    if mask == 0 {
        return Ok(());
    }
    let mut have = tx.prepare_cached("SELECT tiers FROM blocks WHERE id = ?1")?;
    let mut ins = tx.prepare_cached(
        "INSERT OR IGNORE INTO wal_pending (block, tier, due, attempts) VALUES (?1, ?2, ?3, 0)",
    )?;
    for id in blocks {
        let tiers: u32 = have
            .query_row(params![&id.0[..]], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        for bit in 0..32u32 {
            if mask & (1 << bit) != 0 && tiers & (1 << bit) == 0 {
                ins.execute(params![&id.0[..], bit, now])?;
            }
        }
    }
    Ok(())
}

const WAL_COLS: &str = "w.id, w.block, w.tier, w.due, w.attempts, w.last_error,
    b.id, b.size, b.stored_size, b.codec, b.refcount, b.tiers";

fn queue_from_row(r: &Row<'_>) -> Result<QueueEntry> {
    let block = super::data::block_id_at(r, 1)?;
    let has_row: Option<Vec<u8>> = r.get(6)?;
    let row = match has_row {
        Some(_) => Some(BlockRow {
            id: block,
            size: r.get(7)?,
            stored_size: r.get(8)?,
            codec: super::data::codec_at(r, 9)?,
            refcount: r.get::<i64>(10)? as u64,
            tiers: r.get(11)?,
        }),
        None => None,
    };
    Ok(QueueEntry {
        id: r.get::<i64>(0)? as u64,
        block,
        tier: r.get(2)?,
        due: r.get(3)?,
        attempts: r.get(4)?,
        last_error: r.get(5)?,
        row,
    })
}

pub(crate) fn is_pinned(tx: &dyn Tx, ino: Ino) -> Result<bool> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM pinned WHERE ino = ?1")?
        .query_row(params![ino as i64], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Adds `delta` to the pin count of each referenced block (once per reference).
pub(crate) fn adjust_pins(tx: &dyn Tx, refs: &[BlockRef], delta: i64) -> Result<()> {
    let mut stmt = tx.prepare_cached("UPDATE blocks SET pins = MAX(pins + ?2, 0) WHERE id = ?1")?;
    for r in refs {
        stmt.execute(params![&r.id.0[..], delta])?;
    }
    Ok(())
}

impl<E: Engine> TierStore for SqlStore<E> {
    /// Queues (block, tier) rows for `blocks` and every bit of `mask` they lack.
    fn queue_add(&self, blocks: &[BlockId], mask: u32, now: i64) -> Result<()> {
        self.write(|tx| enqueue(tx, blocks, mask, now))
    }
    fn insert_tier(&self, s: &Settings, position: u32) -> Result<()> {
        self.write(|tx| {
            if position >= 31 {
                return Err(MetaError::Invalid("too many tiers"));
            }
            let low = (1u32 << position) - 1;
            tx.execute(
                "UPDATE blocks SET tiers = ((tiers & ~CAST(?1 AS BIGINT)) << 1) | (tiers & ?1)",
                params![low],
            )?;
            tx.execute(
                "UPDATE wal_pending SET tier = tier + 1 WHERE tier >= ?1",
                params![position],
            )?;
            super::admin::set_settings(tx, s)
        })
    }

    fn queue_due(&self, now: i64, limit: usize) -> Result<Vec<QueueEntry>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {WAL_COLS} FROM wal_pending w LEFT JOIN blocks b ON b.id = w.block
         WHERE w.due <= ?1 ORDER BY w.due LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![now, limit as i64], queue_from_row)?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn queue_list(&self, limit: usize) -> Result<(Vec<QueueEntry>, u64)> {
        self.read(|tx| {
            let total: i64 =
                tx.query_row("SELECT COUNT(*) FROM wal_pending", params![], |r| r.get(0))?;
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {WAL_COLS} FROM wal_pending w LEFT JOIN blocks b ON b.id = w.block
         ORDER BY w.due LIMIT ?1"
            ))?;
            let rows = stmt.query_map(params![limit as i64], queue_from_row)?;
            Ok((rows.collect::<Result<Vec<_>>>()?, total as u64))
        })
    }

    fn queue_done(&self, entry: u64, block: &BlockId, tier: u32) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM wal_pending WHERE id = ?1")?
                .execute(params![entry as i64])?;
            tx.prepare_cached("UPDATE blocks SET tiers = tiers | ?2 WHERE id = ?1")?
                .execute(params![&block.0[..], 1u32 << tier])?;
            Ok(())
        })
    }

    fn queue_retry(&self, entry: u64, due: i64, error: &str) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached(
        "UPDATE wal_pending SET attempts = attempts + 1, due = ?2, last_error = ?3 WHERE id = ?1",
    )?
    .execute(params![entry as i64, due, error])?;
            Ok(())
        })
    }

    fn queue_drop(&self, entry: u64) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM wal_pending WHERE id = ?1")?
                .execute(params![entry as i64])?;
            Ok(())
        })
    }

    fn queue_make_due(&self, now: i64) -> Result<u64> {
        self.write(|tx| {
            tx.execute(
                "UPDATE wal_pending SET due = ?1 WHERE due > ?1",
                params![now],
            )?;
            let n: i64 =
                tx.query_row("SELECT COUNT(*) FROM wal_pending", params![], |r| r.get(0))?;
            Ok(n as u64)
        })
    }

    fn queue_missing(&self, tier: u32, now: i64) -> Result<u64> {
        self.write(|tx| {
            let n = tx.execute(
                "INSERT OR IGNORE INTO wal_pending (block, tier, due, attempts)
         SELECT id, ?1, ?2, 0 FROM blocks WHERE refcount > 0 AND (tiers & ?3) = 0",
                params![tier, now, 1u32 << tier],
            )?;
            Ok(n as u64)
        })
    }

    fn set_block_tiers(&self, id: &BlockId, set: u32, clear: u32) -> Result<u32> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE blocks SET tiers = (tiers | ?2) & ~CAST(?3 AS BIGINT) WHERE id = ?1",
            )?
            .execute(params![&id.0[..], set, clear])?;
            Ok(tx
                .prepare_cached("SELECT tiers FROM blocks WHERE id = ?1")?
                .query_row(params![&id.0[..]], |r| r.get(0))
                .optional()?
                .unwrap_or(0))
        })
    }

    fn tier_usage(&self, n: usize) -> Result<Vec<TierUsage>> {
        self.read(|tx| {
    let mut out = vec![TierUsage::default(); n];
    let mut stmt = tx.prepare_cached(
        "SELECT tiers, COALESCE(SUM(stored_size), 0), COUNT(*) FROM blocks WHERE refcount > 0 GROUP BY tiers",
    )?;
    let rows = stmt.query_map(params![], |r| {
        Ok((
            r.get::<u32>(0)?,
            r.get::<i64>(1)?,
            r.get::<i64>(2)?,
        ))
    })?;
    for row in rows {
        let (mask, bytes, blocks) = row?;
        for (i, u) in out.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                u.bytes += bytes as u64;
                u.blocks += blocks as u64;
            }
        }
    }
    Ok(out)
})
    }

    fn evict_candidates(
        &self,
        tier: u32,
        durable: u32,
        limit: usize,
    ) -> Result<Vec<EvictCandidate>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {BLOCK_COLS}, last_access, accesses FROM blocks
         WHERE refcount > 0 AND pins = 0 AND (tiers & ?1) != 0 AND (tiers & ?2) != 0
         ORDER BY last_access LIMIT ?3"
            ))?;
            let rows =
                stmt.query_map(params![1u32 << tier, 1u32 << durable, limit as i64], |r| {
                    Ok(EvictCandidate {
                        row: block_from_row(r)?,
                        last_access: r.get(6)?,
                        accesses: r.get::<i64>(7)? as u64,
                    })
                })?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn record_access(&self, batch: &[(BlockId, i64, u32)]) -> Result<()> {
        self.write(|tx| {
    let mut stmt = tx.prepare_cached(
        "UPDATE blocks SET last_access = MAX(last_access, ?2), accesses = accesses + ?3 WHERE id = ?1",
    )?;
    for (id, at, n) in batch {
        stmt.execute(params![&id.0[..], at, n])?;
    }
    Ok(())
})
    }

    fn pin_file(&self, ino: Ino, pin: bool) -> Result<Vec<BlockRow>> {
        self.write(|tx| {
            super::namespace::getattr(tx, ino)?;
            let was = is_pinned(tx, ino)?;
            if was != pin {
                let delta: i64 = if pin { 1 } else { -1 };
                if pin {
                    tx.execute("INSERT INTO pinned (ino) VALUES (?1)", params![ino as i64])?;
                } else {
                    tx.execute("DELETE FROM pinned WHERE ino = ?1", params![ino as i64])?;
                }
                let mut stmt = tx.prepare_cached("SELECT blocks FROM slices WHERE ino = ?1")?;
                let blobs = stmt
                    .query_map(params![ino as i64], |r| r.get::<Vec<u8>>(0))?
                    .collect::<Result<Vec<_>>>()?;
                for blob in blobs {
                    adjust_pins(tx, &decode_refs(&blob)?, delta)?;
                }
            }
            super::data::file_blocks(tx, ino)
        })
    }

    fn is_pinned(&self, ino: Ino) -> Result<bool> {
        self.read(|tx| is_pinned(tx, ino))
    }
}
