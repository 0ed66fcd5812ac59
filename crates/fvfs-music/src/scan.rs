//! Scanning an origin into the index, incrementally: the origin is listed, a file whose
//! stamp (size, and the entity tag when the origin gives one, else the mtime) equals its
//! row's is left alone, any other audio file has its tags read through a ranged reader
//! (never downloaded whole) and its row written, and rows of files no longer listed are
//! removed.
//!
//! Invariants:
//! - A file that is not audio, or is truncated or malformed, gets a row with `error`
//!   set (views leave it out) and is read again only once its stamp changes: one bad
//!   file never stops a scan and is never re-read in a loop.
//! - A file whose read fails on the origin (I/O, timeout) keeps its previous row: a flaky
//!   origin never drops tracks from the index. Rows are removed only for files missing
//!   from a listing that succeeded.
//! - The quick id is BLAKE3 over a domain tag, the size, the first and the last
//!   [`QUICK_SPAN`] bytes: what tag reading fetches anyway for most formats. Copies of one
//!   file on several origins share it; a tag edit changes it (tags sit at either end).

use crate::origin::{Origin, OriginEntry, OriginError};
use crate::tags::{read_tags_from, to_track, RangedReader, TagError};
use futures::StreamExt;
use fvfs_meta::{AudioSpan, MetaError, MetaStore, MusicStamp, MusicTrack};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::runtime::Handle;

/// Extensions (lowercase) a scan reads as audio; other files are not indexed.
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "flac", "mp3", "ogg", "oga", "opus", "m4a", "mp4", "aac", "wav", "aif", "aiff", "ape", "wv",
    "mpc", "spx",
];

/// Bytes at each end of a file that its quick id covers.
pub const QUICK_SPAN: u64 = 64 << 10;

/// Files whose tags are read at once (each is a few ranged requests).
const IN_FLIGHT: usize = 4;

/// Why a scan stopped.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("listing origin {origin}: {source}")]
    List { origin: String, source: OriginError },
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// What a scan did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Audio files listed.
    pub seen: u64,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub removed: u64,
    /// Files indexed as unreadable (not audio, truncated, malformed).
    pub unreadable: u64,
    /// Files whose read failed on the origin (their rows kept).
    pub failed: u64,
    /// Bytes fetched from the origin to read tags.
    pub fetched_bytes: u64,
}

fn extension(path: &str) -> Option<String> {
    let name = path.rsplit('/').next()?;
    let (_, ext) = name.rsplit_once('.')?;
    Some(ext.to_ascii_lowercase())
}

fn ns(t: Option<SystemTime>) -> i64 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Whether `e` is the file `stamp` describes.
fn unchanged(stamp: &MusicStamp, e: &OriginEntry) -> bool {
    stamp.size == e.size
        && match (&stamp.etag, &e.etag) {
            (Some(a), Some(b)) => a == b,
            _ => stamp.mtime_ns == ns(e.mtime),
        }
}

/// The quick id of the file behind `r` (see the module's invariants).
pub fn quick_id(r: &mut RangedReader) -> std::io::Result<[u8; 32]> {
    let len = r.len();
    let mut h = blake3::Hasher::new();
    h.update(b"fvfs-music quick id v1\0");
    h.update(&len.to_le_bytes());
    let mut span = |from: u64| -> std::io::Result<()> {
        let want = QUICK_SPAN.min(len - from) as usize;
        let mut buf = vec![0u8; want];
        r.seek(SeekFrom::Start(from))?;
        r.read_exact(&mut buf)?;
        h.update(&buf);
        Ok(())
    };
    span(0)?;
    span(len.saturating_sub(QUICK_SPAN))?;
    Ok(*h.finalize().as_bytes())
}

/// The tag-free audio span of a file of `format`, or None (another format, or a span
/// that cannot be read: the file is then cached whole).
fn audio_span(r: &mut RangedReader, format: &str) -> Option<AudioSpan> {
    let region = crate::audio::audio_region(r, format).ok().flatten()?;
    let id = crate::audio::audio_id(r, &region).ok()?;
    Some(AudioSpan {
        start: region.start,
        len: region.len,
        id,
    })
}

