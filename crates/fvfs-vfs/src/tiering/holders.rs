//! Payloads held by a holder instead of a file: `put_held` stores bytes as blocks through
//! the block store (CDC cut, encode, dedup against live blocks, tier choice, replication
//! queued to the durable tier) and makes the holder (kind, key) hold them
//! (`fvfs_meta::HolderStore`); `read_held` reads a payload back from its block list;
//! `held_writer` stores a payload of any size a window at a time; `read_held_blocks`
//! reads some of its blocks (a partial recall); `durable_verified` says whether a
//! payload can leave the native disk;
//! `release_held` drops the holder, after which blocks no one else references are
//! garbage-collected after the grace. No inode is involved: a face (HSM archive, music
//! cache) keeps the returned `BlockRef`s in its own tables.
//!
//! Invariant: as on the write path, each uploaded block stays pinned against GC
//! (gc.rs) from its dedup check until the hold committed or failed.

use super::upload::{await_uploads, block_ids, Placement, Uploaded};
use super::Tiering;
use crate::{Result, VfsError};
use bytes::Bytes;
use fvfs_chunk::cdc;
use fvfs_meta::{BlockRef, MetaError, NewBlock};
use fvfs_types::BlockId;

impl Tiering {
    /// Stores `data` as blocks held by (kind, key) and returns the payload's block list,
    /// in order. Storing the same payload again under the same holder adds nothing; under
    /// another holder it shares the blocks. Kind "file" is reserved (files hold blocks
    /// through their slices).
    pub async fn put_held(&self, kind: &str, key: &[u8], data: Bytes) -> Result<Vec<BlockRef>> {
        let mut pieces = Vec::new();
        let mut pos = 0usize;
        for len in cdc::cut(&data, &self.settings.cdc, true) {
            pieces.push(data.slice(pos..pos + len));
            pos += len;
        }
        self.hold_pieces(kind, key, pieces).await
    }

