//! The write path: per-inode write buffers, cut into FastCDC blocks, uploaded
//! concurrently, committed as slices.
//!
//! A buffer is a sorted list of disjoint *extents*. Each extent is a run of sealed blocks
//! (cut, being uploaded, bytes kept for reads) followed by an unsealed tail. A write that
//! appends to or lands in an extent's tail is merged there; a write touching sealed bytes
//! or spanning extents first commits everything. Tails are cut once they reach
//! `seal_bytes`; a cut never crosses a 64 MiB chunk boundary, so every block belongs to one
//! chunk and a slice is a run of consecutive blocks of one chunk. Uploaded prefixes are
//! committed once they reach `commit_bytes`; `flush_inode` cuts and commits everything.
//! This file holds the buffer and its incremental commits; `write/commit.rs` the commits
//! of a whole buffer (fsync, close, store, compaction).
//!
//! Dedup: a block whose row exists with refcount > 0 is not uploaded again; its id is
//! pinned (gc.rs) from that check until the commit, so GC cannot remove it in between.
//! A failed commit keeps the pins of the blocks it could not commit (they stay in the
//! buffer for the next attempt); a sealed block dropped uncommitted (discarded buffer)
//! releases its pin.
//!
//! Failure: a failed upload or commit leaves the buffer as it was (minus what was
//! committed), so any later flush, fsync, release or the writeback worker can retry it;
//! bytes are only ever dropped by a truncate or when their inode is purged.

use crate::handle::InodeState;
use crate::read::ChunkMap;
use crate::slices::slices_of;
use crate::tiering::BlockPins;
use crate::tiering::{await_uploads, block_ids, Uploaded};
use crate::{now_ns, Result, Vfs, VfsError};
use bytes::Bytes;
use fvfs_chunk::cdc;
use fvfs_meta::{Attr, Commit, JournalReset};
use fvfs_types::{Ino, CHUNK_SIZE};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use tokio::task::JoinHandle;

mod commit;

/// Provisional slices an extent may gather by appends before its tail is cut again.
const MAX_PROVISIONAL: usize = 64;

/// Changed tail ranges tracked per extent before they are merged into one (journal).
const MAX_UNJOURNALED_RANGES: usize = 64;

/// Largest file offset accepted (as ext4 with 4 KiB blocks: 16 TiB).
pub(crate) const MAX_FILE_SIZE: u64 = 16 << 40;

struct Sealed {
    data: Bytes,
    task: Option<JoinHandle<Result<Uploaded>>>,
    done: Option<Uploaded>,
    pins: Arc<BlockPins>,
    /// Where a dropped block waits for its upload (drops may happen off the runtime).
    rt: tokio::runtime::Handle,
}

impl Sealed {
    /// Forgets a block whose slice was committed (the commit released its pin).
    fn committed(mut self) {
        self.done = None;
    }
}

impl Drop for Sealed {
    /// An uncommitted block releases the pin its upload took (now or when it ends).
    fn drop(&mut self) {
        if let Some(up) = self.done.take() {
            self.pins.unpin(&[up.meta.id]);
        }
        if let Some(task) = self.task.take() {
            let pins = self.pins.clone();
            self.rt.spawn(async move {
                if let Ok(Ok(up)) = task.await {
                    pins.unpin(&[up.meta.id]);
                }
            });
        }
    }
}

pub(crate) struct Extent {
    start: u64,
    sealed: VecDeque<Sealed>,
    sealed_len: u64,
    tail: Vec<u8>,
    /// Slices committed by `flush`/`fsync` for bytes still in the tail: durable, but cut
    /// at an arbitrary point. The commit that covers up to `provisional_end` removes them,
    /// so the block boundaries of a file do not depend on when it was flushed.
    provisional: Vec<u64>,
    provisional_end: u64,
    /// The tail changed since the provisional slices were committed.
    tail_dirty: bool,
    /// Some provisional slices hold only bytes appended since an earlier fsync, so they
    /// are not cut as a final cut would cut the tail.
    provisional_delta: bool,
    /// Tail ranges `[lo, hi)` (tail offsets, sorted, disjoint) changed since the last
    /// durable point: not in the write journal yet (journal.rs), or, without the journal,
    /// not in the provisional slices.
    pub(crate) unjournaled: Vec<(usize, usize)>,
}

impl Extent {
    fn tail_start(&self) -> u64 {
        self.start + self.sealed_len
    }
    fn end(&self) -> u64 {
        self.tail_start() + self.tail.len() as u64
    }

