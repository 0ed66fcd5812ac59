//! Bringing the index to the music store's tracks, incrementally.
//!
//! Owns: [`SearchIndex::sync`] and [`SyncStats`]. Invariants:
//! - The store is read in pages by id; for each page the index's documents with ids in the
//!   same range are read (an inverted-index range query on `id` over the snapshot taken
//!   when the sync started), so memory holds one page of tracks and one page of
//!   (id, digest) pairs, never the whole store or index.
//! - A readable track whose digest is not the index's for its id is deleted by id and
//!   added again; an id the index has and the store no longer has (or only as an
//!   unreadable track) is deleted; unreadable tracks are never added.
//! - Everything a sync changes becomes visible in one commit at its end, or not at all
//!   (an error drops the uncommitted writer: the index stays as it was). A sync that
//!   found nothing to change commits only to record the store's change count.
//! - Each commit's payload records the store's change count (`MusicStore::music_changes`)
//!   read before the sync read any track: [`SearchIndex::sync_if_changed`] skips the
//!   sync when the store still has that count, so opening a mount over an unchanged
//!   library of a million tracks does not read them all. A change committed during a
//!   sync moves the count past the recorded one, and the next sync sees it.
//! - The index writer (and its lock file) is held only while a sync runs; another
//!   process syncing at the same time gets [`SearchError::Index`].

use std::collections::HashMap;
use std::ops::Bound;

use fvfs_meta::MusicStore;
use fvfs_music::search::SearchError;
use tantivy::collector::DocSetCollector;
use tantivy::columnar::Column;
use tantivy::query::InvertedIndexRangeQuery;
use tantivy::{IndexWriter, Searcher, TantivyDocument, Term};

use crate::schema::{digest, document};
use crate::{index_error, SearchIndex};

/// Prefix of a commit's payload before the store's change count.
const CHANGES_PAYLOAD: &str = "music_changes=";

/// Tracks read from the store at a time.
const PAGE: usize = 2000;

/// The indexing heap shared by the writer's threads (tantivy wants at least 15 MB per
/// thread; two threads on this kind of machine).
const WRITER_HEAP: usize = 50_000_000;

/// What a sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Tracks added, new or changed since they were indexed.
    pub indexed: u64,
    /// Documents removed: tracks gone from the store, or now unreadable.
    pub deleted: u64,
    /// Readable tracks already indexed as they are.
    pub unchanged: u64,
    /// Tracks of the store that are not indexed because they could not be read as audio.
    pub unreadable: u64,
}

impl SyncStats {
    fn changed(&self) -> bool {
        self.indexed > 0 || self.deleted > 0
    }
}

/// The per-segment columns mapping a document to its track id and digest.
struct Columns {
    by_segment: Vec<(Column<u64>, Column<u64>)>,
}

impl Columns {
    fn open(searcher: &Searcher) -> Result<Columns, SearchError> {
        let by_segment = searcher
            .segment_readers()
            .iter()
            .map(|r| {
                let ff = r.fast_fields();
                Ok((ff.u64("id")?, ff.u64("digest")?))
            })
            .collect::<tantivy::Result<Vec<_>>>()
            .map_err(index_error)?;
        Ok(Columns { by_segment })
    }

    /// Digests the index holds for each id in (`after`, `upper`].
    fn range(
        &self,
        searcher: &Searcher,
        ix: &SearchIndex,
        after: u64,
        upper: Bound<u64>,
    ) -> Result<HashMap<u64, Vec<u64>>, SearchError> {
        let lower = Bound::Excluded(Term::from_field_u64(ix.fields.id, after));
        let upper = match upper {
            Bound::Included(u) => Bound::Included(Term::from_field_u64(ix.fields.id, u)),
            _ => Bound::Unbounded,
        };
        let docs = searcher
            .search(
                &InvertedIndexRangeQuery::new(lower, upper),
                &DocSetCollector,
            )
            .map_err(index_error)?;
        let mut out: HashMap<u64, Vec<u64>> = HashMap::with_capacity(docs.len());
        for addr in docs {
            let Some((ids, digests)) = self.by_segment.get(addr.segment_ord as usize) else {
                continue;
            };
            if let Some(id) = ids.first(addr.doc_id) {
                let d = digests.first(addr.doc_id).unwrap_or_default();
                out.entry(id).or_default().push(d);
            }
        }
        Ok(out)
    }
}

