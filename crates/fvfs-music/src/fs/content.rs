//! The bytes the view serves: a track's file (its pieces read through the cache, from
//! the best origin on a miss), a cover image, and the prefetch that runs ahead of a
//! sequential reader into the rest of the track and the next track of its directory.
//!
//! Invariants:
//! - A track is read from every origin that has a copy of it (same quick id and size),
//!   with `OriginSet`'s failover; cached windows need no origin at all.
//! - Prefetch never delays a read: it runs on the runtime, at most two windows of the
//!   track being read (the two after the reader's) and one next track at a time (others
//!   are skipped, not queued), and its failures are only logged at debug.

use super::tree::{Core, Cover};
use super::{FsError, Result};
use crate::audio::{build_overlay, Overlay, OverlayError};
use crate::cache::{pieces, whole_file, MusicCache, Piece, WindowSource};
use crate::origin::{OriginError, OriginSet};
use crate::source::RangeSource;
use crate::tags::RangedReader;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::FutureExt;
use fvfs_meta::{MusicNode, MusicTrack};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The origins holding one file: `(origin id, path)`, the track's own first.
pub(crate) struct OriginFetch {
    set: OriginSet,
    candidates: Vec<(String, String)>,
}

impl WindowSource for OriginFetch {
    fn fetch(&self, offset: u64, len: u64) -> BoxFuture<'_, Result<Bytes, OriginError>> {
        self.set
            .read_range_any(&self.candidates, offset, len)
            .boxed()
    }
}

fn copies(core: &Core, t: &MusicTrack) -> Result<Vec<(String, String)>> {
    let mut out = vec![(t.origin.clone(), t.path.clone())];
    for c in core.meta.music_copies(&t.quick_id)? {
        if c.id != t.id && c.error.is_none() && c.size == t.size {
            out.push((c.origin, c.path));
        }
    }
    Ok(out)
}

/// One track's file as the cache serves it.
pub(crate) struct TrackBody {
    pub track: MusicTrack,
    pieces: Vec<Piece>,
    src: Arc<OriginFetch>,
    /// Set on an overlay mount: what is served is this, over the file's audio.
    pub overlay: Option<Arc<Overlay>>,
}

impl TrackBody {
    pub fn new(core: &Core, track: MusicTrack) -> Result<TrackBody> {
        Ok(TrackBody {
            pieces: pieces(&track),
            src: Arc::new(OriginFetch {
                set: core.origins.clone(),
                candidates: copies(core, &track)?,
            }),
            track,
            overlay: None,
        })
    }

    /// The body an open handle serves: with the overlay on an overlay mount.
    pub fn served(core: &Core, track: MusicTrack) -> Result<TrackBody> {
        let overlay = overlay_of(core, &track)?;
        let mut b = TrackBody::new(core, track)?;
        b.overlay = overlay;
        Ok(b)
    }

    /// Length of the original file.
    pub fn len(&self) -> u64 {
        self.track.size
    }

    /// `[offset, offset + len)` of what is served, and the file offset it ends at.
    pub fn read_served(&self, core: &Core, offset: u64, len: u64) -> Result<(Bytes, u64)> {
        let Some(o) = &self.overlay else {
            let b = core.rt.block_on(self.read_file(&core.cache, offset, len))?;
            let end = offset + b.len() as u64;
            return Ok((b, end));
        };
        let start = o.region.start;
        let mut last = start;
        let b = o.read(offset, len, |at, n| {
            last = start + at + n;
            core.rt
                .block_on(self.read_file(&core.cache, start + at, n))
                .map_err(|e| std::io::Error::other(e.to_string()))
        })?;
        Ok((b, last))
    }

