//! The music face as commands use it: origins registered in the metadata (the
//! `music_origins` rows), scans of them into the index, and views (templates) built
//! from the index. The read-only mount comes on top of these.
//!
//! Invariants: an origin's row holds its spec's one-line form, which never carries a
//! secret (S3 keys and WebDAV passwords stay in the config file or the environment);
//! every scan is followed by a rebuild of every view, so the trees always show the
//! index as the last scan left it.

use crate::error::{EngineError, Result};
use crate::open::open_meta;
use fvfs_meta::{MetaStore, MusicNode, MusicOrigin, MusicView, MUSIC_ROOT};
use fvfs_music::beets::BeetsStats;
use fvfs_music::origin::{Origin, OriginLocation, OriginSpec};
use fvfs_music::scan::{scan_origin, ScanStats};
use fvfs_music::template::{RenderOptions, Template};
use fvfs_music::view::{build_view, BuildStats};
use std::sync::Arc;

pub use fvfs_meta::MusicEntry;

/// What a name in a view is, for listings.
pub use fvfs_meta::MusicNode as Node;

/// A name in a view's directory, with its file's origin and path when it is a track.
pub type Listed = (MusicEntry, Option<(String, String)>);

/// Each origin's scan (or why it failed), then each view's rebuild.
pub type Rescanned = (
    Vec<(String, Result<ScanStats>)>,
    Vec<(MusicView, BuildStats)>,
);

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn music_err(e: impl Into<fvfs_music::MusicError>) -> EngineError {
    EngineError::Music(e.into())
}

/// Registers the origin `line` describes (`ID=LOCATION?options`), or replaces the one
/// with its id. Returns its spec.
pub fn origin_add(meta_url: &str, line: &str) -> Result<OriginSpec> {
    let spec = OriginSpec::parse(line).map_err(music_err)?;
    let meta = open_meta(meta_url)?;
    meta.music_origin_put(&MusicOrigin {
        id: spec.id.clone(),
        spec: spec.display(),
        priority: i64::from(spec.priority),
        added: now_ns(),
    })?;
    Ok(spec)
}

/// The registered origins, by priority, each with its number of tracks.
pub fn origins(meta_url: &str) -> Result<Vec<(MusicOrigin, u64)>> {
    let meta = open_meta(meta_url)?;
    let mut out = Vec::new();
    for o in meta.music_origins()? {
        let n = meta.music_track_count(Some(&o.id))?;
        out.push((o, n));
    }
    Ok(out)
}

/// Forgets an origin and its tracks (its files are untouched), then rebuilds the views.
/// False when there was none.
pub fn origin_remove(meta_url: &str, id: &str) -> Result<bool> {
    let meta = open_meta(meta_url)?;
    let gone = meta.music_origin_remove(id)?;
    if gone {
        build_views(meta.as_ref())?;
    }
    Ok(gone)
}

fn build_views(meta: &dyn MetaStore) -> Result<Vec<(MusicView, BuildStats)>> {
    let opts = RenderOptions::default();
    let mut out = Vec::new();
    for v in meta.music_views()? {
        let stats = build_view(meta, &v, &opts).map_err(music_err)?;
        out.push((v, stats));
    }
    Ok(out)
}

