//! The core of the view: names, listings and attributes, from the index in the
//! metadata store (`MusicStore`), the search index and the saved collections. Every
//! function returns a [`Result`]; `mod.rs` turns it into a reply.
//!
//! Invariants: a directory listing is taken whole at opendir (a snapshot: a rescan that
//! swaps the tree meanwhile does not mix two trees into one listing); names in search
//! and collection directories are `Artist - Title.ext`, sanitised, with ` (2)`, ` (3)`…
//! before the extension for repeats, in result order (best first).

use super::content::{self, Body, OpenTrack};
use super::inode::Node;
use super::{FsError, Handles, MusicFsConfig, OpStats, Result};
use crate::cache::MusicCache;
use crate::origin::OriginSet;
use crate::search::TrackSearch;
use crate::template::{sanitize_component, RenderOptions};
use bytes::Bytes;
use fvfs_fuse::ops::{Attr, DirEntry, FileKind, Opened, StatFs};
use fvfs_meta::{MetaStore, MusicNode, MusicTrack, MUSIC_ROOT};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::Arc;

/// Names of the root's special directories.
pub const SEARCH_DIR: &str = ".search";
pub const COLLECTIONS_DIR: &str = ".collections";
/// Rows fetched per index query of a listing.
const PAGE: usize = 1000;
/// The names a cover may have.
const COVER_NAMES: [&str; 2] = ["cover.jpg", "cover.png"];
/// Covers, search listings and track parents remembered, at most.
const REMEMBERED: usize = 4096;

/// A directory's names, as a search or collection lists them.
pub(crate) struct Listing {
    pub entries: Vec<(String, Node)>,
}

#[derive(Default)]
struct Searches {
    by_query: HashMap<String, u64>,
    results: HashMap<u64, Arc<Listing>>,
    next: u64,
}