    /// The tail bytes not in the journal yet, at their file offsets.
    pub(crate) fn unjournaled(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let ts = self.tail_start();
        self.unjournaled
            .iter()
            .map(move |&(lo, hi)| (ts + lo as u64, &self.tail[lo..hi]))
    }

    /// Notes tail bytes `[lo, hi)` as changed since the last journal append.
    fn touch(&mut self, lo: usize, hi: usize) {
        if lo >= hi {
            return;
        }
        let r = &mut self.unjournaled;
        let i = r.partition_point(|&(_, h)| h < lo);
        let mut j = i;
        let (mut a, mut b) = (lo, hi);
        while j < r.len() && r[j].0 <= hi {
            a = a.min(r[j].0);
            b = b.max(r[j].1);
            j += 1;
        }
        r.splice(i..j, [(a, b)]);
        // Many scattered ranges cost a record each: past a bound, one range covers them.
        if r.len() > MAX_UNJOURNALED_RANGES {
            let span = (r[0].0, r[r.len() - 1].1);
            r.clear();
            r.push(span);
        }
    }

    /// The first `n` tail bytes were sealed into blocks: the ranges move with the tail.
    fn tail_cut(&mut self, n: usize) {
        self.unjournaled.retain_mut(|(lo, hi)| {
            *lo = lo.saturating_sub(n);
            *hi = hi.saturating_sub(n);
            lo < hi
        });
    }
}

/// Buffered, not yet committed writes of one inode.
#[derive(Default)]
pub(crate) struct FileState {
    extents: Vec<Extent>,
    /// Size and mtime implied by buffered writes (None when nothing is buffered).
    pending: Option<(u64, i64)>,
    /// The inode has write journal records (journal.rs), and the size and mtime the last
    /// of them implies.
    pub(crate) journaled: bool,
    pub(crate) journaled_pending: Option<(u64, i64)>,
    /// Bytes in the inode's journal records, and when the first of them was appended.
    pub(crate) journal_bytes: u64,
    pub(crate) journaled_since: Option<std::time::Instant>,
}

impl FileState {
    pub(crate) fn pending(&self) -> Option<(u64, i64)> {
        self.pending
    }

    /// The file ranges `[start, end)` holding buffered bytes (for st_blocks).
    pub(crate) fn buffered_ranges(&self) -> Vec<(u64, u64)> {
        self.extents.iter().map(|e| (e.start, e.end())).collect()
    }

    /// Sets the size and mtime the buffered writes imply (spool replay).
    pub(crate) fn set_pending(&mut self, size: u64, mtime: i64) {
        self.pending = Some((size, mtime));
    }

    /// Bytes held by the buffer (sealed and unsealed).
    pub(crate) fn buffered_bytes(&self) -> u64 {
        self.extents
            .iter()
            .map(|e| e.sealed_len + e.tail.len() as u64)
            .sum()
    }

    /// Each extent's buffered bytes as (file offset, bytes), in offset order.
    pub(crate) fn extents_bytes(&self) -> Vec<(u64, Vec<u8>)> {
        self.extents_bytes_but(None)
    }

