//! A walk of the whole namespace for reports and exports (`fvfsd export`): every name,
//! depth first from the root, with its attributes and, for a regular file, its blocks and
//! the tiers they are on (`FileTiers`, what `fvfsd stat` shows).
//!
//! Invariants:
//! - Memory is bounded by the depth of the tree times one readdir page, never by the
//!   number of entries: the walk is an iterator, directories are read a page at a time.
//! - Each name is yielded once (a file with several hard links once per name; directories
//!   cannot be hard-linked, so there are no cycles).
//! - It is not a snapshot. Beside a live mount, a name removed while the walk runs is
//!   skipped, and one created or renamed meanwhile may be missed or seen twice.
//! - The first error ends the walk (`next` returns None after it).

use crate::{FileTiers, Result, Vfs};
use fvfs_meta::{Attr, DirEntry, MetaError};
use fvfs_types::{FileKind, Ino, ROOT_INO};

/// Directory entries read from the metadata at a time.
const PAGE: usize = 1024;

/// One name of the namespace.
#[derive(Clone, Debug)]
pub struct WalkEntry {
    /// Absolute inside the filesystem: "/" for the root, "/a/b" below it. Names are
    /// bytes, not necessarily UTF-8.
    pub path: Vec<u8>,
    pub attr: Attr,
    /// A regular file's blocks (distinct ids in file order) and pin; None for the others.
    pub tiers: Option<FileTiers>,
}

/// The iterator [`Vfs::walk`] returns.
pub struct Walk<'a> {
    vfs: &'a Vfs,
    started: bool,
    /// The directories being listed, outermost first.
    stack: Vec<Frame>,
}

struct Frame {
    ino: Ino,
    path: Vec<u8>,
    page: std::vec::IntoIter<DirEntry>,
    /// Where the next page starts (the metadata's readdir cookie).
    cookie: u64,
    last_page: bool,
}

impl Vfs {
    /// Every name of the namespace with its attributes, depth first (see [`Walk`]).
    pub fn walk(&self) -> Walk<'_> {
        Walk {
            vfs: self,
            started: false,
            stack: Vec::new(),
        }
    }
}

impl Walk<'_> {
    /// The entry for `ino` at `path`; None when it is gone (removed during the walk).
    fn entry(&mut self, path: Vec<u8>, ino: Ino) -> Result<Option<WalkEntry>> {
        let attr = match self.vfs.getattr(ino) {
            Ok(a) => a,
            Err(crate::VfsError::Meta(MetaError::NotFound)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let tiers = match attr.kind {
            FileKind::File => Some(self.vfs.file_blocks(ino)?),
            FileKind::Dir => {
                self.stack.push(Frame {
                    ino,
                    path: path.clone(),
                    page: Vec::new().into_iter(),
                    cookie: 0,
                    last_page: false,
                });
                None
            }
            _ => None,
        };
        Ok(Some(WalkEntry { path, attr, tiers }))
    }

    fn step(&mut self) -> Result<Option<WalkEntry>> {
        if !self.started {
            self.started = true;
            return self.entry(b"/".to_vec(), ROOT_INO);
        }
        loop {
            let Some(frame) = self.stack.last_mut() else {
                return Ok(None);
            };
            let Some(e) = frame.page.next() else {
                if frame.last_page {
                    self.stack.pop();
                    continue;
                }
                match self.vfs.meta.readdir(frame.ino, frame.cookie, PAGE) {
                    Ok(page) => {
                        frame.last_page = page.len() < PAGE;
                        if let Some(last) = page.last() {
                            frame.cookie = last.cookie;
                        }
                        frame.page = page.into_iter();
                    }
                    // The directory was removed during the walk.
                    Err(MetaError::NotFound | MetaError::NotDir) => {
                        self.stack.pop();
                    }
                    Err(e) => return Err(e.into()),
                }
                continue;
            };
            let mut path = frame.path.clone();
            if path != b"/" {
                path.push(b'/');
            }
            path.extend_from_slice(&e.name);
            if let Some(entry) = self.entry(path, e.ino)? {
                return Ok(Some(entry));
            }
        }
    }
}

impl Iterator for Walk<'_> {
    type Item = Result<WalkEntry>;

    fn next(&mut self) -> Option<Result<WalkEntry>> {
        match self.step() {
            Ok(e) => e.map(Ok),
            Err(e) => {
                self.stack.clear();
                Some(Err(e))
            }
        }
    }
}
