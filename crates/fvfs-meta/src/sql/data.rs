//! File content on SQLite ([`DataStore`]): slices, block rows and refcounts, truncate,
//! the purge of orphans, garbage blocks.
//!
//! `slices.blocks` packs a slice's block references as consecutive 36-byte records:
//! the 32-byte BLAKE3 id followed by the plain length as u32 little-endian
//! (docs/FORMAT.md). Every slice insert increments the refcount of each referenced block
//! and every slice delete decrements it, in the same transaction; `replace_content` moves
//! slices between inodes, their references with them (the counts do not change). Holder
//! rows (holders.rs) count in the refcount too, and a block with a holder row is never
//! garbage.

use super::namespace::getattr;
use super::{Engine, SqlStore};
use crate::error::{bad_value, MetaError, Result};
use crate::sql::{params, Arg, OptionalExtension, Row, Tx};
use crate::store::DataStore;
use crate::types::*;
use fvfs_types::{BlockId, Codec, FileKind, Ino, CHUNK_SIZE};
use std::collections::{BTreeSet, HashMap};

const REF_LEN: usize = 36;

pub(crate) fn encode_refs(refs: &[BlockRef]) -> Vec<u8> {
    let mut out = Vec::with_capacity(refs.len() * REF_LEN);
    for r in refs {
        out.extend_from_slice(&r.id.0);
        out.extend_from_slice(&r.len.to_le_bytes());
    }
    out
}

pub(crate) fn decode_refs(blob: &[u8]) -> Result<Vec<BlockRef>> {
    if !blob.len().is_multiple_of(REF_LEN) {
        return Err(MetaError::Corrupt(format!(
            "slice block list of {} bytes is not a multiple of {REF_LEN}",
            blob.len()
        )));
    }
    Ok(blob
        .chunks_exact(REF_LEN)
        .map(|c| {
            let mut id = [0u8; 32];
            id.copy_from_slice(&c[..32]);
            let mut len = [0u8; 4];
            len.copy_from_slice(&c[32..]);
            BlockRef {
                id: BlockId(id),
                len: u32::from_le_bytes(len),
            }
        })
        .collect())
}

/// The block id in column `col`; one that is not 32 bytes is corruption.
pub(crate) fn block_id_at(r: &Row<'_>, col: usize) -> Result<BlockId> {
    let id: Vec<u8> = r.get(col)?;
    BlockId::from_slice(&id).ok_or_else(|| bad_value(col, "block id of length", id.len()))
}

/// The codec code in column `col`; an unknown one is corruption (its bytes cannot be read).
pub(crate) fn codec_at(r: &Row<'_>, col: usize) -> Result<Codec> {
    let code: i64 = r.get(col)?;
    Codec::from_code(code).ok_or_else(|| bad_value(col, "block codec code", code))
}

pub(crate) fn block_from_row(r: &Row<'_>) -> Result<BlockRow> {
    Ok(BlockRow {
        id: block_id_at(r, 0)?,
        size: r.get(1)?,
        stored_size: r.get(2)?,
        codec: codec_at(r, 3)?,
        refcount: r.get::<i64>(4)? as u64,
        tiers: r.get(5)?,
    })
}

pub(crate) const BLOCK_COLS: &str = "id, size, stored_size, codec, refcount, tiers";

pub(crate) fn add_ref(tx: &dyn Tx, id: &BlockId, delta: i64) -> Result<()> {
    let n = tx
        .prepare_cached(
            "UPDATE blocks SET refcount = MAX(refcount + ?2, 0),
               freed_at = CASE WHEN refcount + ?2 <= 0 THEN CAST(?3 AS BIGINT) ELSE 0 END
             WHERE id = ?1",
        )?
        .execute(params![&id.0[..], delta, now_ns()])?;
    if n == 0 && delta > 0 {
        return Err(MetaError::MissingBlock(*id));
    }
    Ok(())
}

pub(crate) fn insert_blocks(tx: &dyn Tx, blocks: &[NewBlock], now: i64) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO blocks (id, size, stored_size, codec, refcount, tiers, created, last_access)
         VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?6)
         ON CONFLICT(id) DO UPDATE SET tiers = blocks.tiers | excluded.tiers",
    )?;
    for b in blocks {
        stmt.execute(params![
            &b.id.0[..],
            b.size,
            b.stored_size,
            b.codec.code(),
            b.tiers,
            now
        ])?;
    }
    Ok(())
}

