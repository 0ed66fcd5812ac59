//! [`MusicService`]: the running music view's answers to its control API
//! (`fvfs_music::control::MusicControl`: JSON-RPC on the control socket, the commands
//! that talk to it). Every answer is read from the running view (its cache counters, its
//! origins' health) and the index; a rescan runs the same code as `fvfsd music origin
//! rescan`, then refreshes the search index.
//!
//! Invariant: one rescan at a time per mount (another gets `Busy`), so two scans never
//! race on one origin's rows.

use crate::music_mount::MusicRunning;
use futures::future::BoxFuture;
use futures::FutureExt;
use fvfs_meta::MUSIC_ROOT;
use fvfs_music::cache::pieces;
use fvfs_music::control::{
    CacheCleared, CacheStats, ControlError, MusicControl, OriginRescan, OriginStatus, RescanResult,
    SearchResult, Status,
};
use std::sync::Arc;
use std::time::Instant;

/// The control API's server and client (`fvfs_music::control`), for the daemon.
pub use fvfs_music::control as api;

/// The control service of one running music view.
pub struct MusicService {
    music: Arc<MusicRunning>,
    meta_url: String,
    mountpoint: Option<String>,
    /// The view shown at the mount's root (None: every view under its name).
    root_view: Option<u64>,
    started: Instant,
    rescanning: tokio::sync::Mutex<()>,
}

fn failed(e: impl std::fmt::Display) -> ControlError {
    ControlError::Failed(e.to_string())
}

impl MusicService {
    pub fn new(
        music: Arc<MusicRunning>,
        meta_url: &str,
        mountpoint: Option<String>,
        view: Option<&str>,
    ) -> Result<MusicService, ControlError> {
        let root_view = match view {
            None => None,
            Some(name) => music
                .meta
                .music_views()
                .map_err(failed)?
                .into_iter()
                .find(|v| v.name == name)
                .map(|v| v.id),
        };
        Ok(MusicService {
            music,
            meta_url: meta_url.to_string(),
            mountpoint,
            root_view,
            started: Instant::now(),
            rescanning: tokio::sync::Mutex::new(()),
        })
    }
}

/// The path of `track` in a mount of the views (from the mount point): in view
/// `root_view` at the root, or with None in every view under its name (the first view,
/// by name, that shows it). None when no view shows it.
pub fn track_path(
    meta: &dyn fvfs_meta::MetaStore,
    root_view: Option<u64>,
    track: u64,
) -> fvfs_meta::Result<Option<String>> {
    for v in meta.music_views()? {
        if root_view.is_some_and(|r| r != v.id) {
            continue;
        }
        let Some(e) = meta.music_track_entry(v.id, track)? else {
            continue;
        };
        let mut parts = vec![e.name];
        let mut dir = e.parent;
        while dir != MUSIC_ROOT {
            match meta.music_dir_entry(v.id, dir)? {
                Some(p) => {
                    parts.push(p.name);
                    dir = p.parent;
                }
                None => break,
            }
        }
        if root_view.is_none() {
            parts.push(v.name);
        }
        parts.reverse();
        return Ok(Some(format!("/{}", parts.join("/"))));
    }
    Ok(None)
}

/// Search of the index for a process that serves no view (the HTTP API of `fvfsd
/// serve`): hits with their rows and their paths in a mount of every view.
pub struct IndexSearch {
    meta: Arc<dyn fvfs_meta::MetaStore>,
    search: Arc<dyn fvfs_music::search::TrackSearch>,
}

impl IndexSearch {
    /// The search over the index at `meta_url` with `search`; None when the index has no
    /// origin (the music face is not in use).
    pub fn open(
        meta_url: &str,
        search: Arc<dyn fvfs_music::search::TrackSearch>,
    ) -> crate::Result<Option<IndexSearch>> {
        let meta = crate::open::open_meta(meta_url)?;
        if meta.music_origins()?.is_empty() {
            return Ok(None);
        }
        Ok(Some(IndexSearch { meta, search }))
    }

    /// At most `limit` tracks matching `query`, best first.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchResult>, ControlError> {
        search_results(self.meta.as_ref(), self.search.as_ref(), None, query, limit)
    }
}

/// At most `limit` tracks matching `query`, with their rows and their paths in a mount
/// of the views (`root_view` as in [`track_path`]).
fn search_results(
    meta: &dyn fvfs_meta::MetaStore,
    search: &dyn fvfs_music::search::TrackSearch,
    root_view: Option<u64>,
    query: &str,
    limit: usize,
) -> Result<Vec<SearchResult>, ControlError> {
    let hits = search.search(query, limit)?;
    let mut out = Vec::with_capacity(hits.len());
    for h in hits {
        let Some(t) = meta.music_track_get(h.track).map_err(failed)? else {
            continue;
        };
        out.push(SearchResult {
            track: t.id,
            path: track_path(meta, root_view, t.id).map_err(failed)?,
            origin: t.origin,
            origin_path: t.path,
            artist: t.artist,
            album: t.album,
            title: t.title,
            score: h.score,
        });
    }
    Ok(out)
}

