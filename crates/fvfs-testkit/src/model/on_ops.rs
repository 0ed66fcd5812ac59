//! The adapter that makes any `FsOps` face a system under test of the model: it issues
//! the calls the kernel would (lookups from the root inode, create with O_EXCL, flush then
//! release at close, setattr for truncate, opendir/readdir/releasedir for listings) and,
//! for faces that rely on the kernel's checks, makes those checks first.

use super::*;

/// One `FsOps` face as a system under test ([`OnOps`]): the face, and how to rebuild it.
pub trait Face {
    type Ops: FsOps;
    fn ops(&self) -> &Self::Ops;
    /// Drops the face's caches (and what else it can) and builds it again.
    fn reopen(&mut self);
    fn supports(&self, _feature: Feature) -> bool {
        true
    }
    /// Whether [`OnOps`] makes the checks the kernel's VFS makes before it calls a face
    /// (the kind of an unlink or rmdir victim, an existing name for create, mkdir and
    /// link, a directory for link, rename's kinds, subtree and same-inode rules), for a
    /// face that documents them as preconditions. Without them (the default) the face
    /// must answer every errno itself.
    fn kernel_checks(&self) -> bool {
        false
    }
}

/// [`Sut`] over any [`Face`]: each operation is the `FsOps` calls the kernel makes for
/// the syscall (lookups from the root, then the operation; flush then release at close).
pub struct OnOps<F: Face> {
    pub face: F,
    /// Open handles: fh → inode.
    open: HashMap<u64, u64>,
}

const CTX: ops::Ctx = ops::Ctx {
    uid: 0,
    gid: 0,
    pid: 0,
    umask: 0,
};
/// The kernel's inode number of the root.
const ROOT: u64 = 1;

fn e<T>(r: ops::Result<T>) -> R<T> {
    r.map_err(|e| e.0)
}

/// `"a/b"` → (`"a"`, `"b"`); `"a"` → (`""`, `"a"`).
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

