//! Tags and audio properties of a track, read through a ranged, block-caching reader.
//!
//! Layout: `ranged.rs` the [`RangedReader`] (`Read + Seek` over a
//! [`RangeSource`](crate::source::RangeSource), aligned blocks, LRU, request and byte
//! counters), `read.rs` the lofty calls turning a file into [`TrackTags`] and reading
//! cover art, `fields.rs` the index row of a track and the beets field names a path
//! template sees of it.
//!
//! Invariants:
//! - Tag reading never downloads a whole file: lofty reads through a [`RangedReader`],
//!   which fetches only the blocks lofty touches (the header, the tags, the last block
//!   for trailing tags and Ogg granule positions, scattered MP4 atoms).
//! - A missing or empty tag is `None`, never `Some("")`; numbers that are 0 or do not
//!   parse are `None` (beets treats track 0 and year 0 as unset).
//! - Reading never panics: a malformed or truncated file is [`TagError::Malformed`]
//!   (or partial tags, where lofty's best-attempt mode recovers), a failure of the source
//!   itself is [`TagError::Io`], a file lofty does not recognise is
//!   [`TagError::Unsupported`].

mod fields;
mod ranged;
mod read;

pub use fields::{field, to_track};
pub use ranged::{RangedReader, DEFAULT_BLOCK_SIZE, DEFAULT_MAX_BLOCKS};
pub use read::{front_cover, front_cover_from, read_tags, read_tags_from};

/// Why a track's tags could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    /// The source failed (origin unreachable, timeout, the file changed length while it
    /// was read). Worth retrying; says nothing about the file.
    #[error("reading the file failed: {0}")]
    Io(#[source] std::io::Error),
    /// Not an audio format lofty knows (by content, nor by the extension hint).
    #[error("not a recognised audio file")]
    Unsupported,
    /// The file is recognised but cannot be parsed: truncated, corrupt, or it made the
    /// parser panic. `format` is known when detection got that far.
    #[error("malformed {} file: {reason}", format.unwrap_or("audio"))]
    Malformed {
        format: Option<&'static str>,
        reason: String,
    },
}

/// Embedded cover art: presence and size only (the bytes are read on demand by
/// [`front_cover`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverInfo {
    /// `image/jpeg`, `image/png`, ...; sniffed from the bytes when the tag has none,
    /// `application/octet-stream` when that fails too.
    pub mime: String,
    /// Length of the picture data in bytes.
    pub len: u64,
}

/// What a track's tags and stream say. Text is as stored (not trimmed); see the module
/// invariants for what counts as missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackTags {
    pub title: Option<String>,
    pub artist: Option<String>,
    pub album: Option<String>,
    pub album_artist: Option<String>,
    pub genre: Option<String>,
    /// From the recording date, else the year, else the original or release date.
    pub year: Option<u32>,
    pub track: Option<u32>,
    pub track_total: Option<u32>,
    pub disc: Option<u32>,
    pub disc_total: Option<u32>,
    /// The compilation flag when the file has one (`Some(false)` is an explicit 0).
    pub compilation: Option<bool>,
    pub label: Option<String>,
    pub catalog_number: Option<String>,
    /// MusicBrainz release (album) id.
    pub mb_album_id: Option<String>,
    /// MusicBrainz release type (`album`, `single`, `ep`, ...), beets' `albumtype`.
    pub album_type: Option<String>,
    pub duration_ms: Option<u64>,
    /// Audio bitrate (overall when the stream's is unknown), kbit/s.
    pub bitrate_kbps: Option<u32>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
    pub bit_depth: Option<u8>,
    /// Lowercase, usable as an extension: `flac`, `mp3`, `ogg` (Vorbis), `opus`, `m4a`,
    /// `wav`, `aiff`, `aac`, `ape`, `mpc`, `spx`, `wv`.
    pub format: &'static str,
    /// The front cover, or the first picture when none is marked front (taggers often
    /// leave the type as "other").
    pub front_cover: Option<CoverInfo>,
}