impl MusicControl for MusicService {
    fn status(&self) -> Result<Status, ControlError> {
        let meta = &self.music.meta;
        Ok(Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            mountpoint: self.mountpoint.clone(),
            uptime_secs: self.started.elapsed().as_secs(),
            tracks: meta.music_track_count(None).map_err(failed)?,
            views: meta
                .music_views()
                .map_err(failed)?
                .into_iter()
                .map(|v| v.name)
                .collect(),
            origins: self.origins()?,
            cache: self.cache_stats()?,
        })
    }

    fn cache_stats(&self) -> Result<CacheStats, ControlError> {
        let c = &self.music.cache;
        let n = c.counters();
        let t = c.totals().map_err(failed)?;
        fvfs_music::metrics::cache_size(t.bytes);
        Ok(CacheStats {
            hits: n.hits,
            misses: n.misses,
            hit_rate: CacheStats::rate(n.hits, n.misses),
            chunks_stored: t.blocks,
            chunks_unique: t.unique_blocks,
            dedup_ratio: CacheStats::dedup(t.blocks, t.unique_blocks),
            size_bytes: t.bytes,
            limit_bytes: c.config().limit_bytes,
            origin_bytes: n.origin_bytes,
            refetched: n.refetched,
        })
    }

    fn cache_clear(&self, origin: Option<&str>) -> Result<CacheCleared, ControlError> {
        let c = &self.music.cache;
        let meta = &self.music.meta;
        let before = c.size_bytes();
        let mut tracks = 0;
        match origin {
            None => {
                c.clear(None).map_err(failed)?;
                tracks = meta.music_track_count(None).map_err(failed)?;
            }
            Some(id) => {
                if self.music.origins.get(id).is_none()
                    && !meta
                        .music_origins()
                        .map_err(failed)?
                        .iter()
                        .any(|o| o.id == id)
                {
                    return Err(ControlError::UnknownOrigin(id.to_string()));
                }
                let mut after = 0;
                loop {
                    let page = meta.music_tracks(Some(id), after, 1000).map_err(failed)?;
                    let Some(last) = page.last() else { break };
                    after = last.id;
                    let keys: Vec<[u8; 32]> = page
                        .iter()
                        .flat_map(|t| pieces(t).into_iter().map(|p| p.key))
                        .collect();
                    tracks += page.len() as u64;
                    c.clear(Some(&keys)).map_err(failed)?;
                }
            }
        }
        Ok(CacheCleared {
            origin: origin.map(str::to_string),
            tracks,
            bytes: before.saturating_sub(c.size_bytes()),
        })
    }

    fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchResult>, ControlError> {
        let Some(s) = &self.music.search else {
            return Err(ControlError::Unavailable(
                "this mount has no search index".into(),
            ));
        };
        search_results(
            self.music.meta.as_ref(),
            s.as_ref(),
            self.root_view,
            query,
            limit,
        )
    }

    fn origins(&self) -> Result<Vec<OriginStatus>, ControlError> {
        let mut out = Vec::new();
        for o in self.music.origins.origins() {
            let Some(h) = self.music.origins.health(o.id()) else {
                continue;
            };
            let n = self
                .music
                .meta
                .music_track_count(Some(o.id()))
                .map_err(failed)?;
            fvfs_music::metrics::origin_health(o.id(), h.is_healthy());
            out.push(OriginStatus::of(o, &h, n));
        }
        out.sort_by(|a, b| a.priority.cmp(&b.priority).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    fn rescan(&self, id: Option<String>) -> BoxFuture<'_, Result<RescanResult, ControlError>> {
        async move {
            let Ok(_one) = self.rescanning.try_lock() else {
                return Err(ControlError::Busy("a rescan is running".into()));
            };
            if let Some(id) = &id {
                if !self
                    .music
                    .meta
                    .music_origins()
                    .map_err(failed)?
                    .iter()
                    .any(|o| &o.id == id)
                {
                    return Err(ControlError::UnknownOrigin(id.clone()));
                }
            }
            let started = Instant::now();
            let url = self.meta_url.clone();
            let search = self.music.search.clone();
            let res = tokio::task::spawn_blocking(move || {
                let r = crate::music::rescan(&url, id.as_deref())?;
                if let Some(s) = search {
                    crate::music::refresh_search(&url, s.as_ref())?;
                }
                Ok::<_, crate::EngineError>(r)
            })
            .await
            .map_err(failed)?
            .map_err(failed)?;
            let (scans, views) = res;
            let origins = scans
                .into_iter()
                .map(|(id, r)| match r {
                    Ok(s) => {
                        fvfs_music::metrics::sync_files_changed(
                            &id,
                            s.added + s.updated + s.removed,
                        );
                        OriginRescan {
                            id,
                            error: None,
                            seen: s.seen,
                            added: s.added,
                            updated: s.updated,
                            unchanged: s.unchanged,
                            removed: s.removed,
                            unreadable: s.unreadable,
                            failed: s.failed,
                            fetched_bytes: s.fetched_bytes,
                        }
                    }
                    Err(e) => OriginRescan {
                        id,
                        error: Some(e.to_string()),
                        ..OriginRescan::default()
                    },
                })
                .collect();
            Ok(RescanResult {
                origins,
                views: views.len() as u64,
                elapsed_ms: started.elapsed().as_millis() as u64,
            })
        }
        .boxed()
    }
}
