//! The music face: a read-only view of audio files organised by their tags, over several
//! read-only origins, with search.
//!
//! - `template`: beets-style path templates, rendered into sanitised path components.
//! - `source`: ranged byte access ([`source::RangeSource`]) shared by tag reading and
//!   the view's reads.
//! - `tags`: tags and audio properties read through a ranged, block-caching reader
//!   (lofty), never a whole-file download.
//! - `audio`: the audio bytes of a track apart from its tags ([`audio::audio_region`],
//!   [`audio::audio_id`]) and the file served with the index's tags in place of the
//!   original ones ([`audio::Overlay`]: a new header, the original audio, a trailer).
//! - `origin`: the read-only origins (OpenDAL `fs`, `s3`, `sftp`, `webdav`), their
//!   priorities, health checks, retries and failover.
//! - `beets`: a beets library's items and albums imported into the index.
//! - `scan`: an origin's audio files into the index, incrementally (size and entity tag
//!   or mtime), unreadable files recorded and skipped.
//! - `search`: what the view asks of a full-text search ([`search::TrackSearch`]);
//!   the tantivy index implementing it is the crate `fvfs-search`.
//! - `cache`: the content cache: origin bytes kept as blocks held in the engine's tiers,
//!   by windows of pieces keyed by content (so a tag edit keeps the audio cached).
//! - `fs`: the read-only FUSE view (`MusicFs`, an `FsOps`).
//! - `view`: the tree a template gives the index, built into the metadata store and
//!   swapped in whole.
//! - `control`: the running mount's control API ([`control::MusicControl`]), served as
//!   JSON-RPC 2.0 on a Unix socket (mode 0600), and the CLI's blocking client.
//! - `metrics`: the `musicfs_*` Prometheus figures, through the `metrics` facade.
//!
//! Layers: this crate sits beside the HSM face; it uses the engine (metadata store, the
//! tiers through `fvfs_vfs::tiering::Tiering`) and the FUSE layer's `FsOps`, and knows
//! nothing of HTTP or fanotify.

pub mod audio;
pub mod beets;
pub mod cache;
pub mod control;
pub mod fs;
pub mod metrics;
pub mod origin;
pub mod scan;
pub mod search;
pub mod source;
pub mod tags;
pub mod template;
pub mod view;

/// Any failure of the music face, for callers above it (the engine, the commands).
#[derive(Debug, thiserror::Error)]
pub enum MusicError {
    #[error(transparent)]
    Origin(#[from] origin::OriginError),
    #[error(transparent)]
    Scan(#[from] scan::ScanError),
    #[error(transparent)]
    View(#[from] view::ViewError),
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    #[error(transparent)]
    Beets(#[from] beets::BeetsError),
    #[error(transparent)]
    Search(#[from] search::SearchError),
}