    /// `[offset, offset + len)` of the original file (cut at its end).
    pub async fn read_file(&self, cache: &MusicCache, offset: u64, len: u64) -> Result<Bytes> {
        let end = offset.saturating_add(len).min(self.len());
        let mut out: Option<BytesMut> = None;
        let mut first: Option<Bytes> = None;
        for p in &self.pieces {
            let (ps, pe) = (p.start, p.start + p.len);
            if pe <= offset || ps >= end {
                continue;
            }
            let from = offset.max(ps) - ps;
            let to = end.min(pe) - ps;
            let b = cache.read(p, from, to - from, &*self.src).await?;
            match (&mut out, first.take()) {
                (None, None) => first = Some(b),
                (None, Some(prev)) => {
                    let mut buf = BytesMut::with_capacity((end - offset) as usize);
                    buf.extend_from_slice(&prev);
                    buf.extend_from_slice(&b);
                    out = Some(buf);
                }
                (Some(buf), _) => buf.extend_from_slice(&b),
            }
        }
        Ok(match out {
            Some(b) => b.freeze(),
            None => first.unwrap_or_default(),
        })
    }

    /// The piece and window holding file offset `at`, if any.
    fn window_at(&self, cache: &MusicCache, at: u64) -> Option<(Piece, u64)> {
        let p = self
            .pieces
            .iter()
            .find(|p| at >= p.start && at < p.start + p.len)?;
        Some((*p, (at - p.start) / cache.config().window))
    }
}

/// The original file of a track as a blocking [`RangeSource`] through the cache (tag
/// and cover reads). Called from FUSE threads, never from the runtime.
struct CachedFile {
    body: Arc<TrackBody>,
    cache: Arc<MusicCache>,
    rt: tokio::runtime::Handle,
}

