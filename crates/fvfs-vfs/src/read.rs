//! The read path: resolving a chunk's slice overlay into a map of visible segments,
//! fetching only the blocks a read touches (concurrently), and reading ahead on
//! sequential access. Buffered writes are overlaid last (write.rs).
//!
//! Invariant: bytes not covered by any slice read as zeros (holes, truncated tails).

use crate::handle::InodeState;
use crate::{Result, Vfs, VfsError};
use bytes::Bytes;
use fvfs_meta::{BlockRef, MetaStore, Slice};
use fvfs_types::{Codec, Ino, CHUNK_SIZE};
use std::sync::Arc;

struct SliceInfo {
    pos: u64,
    zero: bool,
    /// Each block with its codec and the tiers holding it (bitmask) at load time.
    blocks: Vec<(BlockRef, Codec, u32)>,
    /// Offset of each block inside the slice.
    offs: Vec<u64>,
}

/// A visible piece of a chunk: `[start, end)` comes from slice `slice`.
#[derive(Clone, Copy, Debug)]
struct Seg {
    start: u64,
    end: u64,
    slice: usize,
}

/// (block, codec, tier mask, offset in block, chunk offset, length)
type Piece = (BlockRef, Codec, u32, u64, u64, u64);

/// The resolved layout of one chunk's committed data.
pub(crate) struct ChunkMap {
    chunk: u64,
    /// The ids of the slices it was made from, oldest first.
    ids: Vec<u64>,
    slices: Vec<SliceInfo>,
    segs: Vec<Seg>,
}

/// Newest-wins overlay of slices (given oldest first) into sorted, disjoint segments.
fn resolve(slices: &[Slice]) -> Vec<Seg> {
    let mut segs: Vec<Seg> = Vec::new();
    for (i, s) in slices.iter().enumerate().rev() {
        let (lo, hi) = (s.pos as u64, s.pos as u64 + s.len as u64);
        let mut cur = lo;
        let mut add = Vec::new();
        let first = segs.partition_point(|g| g.end <= lo);
        for g in &segs[first..] {
            if g.start >= hi || cur >= hi {
                break;
            }
            if g.start > cur {
                add.push(Seg {
                    start: cur,
                    end: g.start,
                    slice: i,
                });
            }
            cur = cur.max(g.end);
        }
        if cur < hi {
            add.push(Seg {
                start: cur,
                end: hi,
                slice: i,
            });
        }
        if !add.is_empty() {
            segs.extend(add);
            segs.sort_by_key(|g| g.start);
        }
    }
    segs
}

impl ChunkMap {
    pub(crate) fn load(meta: &dyn MetaStore, ino: Ino, chunk: u64) -> Result<ChunkMap> {
        let (slices, rows) = meta.read_chunk_blocks(ino, chunk)?;
        let segs = resolve(&slices);
        let mut infos = Vec::with_capacity(slices.len());
        for s in &slices {
            let mut blocks = Vec::with_capacity(s.blocks.len());
            let mut offs = Vec::with_capacity(s.blocks.len());
            let mut off = 0u64;
            for b in &s.blocks {
                let (codec, mask) = match rows.get(&b.id) {
                    Some(row) => (row.codec, row.tiers),
                    None => {
                        tracing::error!(ino, chunk, block = %b.id, "slice references a block with no row");
                        return Err(fvfs_meta::MetaError::MissingBlock(b.id).into());
                    }
                };
                blocks.push((*b, codec, mask));
                offs.push(off);
                off += b.len as u64;
            }
            infos.push(SliceInfo {
                pos: s.pos as u64,
                zero: s.zero,
                blocks,
                offs,
            });
        }
        Ok(ChunkMap {
            chunk,
            ids: slices.iter().map(|s| s.id).collect(),
            slices: infos,
            segs,
        })
    }

    /// The ids of the slices the map was made from, oldest first.
    pub(crate) fn slice_ids(&self) -> &[u64] {
        &self.ids
    }

