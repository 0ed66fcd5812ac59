//! Block references of holders other than files on SQLite ([`HolderStore`]): the
//! `holders` table, one row per (kind, key, block).
//!
//! Invariants: each row counts exactly one reference in `blocks.refcount`, added in the
//! transaction that inserts the row and removed in the one that deletes it, so fsck finds
//! refcount = slice references + holder rows. GC (`garbage_blocks`, `forget_blocks` in
//! data.rs) also skips any block that has a holder row, whatever its refcount says.

use super::data::{add_ref, block_id_at, insert_blocks, now_ns};
use super::{Engine, SqlStore};
use crate::error::{MetaError, Result};
use crate::sql::{params, Tx};
use crate::store::HolderStore;
use crate::types::*;
use fvfs_types::BlockId;

/// The holder kind files would have: files hold blocks through slices, never rows here.
pub const FILE_KIND: &str = "file";

fn check_kind(kind: &str) -> Result<()> {
    if kind.is_empty() || kind == FILE_KIND || kind.len() > 64 {
        return Err(MetaError::Invalid("bad holder kind"));
    }
    Ok(())
}

fn held(tx: &dyn Tx, kind: &str, key: &[u8]) -> Result<Vec<BlockId>> {
    let mut stmt =
        tx.prepare_cached("SELECT block FROM holders WHERE kind = ?1 AND key = ?2 ORDER BY block")?;
    let rows = stmt.query_map(params![kind, key], |r| block_id_at(r, 0))?;
    rows.collect::<Result<Vec<_>>>()
}

impl<E: Engine> HolderStore for SqlStore<E> {
    fn hold(
        &self,
        kind: &str,
        key: &[u8],
        blocks: &[BlockId],
        new_blocks: &[NewBlock],
        replicate_to: u32,
    ) -> Result<u64> {
        check_kind(kind)?;
        self.write(|tx| {
            let now = now_ns();
            insert_blocks(tx, new_blocks, now)?;
            let new_ids: Vec<BlockId> = new_blocks.iter().map(|b| b.id).collect();
            super::tiers::enqueue(tx, &new_ids, replicate_to, now)?;
            let mut ins = tx.prepare_cached(
                "INSERT OR IGNORE INTO holders (kind, key, block) VALUES (?1, ?2, ?3)",
            )?;
            let mut added = 0;
            for id in blocks {
                if ins.execute(params![kind, key, &id.0[..]])? > 0 {
                    // A block without a row fails here and rolls the whole hold back.
                    add_ref(tx, id, 1)?;
                    added += 1;
                }
            }
            Ok(added)
        })
    }

    fn release(&self, kind: &str, key: &[u8]) -> Result<Vec<BlockId>> {
        self.write(|tx| {
            let ids = held(tx, kind, key)?;
            tx.prepare_cached("DELETE FROM holders WHERE kind = ?1 AND key = ?2")?
                .execute(params![kind, key])?;
            for id in &ids {
                add_ref(tx, id, -1)?;
            }
            Ok(ids)
        })
    }

    fn held_by(&self, kind: &str, key: &[u8]) -> Result<Vec<BlockId>> {
        self.read(|tx| held(tx, kind, key))
    }

    fn holds(&self, kind: &str, key: &[u8], blocks: &[BlockId]) -> Result<Vec<bool>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT 1 FROM holders WHERE kind = ?1 AND key = ?2 AND block = ?3",
            )?;
            let mut out = Vec::with_capacity(blocks.len());
            for b in blocks {
                out.push(stmt.exists(params![kind, key, &b.0[..]])?);
            }
            Ok(out)
        })
    }

    fn holders_of(&self, block: &BlockId) -> Result<Vec<Holder>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT kind, key FROM holders WHERE block = ?1 ORDER BY kind, key",
            )?;
            let rows = stmt.query_map(params![&block.0[..]], |r| {
                Ok(Holder {
                    kind: r.get(0)?,
                    key: r.get(1)?,
                })
            })?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn dangling_holds(&self) -> Result<Vec<(Holder, BlockId)>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT h.kind, h.key, h.block FROM holders h LEFT JOIN blocks b ON b.id = h.block
                 WHERE b.id IS NULL ORDER BY h.kind, h.key, h.block",
            )?;
            let rows = stmt.query_map(params![], |r| {
                Ok((
                    Holder {
                        kind: r.get(0)?,
                        key: r.get(1)?,
                    },
                    block_id_at(r, 2)?,
                ))
            })?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn drop_dangling_holds(&self) -> Result<u64> {
        self.write(|tx| {
            let n = tx.execute(
                "DELETE FROM holders WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.id = holders.block)",
                params![],
            )?;
            Ok(n as u64)
        })
    }
}