    /// As `extents_bytes`, without the first `n` sealed blocks of extent `idx` when given
    /// as `Some((idx, n))` (the blocks a commit is storing).
    pub(crate) fn extents_bytes_but(&self, skip: Option<(usize, usize)>) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        for (i, e) in self.extents.iter().enumerate() {
            let n = match skip {
                Some((idx, n)) if idx == i => n,
                _ => 0,
            };
            let mut start = e.start;
            let mut bytes = Vec::with_capacity((e.end() - e.start) as usize);
            for s in e.sealed.iter().take(n) {
                start += s.data.len() as u64;
            }
            for s in e.sealed.iter().skip(n) {
                bytes.extend_from_slice(&s.data);
            }
            bytes.extend_from_slice(&e.tail);
            if !bytes.is_empty() {
                out.push((start, bytes));
            }
        }
        out
    }

    /// Whether a truncate to `size` cuts through buffered bytes (it must commit first).
    pub(crate) fn straddles(&self, size: u64) -> bool {
        self.extents
            .iter()
            .any(|e| e.start < size && e.end() > size)
    }

    /// Extents, for the journal (journal.rs).
    pub(crate) fn extents_mut(&mut self) -> impl Iterator<Item = &mut Extent> {
        self.extents.iter_mut()
    }

    pub(crate) fn extents(&self) -> impl Iterator<Item = &Extent> {
        self.extents.iter()
    }

    /// Drops the buffered bytes at or after `size` once the committed data was truncated
    /// there (at `mtime`). No extent may straddle `size`. Their provisional slices lay past
    /// `size`, so the truncate removed them. What stays buffered now implies the size
    /// `size` and the truncate's mtime.
    pub(crate) fn discard_from(&mut self, size: u64, mtime: i64) {
        debug_assert!(!self.straddles(size));
        self.extents.retain(|e| e.start < size);
        if self.extents.iter().all(|e| e.end() == e.start) {
            self.extents.clear();
            self.pending = None;
        } else if self.pending.is_some() {
            self.pending = Some((size, mtime));
        }
    }

    /// Copies of the buffered bytes within `[off, off + len)`: (file offset, bytes), in
    /// buffer order (extents are disjoint, so the order does not matter).
    pub(crate) fn snapshot(&self, off: u64, len: u64) -> Vec<(u64, Vec<u8>)> {
        let end = off + len;
        let mut out = Vec::new();
        for e in &self.extents {
            if e.end() <= off || e.start >= end {
                continue;
            }
            let mut pos = e.start;
            for s in &e.sealed {
                piece(pos, &s.data, off, end, &mut out);
                pos += s.data.len() as u64;
            }
            piece(pos, &e.tail, off, end, &mut out);
        }
        out
    }
}

/// Adds the part of `src` (at file offset `src_off`) inside `[lo, hi)` to `out`.
fn piece(src_off: u64, src: &[u8], lo: u64, hi: u64, out: &mut Vec<(u64, Vec<u8>)>) {
    let a = src_off.max(lo);
    let b = (src_off + src.len() as u64).min(hi);
    if a < b {
        out.push((
            a,
            src[(a - src_off) as usize..(b - src_off) as usize].to_vec(),
        ));
    }
}

/// Publishes a buffer's pending size/mtime and byte count to the lock-free fields of its
/// state (getattr, retention).
pub(crate) fn publish(st: &InodeState, fs: &FileState) {
    *st.pending_attr.lock() = fs.pending;
    {
        let mut ranges = st.pending_ranges.lock();
        ranges.clear();
        ranges.extend(fs.extents.iter().map(|e| (e.start, e.end())));
    }
    st.buffered
        .store(fs.buffered_bytes(), std::sync::atomic::Ordering::SeqCst);
}

impl Vfs {
    pub async fn write(&self, fh: u64, off: u64, data: &[u8]) -> Result<u32> {
        let h = self.handles.get(fh)?;
        if !h.flags.write {
            return Err(VfsError::BadHandle);
        }
        h.wrote.store(true, std::sync::atomic::Ordering::Relaxed);
        let end = off.checked_add(data.len() as u64).ok_or(VfsError::TooBig)?;
        if end > MAX_FILE_SIZE {
            return Err(VfsError::TooBig);
        }
        if data.is_empty() {
            return Ok(0);
        }
        // Bytes whose commit failed stay in memory; past the cap, writes are refused
        // (ENOSPC) rather than buffered without bound.
        let retained = self.handles.retained_bytes();
        if retained > self.cfg.max_retained_bytes {
            return Err(VfsError::Backlog(retained));
        }
        self.tiering.state.note_foreground();
        let st = h.state.clone();
        let mut fs = st.file.lock().await;
        self.buffer_write(&st, &mut fs, off, data).await?;
        Ok(data.len() as u32)
    }