/// Inserts a slice and returns its id; `None` for an empty one (nothing inserted).
fn insert_slice(tx: &dyn Tx, ino: Ino, s: &NewSlice) -> Result<Option<u64>> {
    if s.len == 0 {
        return Ok(None);
    }
    if s.pos as u64 + s.len as u64 > CHUNK_SIZE {
        return Err(MetaError::Invalid("slice crosses a chunk boundary"));
    }
    if !s.zero && s.blocks.iter().map(|b| b.len as u64).sum::<u64>() != s.len as u64 {
        return Err(MetaError::Invalid("slice length differs from its blocks"));
    }
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO slices (ino, chunk, pos, len, zero, blocks)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )?
        .query_row(
            params![
                ino as i64,
                s.chunk as i64,
                s.pos,
                s.len,
                s.zero,
                encode_refs(&s.blocks)
            ],
            |r| r.get(0),
        )?;
    tx.prepare_cached(
        "INSERT INTO chunks (ino, idx, slices) VALUES (?1, ?2, 1)
         ON CONFLICT(ino, idx) DO UPDATE SET slices = chunks.slices + 1",
    )?
    .execute(params![ino as i64, s.chunk as i64])?;
    for b in &s.blocks {
        add_ref(tx, &b.id, 1)?;
    }
    if super::tiers::is_pinned(tx, ino)? {
        super::tiers::adjust_pins(tx, &s.blocks, 1)?;
    }
    Ok(Some(id as u64))
}

/// Deletes the slices matching `filter` (an SQL condition on ino/chunk/pos) and releases
/// their block references. Returns how many slices went.
fn delete_slices(tx: &dyn Tx, ino: Ino, filter: &str, args: &[i64]) -> Result<u64> {
    let sql = format!("SELECT id, blocks FROM slices WHERE ino = ?1 AND {filter}");
    let mut victims = Vec::new();
    {
        let mut stmt = tx.prepare_cached(&sql)?;
        let mut params_vec = vec![Arg::Int(ino as i64)];
        params_vec.extend(args.iter().map(|a| Arg::Int(*a)));
        let rows = stmt.query_map(&params_vec, |r| {
            Ok((r.get::<i64>(0)?, r.get::<Vec<u8>>(1)?))
        })?;
        for row in rows {
            victims.push(row?);
        }
    }
    let pinned = super::tiers::is_pinned(tx, ino)?;
    for (id, blob) in &victims {
        let refs = decode_refs(blob)?;
        for b in &refs {
            add_ref(tx, &b.id, -1)?;
        }
        if pinned {
            super::tiers::adjust_pins(tx, &refs, -1)?;
        }
        tx.prepare_cached("DELETE FROM slices WHERE id = ?1")?
            .execute(params![id])?;
    }
    tx.prepare_cached(
        "UPDATE chunks SET slices = (SELECT COUNT(*) FROM slices s WHERE s.ino = chunks.ino AND s.chunk = chunks.idx) WHERE ino = ?1",
    )?
    .execute(params![ino as i64])?;
    tx.prepare_cached("DELETE FROM chunks WHERE ino = ?1 AND slices = 0")?
        .execute(params![ino as i64])?;
    Ok(victims.len() as u64)
}

pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Distinct block ids of a file, in file order.
fn file_block_ids(tx: &dyn Tx, ino: Ino) -> Result<Vec<BlockId>> {
    let mut stmt =
        tx.prepare_cached("SELECT blocks FROM slices WHERE ino = ?1 ORDER BY chunk, pos, id")?;
    let rows = stmt.query_map(params![ino as i64], |r| r.get::<Vec<u8>>(0))?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for blob in rows {
        for r in decode_refs(&blob?)? {
            if seen.insert(r.id) {
                out.push(r.id);
            }
        }
    }
    Ok(out)
}

pub(crate) fn file_blocks(tx: &dyn Tx, ino: Ino) -> Result<Vec<BlockRow>> {
    let ids = file_block_ids(tx, ino)?;
    let mut stmt = tx.prepare_cached(&format!("SELECT {BLOCK_COLS} FROM blocks WHERE id = ?1"))?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(row) = stmt
            .query_row(params![&id.0[..]], block_from_row)
            .optional()?
        {
            out.push(row);
        }
    }
    Ok(out)
}