    /// A writer that stores a payload of any size as blocks held by (kind, key), a window
    /// at a time (memory stays bounded): `write` the bytes in order, then `finish`. Each
    /// full window is held as it is stored, so an interrupted payload leaves (kind, key)
    /// holding part of it; the face rolls it back with `release_held`.
    pub fn held_writer<'a>(&'a self, kind: &'a str, key: &'a [u8]) -> HeldWriter<'a> {
        self.held_writer_to(kind, key, Placement::Hottest)
    }

    /// As `held_writer`, with new blocks written where `placement` says.
    pub fn held_writer_to<'a>(
        &'a self,
        kind: &'a str,
        key: &'a [u8],
        placement: Placement,
    ) -> HeldWriter<'a> {
        HeldWriter {
            placement,
            tiering: self,
            kind,
            key,
            buf: Vec::new(),
            refs: Vec::new(),
            hasher: blake3::Hasher::new(),
            len: 0,
            in_flight: None,
        }
    }

    /// Uploads `pieces` (one block each) and makes (kind, key) hold them; returns their
    /// references in order.
    async fn hold_pieces(
        &self,
        kind: &str,
        key: &[u8],
        pieces: Vec<Bytes>,
    ) -> Result<Vec<BlockRef>> {
        let uploads = self.spawn_pieces(pieces, Placement::Hottest);
        self.hold_uploads(kind, key, uploads).await
    }

    /// Stores `data` as blocks held by (kind, key) for a cache of bytes another source
    /// keeps (the music face's copies of its origins' files): new blocks go to the
    /// hottest tier and are not queued for replication, so they cost no durable
    /// storage, and tier eviction never drops them (it only drops copies the durable
    /// tier also has); the face bounds them itself by releasing holders. With `rewrite`
    /// every block's object is written again even if a live row says it exists (a
    /// stored copy failed verification, and `data` are its bytes fetched again), and the
    /// tier written is added to its row.
    pub async fn put_cached(
        &self,
        kind: &str,
        key: &[u8],
        data: Bytes,
        rewrite: bool,
    ) -> Result<Vec<BlockRef>> {
        let mut uploads = Vec::new();
        let mut pos = 0usize;
        for len in cdc::cut(&data, &self.settings.cdc, true) {
            let piece = data.slice(pos..pos + len);
            uploads.push((
                pos as u64,
                self.spawn_upload_with(piece, Placement::Hottest, rewrite),
            ));
            pos += len;
        }
        let blocks = await_uploads(&self.pins, uploads).await?;
        let ids = block_ids(&blocks);
        let mut new_blocks: Vec<NewBlock> = Vec::new();
        for (_, up) in &blocks {
            if up.new {
                if !new_blocks.iter().any(|b| b.id == up.meta.id) {
                    new_blocks.push(up.new_block());
                }
            } else if rewrite {
                if let Err(e) = self.meta.set_block_tiers(&up.meta.id, 1 << up.tier, 0) {
                    self.pins.unpin(&ids);
                    return Err(e.into());
                }
            }
        }
        let held = self.meta.hold(kind, key, &ids, &new_blocks, 0);
        self.pins.unpin(&ids);
        held?;
        Ok(blocks
            .iter()
            .map(|(_, up)| BlockRef {
                id: up.meta.id,
                len: up.meta.size,
            })
            .collect())
    }

    /// Starts one upload per piece (they run while the caller goes on).
    fn spawn_pieces(&self, pieces: Vec<Bytes>, placement: Placement) -> Uploads {
        let mut uploads = Vec::with_capacity(pieces.len());
        let mut pos = 0u64;
        for p in pieces {
            let len = p.len() as u64;
            uploads.push((pos, self.spawn_upload_to(p, placement)));
            pos += len;
        }
        uploads
    }

    /// Waits for `uploads` and makes (kind, key) hold their blocks; returns their
    /// references in order. Every pin the uploads took is released, held or not.
    async fn hold_uploads(
        &self,
        kind: &str,
        key: &[u8],
        uploads: Uploads,
    ) -> Result<Vec<BlockRef>> {
        let blocks = await_uploads(&self.pins, uploads).await?;
        let ids = block_ids(&blocks);
        let mut new_blocks: Vec<NewBlock> = Vec::new();
        for (_, up) in blocks.iter().filter(|(_, up)| up.new) {
            if !new_blocks.iter().any(|b| b.id == up.meta.id) {
                new_blocks.push(up.new_block());
            }
        }
        let held = self
            .meta
            .hold(kind, key, &ids, &new_blocks, self.state.replica_mask);
        // Held or not, these uploads need the pins no longer: after a failure their
        // objects are garbage that nothing references.
        self.pins.unpin(&ids);
        held?;
        self.note_queued(&new_blocks);
        Ok(blocks
            .iter()
            .map(|(_, up)| BlockRef {
                id: up.meta.id,
                len: up.meta.size,
            })
            .collect())
    }

    /// Reads the blocks `refs` names (as `put_held` returned them), which (kind, key)
    /// must hold: a block it does not hold is `NotFound`. Each block is verified against
    /// its id by the block store.
    pub async fn read_held_blocks(
        &self,
        kind: &str,
        key: &[u8],
        refs: &[BlockRef],
    ) -> Result<Vec<Bytes>> {
        let ids: Vec<BlockId> = refs.iter().map(|r| r.id).collect();
        if self.meta.holds(kind, key, &ids)?.contains(&false) {
            return Err(MetaError::NotFound.into());
        }
        let mut fetches = Vec::with_capacity(refs.len());
        let now = crate::now_ns();
        for r in refs {
            let row = self
                .meta
                .get_block(&r.id)?
                .ok_or(MetaError::MissingBlock(r.id))?;
            self.state.note_access(r.id, now);
            let store = self.store.clone();
            let (id, len) = (r.id, r.len);
            fetches.push(async move { store.fetch_masked(&id, row.codec, len, row.tiers).await });
        }
        let parts = futures::future::try_join_all(fetches).await?;
        for (r, part) in refs.iter().zip(&parts) {
            if part.len() != r.len as usize {
                return Err(VfsError::Internal(format!(
                    "block {} has {} bytes, the payload says {}",
                    r.id,
                    part.len(),
                    r.len
                )));
            }
        }
        Ok(parts)
    }

    /// Starts fetching `refs` into the block store's memory cache without waiting: the
    /// next window of a sequential recall, fetched while the reader consumes this one.
    /// A later [`Tiering::read_held_blocks`] finds them there (or joins the fetch in
    /// flight) and still checks the holder; a failed prefetch is only logged at debug
    /// level, the read then fetches again.
    pub fn prefetch_held(&self, refs: &[BlockRef]) -> Result<()> {
        for r in refs {
            if let Some(row) = self.meta.get_block(&r.id)? {
                self.store.prefetch(r.id, row.codec, r.len, row.tiers);
            }
        }
        Ok(())
    }

    /// Whether every block of `refs` has a verified copy on the durable tier: its row
    /// records the durable bit, and the object there reads back and matches its id.
    /// Every row is checked first; then the copies are read back `VERIFY_PARALLEL` at a
    /// time (one after the other, a payload's verification was a chain of round trips).
    pub async fn durable_verified(&self, refs: &[BlockRef]) -> Result<bool> {
        use futures::StreamExt;
        let durable = self.state.durable;
        let mut codecs = Vec::with_capacity(refs.len());
        for r in refs {
            let Some(row) = self.meta.get_block(&r.id)? else {
                return Err(MetaError::MissingBlock(r.id).into());
            };
            if row.tiers & (1 << durable) == 0 {
                return Ok(false);
            }
            codecs.push((r.id, row.codec));
        }
        let mut checks = futures::stream::iter(codecs)
            .map(|(id, codec)| async move { (id, self.store.verify_on(&id, codec, durable).await) })
            .buffer_unordered(VERIFY_PARALLEL);
        while let Some((id, res)) = checks.next().await {
            if let Err(e) = res {
                tracing::warn!(block = %id, error = %e, "the durable copy does not verify");
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads the payload of `refs` (as `put_held` returned them), which (kind, key) must
    /// hold: a block it does not hold is `NotFound`.
    pub async fn read_held(&self, kind: &str, key: &[u8], refs: &[BlockRef]) -> Result<Bytes> {
        let parts = self.read_held_blocks(kind, key, refs).await?;
        let mut out = Vec::with_capacity(refs.iter().map(|r| r.len as usize).sum());
        for part in parts {
            out.extend_from_slice(&part);
        }
        Ok(Bytes::from(out))
    }

    /// Drops the holder (kind, key); returns the blocks it held. Blocks no file or other
    /// holder references become garbage, deleted by GC after the grace.
    pub fn release_held(&self, kind: &str, key: &[u8]) -> Result<Vec<BlockId>> {
        let ids = self.meta.release(kind, key)?;
        if !ids.is_empty() {
            self.gc_wake();
        }
        Ok(ids)
    }
}

/// Durable copies read back at once by `durable_verified`.
const VERIFY_PARALLEL: usize = 8;

/// Uploads in flight, each with its offset in its batch.
type Uploads = Vec<(u64, tokio::task::JoinHandle<Result<Uploaded>>)>;

/// Bytes cut per window by a [`HeldWriter`]. Two windows are in memory at most (the one
/// being filled and the one uploading), plus one block.
const HELD_WINDOW: usize = 32 << 20;

/// A payload written a window at a time (`Tiering::held_writer`). A full window's
/// uploads run while the next window is read, hashed and cut; they are held (committed)
/// when that next window is full, or at `finish`.
pub struct HeldWriter<'a> {
    tiering: &'a Tiering,
    kind: &'a str,
    key: &'a [u8],
    buf: Vec<u8>,
    refs: Vec<BlockRef>,
    hasher: blake3::Hasher,
    len: u64,
    /// The previous window's uploads, not held yet.
    in_flight: Option<Uploads>,
    placement: Placement,
}

impl Drop for HeldWriter<'_> {
    /// A writer given up (an error, or its caller's) with uploads in flight: they finish
    /// on their own, and their pins are released then, or their blocks would be spared
    /// by GC until the process ends. Nothing holds them: they are garbage.
    fn drop(&mut self) {
        let Some(uploads) = self.in_flight.take() else {
            return;
        };
        let pins = self.tiering.pins.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            if let Ok(done) = await_uploads(&pins, uploads).await {
                pins.unpin(&block_ids(&done));
            }
        });
    }
}

