//! The core of the view: names, listings and attributes, from the index in the
//! metadata store (`MusicStore`), the search index and the saved collections. Every
//! function returns a [`Result`]; `mod.rs` turns it into a reply.
//!
//! Listings are in `listing.rs`.
//!
//! Invariants: names in search and collection directories are `Artist - Title.ext`, sanitised, with ` (2)`, ` (3)`…
//! before the extension for repeats, in result order (best first).

use super::content::{self, Body, OpenTrack};
use super::inode::Node;
use super::{FsError, Handles, MusicFsConfig, OpStats, Result};
use crate::cache::MusicCache;
use crate::origin::OriginSet;
use crate::search::TrackSearch;
use crate::template::{sanitize_component, RenderOptions};
use bytes::Bytes;
use fvfs_fuse::ops::{Attr, FileKind, Opened, StatFs};
use fvfs_meta::{MetaStore, MusicNode, MusicTrack, MUSIC_ROOT};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::Arc;

/// Names of the root's special directories.
pub const SEARCH_DIR: &str = ".search";
pub const COLLECTIONS_DIR: &str = ".collections";
/// Rows fetched per index query of a listing.
pub(crate) const PAGE: usize = 1000;
/// The names a cover may have.
const COVER_NAMES: [&str; 2] = ["cover.jpg", "cover.png"];
/// Covers, search listings and track parents remembered, at most.
const REMEMBERED: usize = 4096;

/// A directory's names, as a search or collection lists them.
pub(crate) struct Listing {
    pub entries: Vec<(String, Node)>,
}

/// When this mount first saw each view's current generation: the mtime of the view's
/// directories, so that a listing the kernel keeps (FOPEN_CACHE_DIR) is dropped once a
/// rebuild swaps the generation and the directory's attributes are fetched again.
#[derive(Default)]
struct ViewStamps {
    checked: Option<std::time::Instant>,
    by_view: HashMap<u64, (u64, i64)>,
    /// Last change of the set of views or of any generation (the multi-view root).
    any: i64,
}

/// How often the views' generations are read again for [`ViewStamps`].
const VIEW_STAMP_TTL: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct Searches {
    pub(crate) by_query: HashMap<String, u64>,
    results: HashMap<u64, Arc<Listing>>,
    next: u64,
}

