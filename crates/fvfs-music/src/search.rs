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

/// A search index opened on a thread of its own: a mount goes live without waiting for
/// the index's files (tens of milliseconds when they are not in the page cache), and
/// the first search waits for the open to finish. An open that failed fails every
/// search with its message.
pub struct DeferredSearch {
    opened: std::sync::OnceLock<Result<std::sync::Arc<dyn TrackSearch>, String>>,
    opening: parking_lot::Mutex<Option<std::thread::JoinHandle<OpenResult>>>,
}

type OpenResult = Result<std::sync::Arc<dyn TrackSearch>, SearchError>;

impl DeferredSearch {
    /// Starts `open` on a new thread.
    pub fn start(
        open: impl FnOnce() -> OpenResult + Send + 'static,
    ) -> std::io::Result<DeferredSearch> {
        let handle = std::thread::Builder::new()
            .name("fvfs-search-open".into())
            .spawn(open)?;
        Ok(DeferredSearch {
            opened: std::sync::OnceLock::new(),
            opening: parking_lot::Mutex::new(Some(handle)),
        })
    }

    /// The opened index, once the open is done.
    fn get(&self) -> Result<&std::sync::Arc<dyn TrackSearch>, SearchError> {
        if self.opened.get().is_none() {
            let mut opening = self.opening.lock();
            if let Some(h) = opening.take() {
                let r = match h.join() {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err("opening the search index panicked".to_string()),
                };
                let _ = self.opened.set(r);
            }
        }
        match self.opened.get() {
            Some(Ok(s)) => Ok(s),
            Some(Err(e)) => Err(SearchError::Index(e.clone())),
            None => Err(SearchError::Index("the search index is not open".into())),
        }
    }
}

impl TrackSearch for DeferredSearch {
    fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, SearchError> {
        self.get()?.search(query, limit)
    }
    fn refresh(&self, meta: &dyn fvfs_meta::MusicStore) -> Result<u64, SearchError> {
        self.get()?.refresh(meta)
    }
}