    /// Maximal runs of non-zero data, as chunk offsets.
    pub(crate) fn data_runs(&self) -> Vec<(u64, u64)> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for g in &self.segs {
            if self.slices[g.slice].zero {
                continue;
            }
            match runs.last_mut() {
                Some(r) if r.1 == g.start => r.1 = g.end,
                _ => runs.push((g.start, g.end)),
            }
        }
        runs
    }

    /// Every block id the chunk references.
    pub(crate) fn block_ids(&self) -> impl Iterator<Item = fvfs_types::BlockId> + '_ {
        self.slices
            .iter()
            .flat_map(|s| s.blocks.iter().map(|b| b.0.id))
    }

    /// The block pieces covering chunk range `[lo, hi)`:
    /// (block, codec, tier mask, offset in block, chunk offset, length).
    pub(crate) fn pieces(&self, lo: u64, hi: u64) -> Vec<Piece> {
        let mut out = Vec::new();
        let first = self.segs.partition_point(|g| g.end <= lo);
        for g in &self.segs[first..] {
            if g.start >= hi {
                break;
            }
            let s = &self.slices[g.slice];
            if s.zero {
                continue;
            }
            let (a, b) = (g.start.max(lo), g.end.min(hi));
            let mut x = a;
            while x < b {
                let so = x - s.pos;
                let bi = s.offs.partition_point(|&o| o <= so) - 1;
                let (bref, codec, mask) = s.blocks[bi];
                let in_block = so - s.offs[bi];
                let n = (bref.len as u64 - in_block).min(b - x);
                out.push((bref, codec, mask, in_block, x, n));
                x += n;
            }
        }
        out
    }
}

impl Vfs {
    fn chunk_map(&self, st: &InodeState, chunk: u64) -> Result<Arc<ChunkMap>> {
        if let Some(m) = st.chunks.lock().get(&chunk) {
            return Ok(m.clone());
        }
        let gen = st.chunks_gen.load(std::sync::atomic::Ordering::SeqCst);
        let m = Arc::new(ChunkMap::load(self.meta.as_ref(), st.ino, chunk)?);
        let mut chunks = st.chunks.lock();
        if st.chunks_gen.load(std::sync::atomic::Ordering::SeqCst) == gen {
            chunks.insert(chunk, m.clone());
        }
        Ok(m)
    }

    /// Fills `buf` (pre-zeroed) with chunk data starting at chunk offset `lo`.
    pub(crate) async fn read_map(&self, map: &ChunkMap, lo: u64, buf: &mut [u8]) -> Result<()> {
        let pieces = map.pieces(lo, lo + buf.len() as u64);
        let now = crate::now_ns();
        let fetches = pieces.iter().map(|(b, codec, mask, ..)| {
            let store = self.store.clone();
            let (id, len, codec, mask) = (b.id, b.len, *codec, *mask);
            self.tiering.state.note_access(id, now);
            async move { store.fetch_masked(&id, codec, len, mask).await }
        });
        let blocks: Vec<Bytes> = futures::future::try_join_all(fetches).await?;
        for ((bref, _, _, in_block, at, n), data) in pieces.iter().zip(blocks) {
            if data.len() as u64 != bref.len as u64 {
                return Err(VfsError::Internal(format!(
                    "block {} has {} bytes, metadata says {}",
                    bref.id,
                    data.len(),
                    bref.len
                )));
            }
            let dst = (at - lo) as usize;
            buf[dst..dst + *n as usize]
                .copy_from_slice(&data[*in_block as usize..(*in_block + *n) as usize]);
        }
        Ok(())
    }