/// What a finished [`HeldWriter`] stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldPayload {
    /// The payload's blocks in order.
    pub refs: Vec<BlockRef>,
    pub len: u64,
    /// BLAKE3 of the whole payload.
    pub hash: [u8; 32],
}

impl HeldWriter<'_> {
    /// Appends `data`; stores and holds every full window.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.hasher.update(data);
        self.len += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= HELD_WINDOW {
            self.flush(false).await?;
        }
        Ok(())
    }

    /// Stores the blocks cut so far; at `eof`, every byte.
    async fn flush(&mut self, eof: bool) -> Result<()> {
        let cuts = cdc::cut(&self.buf, &self.tiering.settings.cdc, eof);
        let used: usize = cuts.iter().sum();
        let data = Bytes::from(std::mem::take(&mut self.buf));
        self.buf = data[used..].to_vec();
        let mut pieces = Vec::with_capacity(cuts.len());
        let mut pos = 0usize;
        for len in cuts {
            pieces.push(data.slice(pos..pos + len));
            pos += len;
        }
        let started =
            (!pieces.is_empty()).then(|| self.tiering.spawn_pieces(pieces, self.placement));
        if let Some(prev) = self.in_flight.take() {
            self.in_flight = started;
            let refs = self.tiering.hold_uploads(self.kind, self.key, prev).await?;
            self.refs.extend(refs);
        } else {
            self.in_flight = started;
        }
        Ok(())
    }

    /// Stores the rest and returns the payload's blocks, length and hash.
    pub async fn finish(mut self) -> Result<HeldPayload> {
        self.flush(true).await?;
        if let Some(last) = self.in_flight.take() {
            let refs = self.tiering.hold_uploads(self.kind, self.key, last).await?;
            self.refs.extend(refs);
        }
        Ok(HeldPayload {
            refs: std::mem::take(&mut self.refs),
            len: self.len,
            hash: *self.hasher.finalize().as_bytes(),
        })
    }
}
