//! The commits of a write buffer as a whole: durable without ending it (fsync: the
//! journal, or provisional slices without it), everything (close, writeback), and the
//! operations built on them (sync, store, replace the content, compact a chunk).
//!
//! Invariant (provisional slices, without the journal): they hold exactly the tail's
//! bytes as of the last fsync; slices made from appends only (`provisional_delta`) are
//! never kept as final blocks, so a file's block boundaries do not depend on when it was
//! fsynced.

use super::*;

impl Vfs {
    /// Makes every buffered byte durable without ending the write buffer: complete blocks
    /// are committed for good, the tails as provisional slices (see `Extent`).
    pub(crate) async fn commit_durable(&self, st: &InodeState, fs: &mut FileState) -> Result<()> {
        if self.journal {
            return self.journal_durable(st, fs).await;
        }
        self.commit_provisional(st, fs).await?;
        self.meta.sync()?;
        Ok(())
    }

    /// Stores every buffered byte as blocks (the metadata unsynced): complete blocks for
    /// good, the tails as provisional slices. A buffer whose bytes are in the write
    /// journal is stored whole instead (`commit_all`): provisional slices under journal
    /// records would let a replay put older journaled bytes over newer committed ones.
    pub(crate) async fn commit_provisional(
        &self,
        st: &InodeState,
        fs: &mut FileState,
    ) -> Result<()> {
        if fs.journaled {
            return self.commit_all(st, fs).await;
        }
        let mtime = fs.pending.map(|p| p.1);
        let mut committed_end = 0;
        for i in 0..fs.extents.len() {
            if !fs.extents[i].tail_dirty && fs.extents[i].sealed.is_empty() {
                committed_end = committed_end.max(fs.extents[i].provisional_end);
                continue;
            }
            self.seal(&mut fs.extents[i], false);
            for s in fs.extents[i].sealed.iter_mut() {
                finish(self, s).await?;
            }
            self.commit_front(st, fs, i).await?;
            let e = &mut fs.extents[i];
            committed_end = committed_end.max(e.start);
            if e.tail.is_empty() {
                continue;
            }
            // Only appended to since the last provisional commit: only the new bytes are
            // stored, as more provisional slices (linear, not quadratic, in the appends;
            // a database's log fsyncs every few KiB). Past `MAX_PROVISIONAL` slices, or
            // after an overwrite, the whole tail is cut again.
            let ts = e.tail_start();
            let from = if !e.provisional.is_empty()
                && e.provisional.len() < MAX_PROVISIONAL
                && e.provisional_end >= ts
                && e.provisional_end < e.end()
                && e.unjournaled
                    .iter()
                    .all(|&(lo, _)| ts + lo as u64 >= e.provisional_end)
            {
                (e.provisional_end - ts) as usize
            } else {
                0
            };
            let tail = Bytes::copy_from_slice(&e.tail[from..]);
            let base = ts + from as u64;
            let mut uploads = Vec::new();
            let mut pos = 0usize;
            for len in cdc::cut(&tail, &self.settings.cdc, true) {
                uploads.push((
                    base + pos as u64,
                    self.tiering.spawn_upload(tail.slice(pos..pos + len)),
                ));
                pos += len;
            }
            let blocks = await_uploads(&self.tiering.pins, uploads).await?;
            let e = &mut fs.extents[i];
            let supersede = if from == 0 {
                std::mem::take(&mut e.provisional)
            } else {
                Vec::new()
            };
            match self.commit_blocks(st.ino, &blocks, mtime, &supersede, None) {
                Ok((end, ids)) => {
                    let e = &mut fs.extents[i];
                    e.provisional.extend(ids);
                    e.provisional_delta = from > 0;
                    e.provisional_end = end;
                    e.tail_dirty = false;
                    e.unjournaled.clear();
                    committed_end = committed_end.max(end);
                }
                Err(err) => {
                    // The tail stays buffered; these copies of it are not kept.
                    self.tiering.pins.unpin(&block_ids(&blocks));
                    fs.extents[i].provisional = supersede;
                    return Err(err);
                }
            }
        }
        if let Some((size, mtime)) = fs.pending {
            let c = Commit {
                min_size: size,
                mtime: Some(mtime),
                ..Default::default()
            };
            self.meta.commit(st.ino, &c)?;
        }
        st.invalidate();
        Ok(())
    }