/// The slices of one chunk, oldest first.
fn chunk_slices(tx: &dyn Tx, ino: Ino, chunk: u64) -> Result<Vec<Slice>> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, pos, len, zero, blocks FROM slices WHERE ino = ?1 AND chunk = ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![ino as i64, chunk as i64], |r| {
        Ok((
            r.get::<i64>(0)? as u64,
            r.get::<u32>(1)?,
            r.get::<u32>(2)?,
            r.get::<bool>(3)?,
            r.get::<Vec<u8>>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, pos, len, zero, blob) = row?;
        out.push(Slice {
            id,
            pos,
            len,
            zero,
            blocks: decode_refs(&blob)?,
        });
    }
    Ok(out)
}

impl<E: Engine> DataStore for SqlStore<E> {
    fn read_chunk(&self, ino: Ino, chunk: u64) -> Result<Vec<Slice>> {
        self.read(|tx| chunk_slices(tx, ino, chunk))
    }

    fn read_chunk_blocks(
        &self,
        ino: Ino,
        chunk: u64,
    ) -> Result<(Vec<Slice>, HashMap<BlockId, BlockRow>)> {
        self.read(|tx| {
            let slices = chunk_slices(tx, ino, chunk)?;
            let mut rows = HashMap::new();
            let mut stmt =
                tx.prepare_cached(&format!("SELECT {BLOCK_COLS} FROM blocks WHERE id = ?1"))?;
            for b in slices.iter().flat_map(|s| s.blocks.iter()) {
                if rows.contains_key(&b.id) {
                    continue;
                }
                if let Some(row) = stmt
                    .query_row(params![&b.id.0[..]], block_from_row)
                    .optional()?
                {
                    rows.insert(b.id, row);
                }
            }
            Ok((slices, rows))
        })
    }

    fn commit(&self, ino: Ino, c: &Commit<'_>) -> Result<(Attr, Vec<u64>)> {
        self.write(|tx| {
            let a = getattr(tx, ino)?;
            if a.kind != FileKind::File {
                return Err(MetaError::Invalid("data on a non-regular file"));
            }
            insert_blocks(tx, c.new_blocks, c.mtime.unwrap_or_else(now_ns))?;
            let mut ids = Vec::with_capacity(c.slices.len());
            let mut touched: Vec<u64> = c.slices.iter().map(|s| s.chunk).collect();
            for s in c.slices {
                ids.extend(insert_slice(tx, ino, s)?);
            }
            for id in c.supersede {
                let chunk: Option<i64> = tx
                    .prepare_cached("SELECT chunk FROM slices WHERE id = ?1 AND ino = ?2")?
                    .query_row(params![*id as i64, ino as i64], |r| r.get(0))
                    .optional()?;
                touched.extend(chunk.map(|c| c as u64));
                delete_slices(tx, ino, "id = ?2", &[*id as i64])?;
            }
            if !touched.is_empty() {
                super::alloc::refresh(tx, ino, touched)?;
            }
            let new_ids: Vec<BlockId> = c.new_blocks.iter().map(|b| b.id).collect();
            super::tiers::enqueue(tx, &new_ids, c.replicate_to, c.mtime.unwrap_or_else(now_ns))?;
            if let Some(j) = &c.journal {
                super::journal::journal_replace(tx, ino, j)?;
            }
            let size = a.size.max(c.min_size);
            match c.mtime {
                Some(t) => tx
                    .prepare_cached(
                        "UPDATE inodes SET size = ?2, mtime = ?3, ctime = ?3 WHERE ino = ?1",
                    )?
                    .execute(params![ino as i64, size as i64, t])?,
                None => tx
                    .prepare_cached("UPDATE inodes SET size = ?2 WHERE ino = ?1")?
                    .execute(params![ino as i64, size as i64])?,
            };
            Ok((getattr(tx, ino)?, ids))
        })
    }