    pub(crate) async fn buffer_write(
        &self,
        st: &InodeState,
        fs: &mut FileState,
        off: u64,
        data: &[u8],
    ) -> Result<()> {
        let end = off + data.len() as u64;
        let base_size = match fs.pending {
            Some((s, _)) => s,
            None => self.meta.getattr(st.ino)?.size,
        };
        let host = fs
            .extents
            .iter()
            .position(|e| off >= e.tail_start() && off <= e.end());
        let overlaps_other = fs
            .extents
            .iter()
            .enumerate()
            .any(|(i, e)| Some(i) != host && e.start < end && off < e.end());
        let idx = match host {
            Some(i) if !overlaps_other => {
                let e = &mut fs.extents[i];
                let rel = (off - e.tail_start()) as usize;
                let overlap = (e.tail.len() - rel).min(data.len());
                e.tail[rel..rel + overlap].copy_from_slice(&data[..overlap]);
                e.tail.extend_from_slice(&data[overlap..]);
                e.tail_dirty = true;
                e.touch(rel, rel + data.len());
                i
            }
            _ => {
                let touches = fs.extents.iter().any(|e| e.start < end && off < e.end());
                if touches || fs.extents.len() >= 256 {
                    self.commit_all(st, fs).await?;
                }
                let i = fs.extents.partition_point(|e| e.start < off);
                fs.extents.insert(
                    i,
                    Extent {
                        start: off,
                        sealed: VecDeque::new(),
                        sealed_len: 0,
                        tail: data.to_vec(),
                        provisional: Vec::new(),
                        provisional_end: 0,
                        tail_dirty: true,
                        provisional_delta: false,
                        unjournaled: vec![(0, data.len())],
                    },
                );
                i
            }
        };
        let size = fs.pending.map(|p| p.0).unwrap_or(base_size).max(end);
        fs.pending = Some((size, now_ns()));
        publish(st, fs);
        if fs.extents[idx].tail.len() >= self.cfg.seal_bytes {
            self.seal(&mut fs.extents[idx], false);
            self.commit_uploaded(st, fs, idx).await?;
        }
        Ok(())
    }

    /// Cuts an extent's tail into blocks and starts their uploads. Without `eof` the last,
    /// possibly incomplete block stays in the tail.
    fn seal(&self, e: &mut Extent, eof: bool) {
        let params = self.settings.cdc;
        loop {
            let ts = e.tail_start();
            let room = (CHUNK_SIZE - ts % CHUNK_SIZE) as usize;
            let avail = e.tail.len();
            if avail == 0 {
                break;
            }
            let window = avail.min(room);
            let at_boundary = avail >= room;
            let lens = cdc::cut(&e.tail[..window], &params, eof || at_boundary);
            let total: usize = lens.iter().sum();
            if total == 0 {
                break;
            }
            let rest = e.tail.split_off(total);
            e.tail_cut(total);
            let bytes = Bytes::from(std::mem::replace(&mut e.tail, rest));
            let mut pos = 0;
            for len in lens {
                let data = bytes.slice(pos..pos + len);
                pos += len;
                e.sealed.push_back(Sealed {
                    task: Some(self.tiering.spawn_upload(data.clone())),
                    data,
                    done: None,
                    pins: self.tiering.pins.clone(),
                    rt: tokio::runtime::Handle::current(),
                });
            }
            e.sealed_len += total as u64;
            if !(eof || at_boundary) {
                break;
            }
        }
    }

    /// Commits the finished uploads at the front of extent `idx` once they reach
    /// `commit_bytes`; waits for uploads when too many bytes are in flight.
    async fn commit_uploaded(&self, st: &InodeState, fs: &mut FileState, idx: usize) -> Result<()> {
        let e = &mut fs.extents[idx];
        // Back-pressure: wait for the oldest uploads while too much is in flight.
        if e.sealed_len as usize > self.cfg.max_inflight_bytes {
            let mut waited = 0u64;
            for s in e.sealed.iter_mut() {
                finish(self, s).await?;
                waited += s.data.len() as u64;
                if waited >= self.cfg.commit_bytes as u64 {
                    break;
                }
            }
            self.commit_front(st, fs, idx).await?;
            return Ok(());
        }
        let mut ready = 0u64;
        for s in e.sealed.iter() {
            let finished = s.done.is_some() || s.task.as_ref().is_some_and(|t| t.is_finished());
            if !finished {
                break;
            }
            ready += s.data.len() as u64;
        }
        if ready >= self.cfg.commit_bytes as u64 {
            for s in e.sealed.iter_mut() {
                if s.done.is_none() && !s.task.as_ref().is_some_and(|t| t.is_finished()) {
                    break;
                }
                finish(self, s).await?;
            }
            self.commit_front(st, fs, idx).await?;
        }
        Ok(())
    }