    /// Waits for every sealed block's upload and commits them (the tails stay buffered).
    pub(crate) async fn commit_sealed(&self, st: &InodeState, fs: &mut FileState) -> Result<()> {
        for i in 0..fs.extents.len() {
            for s in fs.extents[i].sealed.iter_mut() {
                finish(self, s).await?;
            }
            self.commit_front(st, fs, i).await?;
        }
        Ok(())
    }

    /// Cuts, uploads and commits every buffered write of `st`.
    pub(crate) async fn commit_all(&self, st: &InodeState, fs: &mut FileState) -> Result<()> {
        let mut committed_end = 0;
        for i in 0..fs.extents.len() {
            let e = &mut fs.extents[i];
            if !e.tail_dirty
                && !e.provisional_delta
                && e.sealed.is_empty()
                && !e.provisional.is_empty()
            {
                // The provisional slices hold exactly the tail, cut as a final cut would:
                // they are final.
                e.provisional.clear();
                e.tail.clear();
                committed_end = committed_end.max(e.provisional_end);
                continue;
            }
            self.seal(&mut fs.extents[i], true);
            for s in fs.extents[i].sealed.iter_mut() {
                finish(self, s).await?;
            }
            self.commit_front(st, fs, i).await?;
            committed_end = committed_end.max(fs.extents[i].start);
        }
        // Blocks committed before a later write extended the size leave the size to set;
        // the journal records (if any) are stored now and go.
        let grow = fs.pending.filter(|p| p.0 > committed_end);
        if grow.is_some() || fs.journaled {
            let c = Commit {
                min_size: grow.map_or(0, |p| p.0),
                mtime: grow.map(|p| p.1),
                journal: fs.journaled.then(JournalReset::default),
                ..Default::default()
            };
            self.meta.commit(st.ino, &c)?;
        }
        fs.extents.clear();
        fs.pending = None;
        fs.journaled = false;
        fs.journaled_pending = None;
        fs.journal_bytes = 0;
        fs.journaled_since = None;
        publish(st, fs);
        st.invalidate();
        self.handles.buffer_emptied(st);
        Ok(())
    }

    /// Makes an open inode's buffered writes durable, keeping the buffer (flush, fsync).
    pub async fn sync_inode(&self, ino: Ino) -> Result<()> {
        if let Some(st) = self.handles.state(ino) {
            let mut fs = st.file.lock().await;
            self.commit_durable(&st, &mut fs).await?;
        }
        Ok(())
    }

    /// Stores an open inode's buffered writes as blocks, keeping the buffer: its tails
    /// become provisional slices, so where a file's blocks are cut does not depend on when
    /// a descriptor of it was closed (every exec of a forked process closes one).
    pub async fn store_durable(&self, ino: Ino) -> Result<()> {
        if let Some(st) = self.handles.state(ino) {
            let mut fs = st.file.lock().await;
            self.commit_provisional(&st, &mut fs).await?;
        }
        Ok(())
    }

    /// Commits an inode's buffered writes and empties its buffer, if it is open, and
    /// syncs the metadata.
    pub async fn flush_inode(&self, ino: Ino) -> Result<()> {
        self.store_inode(ino).await?;
        self.meta.sync()?;
        Ok(())
    }

    /// Commits an inode's buffered writes and empties its buffer, if it is open (the
    /// metadata is synced later: a close is not a durability point).
    pub async fn store_inode(&self, ino: Ino) -> Result<()> {
        if let Some(st) = self.handles.state(ino) {
            let mut fs = st.file.lock().await;
            self.commit_all(&st, &mut fs).await?;
        }
        Ok(())
    }