    fn replace_chunk(
        &self,
        ino: Ino,
        chunk: u64,
        expect: &[u64],
        slices: &[NewSlice],
        new_blocks: &[NewBlock],
        replicate_to: u32,
    ) -> Result<bool> {
        self.write(|tx| {
            // Slices are never changed in place (only added and removed, or moved to
            // another inode whole): the same ids are the same content.
            let now: Vec<u64> = tx
                .prepare_cached("SELECT id FROM slices WHERE ino = ?1 AND chunk = ?2 ORDER BY id")?
                .query_map(params![ino as i64, chunk as i64], |r| {
                    Ok(r.get::<i64>(0)? as u64)
                })?
                .collect::<Result<_>>()?;
            if now != expect {
                return Ok(false);
            }
            insert_blocks(tx, new_blocks, now_ns())?;
            let new_ids: Vec<BlockId> = new_blocks.iter().map(|b| b.id).collect();
            super::tiers::enqueue(tx, &new_ids, replicate_to, now_ns())?;
            let old_max: i64 = tx
                .prepare_cached(
                    "SELECT COALESCE(MAX(id), 0) FROM slices WHERE ino = ?1 AND chunk = ?2",
                )?
                .query_row(params![ino as i64, chunk as i64], |r| r.get(0))?;
            // Insert (and increment) first so blocks shared by old and new slices never reach
            // refcount 0 in between.
            for s in slices {
                let _ = insert_slice(tx, ino, s)?;
            }
            delete_slices(tx, ino, "chunk = ?2 AND id <= ?3", &[chunk as i64, old_max])?;
            super::alloc::refresh(tx, ino, [chunk])?;
            Ok(true)
        })
    }

    fn truncate(&self, ino: Ino, size: u64, now: i64) -> Result<Attr> {
        self.write(|tx| {
            let a = getattr(tx, ino)?;
            if a.kind == FileKind::Dir {
                return Err(MetaError::IsDir);
            }
            if a.kind != FileKind::File {
                return Err(MetaError::Invalid("truncate of a special file"));
            }
            if size < a.size {
                let c0 = size / CHUNK_SIZE;
                let off = size % CHUNK_SIZE;
                if off == 0 {
                    delete_slices(tx, ino, "chunk >= ?2", &[c0 as i64])?;
                } else {
                    delete_slices(tx, ino, "chunk > ?2", &[c0 as i64])?;
                    delete_slices(
                        tx,
                        ino,
                        "chunk = ?2 AND pos >= ?3",
                        &[c0 as i64, off as i64],
                    )?;
                    let max_end: Option<i64> = tx
                        .prepare_cached(
                            "SELECT MAX(pos + len) FROM slices WHERE ino = ?1 AND chunk = ?2",
                        )?
                        .query_row(params![ino as i64, c0 as i64], |r| r.get(0))?;
                    if let Some(end) = max_end.filter(|&e| e as u64 > off) {
                        let _ = insert_slice(
                            tx,
                            ino,
                            &NewSlice {
                                chunk: c0,
                                pos: off as u32,
                                len: (end as u64 - off) as u32,
                                zero: true,
                                blocks: Vec::new(),
                            },
                        )?;
                    }
                }
                super::alloc::refresh(tx, ino, [c0])?;
            }
            // Journaled writes may reach past the committed size: clipped whatever it is.
            super::journal::journal_clip(tx, ino, size)?;
            tx.prepare_cached(
                "UPDATE inodes SET size = ?2, mtime = ?3, ctime = ?3 WHERE ino = ?1",
            )?
            .execute(params![ino as i64, size as i64, now])?;
            getattr(tx, ino)
        })
    }

    fn replace_content(&self, ino: Ino, from: Ino, mtime: i64, now: i64) -> Result<Attr> {
        self.write(|tx| {
            if ino == from {
                return Err(MetaError::Invalid("content replaced by itself"));
            }
            for i in [ino, from] {
                match getattr(tx, i)?.kind {
                    FileKind::File => {}
                    FileKind::Dir => return Err(MetaError::IsDir),
                    _ => return Err(MetaError::Invalid("content of a special file")),
                }
            }
            let size = getattr(tx, from)?.size;
            delete_slices(tx, ino, "1 = 1", &[])?;
            // The moved references change owner, not count; only per-file pins follow them.
            let (pinned_to, pinned_from) = (
                super::tiers::is_pinned(tx, ino)?,
                super::tiers::is_pinned(tx, from)?,
            );
            if pinned_to != pinned_from {
                let delta = if pinned_to { 1 } else { -1 };
                let mut stmt = tx.prepare_cached("SELECT blocks FROM slices WHERE ino = ?1")?;
                let blobs = stmt
                    .query_map(params![from as i64], |r| r.get::<Vec<u8>>(0))?
                    .collect::<Result<Vec<_>>>()?;
                for blob in blobs {
                    super::tiers::adjust_pins(tx, &decode_refs(&blob)?, delta)?;
                }
            }
            tx.prepare_cached("UPDATE slices SET ino = ?1 WHERE ino = ?2")?
                .execute(params![ino as i64, from as i64])?;
            tx.prepare_cached("DELETE FROM chunks WHERE ino = ?1")?
                .execute(params![ino as i64])?;
            tx.prepare_cached("UPDATE chunks SET ino = ?1 WHERE ino = ?2")?
                .execute(params![ino as i64, from as i64])?;
            tx.prepare_cached(
                "UPDATE inodes SET size = ?2, mtime = ?3, ctime = ?4 WHERE ino = ?1",
            )?
            .execute(params![ino as i64, size as i64, mtime, now])?;
            tx.prepare_cached("UPDATE inodes SET size = 0, mtime = ?2, ctime = ?2 WHERE ino = ?1")?
                .execute(params![from as i64, now])?;
            // The chunk rows carried their allocation; only the inode totals change.
            super::alloc::refresh(tx, ino, [])?;
            super::alloc::refresh(tx, from, [])?;
            getattr(tx, ino)
        })
    }