impl<F: Face> OnOps<F> {
    pub fn new(face: F) -> OnOps<F> {
        OnOps {
            face,
            open: HashMap::new(),
        }
    }
    fn walk(&self, path: &str) -> R<ops::Attr> {
        let o = self.face.ops();
        let mut a = e(o.getattr(&CTX, ROOT, None))?;
        for c in path.split('/').filter(|c| !c.is_empty()) {
            if a.kind != FileKind::Dir {
                return Err(libc::ENOTDIR);
            }
            a = e(o.lookup(&CTX, a.ino, OsStr::new(c)))?;
        }
        Ok(a)
    }
    fn parent<'p>(&self, path: &'p str) -> R<(u64, &'p OsStr)> {
        let (dir, name) = split(path);
        let a = self.walk(dir)?;
        if a.kind != FileKind::Dir {
            return Err(libc::ENOTDIR);
        }
        Ok((a.ino, OsStr::new(name)))
    }
    /// The entry at `path`, if any (ENOENT is `None`).
    fn entry(&self, path: &str) -> R<Option<ops::Attr>> {
        match self.walk(path) {
            Ok(a) => Ok(Some(a)),
            Err(libc::ENOENT) => {
                self.parent(path)?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
    /// The kernel's checks of a new name (create, mkdir, link): EEXIST.
    fn kernel_new_name(&self, path: &str) -> R {
        if self.face.kernel_checks() && self.entry(path)?.is_some() {
            return Err(libc::EEXIST);
        }
        Ok(())
    }
    /// The kernel's check of the victim of unlink (`dir` false) or rmdir (`dir` true).
    fn kernel_victim(&self, path: &str, dir: bool) -> R {
        if self.face.kernel_checks() {
            self.parent(path)?;
            match self.walk(path)?.kind == FileKind::Dir {
                true if !dir => return Err(libc::EISDIR),
                false if dir => return Err(libc::ENOTDIR),
                _ => {}
            }
        }
        Ok(())
    }
    /// The kernel's checks of rename: `Ok(true)` if it ends there (the same inode).
    fn kernel_rename(&self, from: &str, to: &str) -> R<bool> {
        if !self.face.kernel_checks() {
            return Ok(false);
        }
        self.parent(from)?;
        self.parent(to)?;
        let src = self.walk(from)?;
        let dst = self.entry(to)?;
        let dir = src.kind == FileKind::Dir;
        if dir && to.starts_with(&format!("{from}/")) {
            return Err(libc::EINVAL);
        }
        if from.starts_with(&format!("{to}/")) {
            return Err(libc::ENOTEMPTY);
        }
        match dst {
            Some(d) if d.ino == src.ino => Ok(true),
            Some(d) if dir && d.kind != FileKind::Dir => Err(libc::ENOTDIR),
            Some(d) if !dir && d.kind == FileKind::Dir => Err(libc::EISDIR),
            _ => Ok(false),
        }
    }
    fn ino(&self, fh: u64) -> R<u64> {
        self.open.get(&fh).copied().ok_or(libc::EBADF)
    }
}

impl<F: Face> Sut for OnOps<F> {
    fn create(&mut self, path: &str) -> R {
        let (d, name) = self.parent(path)?;
        self.kernel_new_name(path)?;
        let o = self.face.ops();
        let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;
        let (a, h) = e(o.create(&CTX, d, name, libc::S_IFREG | 0o644, flags))?;
        let flushed = e(o.flush(&CTX, a.ino, h.fh));
        e(o.release(&CTX, a.ino, h.fh))?;
        flushed
    }
    fn mkdir(&mut self, path: &str) -> R {
        let (d, name) = self.parent(path)?;
        self.kernel_new_name(path)?;
        e(self.face.ops().mkdir(&CTX, d, name, 0o755)).map(drop)
    }
    fn open(&mut self, path: &str, write: bool) -> R<u64> {
        let a = self.walk(path)?;
        let flags = if write { libc::O_RDWR } else { libc::O_RDONLY };
        let fh = e(self.face.ops().open(&CTX, a.ino, flags))?.fh;
        self.open.insert(fh, a.ino);
        Ok(fh)
    }
    fn write(&mut self, fh: u64, off: u64, data: &[u8]) -> R<usize> {
        let ino = self.ino(fh)?;
        e(self.face.ops().write(&CTX, ino, fh, off, data)).map(|n| n as usize)
    }
    fn fsync(&mut self, fh: u64) -> R {
        let ino = self.ino(fh)?;
        e(self.face.ops().fsync(&CTX, ino, fh, false))
    }
    fn read(&mut self, fh: u64, off: u64, len: u32) -> R<Vec<u8>> {
        let ino = self.ino(fh)?;
        e(self.face.ops().read(&CTX, ino, fh, off, len)).map(|b| b.to_vec())
    }
    fn close(&mut self, fh: u64) -> R {
        let ino = self.open.remove(&fh).ok_or(libc::EBADF)?;
        let o = self.face.ops();
        let flushed = e(o.flush(&CTX, ino, fh));
        e(o.release(&CTX, ino, fh))?;
        flushed
    }
    fn truncate(&mut self, path: &str, size: u64) -> R {
        let a = self.walk(path)?;
        if a.kind == FileKind::Dir {
            return Err(libc::EISDIR);
        }
        let set = SetAttr {
            size: Some(size),
            ..SetAttr::default()
        };
        e(self.face.ops().setattr(&CTX, a.ino, &set)).map(drop)
    }
    fn rename(&mut self, from: &str, to: &str) -> R {
        let (sd, sn) = self.parent(from)?;
        let (dd, dn) = self.parent(to)?;
        if self.kernel_rename(from, to)? {
            return Ok(());
        }
        e(self
            .face
            .ops()
            .rename(&CTX, sd, sn, dd, dn, RenameFlags::default()))
    }
    fn link(&mut self, from: &str, to: &str) -> R {
        let a = self.walk(from)?;
        let (d, name) = self.parent(to)?;
        self.kernel_new_name(to)?;
        if self.face.kernel_checks() && a.kind == FileKind::Dir {
            return Err(libc::EPERM);
        }
        e(self.face.ops().link(&CTX, a.ino, d, name)).map(drop)
    }
    fn unlink(&mut self, path: &str) -> R {
        let (d, name) = self.parent(path)?;
        self.kernel_victim(path, false)?;
        e(self.face.ops().unlink(&CTX, d, name))
    }
    fn rmdir(&mut self, path: &str) -> R {
        let (d, name) = self.parent(path)?;
        self.kernel_victim(path, true)?;
        e(self.face.ops().rmdir(&CTX, d, name))
    }
    fn readdir(&mut self, path: &str) -> R<Vec<(String, FileKind)>> {
        let a = self.walk(path)?;
        if a.kind != FileKind::Dir {
            return Err(libc::ENOTDIR);
        }
        let o = self.face.ops();
        let fh = e(o.opendir(&CTX, a.ino))?.fh;
        let mut out = Vec::new();
        let mut off = 0;
        let listed = loop {
            let batch = match e(o.readdir(&CTX, a.ino, fh, off)) {
                Ok(b) => b,
                Err(errno) => break Err(errno),
            };
            let Some(last) = batch.last() else {
                break Ok(());
            };
            off = last.offset;
            out.extend(
                batch
                    .into_iter()
                    .filter(|d| d.name != b"." && d.name != b"..")
                    .map(|d| (String::from_utf8_lossy(&d.name).into_owned(), d.kind)),
            );
        };
        e(o.releasedir(&CTX, a.ino, fh))?;
        listed.map(|()| out)
    }
    fn stat(&mut self, path: &str) -> R<Stat> {
        let a = self.walk(path)?;
        let a = e(self.face.ops().getattr(&CTX, a.ino, None))?;
        Ok(Stat {
            ino: a.ino,
            kind: a.kind,
            size: a.size,
            nlink: a.nlink,
        })
    }
    fn reopen(&mut self) {
        assert!(self.open.is_empty(), "reopen with handles open");
        self.face.reopen();
    }
    fn supports(&self, feature: Feature) -> bool {
        self.face.supports(feature)
    }
}