    /// Reads committed data of `[off, off + buf.len())` into `buf` (pre-zeroed).
    async fn read_committed(&self, st: &InodeState, off: u64, buf: &mut [u8]) -> Result<()> {
        let end = off + buf.len() as u64;
        let mut pos = off;
        while pos < end {
            let chunk = pos / CHUNK_SIZE;
            let lo = pos % CHUNK_SIZE;
            let n = (CHUNK_SIZE - lo).min(end - pos);
            let map = self.chunk_map(st, chunk)?;
            let dst = (pos - off) as usize;
            self.read_map(&map, lo, &mut buf[dst..dst + n as usize])
                .await?;
            pos += n;
        }
        Ok(())
    }

    /// Starts fetching the blocks of `[from, to)` into the cache.
    fn prefetch(&self, st: &InodeState, from: u64, to: u64) {
        let mut pos = from;
        while pos < to {
            let chunk = pos / CHUNK_SIZE;
            let lo = pos % CHUNK_SIZE;
            let n = (CHUNK_SIZE - lo).min(to - pos);
            let Ok(map) = self.chunk_map(st, chunk) else {
                return;
            };
            debug_assert_eq!(map.chunk, chunk);
            let mut last = None;
            for (b, codec, mask, ..) in map.pieces(lo, lo + n) {
                if last != Some(b.id) {
                    self.store.prefetch(b.id, codec, b.len, mask);
                    last = Some(b.id);
                }
            }
            pos += n;
        }
    }

    /// Reads up to `size` bytes at `off` through handle `fh`.
    pub async fn read(&self, fh: u64, off: u64, size: u32) -> Result<Vec<u8>> {
        let h = self.handles.get(fh)?;
        let st = h.state.clone();
        // Take the size and a copy of the buffered bytes of the range under the lock, then
        // read committed data without it, so readers do not wait on each other's fetches
        // or on a flush. A commit in between moves the same bytes from the buffer into
        // slices; the copy, applied last, still wins.
        let (file_size, buffered) = {
            let fs = st.file.lock().await;
            let file_size = match fs.pending() {
                Some((s, _)) => s,
                None => self.meta.getattr(st.ino)?.size,
            };
            let n = (size as u64).min(file_size.saturating_sub(off));
            (file_size, fs.snapshot(off, n))
        };
        if off >= file_size {
            return Ok(Vec::new());
        }
        let n = (size as u64).min(file_size - off) as usize;
        let mut buf = vec![0u8; n];
        let end = off + n as u64;
        // Sequential access: keep a readahead window of blocks in flight.
        let ra_to = {
            let mut rs = h.read.lock();
            let sequential = off == rs.last_end || off == 0;
            rs.last_end = end;
            if sequential && self.cfg.readahead_bytes > 0 {
                let to = (end + self.cfg.readahead_bytes).min(file_size);
                let from = rs.prefetched_to.max(end);
                if from < to && to - from >= self.cfg.readahead_bytes / 4 {
                    rs.prefetched_to = to;
                    Some((from, to))
                } else {
                    None
                }
            } else {
                rs.prefetched_to = 0;
                None
            }
        };
        if let Some((from, to)) = ra_to {
            self.prefetch(&st, from, to);
        }
        self.read_committed(&st, off, &mut buf).await?;
        for (at, bytes) in buffered {
            let dst = (at - off) as usize;
            buf[dst..dst + bytes.len()].copy_from_slice(&bytes);
        }
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fvfs_types::BlockId;

    fn sl(id: u64, pos: u32, len: u32) -> Slice {
        Slice {
            id,
            pos,
            len,
            zero: false,
            blocks: vec![BlockRef {
                id: BlockId([id as u8; 32]),
                len,
            }],
        }
    }

    #[test]
    fn overlay_newest_wins() {
        let segs = resolve(&[sl(1, 0, 100), sl(2, 10, 10), sl(3, 50, 100)]);
        let v: Vec<_> = segs.iter().map(|g| (g.start, g.end, g.slice)).collect();
        assert_eq!(v, vec![(0, 10, 0), (10, 20, 1), (20, 50, 0), (50, 150, 2)]);
    }
}
