//! What the music face asks of a full-text search over the index: [`TrackSearch`]. The
//! index itself (tantivy) lives in its own crate, `fvfs-search`, so that the engine and
//! its tests do not build it; the daemon wires an implementation into the view.
//!
//! Query language (shared by `/.search/<query>/`, smart collections, `fvfsd music
//! search`, JSON-RPC `search` and `GET /v1/music/search`): words separated by spaces, all
//! of which must match; a word matches a field's word it is a prefix of, or one within a
//! small edit distance (fuzzy); `field:word` restricts a word to one field (`artist`,
//! `album`, `albumartist`, `title`, `genre`, `year`, `format`, `path`).

/// One track a search found.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchHit {
    /// The track's id in the index (`MusicTrack::id`).
    pub track: u64,
    /// Relevance, higher first.
    pub score: f32,
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query cannot be understood (an unknown field, nothing to search for).
    #[error("bad search query {query:?}: {reason}")]
    BadQuery { query: String, reason: String },
    /// The search index failed (unreadable, corrupt, I/O).
    #[error("search index: {0}")]
    Index(String),
}

/// A full-text search over the tracks of the index.
pub trait TrackSearch: Send + Sync {
    /// At most `limit` tracks matching `query`, best first.
    fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, SearchError>;
    /// Brings the search index to the tracks of `meta` (after a scan, an import, at
    /// mount), and makes the result visible to this process's searches at once.
    /// Returns how many tracks were (re)indexed or removed.
    fn refresh(&self, meta: &dyn fvfs_meta::MusicStore) -> Result<u64, SearchError>;
}