/// A directory's cover: its name and bytes (None: the directory has none).
pub(crate) type Cover = Option<(&'static str, Bytes)>;

pub(crate) struct Core {
    pub meta: Arc<dyn MetaStore>,
    pub origins: OriginSet,
    pub cache: Arc<MusicCache>,
    pub(crate) search: Option<Arc<dyn TrackSearch>>,
    pub rt: tokio::runtime::Handle,
    pub cfg: MusicFsConfig,
    pub(crate) root_view: Option<u64>,
    mounted: i64,
    pub stats: OpStats,
    pub files: Handles<OpenTrack>,
    pub dirs: Handles<super::listing::DirStream>,
    pub(crate) searches: Mutex<Searches>,
    /// The track count statfs reports, with the store's change count it was taken at.
    track_count: Mutex<Option<(u64, u64)>>,
    stamps: Mutex<ViewStamps>,
    covers: Mutex<HashMap<(u64, u64), Cover>>,
    /// Overlays built, by track, with the scan stamp they were built from.
    pub overlays: Mutex<HashMap<u64, (i64, Arc<crate::audio::Overlay>)>>,
    /// The directory each track was last seen in (for the next-track prefetch).
    pub parents: Mutex<HashMap<u64, (u64, u64)>>,
    pub prefetching: Arc<tokio::sync::Semaphore>,
    /// The next track's prefetch has a slot of its own.
    pub prefetching_next: Arc<tokio::sync::Semaphore>,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn name_str(name: &OsStr) -> Result<&str> {
    name.to_str().ok_or(FsError::NotFound)
}

fn remember<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, k: K, v: V) {
    if map.len() >= REMEMBERED {
        map.clear();
    }
    map.insert(k, v);
}

/// `Artist - Title.ext` for a track listed outside its view's tree.
fn flat_name(t: &MusicTrack) -> String {
    let artist = crate::tags::field(t, "artist");
    let title = crate::tags::field(t, "title");
    let name = format!(
        "{} - {}.{}",
        artist.as_deref().unwrap_or("Unknown Artist"),
        title.as_deref().unwrap_or("Untitled"),
        t.format
    );
    sanitize_component(&name, true, &RenderOptions::default())
}

/// `name` unique among `used`: ` (2)`, ` (3)`… before the extension.
fn unique_name(name: String, used: &mut std::collections::HashSet<String>) -> String {
    if used.insert(name.clone()) {
        return name;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
        _ => (name.clone(), String::new()),
    };
    for n in 2.. {
        let cand = format!("{stem} ({n}){ext}");
        if used.insert(cand.clone()) {
            return cand;
        }
    }
    unreachable!("an unbounded counter always finds a free name")
}

impl Core {
    pub fn new(
        meta: Arc<dyn MetaStore>,
        origins: OriginSet,
        cache: Arc<MusicCache>,
        search: Option<Arc<dyn TrackSearch>>,
        rt: tokio::runtime::Handle,
        cfg: MusicFsConfig,
    ) -> Result<Core> {
        let root_view = match &cfg.view {
            None => None,
            Some(name) => Some(
                meta.music_views()?
                    .into_iter()
                    .find(|v| &v.name == name)
                    .ok_or(FsError::NotFound)?
                    .id,
            ),
        };
        Ok(Core {
            meta,
            origins,
            cache,
            search,
            rt,
            cfg,
            root_view,
            mounted: now_ns(),
            stats: OpStats::default(),
            files: Handles::default(),
            dirs: Handles::default(),
            searches: Mutex::new(Searches::default()),
            track_count: Mutex::new(None),
            stamps: Mutex::new(ViewStamps::default()),
            covers: Mutex::new(HashMap::new()),
            overlays: Mutex::new(HashMap::new()),
            parents: Mutex::new(HashMap::new()),
            prefetching: Arc::new(tokio::sync::Semaphore::new(2)),
            prefetching_next: Arc::new(tokio::sync::Semaphore::new(1)),
        })
    }

    /// The mtime of `node`'s directory: when its view's generation was first seen (the
    /// views' root: when any view changed); the mount time otherwise.
    fn dir_mtime(&self, node: Node) -> i64 {
        let view = match (node, self.view_dir(node)) {
            (_, Some((v, _))) => Some(v),
            (Node::Root, None) => None,
            _ => return self.mounted,
        };
        let mut s = self.stamps.lock();
        if s.checked.is_none_or(|t| t.elapsed() >= VIEW_STAMP_TTL) {
            // On an error the previous stamps stay: a listing then lives a little longer.
            if let Ok(views) = self.meta.music_views() {
                let now = now_ns();
                let mut next = HashMap::with_capacity(views.len());
                for v in views {
                    let seen = match s.by_view.get(&v.id) {
                        Some((g, seen)) if *g == v.generation => *seen,
                        _ => now,
                    };
                    next.insert(v.id, (v.generation, seen));
                }
                if s.checked.is_some() && next != s.by_view {
                    s.any = now;
                }
                s.by_view = next;
                s.checked = Some(std::time::Instant::now());
            }
        }
        let stamp = match view {
            Some(v) => s.by_view.get(&v).map_or(0, |(_, seen)| *seen),
            None => s.any,
        };
        stamp.max(self.mounted)
    }

    fn dir_attr(&self, node: Node) -> Attr {
        let mtime = self.dir_mtime(node);
        Attr {
            ino: node.ino(),
            kind: FileKind::Dir,
            perm: 0o555,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
            size: 0,
            blocks: 0,
            nlink: 2,
            atime: mtime,
            mtime,
            ctime: mtime,
            rdev: 0,
        }
    }

    fn file_attr(&self, node: Node, size: u64, mtime: i64) -> Attr {
        Attr {
            ino: node.ino(),
            kind: FileKind::File,
            perm: 0o444,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
            size,
            blocks: size.div_ceil(512),
            nlink: 1,
            atime: mtime,
            mtime,
            ctime: mtime,
            rdev: 0,
        }
    }

    /// The view and directory a directory node lists from the index, if it is one.
    pub(crate) fn view_dir(&self, node: Node) -> Option<(u64, u64)> {
        match node {
            Node::Root => self.root_view.map(|v| (v, MUSIC_ROOT)),
            Node::Dir { view, dir } => Some((view, dir)),
            _ => None,
        }
    }

    /// The node for directory `dir` of `view`: the root itself in single-view mode.
    pub(crate) fn dir_node(&self, view: u64, dir: u64) -> Node {
        if dir == MUSIC_ROOT && self.root_view == Some(view) {
            Node::Root
        } else {
            Node::Dir { view, dir }
        }
    }

    pub fn track(&self, id: u64) -> Result<MusicTrack> {
        match self.meta.music_track_get(id)? {
            Some(t) if t.error.is_none() => Ok(t),
            _ => Err(FsError::NotFound),
        }
    }

    fn track_attr(&self, t: &MusicTrack) -> Result<Attr> {
        let size = content::served_size(self, t)?;
        Ok(self.file_attr(Node::Track(t.id), size, t.mtime_ns))
    }

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr> {
        let node = Node::from_ino(parent).ok_or(FsError::NotFound)?;
        let name = name_str(name)?;
        let found = self.child(node, name)?;
        self.attr_of(found)
    }

    /// The node `name` in directory `node`.
    fn child(&self, node: Node, name: &str) -> Result<Node> {
        if node == Node::Root {
            match name {
                SEARCH_DIR => return Ok(Node::SearchRoot),
                COLLECTIONS_DIR => return Ok(Node::CollectionsRoot),
                _ => {}
            }
            if self.root_view.is_none() {
                let v = self
                    .meta
                    .music_views()?
                    .into_iter()
                    .find(|v| v.name == name);
                return v
                    .map(|v| Node::Dir {
                        view: v.id,
                        dir: MUSIC_ROOT,
                    })
                    .ok_or(FsError::NotFound);
            }
        }
        if let Some((view, dir)) = self.view_dir(node) {
            // Only a cover's name costs a look at the directory's art.
            if COVER_NAMES.contains(&name) {
                if let Some((cover_name, _)) = self.cover(view, dir)? {
                    if name == cover_name {
                        return Ok(Node::Cover { view, dir });
                    }
                }
            }
            let e = self
                .meta
                .music_lookup(view, dir, name)?
                .ok_or(FsError::NotFound)?;
            return Ok(match e.node {
                MusicNode::Dir(d) => self.dir_node(view, d),
                MusicNode::Track(t) => {
                    remember(&mut self.parents.lock(), t, (view, dir));
                    Node::Track(t)
                }
            });
        }
        match node {
            Node::SearchRoot => self.search_dir(name),
            Node::CollectionsRoot => self
                .meta
                .music_collections()?
                .into_iter()
                .find(|c| c.name == name)
                .map(|c| Node::Collection(c.id))
                .ok_or(FsError::NotFound),
            Node::Search(_) | Node::Collection(_) => {
                let l = self.listing(node)?;
                l.entries
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, node)| *node)
                    .ok_or(FsError::NotFound)
            }
            Node::Track(_) | Node::Cover { .. } => Err(FsError::NotDir),
            _ => Err(FsError::NotFound),
        }
    }

    /// The attributes of `node`, checking it still exists.
    fn attr_of(&self, node: Node) -> Result<Attr> {
        match node {
            Node::Track(t) => self.track_attr(&self.track(t)?),
            Node::Cover { view, dir } => match self.cover(view, dir)? {
                Some((_, b)) => Ok(self.file_attr(node, b.len() as u64, self.mounted)),
                None => Err(FsError::NotFound),
            },
            Node::Dir { view, dir } => {
                if dir != MUSIC_ROOT && self.meta.music_dir_entry(view, dir)?.is_none() {
                    return Err(FsError::NotFound);
                }
                Ok(self.dir_attr(node))
            }
            Node::Search(n) => {
                if self.searches.lock().results.contains_key(&n) {
                    Ok(self.dir_attr(node))
                } else {
                    Err(FsError::NotFound)
                }
            }
            Node::Collection(c) => {
                if self.meta.music_collections()?.iter().any(|x| x.id == c) {
                    Ok(self.dir_attr(node))
                } else {
                    Err(FsError::NotFound)
                }
            }
            Node::Root | Node::SearchRoot | Node::CollectionsRoot => Ok(self.dir_attr(node)),
        }
    }

    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        self.attr_of(Node::from_ino(ino).ok_or(FsError::NotFound)?)
    }

    /// Runs a search once per query per mount; its directory lists the results.
    fn search_dir(&self, query: &str) -> Result<Node> {
        if let Some(n) = self.searches.lock().by_query.get(query) {
            return Ok(Node::Search(*n));
        }
        let Some(search) = &self.search else {
            return Err(FsError::NotFound);
        };
        let hits = match search.search(query, self.cfg.search_limit.max(1)) {
            Ok(h) => h,
            Err(crate::search::SearchError::BadQuery { .. }) => return Err(FsError::NotFound),
            Err(e) => return Err(FsError::Io(std::io::Error::other(e.to_string()))),
        };
        let listing = self.flat_listing(hits.into_iter().map(|h| h.track))?;
        let mut s = self.searches.lock();
        if let Some(n) = s.by_query.get(query) {
            return Ok(Node::Search(*n));
        }
        s.next += 1;
        let n = s.next;
        s.by_query.insert(query.to_string(), n);
        s.results.insert(n, Arc::new(listing));
        Ok(Node::Search(n))
    }

    fn flat_listing(&self, tracks: impl Iterator<Item = u64>) -> Result<Listing> {
        let mut used = std::collections::HashSet::new();
        let mut entries = Vec::new();
        for id in tracks {
            let Ok(t) = self.track(id) else { continue };
            entries.push((unique_name(flat_name(&t), &mut used), Node::Track(id)));
        }
        Ok(Listing { entries })
    }

    /// The names of a search or collection directory.
    pub(crate) fn listing(&self, node: Node) -> Result<Arc<Listing>> {
        match node {
            Node::Search(n) => self
                .searches
                .lock()
                .results
                .get(&n)
                .cloned()
                .ok_or(FsError::NotFound),
            Node::Collection(c) => {
                let coll = self
                    .meta
                    .music_collections()?
                    .into_iter()
                    .find(|x| x.id == c)
                    .ok_or(FsError::NotFound)?;
                let Some(search) = &self.search else {
                    return Ok(Arc::new(Listing { entries: vec![] }));
                };
                let hits = search
                    .search(&coll.query, self.cfg.search_limit.max(1))
                    .map_err(|e| FsError::Io(std::io::Error::other(e.to_string())))?;
                Ok(Arc::new(
                    self.flat_listing(hits.into_iter().map(|h| h.track))?,
                ))
            }
            _ => Err(FsError::NotDir),
        }
    }

    /// The cover of directory `dir` of `view`: the embedded art of its first track (by
    /// name) that has some, else the image in the origin folder of its first track
    /// (`cover.jpg`, `folder.jpg`, `front.jpg`, or `.png`). Remembered for the life of
    /// the mount.
    pub fn cover(&self, view: u64, dir: u64) -> Result<Cover> {
        if let Some(c) = self.covers.lock().get(&(view, dir)) {
            return Ok(c.clone());
        }
        let mut cover = match self.meta.music_dir_cover_track(view, dir)? {
            Some(t) => match self.track(t) {
                Ok(t) => content::front_cover(self, &t)?,
                Err(_) => None,
            },
            None => None,
        };
        if cover.is_none() {
            // No embedded art: the image in the folder of the directory's first track.
            let first = self
                .meta
                .music_readdir(view, dir, None, 64)?
                .into_iter()
                .find_map(|e| match e.node {
                    MusicNode::Track(t) => Some(t),
                    MusicNode::Dir(_) => None,
                });
            if let Some(t) = first.and_then(|t| self.track(t).ok()) {
                cover = content::folder_cover(self, &t)?;
            }
        }
        remember(&mut self.covers.lock(), (view, dir), cover.clone());
        Ok(cover)
    }

    pub fn open(&self, ino: u64) -> Result<Opened> {
        let node = Node::from_ino(ino).ok_or(FsError::NotFound)?;
        let body = match node {
            Node::Track(t) => {
                Body::Track(Arc::new(content::TrackBody::served(self, self.track(t)?)?))
            }
            Node::Cover { view, dir } => match self.cover(view, dir)? {
                Some((_, b)) => Body::Bytes(b),
                None => return Err(FsError::NotFound),
            },
            _ => return Err(FsError::IsDir),
        };
        let parent = match node {
            Node::Track(t) => self.parents.lock().get(&t).copied(),
            _ => None,
        };
        Ok(Opened {
            fh: self.files.insert(OpenTrack::new(body, parent)),
            keep_cache: true,
            ..Opened::default()
        })
    }

    pub fn read(&self, _ino: u64, fh: u64, offset: u64, size: u32) -> Result<Bytes> {
        let f = self.files.get(fh)?;
        f.read(self, offset, size as u64)
    }

    pub fn statfs(&self) -> Result<StatFs> {
        // Counting a million rows takes tens of milliseconds: the count is kept until the
        // tracks change (one indexed read tells).
        let changes = self.meta.music_changes()?;
        let known = *self.track_count.lock();
        let files = match known {
            Some((at, n)) if at == changes => n,
            _ => {
                let n = self.meta.music_track_count(None)?;
                *self.track_count.lock() = Some((changes, n));
                n
            }
        };
        Ok(StatFs {
            blocks: 0,
            bfree: 0,
            bavail: 0,
            files,
            ffree: 0,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_get_numbers_before_the_extension() {
        let mut used = std::collections::HashSet::new();
        assert_eq!(unique_name("A - B.flac".into(), &mut used), "A - B.flac");
        assert_eq!(
            unique_name("A - B.flac".into(), &mut used),
            "A - B (2).flac"
        );
        assert_eq!(
            unique_name("A - B.flac".into(), &mut used),
            "A - B (3).flac"
        );
        assert_eq!(unique_name("noext".into(), &mut used), "noext");
        assert_eq!(unique_name("noext".into(), &mut used), "noext (2)");
    }
}