    /// Commits the leading run of finished sealed blocks of extent `idx` as slices.
    async fn commit_front(&self, st: &InodeState, fs: &mut FileState, idx: usize) -> Result<()> {
        let mtime = fs.pending.map(|p| p.1);
        let e = &mut fs.extents[idx];
        let n = e.sealed.iter().take_while(|s| s.done.is_some()).count();
        if n == 0 {
            return Ok(());
        }
        let blocks: Vec<(u64, Uploaded)> = {
            let mut pos = e.start;
            e.sealed
                .iter()
                .take(n)
                .map(|s| {
                    let at = pos;
                    pos += s.data.len() as u64;
                    (at, s.done.expect("checked"))
                })
                .collect()
        };
        let covers = !e.provisional.is_empty()
            && blocks
                .last()
                .map(|(at, u)| at + u.meta.size as u64)
                .unwrap_or(0)
                >= e.provisional_end;
        let supersede = if covers {
            std::mem::take(&mut e.provisional)
        } else {
            Vec::new()
        };
        let rest = fs.journaled.then(|| fs.extents_bytes_but(Some((idx, n))));
        let rest_refs: Vec<(u64, &[u8])> = rest
            .iter()
            .flatten()
            .map(|(o, b)| (*o, b.as_slice()))
            .collect();
        let journal = fs.journaled.then(|| JournalReset {
            records: &rest_refs,
            size: fs.pending.map_or(0, |p| p.0),
            mtime: fs.pending.map_or(0, |p| p.1),
        });
        let end = match self.commit_blocks(st.ino, &blocks, mtime, &supersede, journal) {
            Ok((end, _)) => end,
            Err(err) => {
                fs.extents[idx].provisional = supersede;
                return Err(err);
            }
        };
        if fs.journaled {
            // The journal now holds every buffered byte.
            for e in fs.extents.iter_mut() {
                e.unjournaled.clear();
            }
            fs.journaled_pending = fs.pending;
            fs.journal_bytes = rest_refs.iter().map(|r| r.1.len() as u64).sum();
            if rest_refs.is_empty() {
                // Nothing buffered is left: the commit emptied the journal.
                fs.journaled = false;
                fs.journal_bytes = 0;
                fs.journaled_since = None;
            }
        }
        let e = &mut fs.extents[idx];
        for _ in 0..n {
            if let Some(s) = e.sealed.pop_front() {
                s.committed();
            }
        }
        e.sealed_len -= end - e.start;
        e.start = end;
        publish(st, fs);
        st.invalidate();
        let chunks: BTreeSet<u64> = blocks.iter().map(|(at, _)| at / CHUNK_SIZE).collect();
        for c in chunks {
            self.maybe_compact(st, c).await?;
        }
        Ok(())
    }

    /// Commits consecutive blocks (file offset, upload) as slices, removing `supersede`
    /// and replacing the write journal by `journal` when given; returns the end offset and
    /// the new slice ids. The blocks' pins are released on success only: after a failure
    /// the caller still holds them.
    fn commit_blocks(
        &self,
        ino: Ino,
        blocks: &[(u64, Uploaded)],
        mtime: Option<i64>,
        supersede: &[u64],
        journal: Option<JournalReset<'_>>,
    ) -> Result<(u64, Vec<u64>)> {
        let (slices, new_blocks) = slices_of(blocks);
        let end = blocks
            .last()
            .map(|(at, up)| at + up.meta.size as u64)
            .unwrap_or(0);
        let (_, slice_ids) = self.meta.commit(
            ino,
            &Commit {
                slices: &slices,
                new_blocks: &new_blocks,
                min_size: end,
                mtime,
                replicate_to: self.tiering.state.replica_mask,
                supersede,
                journal,
            },
        )?;
        self.tiering.note_queued(&new_blocks);
        self.tiering.pins.unpin(&block_ids(blocks));
        if !supersede.is_empty() {
            self.tiering.gc_wake();
        }
        Ok((end, slice_ids))
    }
}

/// Waits for a sealed block's upload; a failed upload is retried once from its bytes.
async fn finish(vfs: &Vfs, s: &mut Sealed) -> Result<()> {
    if s.done.is_some() {
        return Ok(());
    }
    let first = match s.task.take() {
        Some(t) => t
            .await
            .map_err(|e| VfsError::Internal(format!("upload task: {e}")))
            .and_then(|r| r),
        None => Err(VfsError::Internal("upload lost".into())),
    };
    let up = match first {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "block upload failed; retrying once");
            match vfs.tiering.spawn_upload(s.data.clone()).await {
                Ok(Ok(u)) => u,
                Ok(Err(e)) => {
                    s.task = Some(vfs.tiering.spawn_upload(s.data.clone()));
                    return Err(e);
                }
                Err(e) => return Err(VfsError::Internal(format!("upload task: {e}"))),
            }
        }
    };
    s.done = Some(up);
    Ok(())
}