impl SearchIndex {
    /// Brings the index to `meta`'s tracks (see the module's invariants) and returns what
    /// changed. Once it returns, this process's searches see the result; another process's
    /// within about a second.
    pub fn sync(&self, meta: &dyn MusicStore) -> Result<SyncStats, SearchError> {
        let _one_at_a_time = self
            .sync_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut writer: IndexWriter<TantivyDocument> =
            self.index.writer(WRITER_HEAP).map_err(|e| match e {
                tantivy::TantivyError::LockFailure(..) => SearchError::Index(format!(
                    "the search index is being synced by another process ({e})"
                )),
                e => index_error(e),
            })?;
        // The lock is ours: no commit can land after this snapshot until ours.
        self.reader.reload().map_err(index_error)?;
        let changes = meta
            .music_changes()
            .map_err(|e| SearchError::Index(format!("reading the music index: {e}")))?;
        let searcher = self.reader.searcher();
        let columns = Columns::open(&searcher)?;

        let mut stats = SyncStats::default();
        let mut after = 0u64;
        loop {
            let page = meta
                .music_tracks(None, after, PAGE)
                .map_err(|e| SearchError::Index(format!("reading the music index: {e}")))?;
            let last = page.last().map(|t| t.id);
            let upper = match last {
                Some(last) if page.len() == PAGE => Bound::Included(last),
                _ => Bound::Unbounded,
            };
            let mut indexed = columns.range(&searcher, self, after, upper)?;
            for t in &page {
                let had = indexed.remove(&t.id);
                let id_term = Term::from_field_u64(self.fields.id, t.id);
                if t.error.is_some() {
                    stats.unreadable += 1;
                    if had.is_some() {
                        writer.delete_term(id_term);
                        stats.deleted += 1;
                    }
                    continue;
                }
                let d = digest(t);
                if had.as_deref() == Some(&[d][..]) {
                    stats.unchanged += 1;
                    continue;
                }
                if had.is_some() {
                    writer.delete_term(id_term);
                }
                writer
                    .add_document(document(&self.fields, t, d))
                    .map_err(index_error)?;
                stats.indexed += 1;
            }
            for id in indexed.into_keys() {
                writer.delete_term(Term::from_field_u64(self.fields.id, id));
                stats.deleted += 1;
            }
            match last {
                Some(last) if page.len() == PAGE => after = last,
                _ => break,
            }
        }
        if stats.changed() || self.synced_changes()? != Some(changes) {
            let mut commit = writer.prepare_commit().map_err(index_error)?;
            commit.set_payload(&format!("{CHANGES_PAYLOAD}{changes}"));
            commit.commit().map_err(index_error)?;
            writer.wait_merging_threads().map_err(index_error)?;
            self.reader.reload().map_err(index_error)?;
        }
        Ok(stats)
    }

    /// The store's change count the last commit recorded (None: no commit recorded one).
    pub fn synced_changes(&self) -> Result<Option<u64>, SearchError> {
        let metas = self.index.load_metas().map_err(index_error)?;
        Ok(metas
            .payload
            .as_deref()
            .and_then(|p| p.strip_prefix(CHANGES_PAYLOAD))
            .and_then(|n| n.parse().ok()))
    }

    /// [`SearchIndex::sync`] unless the store has not changed since the last one (None).
    pub fn sync_if_changed(&self, meta: &dyn MusicStore) -> Result<Option<SyncStats>, SearchError> {
        let now = meta
            .music_changes()
            .map_err(|e| SearchError::Index(format!("reading the music index: {e}")))?;
        if self.synced_changes()? == Some(now) {
            return Ok(None);
        }
        self.sync(meta).map(Some)
    }
}