/// What reading one file gave.
enum Read1 {
    Row(Box<MusicTrack>, u64),
    Failed(String),
}

/// Reads `e`'s tags and quick id on a blocking thread.
async fn read_one(origin: &Origin, e: &OriginEntry, rt: &Handle) -> Read1 {
    let src = Arc::new(origin.file(&e.path, e.size, rt.clone()));
    let ext = extension(&e.path);
    let join = tokio::task::spawn_blocking(move || {
        let mut reader = RangedReader::new(src);
        let tags = read_tags_from(&mut reader, ext.as_deref());
        let quick = match &tags {
            Err(TagError::Io(_)) => None,
            _ => Some(quick_id(&mut reader)),
        };
        // Where the audio lies without its tags (FLAC, MP3), so the cache keeps it
        // across tag edits. A file whose span cannot be read is cached whole.
        let audio = match &tags {
            Ok(t) => audio_span(&mut reader, t.format),
            Err(_) => None,
        };
        (tags, quick, ext, audio, reader.fetched_bytes())
    })
    .await;
    let (tags, quick, ext, audio, fetched) = match join {
        Ok(v) => v,
        Err(j) => return Read1::Failed(format!("the tag reader stopped: {j}")),
    };
    let quick = match quick {
        Some(Ok(q)) => q,
        Some(Err(e)) => return Read1::Failed(e.to_string()),
        None => [0; 32],
    };
    let mut row = match tags {
        Ok(t) => to_track(&t),
        Err(TagError::Io(e)) => return Read1::Failed(e.to_string()),
        Err(other) => MusicTrack {
            format: ext.unwrap_or_default(),
            error: Some(other.to_string()),
            ..MusicTrack::default()
        },
    };
    row.origin = origin.id().to_string();
    row.path = e.path.clone();
    row.size = e.size;
    row.mtime_ns = ns(e.mtime);
    row.etag = e.etag.clone();
    row.quick_id = quick;
    row.audio = audio;
    row.scanned = ns(Some(SystemTime::now()));
    Read1::Row(Box::new(row), fetched)
}

/// Scans `origin` into the index (see the module's invariants).
pub async fn scan_origin(
    meta: &Arc<dyn MetaStore>,
    origin: &Origin,
    rt: &Handle,
) -> Result<ScanStats, ScanError> {
    let listed = origin.list("").await.map_err(|source| ScanError::List {
        origin: origin.id().to_string(),
        source,
    })?;
    let mut stamps: HashMap<String, MusicStamp> = meta
        .music_stamps(origin.id())?
        .into_iter()
        .map(|s| (s.path.clone(), s))
        .collect();
    let mut stats = ScanStats::default();
    let mut todo = Vec::new();
    for e in listed {
        if !extension(&e.path).is_some_and(|x| AUDIO_EXTENSIONS.contains(&x.as_str())) {
            continue;
        }
        stats.seen += 1;
        match stamps.remove(&e.path) {
            Some(s) if unchanged(&s, &e) => stats.unchanged += 1,
            old => todo.push((e, old.is_some())),
        }
    }
    let mut reads = futures::stream::iter(todo)
        .map(|(e, known)| async move { (read_one(origin, &e, rt).await, e, known) })
        .buffer_unordered(IN_FLIGHT);
    while let Some((read, e, known)) = reads.next().await {
        match read {
            Read1::Row(row, fetched) => {
                stats.fetched_bytes += fetched;
                if let Some(why) = &row.error {
                    tracing::warn!(origin = origin.id(), path = %e.path, error = %why, "not readable as audio; skipped until it changes");
                    stats.unreadable += 1;
                }
                meta.music_track_put(&row)?;
                match known {
                    true => stats.updated += 1,
                    false => stats.added += 1,
                }
            }
            Read1::Failed(why) => {
                tracing::warn!(origin = origin.id(), path = %e.path, error = %why, "reading tags failed on the origin; the file's row is kept");
                stats.failed += 1;
            }
        }
    }
    let gone: Vec<u64> = stamps.into_values().map(|s| s.id).collect();
    stats.removed = meta.music_tracks_delete(&gone)?;
    Ok(stats)
}
