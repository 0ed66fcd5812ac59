//! The music content cache on SQLite ([`MusicCacheStore`]): table `music_cache` (schema
//! version 7), one row per cached window, its blocks encoded as slices' are (data.rs),
//! indexed by last access for the LRU. Totals of distinct blocks come from `holders`.

use super::data::{decode_refs, encode_refs};
use super::{Engine, SqlStore};
use crate::error::Result;
use crate::sql::{params, OptionalExtension, Row};
use crate::store::{MusicCacheStore, MusicCacheTotals, MusicWindow, MUSIC_HOLDER};

fn window(r: &Row<'_>) -> Result<(Vec<u8>, Vec<u8>, i64, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn finish(raw: (Vec<u8>, Vec<u8>, i64, i64)) -> Result<MusicWindow> {
    let (key, refs, bytes, last_access) = raw;
    Ok(MusicWindow {
        key,
        blocks: decode_refs(&refs)?,
        bytes: bytes as u64,
        last_access,
    })
}

/// The first key after every window of `piece`.
fn piece_end(piece: &[u8; 32]) -> Vec<u8> {
    let mut end = piece.to_vec();
    end.extend_from_slice(&[0xff; 9]);
    end
}

impl<E: Engine> MusicCacheStore for SqlStore<E> {
    fn music_cache_get(&self, key: &[u8]) -> Result<Option<MusicWindow>> {
        self.read(|tx| {
            let raw = tx
                .prepare_cached(
                    "SELECT key, refs, bytes, last_access FROM music_cache WHERE key = ?1",
                )?
                .query_row(params![key], window)
                .optional()?;
            raw.map(finish).transpose()
        })
    }

    fn music_cache_put(&self, w: &MusicWindow) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO music_cache (key, refs, bytes, last_access) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (key) DO UPDATE SET refs = ?2, bytes = ?3, last_access = ?4",
            )?
            .execute(params![
                w.key,
                encode_refs(&w.blocks),
                w.bytes as i64,
                w.last_access
            ])?;
            Ok(())
        })
    }

    fn music_cache_touch(&self, keys: &[(Vec<u8>, i64)]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut st = tx.prepare_cached(
                "UPDATE music_cache SET last_access = max(last_access, ?2) WHERE key = ?1",
            )?;
            for (k, at) in keys {
                st.execute(params![k, at])?;
            }
            Ok(())
        })
    }

    fn music_cache_remove(&self, key: &[u8]) -> Result<bool> {
        self.write(|tx| Ok(tx.execute("DELETE FROM music_cache WHERE key = ?1", params![key])? > 0))
    }

    fn music_cache_oldest(&self, limit: usize) -> Result<Vec<MusicWindow>> {
        self.read(|tx| {
            let mut st = tx.prepare_cached(
                "SELECT key, refs, bytes, last_access FROM music_cache \
                 ORDER BY last_access, key LIMIT ?1",
            )?;
            let raws = st
                .query_map(params![limit], window)?
                .collect::<Result<Vec<_>>>()?;
            raws.into_iter().map(finish).collect()
        })
    }

    fn music_cache_keys_of(&self, pieces: &[[u8; 32]]) -> Result<Vec<Vec<u8>>> {
        self.read(|tx| {
            let mut st = tx.prepare_cached(
                "SELECT key FROM music_cache WHERE key >= ?1 AND key < ?2 ORDER BY key",
            )?;
            let mut out = Vec::new();
            for p in pieces {
                let rows = st.query_map(params![&p[..], piece_end(p)], |r| r.get(0))?;
                for k in rows {
                    out.push(k?);
                }
            }
            Ok(out)
        })
    }

    fn music_cache_totals(&self) -> Result<MusicCacheTotals> {
        self.read(|tx| {
            let (windows, blocks, bytes): (i64, i64, i64) = tx.query_row(
                "SELECT count(*), coalesce(sum(length(refs) / 36), 0), coalesce(sum(bytes), 0) \
                 FROM music_cache",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let unique: i64 = tx.query_row(
                "SELECT count(DISTINCT block) FROM holders WHERE kind = ?1",
                params![MUSIC_HOLDER],
                |r| r.get(0),
            )?;
            Ok(MusicCacheTotals {
                windows: windows as u64,
                blocks: blocks as u64,
                unique_blocks: unique as u64,
                bytes: bytes as u64,
            })
        })
    }

    fn music_cache_orphans(&self, limit: usize) -> Result<Vec<Vec<u8>>> {
        self.read(|tx| {
            let mut st = tx.prepare_cached(
                "SELECT DISTINCT h.key FROM holders h \
                 WHERE h.kind = ?1 AND NOT EXISTS (SELECT 1 FROM music_cache c WHERE c.key = h.key) \
                 LIMIT ?2",
            )?;
            let rows = st.query_map(params![MUSIC_HOLDER, limit], |r| r.get(0))?;
            rows.collect::<Result<Vec<_>>>()
        })
    }
}