    fn get_block(&self, id: &BlockId) -> Result<Option<BlockRow>> {
        self.read(|tx| {
            tx.prepare_cached(&format!("SELECT {BLOCK_COLS} FROM blocks WHERE id = ?1"))?
                .query_row(params![&id.0[..]], block_from_row)
                .optional()
        })
    }

    fn chunk_slice_count(&self, ino: Ino, chunk: u64) -> Result<u64> {
        self.read(|tx| {
            Ok(tx
                .prepare_cached("SELECT slices FROM chunks WHERE ino = ?1 AND idx = ?2")?
                .query_row(params![ino as i64, chunk as i64], |r| r.get::<i64>(0))
                .optional()?
                .unwrap_or(0) as u64)
        })
    }

    fn file_blocks(&self, ino: Ino) -> Result<Vec<BlockRow>> {
        self.read(|tx| file_blocks(tx, ino))
    }

    fn purge_inode(&self, ino: Ino) -> Result<()> {
        self.write(|tx| {
            let nlink: Option<u32> = tx
                .prepare_cached("SELECT nlink FROM inodes WHERE ino = ?1")?
                .query_row(params![ino as i64], |r| r.get(0))
                .optional()?;
            match nlink {
                Some(0) => {}
                Some(_) => {
                    tx.prepare_cached("DELETE FROM orphans WHERE ino = ?1")?
                        .execute(params![ino as i64])?;
                    return Ok(());
                }
                None => {
                    tx.prepare_cached("DELETE FROM orphans WHERE ino = ?1")?
                        .execute(params![ino as i64])?;
                    return Ok(());
                }
            }
            delete_slices(tx, ino, "1 = 1", &[])?;
            tx.prepare_cached("DELETE FROM xattrs WHERE ino = ?1")?
                .execute(params![ino as i64])?;
            tx.prepare_cached("DELETE FROM write_journal WHERE ino = ?1")?
                .execute(params![ino as i64])?;
            tx.prepare_cached("DELETE FROM inodes WHERE ino = ?1")?
                .execute(params![ino as i64])?;
            tx.prepare_cached("DELETE FROM orphans WHERE ino = ?1")?
                .execute(params![ino as i64])?;
            Ok(())
        })
    }

    fn garbage_blocks(&self, limit: usize, freed_before: i64) -> Result<Vec<BlockRow>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {BLOCK_COLS} FROM blocks WHERE refcount = 0 AND freed_at <= ?2
           AND NOT EXISTS (SELECT 1 FROM holders h WHERE h.block = blocks.id) LIMIT ?1"
            ))?;
            let rows = stmt.query_map(params![limit, freed_before], block_from_row)?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn forget_blocks(&self, ids: &[BlockId]) -> Result<Vec<BlockId>> {
        self.write(|tx| {
            let mut out = Vec::new();
            let mut stmt = tx.prepare_cached(
                "DELETE FROM blocks WHERE id = ?1 AND refcount = 0
           AND NOT EXISTS (SELECT 1 FROM holders h WHERE h.block = ?1)",
            )?;
            let mut wal = tx.prepare_cached("DELETE FROM wal_pending WHERE block = ?1")?;
            for id in ids {
                if stmt.execute(params![&id.0[..]])? > 0 {
                    wal.execute(params![&id.0[..]])?;
                    out.push(*id);
                }
            }
            Ok(out)
        })
    }
}