impl RangeSource for CachedFile {
    fn len(&self) -> u64 {
        self.body.len()
    }
    fn read_range(&self, offset: u64, len: u64) -> std::io::Result<Bytes> {
        self.rt
            .block_on(self.body.read_file(&self.cache, offset, len))
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// A ranged reader over `t`'s original file through the cache (tag, cover and overlay
/// reads).
fn cached_reader(core: &Core, t: &MusicTrack) -> Result<RangedReader> {
    Ok(RangedReader::new(Arc::new(CachedFile {
        body: Arc::new(TrackBody::new(core, t.clone())?),
        cache: core.cache.clone(),
        rt: core.rt.clone(),
    })))
}

/// The size the view shows for `t`: its file's, or its overlay's.
pub(crate) fn served_size(core: &Core, t: &MusicTrack) -> Result<u64> {
    Ok(match overlay_of(core, t)? {
        Some(o) => o.len(),
        None => t.size,
    })
}

/// Whether `t` is served with the index's tags (an overlay mount, FLAC or MP3).
fn overlaid(core: &Core, t: &MusicTrack) -> bool {
    core.cfg.overlay && matches!(t.format.as_str(), "flac" | "mp3")
}

/// The overlay of `t` on an overlay mount: built from the head of its file (through
/// the cache) and its row, remembered per (track, scan).
pub(crate) fn overlay_of(core: &Core, t: &MusicTrack) -> Result<Option<Arc<Overlay>>> {
    if !overlaid(core, t) {
        return Ok(None);
    }
    if let Some((stamp, o)) = core.overlays.lock().get(&t.id) {
        if *stamp == t.scanned {
            return Ok(Some(o.clone()));
        }
    }
    let mut r = cached_reader(core, t)?;
    let built = match build_overlay(&mut r, t) {
        Ok(Some(o)) => Arc::new(o),
        Ok(None) => return Ok(None),
        Err(OverlayError::Io(e)) => return Err(FsError::Io(e)),
        Err(e) => {
            // A file whose tags cannot be rewritten is served as it is.
            tracing::warn!(track = t.id, error = %e, "no tag overlay for this file; serving it unchanged");
            return Ok(None);
        }
    };
    let mut map = core.overlays.lock();
    if map.len() >= 4096 {
        map.clear();
    }
    map.insert(t.id, (t.scanned, built.clone()));
    Ok(Some(built))
}

/// The embedded front cover of `t`: `cover.jpg` or `cover.png` and its bytes.
pub(crate) fn front_cover(core: &Core, t: &MusicTrack) -> Result<Cover> {
    let mut r = cached_reader(core, t)?;
    let hint = Some(t.format.as_str());
    match crate::tags::front_cover_from(&mut r, hint) {
        Ok(Some((mime, bytes))) => {
            let name = if mime == "image/png" {
                "cover.png"
            } else {
                "cover.jpg"
            };
            Ok(Some((name, bytes)))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            if let Some(src) = r.take_source_error() {
                return Err(FsError::Io(src));
            }
            tracing::debug!(track = t.id, error = %e, "no readable cover");
            Ok(None)
        }
    }
}

/// Windows a sequential reader is prefetched ahead of the one it reads.
const PREFETCH_AHEAD: usize = 2;

/// A folder's own cover image, by name, in order of preference.
const FOLDER_IMAGES: [&str; 6] = [
    "cover.jpg",
    "folder.jpg",
    "front.jpg",
    "cover.png",
    "folder.png",
    "front.png",
];
/// Folder images larger than this are not served as covers.
const MAX_FOLDER_IMAGE: u64 = 16 << 20;

/// The cover image beside `t`'s file on its origin (`cover.jpg`, `folder.jpg`…), read
/// through the cache (keyed by the image's path and stamp, so a cached one serves
/// offline for as long as its stamp is known this mount). None when there is none or
/// the origin cannot say (offline): the directory then shows no folder cover.
pub(crate) fn folder_cover(core: &Core, t: &MusicTrack) -> Result<Cover> {
    let Some(origin) = core.origins.get(&t.origin) else {
        return Ok(None);
    };
    // A file at the origin's root has no album folder of its own.
    let Some((dir, _)) = t.path.rsplit_once('/') else {
        return Ok(None);
    };
    for name in FOLDER_IMAGES {
        let path = format!("{dir}/{name}");
        let entry = match core.rt.block_on(origin.stat(&path)) {
            Ok(e) => e,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                tracing::debug!(origin = %t.origin, path, error = %e, "cannot look for a folder cover");
                return Ok(None);
            }
        };
        if entry.size == 0 || entry.size > MAX_FOLDER_IMAGE {
            continue;
        }
        let mut h = blake3::Hasher::new();
        h.update(b"fvfs-music folder image 1\0");
        h.update(t.origin.as_bytes());
        h.update(b"\0");
        h.update(path.as_bytes());
        h.update(b"\0");
        h.update(&entry.size.to_le_bytes());
        let mtime = entry
            .mtime
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        h.update(&mtime.to_le_bytes());
        h.update(entry.etag.as_deref().unwrap_or("").as_bytes());
        let piece = whole_file(h.finalize().as_bytes(), entry.size);
        let src = OriginFetch {
            set: core.origins.clone(),
            candidates: vec![(t.origin.clone(), path)],
        };
        let bytes = core
            .rt
            .block_on(core.cache.read(&piece, 0, entry.size, &src))?;
        let shown = if name.ends_with(".png") {
            "cover.png"
        } else {
            "cover.jpg"
        };
        return Ok(Some((shown, bytes)));
    }
    Ok(None)
}

/// What an open handle reads.
pub(crate) enum Body {
    Track(Arc<TrackBody>),
    Bytes(Bytes),
}

/// An open file: its body and where the last read ended (sequential detection).
pub(crate) struct OpenTrack {
    body: Body,
    parent: Option<(u64, u64)>,
    last_end: AtomicU64,
    next_warmed: std::sync::atomic::AtomicBool,
    /// File offset of the window whose prefetch was last started in full.
    warmed_from: AtomicU64,
}

impl OpenTrack {
    pub fn new(body: Body, parent: Option<(u64, u64)>) -> OpenTrack {
        OpenTrack {
            body,
            parent,
            last_end: AtomicU64::new(u64::MAX),
            next_warmed: std::sync::atomic::AtomicBool::new(false),
            warmed_from: AtomicU64::new(u64::MAX),
        }
    }

