//! Directory listings, streamed: opendir only checks that the directory exists, and
//! each readdir takes the index's next page of names (by name order) as the kernel asks
//! for them. A directory of a view is then cheap to open whether or not it is listed,
//! its first names come after one page query whatever its size, and a listing the
//! kernel keeps (FOPEN_CACHE_DIR, see `Core::dir_mtime`) costs nothing to open again.
//!
//! Invariants:
//! - Offsets are positions in the handle's listing (1-based: the offset of an entry is
//!   where the next readdir resumes); names already produced are kept for the handle's
//!   life, so a rewind or a repeated offset gets the same names.
//! - Pages resume after the last name produced. A rebuild that swaps the view's tree
//!   while a listing is under way gives POSIX's readdir guarantee: a name present in
//!   both trees is listed exactly once; one added or removed meanwhile may or may not
//!   be.
//! - Search and collection directories are listed whole at their first readdir (their
//!   results are bounded by the search limit).

use super::inode::Node;
use super::tree::{Core, COLLECTIONS_DIR, PAGE, SEARCH_DIR};
use super::{FsError, Result};
use fvfs_fuse::ops::{DirEntry, FileKind, Opened};
use fvfs_meta::{MusicNode, MUSIC_ROOT};
use parking_lot::Mutex;

/// Entries returned per readdir at most (the kernel's buffer takes what fits).
const BATCH: usize = 512;

/// An open directory: the names produced so far and where the listing goes on.
pub(crate) struct DirStream {
    node: Node,
    state: Mutex<Stream>,
}

struct Stream {
    entries: Vec<DirEntry>,
    next: Next,
}

enum Next {
    /// Nothing produced yet.
    Start,
    /// More pages of a view's directory, after `after`.
    Page {
        view: u64,
        dir: u64,
        after: Option<String>,
        tracks: bool,
    },
    Done,
}

impl Stream {
    fn push(&mut self, name: String, node: Node, kind: FileKind) {
        let offset = self.entries.len() as u64 + 1;
        self.entries.push(DirEntry {
            ino: node.ino(),
            offset,
            kind,
            name: name.into_bytes(),
        });
    }
}

impl Core {
    pub fn opendir(&self, ino: u64) -> Result<Opened> {
        let node = Node::from_ino(ino).ok_or(FsError::NotFound)?;
        if !node.is_dir() {
            return Err(FsError::NotDir);
        }
        if let Some((view, dir)) = self.view_dir(node) {
            if dir != MUSIC_ROOT && self.meta.music_dir_entry(view, dir)?.is_none() {
                return Err(FsError::NotFound);
            }
        }
        // A view's listings change only with its generation, which moves the directory's
        // mtime: the kernel may keep them. Searches and collections change without it.
        let stable = node == Node::Root || self.view_dir(node).is_some();
        let stream = DirStream {
            node,
            state: Mutex::new(Stream {
                entries: Vec::new(),
                next: Next::Start,
            }),
        };
        Ok(Opened {
            fh: self.dirs.insert(stream),
            keep_cache: stable,
            direct_io: false,
            cache_dir: stable,
            stale: false,
        })
    }

    /// The entries after `offset` of the listing of handle `fh`, at most [`BATCH`].
    pub fn readdir(&self, _ino: u64, fh: u64, offset: u64) -> Result<Vec<DirEntry>> {
        let d = self.dirs.get(fh)?;
        let mut s = d.state.lock();
        let want = (offset as usize).saturating_add(BATCH);
        while s.entries.len() < want && !matches!(s.next, Next::Done) {
            self.advance(d.node, &mut s)?;
        }
        Ok(s.entries
            .iter()
            .skip(offset as usize)
            .take(BATCH)
            .cloned()
            .collect())
    }

    /// Produces the next part of a listing.
    fn advance(&self, node: Node, s: &mut Stream) -> Result<()> {
        match std::mem::replace(&mut s.next, Next::Done) {
            Next::Start => {
                s.push(".".into(), node, FileKind::Dir);
                s.push("..".into(), node, FileKind::Dir);
                if node == Node::Root {
                    s.push(SEARCH_DIR.into(), Node::SearchRoot, FileKind::Dir);
                    s.push(COLLECTIONS_DIR.into(), Node::CollectionsRoot, FileKind::Dir);
                }
                if let Some((view, dir)) = self.view_dir(node) {
                    s.next = Next::Page {
                        view,
                        dir,
                        after: None,
                        tracks: false,
                    };
                } else {
                    self.list_whole(node, s)?;
                }
            }
            Next::Page {
                view,
                dir,
                after,
                mut tracks,
            } => {
                let page = self.meta.music_readdir(view, dir, after.as_deref(), PAGE)?;
                for e in &page {
                    match e.node {
                        MusicNode::Dir(d) => {
                            s.push(e.name.clone(), self.dir_node(view, d), FileKind::Dir)
                        }
                        MusicNode::Track(t) => {
                            tracks = true;
                            s.push(e.name.clone(), Node::Track(t), FileKind::File);
                        }
                    }
                }
                match page.last() {
                    Some(e) if page.len() == PAGE => {
                        s.next = Next::Page {
                            view,
                            dir,
                            after: Some(e.name.clone()),
                            tracks,
                        }
                    }
                    _ => {
                        if tracks {
                            if let Some((name, _)) = self.cover(view, dir)? {
                                s.push(name.to_string(), Node::Cover { view, dir }, FileKind::File);
                            }
                        }
                    }
                }
            }
            Next::Done => {}
        }
        Ok(())
    }

    /// The names of a directory that is not a view's: the views (the root of a mount of
    /// every view), the searches run, the collections, or a search's or collection's
    /// results.
    fn list_whole(&self, node: Node, s: &mut Stream) -> Result<()> {
        match node {
            Node::Root => {
                for v in self.meta.music_views()? {
                    let n = Node::Dir {
                        view: v.id,
                        dir: MUSIC_ROOT,
                    };
                    s.push(v.name, n, FileKind::Dir);
                }
            }
            Node::SearchRoot => {
                let mut q: Vec<_> = {
                    let found = self.searches.lock();
                    found
                        .by_query
                        .iter()
                        .map(|(k, v)| (k.clone(), *v))
                        .collect()
                };
                q.sort();
                for (k, v) in q {
                    if !k.contains('/') && !k.is_empty() {
                        s.push(k, Node::Search(v), FileKind::Dir);
                    }
                }
            }
            Node::CollectionsRoot => {
                for c in self.meta.music_collections()? {
                    s.push(c.name, Node::Collection(c.id), FileKind::Dir);
                }
            }
            Node::Search(_) | Node::Collection(_) => {
                for (name, n) in &self.listing(node)?.entries {
                    s.push(name.clone(), *n, FileKind::File);
                }
            }
            _ => return Err(FsError::NotDir),
        }
        Ok(())
    }
}
