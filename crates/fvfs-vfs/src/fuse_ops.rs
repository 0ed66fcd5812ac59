//! The engine's FUSE face: [`EngineOps`] implements `fvfs_fuse::FsOps` over [`Vfs`]. Each
//! method converts plain fvfs-fuse types to the vfs's, calls one Result-returning vfs
//! function (blocking on the runtime for async ones) and maps errors to errnos through
//! `VfsError::errno`, the one table, logging them here. Nothing here decides filesystem
//! semantics; the kernel glue is fvfs-fuse's adapter.
//!
//! Caching: the kernel keeps entries and attributes for the adapter's TTL (1 s). Alone
//! on the filesystem, file pages are kept across opens (FOPEN_KEEP_CACHE): every write
//! from this host passes through this mount, which keeps the kernel's cache coherent.
//! When other hosts mount it too ([`Vfs::shared`]), an open keeps them only if the file
//! is as it was at the previous open here, and otherwise drops the pages and the
//! kernel's attributes (close-to-open).
//! Permission checks are the kernel's (`default_permissions`, with POSIX ACLs: the face
//! asks for FUSE_POSIX_ACL and FUSE_DONT_MASK, so the vfs applies the umask unless a
//! default ACL rules). POSIX and flock locks are the kernel's local locks when one host
//! mounts; on a shared filesystem they are the metadata's (locks.rs), seen by all hosts.

