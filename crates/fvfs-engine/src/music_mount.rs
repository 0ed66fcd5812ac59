//! The music view as a serving process runs it: the origins opened from their rows with
//! their health checks on the process's workers, the content cache over the engine's
//! tiers (the same `Tiering` as the files', so GC and eviction see the cache's holders),
//! and the read-only [`MusicFs`] a FUSE session serves.
//!
//! Invariant: the caller holds the mount lock (it runs a [`Running`]); the cache's
//! blocks are written by this process only.

use crate::error::{EngineError, Result};
use crate::Running;
use fvfs_meta::MetaStore;
use fvfs_music::cache::{CacheConfig, MusicCache};
use fvfs_music::fs::{MusicFs, MusicFsConfig};
use fvfs_music::origin::{Origin, OriginSet, OriginSpec};
use std::sync::Arc;

pub use fvfs_music::cache::{CacheCounters, DEFAULT_LIMIT};
pub use fvfs_music::search::{DeferredSearch, SearchError, TrackSearch};

/// How the view is mounted.
#[derive(Clone, Debug)]
pub struct MusicMountOpts {
    /// The view at the root (None: every view as a top directory).
    pub view: Option<String>,
    /// Serve FLAC and MP3 with the index's tags (the tag overlay).
    pub overlay: bool,
    /// Bytes the content cache may hold.
    pub cache_limit: u64,
    /// Bytes fetched from an origin per cache miss (the cache's window).
    pub cache_window: u64,
    pub prefetch: bool,
}

impl Default for MusicMountOpts {
    fn default() -> Self {
        MusicMountOpts {
            view: None,
            overlay: false,
            cache_limit: DEFAULT_LIMIT,
            cache_window: fvfs_music::cache::DEFAULT_WINDOW,
            prefetch: true,
        }
    }
}

/// The running music view.
pub struct MusicRunning {
    pub fs: Arc<MusicFs>,
    pub cache: Arc<MusicCache>,
    pub origins: OriginSet,
    pub meta: Arc<dyn MetaStore>,
    pub search: Option<Arc<dyn TrackSearch>>,
}

impl MusicRunning {
    /// Opens every registered origin (an origin whose spec no longer opens is left out
    /// and logged), the cache, and the view; starts the origins' health checks.
    pub fn start(
        run: &Running,
        opts: &MusicMountOpts,
        search: Option<Arc<dyn TrackSearch>>,
    ) -> Result<MusicRunning> {
        let meta = run.engine.meta.clone();
        if let Some(v) = &opts.view {
            if !meta.music_views()?.iter().any(|x| &x.name == v) {
                return Err(EngineError::Invalid(format!(
                    "no music view {v:?} (see `fvfsd music view list`)"
                )));
            }
        }
        let mut opened = Vec::new();
        for row in meta.music_origins()? {
            match OriginSpec::parse(&row.spec).and_then(|s| Origin::open(&s)) {
                Ok(o) => opened.push(o),
                Err(e) => {
                    tracing::error!(origin = %row.id, error = %e, "cannot open music origin; its tracks play from the cache only")
                }
            }
        }
        crate::startup::mark("music origins opened");
        let origins = OriginSet::new(opened).map_err(|e| EngineError::Music(e.into()))?;
        let _rt = run.rt.enter();
        origins.spawn_health_checks(&run.workers);
        let cache = Arc::new(
            MusicCache::open(
                run.vfs.tiering().clone(),
                meta.clone(),
                CacheConfig {
                    limit_bytes: opts.cache_limit,
                    window: opts.cache_window,
                },
            )
            .map_err(|e| EngineError::Invalid(format!("cannot open the music cache: {e}")))?,
        );
        crate::startup::mark("music cache opened");
        let fs = MusicFs::new(
            meta.clone(),
            origins.clone(),
            cache.clone(),
            search.clone(),
            run.rt.handle().clone(),
            MusicFsConfig {
                view: opts.view.clone(),
                overlay: opts.overlay,
                uid: nix::unistd::getuid().as_raw(),
                gid: nix::unistd::getgid().as_raw(),
                prefetch: opts.prefetch,
                search_limit: 500,
            },
        )
        .map_err(|e| EngineError::Invalid(format!("cannot start the music view: {e}")))?;
        crate::startup::mark("music view opened");
        // The search index may lag the metadata (a scan by a process without it, a
        // first mount): bring it up to date without delaying the mount.
        if let Some(s) = search.clone() {
            let m = meta.clone();
            run.rt.spawn_blocking(move || match s.refresh(m.as_ref()) {
                Ok(0) => {}
                Ok(n) => tracing::info!(tracks = n, "search index brought up to date"),
                Err(e) => tracing::warn!(error = %e, "cannot update the search index; searches may miss recent changes"),
            });
        }
        Ok(MusicRunning {
            fs: Arc::new(fs),
            cache,
            origins,
            meta,
            search,
        })
    }
}