/// Scans the origin `id` (every origin with None) into the index, then rebuilds every
/// view. An origin that cannot be listed is reported in its slot; the others go on.
pub fn rescan(meta_url: &str, id: Option<&str>) -> Result<Rescanned> {
    let meta: Arc<dyn MetaStore> = open_meta(meta_url)?;
    let rows = meta.music_origins()?;
    if let Some(id) = id {
        if !rows.iter().any(|o| o.id == id) {
            return Err(EngineError::Invalid(format!(
                "no music origin {id:?} (see `fvfsd music origin list`)"
            )));
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(EngineError::io("start the scan's runtime"))?;
    let mut scans = Vec::new();
    for row in rows.iter().filter(|o| id.is_none_or(|id| o.id == id)) {
        let origin = OriginSpec::parse(&row.spec)
            .and_then(|spec| Origin::open(&spec))
            .map_err(music_err);
        let result = match origin {
            Ok(o) => rt
                .block_on(scan_origin(&meta, &o, rt.handle()))
                .map_err(music_err),
            Err(e) => Err(e),
        };
        scans.push((row.id.clone(), result));
    }
    let views = build_views(meta.as_ref())?;
    Ok((scans, views))
}

/// Imports the beets library at `library` (its items under a directory origin's root),
/// then rebuilds every view.
pub fn import_beets(
    meta_url: &str,
    library: &std::path::Path,
) -> Result<(BeetsStats, Vec<(MusicView, BuildStats)>)> {
    let meta = open_meta(meta_url)?;
    let mut roots = Vec::new();
    for o in meta.music_origins()? {
        if let Ok(OriginSpec {
            location: OriginLocation::Fs { root },
            ..
        }) = OriginSpec::parse(&o.spec)
        {
            roots.push((o.id, root));
        }
    }
    if roots.is_empty() {
        return Err(EngineError::Invalid(
            "no directory origin: beets' files must lie under one (`fvfsd music origin add ID=/path`)".into(),
        ));
    }
    let stats =
        fvfs_music::beets::import_beets(meta.as_ref(), library, &roots).map_err(music_err)?;
    let views = build_views(meta.as_ref())?;
    Ok((stats, views))
}

/// Adds view `name` with `template` (beets syntax), or changes its template, and builds it.
pub fn view_add(meta_url: &str, name: &str, template: &str) -> Result<(MusicView, BuildStats)> {
    Template::parse(template).map_err(music_err)?;
    let meta = open_meta(meta_url)?;
    let id = meta.music_view_put(name, template)?;
    let view = meta
        .music_views()?
        .into_iter()
        .find(|v| v.id == id)
        .ok_or_else(|| EngineError::Invalid(format!("view {name:?} vanished")))?;
    let stats = build_view(meta.as_ref(), &view, &RenderOptions::default()).map_err(music_err)?;
    Ok((view, stats))
}

/// The views.
pub fn views(meta_url: &str) -> Result<Vec<MusicView>> {
    Ok(open_meta(meta_url)?.music_views()?)
}

/// The names in directory `path` (`/`-separated, relative to the view's root) of view
/// `name`, with the track rows' origin and path for files.
pub fn ls(meta_url: &str, name: &str, path: &str) -> Result<Vec<Listed>> {
    let meta = open_meta(meta_url)?;
    let view = meta
        .music_views()?
        .into_iter()
        .find(|v| v.name == name)
        .ok_or_else(|| EngineError::Invalid(format!("no music view {name:?}")))?;
    let mut dir = MUSIC_ROOT;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        match meta.music_lookup(view.id, dir, part)? {
            Some(MusicEntry {
                node: MusicNode::Dir(d),
                ..
            }) => dir = d,
            _ => {
                return Err(EngineError::Invalid(format!(
                    "{path:?} is not a directory of view {name:?}"
                )))
            }
        }
    }
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = meta.music_readdir(view.id, dir, after.as_deref(), 1000)?;
        let Some(last) = page.last() else { break };
        after = Some(last.name.clone());
        for e in page {
            let at = match e.node {
                MusicNode::Track(t) => meta.music_track_get(t)?.map(|t| (t.origin, t.path)),
                MusicNode::Dir(_) => None,
            };
            out.push((e, at));
        }
    }
    Ok(out)
}

/// Saves `query` (the search syntax) as collection `name`, or changes its query.
pub fn collection_add(meta_url: &str, name: &str, query: &str) -> Result<u64> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') || name.contains('\0') {
        return Err(EngineError::Invalid(format!(
            "{name:?} cannot name a collection: it is a directory name (no '/', no leading '.')"
        )));
    }
    if query.trim().is_empty() {
        return Err(EngineError::Invalid("a collection needs a query".into()));
    }
    Ok(open_meta(meta_url)?.music_collection_put(name, query, now_ns())?)
}

/// The saved collections.
pub fn collections(meta_url: &str) -> Result<Vec<fvfs_meta::MusicCollection>> {
    Ok(open_meta(meta_url)?.music_collections()?)
}

/// Forgets a collection; false when there was none.
pub fn collection_remove(meta_url: &str, name: &str) -> Result<bool> {
    Ok(open_meta(meta_url)?.music_collection_remove(name)?)
}

/// Brings `search`'s index to the tracks of the index at `meta_url` (after a scan, an
/// import or an origin's removal); returns the tracks (re)indexed or removed.
pub fn refresh_search(meta_url: &str, search: &dyn fvfs_music::search::TrackSearch) -> Result<u64> {
    let meta = open_meta(meta_url)?;
    search.refresh(meta.as_ref()).map_err(music_err)
}