/// A directory's cover: its name and bytes (None: the directory has none).
pub(crate) type Cover = Option<(&'static str, Bytes)>;

pub(crate) struct Core {
    pub meta: Arc<dyn MetaStore>,
    pub origins: OriginSet,
    pub cache: Arc<MusicCache>,
    search: Option<Arc<dyn TrackSearch>>,
    pub rt: tokio::runtime::Handle,
    pub cfg: MusicFsConfig,
    root_view: Option<u64>,
    mounted: i64,
    pub stats: OpStats,
    pub files: Handles<OpenTrack>,
    pub dirs: Handles<Vec<DirEntry>>,
    searches: Mutex<Searches>,
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
            covers: Mutex::new(HashMap::new()),
            overlays: Mutex::new(HashMap::new()),
            parents: Mutex::new(HashMap::new()),
            prefetching: Arc::new(tokio::sync::Semaphore::new(2)),
            prefetching_next: Arc::new(tokio::sync::Semaphore::new(1)),
        })
    }

    fn dir_attr(&self, node: Node) -> Attr {
        Attr {
            ino: node.ino(),
            kind: FileKind::Dir,
            perm: 0o555,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
            size: 0,
            blocks: 0,
            nlink: 2,
            atime: self.mounted,
            mtime: self.mounted,
            ctime: self.mounted,
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
    fn view_dir(&self, node: Node) -> Option<(u64, u64)> {
        match node {
            Node::Root => self.root_view.map(|v| (v, MUSIC_ROOT)),
            Node::Dir { view, dir } => Some((view, dir)),
            _ => None,
        }
    }

    /// The node for directory `dir` of `view`: the root itself in single-view mode.
    fn dir_node(&self, view: u64, dir: u64) -> Node {
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
    fn listing(&self, node: Node) -> Result<Arc<Listing>> {
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
    /// name) that has some. Remembered for the life of the mount.
    pub fn cover(&self, view: u64, dir: u64) -> Result<Cover> {
        if let Some(c) = self.covers.lock().get(&(view, dir)) {
            return Ok(c.clone());
        }
        let cover = match self.meta.music_dir_cover_track(view, dir)? {
            Some(t) => match self.track(t) {
                Ok(t) => content::front_cover(self, &t)?,
                Err(_) => None,
            },
            None => None,
        };
        remember(&mut self.covers.lock(), (view, dir), cover.clone());
        Ok(cover)
    }

    /// Every name of directory `node`, with `.` and `..` first.
    fn list(&self, node: Node) -> Result<Vec<(String, Node, FileKind)>> {
        let mut out = vec![
            (".".to_string(), node, FileKind::Dir),
            ("..".to_string(), node, FileKind::Dir),
        ];
        if node == Node::Root {
            out.push((SEARCH_DIR.into(), Node::SearchRoot, FileKind::Dir));
            out.push((COLLECTIONS_DIR.into(), Node::CollectionsRoot, FileKind::Dir));
            if self.root_view.is_none() {
                for v in self.meta.music_views()? {
                    let n = Node::Dir {
                        view: v.id,
                        dir: MUSIC_ROOT,
                    };
                    out.push((v.name, n, FileKind::Dir));
                }
                return Ok(out);
            }
        }
        if let Some((view, dir)) = self.view_dir(node) {
            if self.meta.music_dir_entry(view, dir)?.is_none() && dir != MUSIC_ROOT {
                return Err(FsError::NotFound);
            }
            let mut after: Option<String> = None;
            let mut tracks = false;
            loop {
                let page = self.meta.music_readdir(view, dir, after.as_deref(), PAGE)?;
                for e in &page {
                    match e.node {
                        MusicNode::Dir(d) => {
                            out.push((e.name.clone(), self.dir_node(view, d), FileKind::Dir))
                        }
                        MusicNode::Track(t) => {
                            tracks = true;
                            out.push((e.name.clone(), Node::Track(t), FileKind::File));
                        }
                    }
                }
                match page.last() {
                    Some(e) if page.len() == PAGE => after = Some(e.name.clone()),
                    _ => break,
                }
            }
            if tracks {
                if let Some((name, _)) = self.cover(view, dir)? {
                    out.push((name.to_string(), Node::Cover { view, dir }, FileKind::File));
                }
            }
            return Ok(out);
        }
        match node {
            Node::SearchRoot => {
                let s = self.searches.lock();
                let mut q: Vec<_> = s.by_query.iter().map(|(k, v)| (k.clone(), *v)).collect();
                q.sort();
                out.extend(
                    q.into_iter()
                        .filter(|(k, _)| !k.contains('/') && !k.is_empty())
                        .map(|(k, v)| (k, Node::Search(v), FileKind::Dir)),
                );
            }
            Node::CollectionsRoot => {
                for c in self.meta.music_collections()? {
                    out.push((c.name, Node::Collection(c.id), FileKind::Dir));
                }
            }
            Node::Search(_) | Node::Collection(_) => {
                for (name, n) in &self.listing(node)?.entries {
                    out.push((name.clone(), *n, FileKind::File));
                }
            }
            _ => return Err(FsError::NotDir),
        }
        Ok(out)
    }

    pub fn opendir(&self, ino: u64) -> Result<Opened> {
        let node = Node::from_ino(ino).ok_or(FsError::NotFound)?;
        if !node.is_dir() {
            return Err(FsError::NotDir);
        }
        let entries = self
            .list(node)?
            .into_iter()
            .enumerate()
            .map(|(i, (name, n, kind))| DirEntry {
                ino: n.ino(),
                offset: i as u64 + 1,
                kind,
                name: name.into_bytes(),
            })
            .collect();
        Ok(Opened {
            fh: self.dirs.insert(entries),
            keep_cache: false,
            direct_io: false,
        })
    }

    pub fn readdir(&self, _ino: u64, fh: u64, offset: u64) -> Result<Vec<DirEntry>> {
        let entries = self.dirs.get(fh)?;
        Ok(entries
            .iter()
            .skip(offset as usize)
            .take(512)
            .cloned()
            .collect())
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
            direct_io: false,
        })
    }

    pub fn read(&self, _ino: u64, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let f = self.files.get(fh)?;
        f.read(self, offset, size as u64)
    }

    pub fn statfs(&self) -> Result<StatFs> {
        let files = self.meta.music_track_count(None)?;
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