    /// Gives regular file `ino` the whole committed content of `from` (which has no
    /// buffered writes) in one metadata transaction, under `ino`'s write lock: `ino`'s
    /// buffered writes are committed first (they came before), its cached chunk maps are
    /// dropped after, so every reader and writer of `ino` sees the old content or the new,
    /// never a mixture. The mtime is `mtime`, else now. `from` is left empty.
    pub async fn replace_content(&self, ino: Ino, from: Ino, mtime: Option<i64>) -> Result<Attr> {
        // A handle makes every other user of `ino` share this state (lock and cache).
        let fh = self.open(ino, crate::OpenFlags::READ)?;
        let replaced = async {
            let st = self.handles.get(fh)?.state.clone();
            let mut fs = st.file.lock().await;
            self.commit_all(&st, &mut fs).await?;
            let now = now_ns();
            let a = self
                .meta
                .replace_content(ino, from, mtime.unwrap_or(now), now)?;
            st.invalidate();
            drop(fs);
            if let Some(src) = self.handles.state(from) {
                src.invalidate();
            }
            self.tiering.gc_wake();
            Ok::<_, VfsError>(a)
        }
        .await;
        let released = self.release(fh).await;
        let a = replaced?;
        released?;
        Ok(a)
    }

    /// Compacts a chunk that has more than `compact_slices` slices.
    pub(super) async fn maybe_compact(&self, st: &InodeState, chunk: u64) -> Result<()> {
        if self.meta.chunk_slice_count(st.ino, chunk)? <= self.cfg.compact_slices {
            return Ok(());
        }
        self.compact_chunk(st, chunk).await?;
        Ok(())
    }

    /// Compacts every chunk of regular file `ino` that has more than one slice (`fvfsd
    /// compact`); safe beside writers in other processes and hosts, whose commits win
    /// (see `compact_chunk`). Returns the slices before and after.
    pub async fn compact_file(&self, ino: Ino) -> Result<(u64, u64)> {
        let fh = self.open(ino, crate::OpenFlags::READ)?;
        let done = async {
            let st = self.handles.get(fh)?.state.clone();
            let mut fs = st.file.lock().await;
            self.commit_all(&st, &mut fs).await?;
            let size = self.meta.getattr(ino)?.size;
            let (mut before, mut after) = (0, 0);
            for chunk in 0..size.div_ceil(CHUNK_SIZE) {
                let n = self.meta.chunk_slice_count(ino, chunk)?;
                before += n;
                after += if n > 1 && self.compact_chunk(&st, chunk).await? {
                    self.meta.chunk_slice_count(ino, chunk)?
                } else {
                    n
                };
            }
            drop(fs);
            Ok::<_, VfsError>((before, after))
        }
        .await;
        let released = self.release(fh).await;
        let counts = done?;
        released?;
        Ok(counts)
    }

    /// Rewrites a chunk's slices as few: each contiguous run of data is re-cut
    /// (unchanged blocks dedup), holes are dropped (no slice reads as zeros). The
    /// replacement happens only if the chunk still holds the slices it was read from:
    /// a write, truncate or compaction by another process or host meanwhile wins, and
    /// this returns false (the blocks it uploaded become leaked objects for `gc`).
    pub(crate) async fn compact_chunk(&self, st: &InodeState, chunk: u64) -> Result<bool> {
        let map = ChunkMap::load(self.meta.as_ref(), st.ino, chunk)?;
        let mut uploads: Vec<(u64, JoinHandle<Result<Uploaded>>)> = Vec::new();
        for (start, end) in map.data_runs() {
            let mut buf = vec![0u8; (end - start) as usize];
            self.read_map(&map, start, &mut buf).await?;
            let lens = cdc::cut(&buf, &self.settings.cdc, true);
            let bytes = Bytes::from(buf);
            let mut pos = 0usize;
            for len in lens {
                let at = chunk * CHUNK_SIZE + start + pos as u64;
                uploads.push((at, self.tiering.spawn_upload(bytes.slice(pos..pos + len))));
                pos += len;
            }
        }
        let done = await_uploads(&self.tiering.pins, uploads).await?;
        let (slices, new_blocks) = slices_of(&done);
        let ids = block_ids(&done);
        let res = self.meta.replace_chunk(
            st.ino,
            chunk,
            map.slice_ids(),
            &slices,
            &new_blocks,
            self.tiering.state.replica_mask,
        );
        self.tiering.pins.unpin(&ids);
        if !res? {
            tracing::debug!(
                ino = st.ino,
                chunk,
                "the chunk changed while compacting: left as it is"
            );
            return Ok(false);
        }
        self.tiering.note_queued(&new_blocks);
        st.invalidate();
        self.tiering.gc_wake();
        Ok(true)
    }
}
