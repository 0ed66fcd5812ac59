//! Full-text search over the music index: a tantivy index of the tracks of a
//! [`MusicStore`], kept in step by [`SearchIndex::sync`] and searched through
//! [`TrackSearch`] with the query language of `fvfs_music::search`.
//!
//! Layout: `schema.rs` (fields, analyzer, a track's document and digest), `query.rs` (the
//! query language into tantivy queries), `sync.rs` (the incremental sync).
//!
//! Invariants:
//! - The index is derived data: it holds no stored field, only what [`SearchIndex::sync`]
//!   wrote from the store, and can be deleted and rebuilt at any time.
//! - A [`SearchIndex`] holds a reader that reloads on commit (tantivy watches the index's
//!   `meta.json`), so a process that only searches sees another process's syncs; the
//!   writer is taken only inside a sync, so several processes can have the index open.
//! - Search results are track ids (`MusicTrack::id`), best first.
//!
//! Only the daemon depends on this crate (the engine and fvfs-music must not: tantivy is
//! the slowest crate of the build).

mod query;
mod schema;
mod sync;

use std::path::Path;
use std::sync::Mutex;

use fvfs_music::search::{SearchError, SearchHit, TrackSearch};
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, IndexReader, ReloadPolicy};

pub use sync::SyncStats;

use crate::schema::Fields;

/// A search index in a directory of its own.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    analyzer: TextAnalyzer,
    /// Serialises this process's syncs (the index's lock file serialises processes).
    sync_lock: Mutex<()>,
}

pub(crate) fn index_error(e: tantivy::TantivyError) -> SearchError {
    SearchError::Index(e.to_string())
}

impl SearchIndex {
    /// Opens the index in `dir`, creating the directory and an empty index if needed.
    pub fn open(dir: &Path) -> Result<SearchIndex, SearchError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SearchError::Index(format!("creating {}: {e}", dir.display())))?;
        let directory = MmapDirectory::open(dir)
            .map_err(|e| SearchError::Index(format!("opening {}: {e}", dir.display())))?;
        let (schema, fields) = schema::schema();
        let index = Index::open_or_create(directory, schema).map_err(|e| {
            SearchError::Index(format!(
                "opening the search index in {}: {e} (it is derived data: delete the \
                 directory and sync again to rebuild it)",
                dir.display()
            ))
        })?;
        let analyzer = schema::analyzer();
        index
            .tokenizers()
            .register(schema::TOKENIZER, analyzer.clone());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(index_error)?;
        Ok(SearchIndex {
            index,
            reader,
            fields,
            analyzer,
            sync_lock: Mutex::new(()),
        })
    }

    /// Makes the latest commit visible now (searches otherwise see another process's
    /// commits within about a second).
    pub fn reload(&self) -> Result<(), SearchError> {
        self.reader.reload().map_err(index_error)
    }

    /// Number of tracks in the index (as of the last reload).
    pub fn indexed_tracks(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

impl TrackSearch for SearchIndex {
    fn refresh(&self, meta: &dyn fvfs_meta::MusicStore) -> Result<u64, SearchError> {
        let Some(s) = self.sync_if_changed(meta)? else {
            return Ok(0);
        };
        self.reload()?;
        Ok(s.indexed + s.deleted)
    }

    fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, SearchError> {
        let clauses = query::parse(query, &mut self.analyzer.clone())?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let q = query::build(&clauses, &self.fields);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&q, &TopDocs::with_limit(limit).order_by_score())
            .map_err(index_error)?;
        let mut ids = Vec::with_capacity(searcher.segment_readers().len());
        for r in searcher.segment_readers() {
            ids.push(r.fast_fields().u64("id").map_err(index_error)?);
        }
        Ok(top
            .into_iter()
            .filter_map(|(score, addr)| {
                let track = ids.get(addr.segment_ord as usize)?.first(addr.doc_id)?;
                Some(SearchHit { track, score })
            })
            .collect())
    }
}