    pub fn read(&self, core: &Core, offset: u64, len: u64) -> Result<Bytes> {
        let body = match &self.body {
            Body::Bytes(b) => {
                let s = (offset as usize).min(b.len());
                let e = (offset.saturating_add(len) as usize).min(b.len());
                return Ok(b.slice(s..e));
            }
            Body::Track(t) => t,
        };
        let (data, file_end) = body.read_served(core, offset, len)?;
        let end = offset + data.len() as u64;
        // The kernel's readahead runs several reads at once, so they arrive a little out
        // of order: a read that starts near where the last one ended is sequential.
        let prev = self.last_end.swap(end, Ordering::Relaxed);
        let slack = 2 * core.cache.config().window;
        let sequential = prev != u64::MAX && offset.abs_diff(prev) <= slack;
        if core.cfg.prefetch && sequential {
            self.prefetch(core, body, file_end);
        }
        crate::fs::record_bytes(data.len() as u64);
        Ok(data)
    }

    /// Warms the window after the one holding `end`, and near the end of the file the
    /// first windows of the next track of the directory.
    fn prefetch(&self, core: &Core, body: &Arc<TrackBody>, end: u64) {
        let w = core.cache.config().window;
        // The next track first: near the end it matters more than this track's tail.
        if end + 2 * w >= body.len() && !self.next_warmed.load(Ordering::Relaxed) {
            match self.next_track(core, body.track.id) {
                Some(next) => {
                    let first: Vec<(Piece, u64)> =
                        next.pieces.iter().take(2).map(|p| (*p, 0)).collect();
                    // Skipped while two prefetches run: the next read tries again.
                    if warm(&core.prefetching_next, core, next.src.clone(), first) {
                        self.next_warmed.store(true, Ordering::Relaxed);
                    }
                }
                None => self.next_warmed.store(true, Ordering::Relaxed),
            }
        }
        // The next two windows, each on its own slot: two fetches in flight keep an
        // origin (or the cache's disk) busy while the reader consumes this window. Once
        // per window the reader is in (a window is read in many requests), unless a
        // prefetch found no free slot and the next read must try again.
        let mut at = body.window_at(&core.cache, end);
        let Some((piece, idx)) = at else { return };
        let this_window = piece.start + idx * w;
        if self.warmed_from.load(Ordering::Relaxed) == this_window {
            return;
        }
        let mut started = true;
        for _ in 0..PREFETCH_AHEAD {
            let Some((piece, idx)) = at else { break };
            at = if (idx + 1) * w < piece.len {
                Some((piece, idx + 1))
            } else {
                body.window_at(&core.cache, piece.start + piece.len)
            };
            if let Some((p, i)) = at {
                started &= warm(&core.prefetching, core, body.src.clone(), vec![(p, i)]);
            }
        }
        if started {
            self.warmed_from.store(this_window, Ordering::Relaxed);
        }
    }

    /// The track after `track` in the directory it was opened from, by name.
    fn next_track(&self, core: &Core, track: u64) -> Option<TrackBody> {
        let (view, dir) = self.parent?;
        let entries = core.meta.music_readdir(view, dir, None, 10_000).ok()?;
        let pos = entries
            .iter()
            .position(|e| e.node == MusicNode::Track(track))?;
        let next = entries[pos + 1..].iter().find_map(|e| match e.node {
            MusicNode::Track(t) => Some(t),
            MusicNode::Dir(_) => None,
        })?;
        TrackBody::new(core, core.track(next).ok()?).ok()
    }
}

/// Starts warming `windows` unless `slots` are all taken; whether it started.
fn warm(
    slots: &Arc<tokio::sync::Semaphore>,
    core: &Core,
    src: Arc<OriginFetch>,
    windows: Vec<(Piece, u64)>,
) -> bool {
    let Ok(permit) = slots.clone().try_acquire_owned() else {
        return false;
    };
    let cache = core.cache.clone();
    core.rt.spawn(async move {
        for (piece, idx) in windows {
            if let Err(e) = cache.warm(&piece, idx, &*src).await {
                tracing::debug!(error = %e, "prefetch failed");
                break;
            }
        }
        drop(permit);
    });
    true
}