use crate::{
    Attr, AttrChange, Ctx, FileKind, OpenFlags, RenameFlags, TimeSet, Vfs, VfsError, XattrMode,
};
use crate::{LockKind, LockRequest};
use bytes::Bytes;
use fvfs_fuse::ops::{self, Errno, FsOps, LockInfo, Opened, Result, SetAttr, SetTime, XattrSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

/// How many entries one readdir call asks of the metadata.
const READDIR_BATCH: usize = 256;

/// The engine as a FUSE face.
pub struct EngineOps {
    vfs: Arc<Vfs>,
    rt: tokio::runtime::Handle,
}

impl EngineOps {
    pub fn new(vfs: Arc<Vfs>, rt: tokio::runtime::Handle) -> EngineOps {
        EngineOps { vfs, rt }
    }
}

fn attr(a: &Attr) -> ops::Attr {
    ops::Attr {
        ino: a.ino,
        kind: a.kind,
        perm: a.perm,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        blocks: a.blocks,
        nlink: a.nlink,
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        rdev: a.rdev,
    }
}

fn vctx(c: &ops::Ctx) -> Ctx {
    Ctx {
        uid: c.uid,
        gid: c.gid,
        pid: c.pid,
    }
}

fn timeset(t: Option<SetTime>) -> TimeSet {
    match t {
        None => TimeSet::Omit,
        Some(SetTime::Now) => TimeSet::Now,
        Some(SetTime::At(ns)) => TimeSet::At(ns),
    }
}

/// The errno of an error of operation `op`, logged here where the face handles it:
/// expected errors (a missing name…) at debug level, the rest as errors.
fn errno(op: &'static str) -> impl Fn(VfsError) -> Errno {
    move |e| {
        if e.is_expected() {
            tracing::debug!(op, error = %e);
        } else {
            tracing::error!(op, error = %e, "filesystem operation failed");
        }
        Errno(e.errno())
    }
}

fn opened(fh: u64) -> Opened {
    Opened {
        fh,
        keep_cache: true,
        ..Opened::default()
    }
}

/// The vfs's form of a kernel lock request.
fn lock_request(owner: u64, l: &LockInfo) -> Result<LockRequest> {
    let kind = match l.typ {
        libc::F_RDLCK => Some(LockKind::Read),
        libc::F_WRLCK => Some(LockKind::Write),
        libc::F_UNLCK => None,
        _ => return Err(Errno::EINVAL),
    };
    Ok(LockRequest {
        owner,
        start: l.start,
        end: l.end,
        kind,
        pid: l.pid,
    })
}

impl FsOps for EngineOps {
    const POSIX_ACL: bool = true;

    fn destroy(&self) {
        if let Err(e) = self.rt.block_on(self.vfs.flush_all()) {
            tracing::error!(error = %e, "flushing buffered writes at unmount failed");
        }
    }

    fn lookup(&self, _ctx: &ops::Ctx, parent: u64, name: &OsStr) -> Result<ops::Attr> {
        let a = self
            .vfs
            .lookup(parent, name.as_bytes())
            .map_err(errno("lookup"))?;
        Ok(attr(&a))
    }

    fn getattr(&self, _ctx: &ops::Ctx, ino: u64, _fh: Option<u64>) -> Result<ops::Attr> {
        Ok(attr(&self.vfs.getattr(ino).map_err(errno("getattr"))?))
    }

    fn setattr(&self, ctx: &ops::Ctx, ino: u64, set: &SetAttr) -> Result<ops::Attr> {
        let a = self
            .rt
            .block_on(self.vfs.setattr(
                vctx(ctx),
                ino,
                AttrChange {
                    perm: set.mode,
                    uid: set.uid,
                    gid: set.gid,
                    size: set.size,
                    atime: timeset(set.atime),
                    mtime: timeset(set.mtime),
                },
            ))
            .map_err(errno("setattr"))?;
        Ok(attr(&a))
    }

    fn readlink(&self, _ctx: &ops::Ctx, ino: u64) -> Result<Vec<u8>> {
        self.vfs.readlink(ino).map_err(errno("readlink"))
    }

    fn mknod(
        &self,
        ctx: &ops::Ctx,
        parent: u64,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> Result<ops::Attr> {
        let a = self
            .vfs
            .mknod(vctx(ctx), parent, name.as_bytes(), mode, ctx.umask, rdev)
            .map_err(errno("mknod"))?;
        Ok(attr(&a))
    }

    fn mkdir(&self, ctx: &ops::Ctx, parent: u64, name: &OsStr, mode: u32) -> Result<ops::Attr> {
        let a = self
            .vfs
            .mkdir(vctx(ctx), parent, name.as_bytes(), mode, ctx.umask)
            .map_err(errno("mkdir"))?;
        Ok(attr(&a))
    }

    fn unlink(&self, _ctx: &ops::Ctx, parent: u64, name: &OsStr) -> Result<()> {
        self.vfs
            .unlink(parent, name.as_bytes())
            .map_err(errno("unlink"))
    }

    fn rmdir(&self, _ctx: &ops::Ctx, parent: u64, name: &OsStr) -> Result<()> {
        self.vfs
            .rmdir(parent, name.as_bytes())
            .map_err(errno("rmdir"))
    }

    fn symlink(
        &self,
        ctx: &ops::Ctx,
        parent: u64,
        name: &OsStr,
        target: &OsStr,
    ) -> Result<ops::Attr> {
        let a = self
            .vfs
            .symlink(vctx(ctx), parent, name.as_bytes(), target.as_bytes())
            .map_err(errno("symlink"))?;
        Ok(attr(&a))
    }

    fn rename(
        &self,
        _ctx: &ops::Ctx,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: ops::RenameFlags,
    ) -> Result<()> {
        let f = RenameFlags {
            noreplace: flags.noreplace,
            exchange: flags.exchange,
            ..RenameFlags::default()
        };
        self.vfs
            .rename(parent, name.as_bytes(), newparent, newname.as_bytes(), f)
            .map_err(errno("rename"))
    }

    fn link(
        &self,
        _ctx: &ops::Ctx,
        ino: u64,
        newparent: u64,
        newname: &OsStr,
    ) -> Result<ops::Attr> {
        let a = self
            .vfs
            .link(ino, newparent, newname.as_bytes())
            .map_err(errno("link"))?;
        Ok(attr(&a))
    }

    fn open(&self, _ctx: &ops::Ctx, ino: u64, flags: i32) -> Result<Opened> {
        let (fh, valid) = self
            .vfs
            .open_fresh(ino, OpenFlags::from_raw(flags))
            .map_err(errno("open"))?;
        Ok(Opened {
            keep_cache: valid,
            stale: !valid,
            ..opened(fh)
        })
    }

    fn read(&self, _ctx: &ops::Ctx, _ino: u64, fh: u64, offset: u64, size: u32) -> Result<Bytes> {
        self.rt
            .block_on(self.vfs.read(fh, offset, size))
            .map(Bytes::from)
            .map_err(errno("read"))
    }

    fn write(&self, _ctx: &ops::Ctx, _ino: u64, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        self.rt
            .block_on(self.vfs.write(fh, offset, data))
            .map_err(errno("write"))
    }

    fn flush(&self, _ctx: &ops::Ctx, _ino: u64, fh: u64) -> Result<()> {
        self.rt.block_on(self.vfs.flush(fh)).map_err(errno("flush"))
    }

    fn release(&self, _ctx: &ops::Ctx, _ino: u64, fh: u64) -> Result<()> {
        self.rt
            .block_on(self.vfs.release(fh))
            .map_err(errno("release"))
    }

    fn remote_locks(&self) -> bool {
        self.vfs.shared()
    }

    fn getlk(
        &self,
        _ctx: &ops::Ctx,
        ino: u64,
        _fh: u64,
        owner: u64,
        lock: LockInfo,
    ) -> Result<LockInfo> {
        let req = lock_request(owner, &lock)?;
        match self.vfs.test_lock(ino, &req).map_err(errno("getlk"))? {
            None => Ok(LockInfo {
                typ: libc::F_UNLCK,
                ..lock
            }),
            Some(l) => Ok(LockInfo {
                start: l.start,
                end: l.end,
                typ: match l.kind {
                    LockKind::Read => libc::F_RDLCK,
                    LockKind::Write => libc::F_WRLCK,
                },
                pid: l.pid,
            }),
        }
    }

    fn setlk(
        &self,
        _ctx: &ops::Ctx,
        _ino: u64,
        fh: u64,
        owner: u64,
        lock: LockInfo,
        sleep: bool,
    ) -> Result<()> {
        let req = lock_request(owner, &lock)?;
        self.rt
            .block_on(self.vfs.set_lock(fh, &req, sleep))
            .map_err(errno("setlk"))
    }

    fn release_locks(&self, ino: u64, owner: u64) {
        if let Err(e) = self.vfs.release_locks(ino, owner) {
            tracing::warn!(ino, error = %e, "cannot release file locks at close: they end with this session");
        }
    }

    fn fsync(&self, _ctx: &ops::Ctx, _ino: u64, fh: u64, _datasync: bool) -> Result<()> {
        self.rt.block_on(self.vfs.fsync(fh)).map_err(errno("fsync"))
    }

    fn opendir(&self, _ctx: &ops::Ctx, ino: u64) -> Result<Opened> {
        let a = self.vfs.getattr(ino).map_err(errno("opendir"))?;
        if a.kind != FileKind::Dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(Opened::default())
    }

    fn readdir(
        &self,
        _ctx: &ops::Ctx,
        ino: u64,
        _fh: u64,
        offset: u64,
    ) -> Result<Vec<ops::DirEntry>> {
        let entries = self
            .vfs
            .readdir(ino, offset, READDIR_BATCH)
            .map_err(errno("readdir"))?;
        Ok(entries
            .into_iter()
            .map(|e| ops::DirEntry {
                ino: e.ino,
                offset: e.cookie,
                kind: e.kind,
                name: e.name,
            })
            .collect())
    }

    fn fsyncdir(&self, _ctx: &ops::Ctx, _ino: u64, _fh: u64, _datasync: bool) -> Result<()> {
        // Every metadata operation is committed before it returns; this adds the flush.
        self.vfs.sync_metadata().map_err(errno("fsyncdir"))
    }

    fn statfs(&self, _ctx: &ops::Ctx, _ino: u64) -> Result<ops::StatFs> {
        let s = self.vfs.statfs().map_err(errno("statfs"))?;
        Ok(ops::StatFs {
            blocks: s.blocks,
            bfree: s.bfree,
            bavail: s.bfree,
            files: s.files,
            ffree: s.ffree,
            bsize: s.bsize,
            namelen: s.namelen,
            frsize: s.bsize,
        })
    }

    fn setxattr(
        &self,
        ctx: &ops::Ctx,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        how: XattrSet,
    ) -> Result<()> {
        let mode = match how {
            XattrSet::Any => XattrMode::Any,
            XattrSet::Create => XattrMode::Create,
            XattrSet::Replace => XattrMode::Replace,
        };
        self.vfs
            .set_xattr(vctx(ctx), ino, name.as_bytes(), value, mode)
            .map_err(errno("setxattr"))
    }

    fn getxattr(&self, _ctx: &ops::Ctx, ino: u64, name: &OsStr) -> Result<Vec<u8>> {
        self.vfs
            .get_xattr(ino, name.as_bytes())
            .map_err(errno("getxattr"))
    }

    fn listxattr(&self, _ctx: &ops::Ctx, ino: u64) -> Result<Vec<Vec<u8>>> {
        self.vfs.list_xattr(ino).map_err(errno("listxattr"))
    }

    fn removexattr(&self, _ctx: &ops::Ctx, ino: u64, name: &OsStr) -> Result<()> {
        self.vfs
            .remove_xattr(ino, name.as_bytes())
            .map_err(errno("removexattr"))
    }

    fn create(
        &self,
        ctx: &ops::Ctx,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> Result<(ops::Attr, Opened)> {
        let (a, fh) = self
            .vfs
            .create(vctx(ctx), parent, name.as_bytes(), mode, ctx.umask, flags)
            .map_err(errno("create"))?;
        Ok((attr(&a), opened(fh)))
    }

    fn fallocate(
        &self,
        _ctx: &ops::Ctx,
        _ino: u64,
        fh: u64,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<()> {
        self.rt
            .block_on(self.vfs.fallocate(fh, offset, length, mode))
            .map_err(errno("fallocate"))
    }
}
