//! Naming files from outside the filesystem: a path inside it ("/photos/a.jpg") or an
//! absolute path under a live mount of it (matched against the session registry), and
//! the regular files of a subtree. Resolution is the vfs's (`Vfs::resolve_path`), as root:
//! these serve the owner's administration commands.

use crate::error::{EngineError, Result};
use fvfs_types::{FileKind, Ino};
use fvfs_vfs::{Attr, Vfs};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// Readdir page size while walking a subtree.
const PAGE: usize = 1024;

/// The file `path` names: a path inside the filesystem, or one under a live mount of it.
pub fn resolve(vfs: &Vfs, path: &Path) -> Result<Attr> {
    let mut rel = path;
    let sessions = vfs.sessions()?;
    for s in &sessions {
        if let Ok(r) = path.strip_prefix(&s.mountpoint) {
            rel = r;
            break;
        }
    }
    let mut comps = Vec::new();
    for c in rel.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => comps.push(name.as_bytes()),
            Component::ParentDir => {
                return Err(EngineError::Invalid(format!(
                    "{}: `..` is not allowed here",
                    path.display()
                )))
            }
            Component::Prefix(_) => {
                return Err(EngineError::Invalid(format!(
                    "{}: not a filesystem path",
                    path.display()
                )))
            }
        }
    }
    vfs.resolve_path(&comps).map_err(|e| {
        EngineError::Invalid(format!("{}: not in the filesystem ({e})", path.display()))
    })
}

/// Regular files at or below `ino` (depth-first).
pub fn files_under(vfs: &Vfs, ino: Ino) -> Result<Vec<Attr>> {
    let mut out = Vec::new();
    let mut stack = vec![vfs.getattr(ino)?];
    while let Some(a) = stack.pop() {
        match a.kind {
            FileKind::File => out.push(a),
            FileKind::Dir => {
                let mut cookie = 0;
                loop {
                    let page = vfs.readdir(a.ino, cookie, PAGE)?;
                    let Some(last) = page.last() else { break };
                    cookie = last.cookie;
                    for e in page.iter().filter(|e| e.name != b"." && e.name != b"..") {
                        if matches!(e.kind, FileKind::File | FileKind::Dir) {
                            stack.push(vfs.getattr(e.ino)?);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}
