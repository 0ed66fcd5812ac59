//! [`FuseAdapter`]: the one `fuser::Filesystem` of fvfs, generic over a face's
//! [`FsOps`]. Each callback converts the kernel's arguments to plain fvfs types, calls
//! one trait method and replies; nothing here decides filesystem semantics.
//!
//! It owns what every face shares: attribute, kind and time conversion, the entry and
//! attribute TTL ([`FsOps::TTL`]), open reply flags ([`Opened`]), the readdir buffer
//! filling, the xattr size protocol (size 0 probes the length, a short buffer is
//! ERANGE), RENAME_WHITEOUT (EINVAL for every face) and the capability negotiation at
//! init (1 MiB writes, parallel directory operations, POSIX ACLs when the face asks).
//! Inode numbers are never reused by a face, so every generation is 0.

use crate::ops::{
    Attr, Ctx, Errno, FileKind, FsOps, LockInfo, Opened, RenameFlags, SetAttr, SetTime, XattrSet,
};
use fuser::{
    FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, Notifier, OpenFlags, RenameFlags as FuseRename, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLock, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Preferred I/O size reported in st_blksize (1 MiB: the kernel's largest request).
const BLKSIZE: u32 = 1 << 20;
/// Largest write the kernel may send in one request.
const MAX_WRITE: u32 = 1 << 20;

/// Serves a face's [`FsOps`] to the kernel.
pub struct FuseAdapter<T: FsOps> {
    ops: Arc<T>,
    /// The session's channel back to the kernel (set once the session exists): an open
    /// that finds the file changed by another host invalidates the kernel's attributes.
    notifier: Arc<std::sync::OnceLock<Notifier>>,
}

impl<T: FsOps> FuseAdapter<T> {
    pub fn new(ops: Arc<T>) -> FuseAdapter<T> {
        FuseAdapter {
            ops,
            notifier: Default::default(),
        }
    }

    /// Where the mount puts the session's notifier.
    pub(crate) fn notifier_slot(&self) -> Arc<std::sync::OnceLock<Notifier>> {
        self.notifier.clone()
    }

    /// Drops the kernel's cached attributes of `ino` (not its pages: an open without
    /// FOPEN_KEEP_CACHE drops those). A failure only costs freshness: logged.
    fn invalidate_attr(&self, ino: u64) {
        if let Some(n) = self.notifier.get() {
            if let Err(e) = n.inval_inode(INodeNo(ino), -1, 0) {
                tracing::debug!(ino, error = %e, "cannot invalidate the kernel's attributes");
            }
        }
    }

    /// The face this adapter serves.
    pub fn ops(&self) -> &Arc<T> {
        &self.ops
    }
}

/// A time (ns since the epoch) as a `SystemTime`; negative values lie before the epoch.
pub fn system_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// A `SystemTime` as ns since the epoch (negative before it).
pub fn time_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

fn file_type(k: FileKind) -> FileType {
    match k {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDev => FileType::CharDevice,
        FileKind::BlockDev => FileType::BlockDevice,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: system_time(a.atime),
        mtime: system_time(a.mtime),
        ctime: system_time(a.ctime),
        crtime: system_time(a.ctime),
        kind: file_type(a.kind),
        perm: a.perm as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: BLKSIZE,
        flags: 0,
    }
}

fn ctx(req: &Request) -> Ctx {
    Ctx {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
        umask: 0,
    }
}

fn ctx_umask(req: &Request, umask: u32) -> Ctx {
    Ctx { umask, ..ctx(req) }
}

fn set_time(t: TimeOrNow) -> SetTime {
    match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => SetTime::At(time_ns(t)),
    }
}

fn fopen(o: &Opened) -> FopenFlags {
    let mut f = FopenFlags::empty();
    if o.keep_cache {
        f |= FopenFlags::FOPEN_KEEP_CACHE;
    }
    if o.direct_io {
        f |= FopenFlags::FOPEN_DIRECT_IO;
    }
    if o.cache_dir {
        f |= FopenFlags::FOPEN_CACHE_DIR;
    }
    f
}

fn fuse_errno(e: Errno) -> fuser::Errno {
    fuser::Errno::from_i32(e.0)
}

macro_rules! reply {
    ($reply:ident, $res:expr, |$v:ident| $ok:expr) => {
        match $res {
            Ok($v) => $ok,
            Err(e) => $reply.error(fuse_errno(e)),
        }
    };
}

impl<T: FsOps> FuseAdapter<T> {
    fn entry(reply: ReplyEntry, a: &Attr) {
        reply.entry(&T::TTL, &file_attr(a), Generation(0))
    }
}

fn xattr_reply(reply: ReplyXattr, value: &[u8], size: u32) {
    if size == 0 {
        reply.size(value.len() as u32)
    } else if value.len() > size as usize {
        reply.error(fuse_errno(Errno::ERANGE))
    } else {
        reply.data(value)
    }
}

impl<T: FsOps> Filesystem for FuseAdapter<T> {
    /// POSIX ACLs (faces with [`FsOps::POSIX_ACL`]): with FUSE_POSIX_ACL the kernel reads
    /// the ACL xattrs, caches them and checks permissions against them (it turns
    /// `default_permissions` on). FUSE_DONT_MASK makes the kernel send the mode of a
    /// create/mkdir/mknod unmasked, with the caller's umask in its own field: the umask
    /// must not apply under a default ACL, which only the face knows (fs/fuse/dir.c masks
    /// the mode itself unless `dont_mask`).
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        if self.ops.remote_locks() {
            let locks = InitFlags::FUSE_POSIX_LOCKS | InitFlags::FUSE_FLOCK_LOCKS;
            if let Err(missing) = config.add_capabilities(locks) {
                tracing::warn!(
                    ?missing,
                    "the kernel does not pass file locks to the filesystem: locks hold on this host only"
                );
                let _ = config.add_capabilities(locks & !missing);
            }
        }
        if T::POSIX_ACL {
            let acl = InitFlags::FUSE_POSIX_ACL | InitFlags::FUSE_DONT_MASK;
            if let Err(missing) = config.add_capabilities(acl) {
                tracing::warn!(
                    ?missing,
                    "the kernel does not offer POSIX ACL support: ACLs are stored but not enforced"
                );
                let _ = config.add_capabilities(acl & !missing);
            }
        }
        Ok(())
    }

    fn destroy(&mut self) {
        self.ops.destroy()
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        reply!(reply, self.ops.lookup(&ctx(req), parent.0, name), |a| {
            Self::entry(reply, &a)
        })
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.ops.forget(ino.0, nlookup)
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let res = self.ops.getattr(&ctx(req), ino.0, fh.map(|f| f.0));
        reply!(reply, res, |a| reply.attr(&T::TTL, &file_attr(&a)))
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: atime.map(set_time),
            mtime: mtime.map(set_time),
            ctime: ctime.map(time_ns),
            fh: fh.map(|f| f.0),
        };
        let res = self.ops.setattr(&ctx(req), ino.0, &set);
        reply!(reply, res, |a| reply.attr(&T::TTL, &file_attr(&a)))
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        reply!(reply, self.ops.readlink(&ctx(req), ino.0), |t| reply
            .data(&t))
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let res = self
            .ops
            .mknod(&ctx_umask(req, umask), parent.0, name, mode, rdev);
        reply!(reply, res, |a| Self::entry(reply, &a))
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let res = self.ops.mkdir(&ctx_umask(req, umask), parent.0, name, mode);
        reply!(reply, res, |a| Self::entry(reply, &a))
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply!(reply, self.ops.unlink(&ctx(req), parent.0, name), |_v| {
            reply.ok()
        })
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply!(reply, self.ops.rmdir(&ctx(req), parent.0, name), |_v| {
            reply.ok()
        })
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let res = self
            .ops
            .symlink(&ctx(req), parent.0, link_name, target.as_os_str());
        reply!(reply, res, |a| Self::entry(reply, &a))
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: FuseRename,
        reply: ReplyEmpty,
    ) {
        if flags.contains(FuseRename::RENAME_WHITEOUT) {
            return reply.error(fuse_errno(Errno::EINVAL));
        }
        let f = RenameFlags {
            noreplace: flags.contains(FuseRename::RENAME_NOREPLACE),
            exchange: flags.contains(FuseRename::RENAME_EXCHANGE),
        };
        let res = self
            .ops
            .rename(&ctx(req), parent.0, name, newparent.0, newname, f);
        reply!(reply, res, |_v| reply.ok())
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let res = self.ops.link(&ctx(req), ino.0, newparent.0, newname);
        reply!(reply, res, |a| Self::entry(reply, &a))
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        reply!(reply, self.ops.open(&ctx(req), ino.0, flags.0), |o| {
            if o.stale {
                self.invalidate_attr(ino.0);
            }
            reply.opened(FileHandle(o.fh), fopen(&o))
        })
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let res = self.ops.read(&ctx(req), ino.0, fh.0, offset, size);
        reply!(reply, res, |d| reply.data(&d))
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let res = self.ops.write(&ctx(req), ino.0, fh.0, offset, data);
        reply!(reply, res, |n| reply.written(n))
    }

    fn flush(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let res = self.ops.flush(&ctx(req), ino.0, fh.0);
        if self.ops.remote_locks() {
            self.ops.release_locks(ino.0, lock_owner.0);
        }
        reply!(reply, res, |_v| reply.ok())
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // A lock owner comes with the release of a file that held a flock.
        if let (true, Some(owner)) = (self.ops.remote_locks(), lock_owner) {
            self.ops.release_locks(ino.0, owner.0);
        }
        reply!(reply, self.ops.release(&ctx(req), ino.0, fh.0), |_v| reply
            .ok())
    }

    fn getlk(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        reply: ReplyLock,
    ) {
        let lock = LockInfo {
            start,
            end,
            typ,
            pid,
        };
        let res = self.ops.getlk(&ctx(req), ino.0, fh.0, lock_owner.0, lock);
        reply!(reply, res, |l| reply.locked(l.start, l.end, l.typ, l.pid))
    }

    /// A waiting request (F_SETLKW, flock without LOCK_NB) waits on a thread of its own:
    /// the request threads stay free for the unlock that will grant it.
    fn setlk(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        let lock = LockInfo {
            start,
            end,
            typ,
            pid,
        };
        let c = ctx(req);
        if !sleep {
            let res = self.ops.setlk(&c, ino.0, fh.0, lock_owner.0, lock, false);
            return reply!(reply, res, |_v| reply.ok());
        }
        let ops = self.ops.clone();
        let spawned = std::thread::Builder::new()
            .name("fvfs-lock-wait".into())
            .spawn(move || {
                let res = ops.setlk(&c, ino.0, fh.0, lock_owner.0, lock, true);
                reply!(reply, res, |_v| reply.ok())
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a thread for a waiting lock request");
        }
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let res = self.ops.fsync(&ctx(req), ino.0, fh.0, datasync);
        reply!(reply, res, |_v| reply.ok())
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply!(reply, self.ops.opendir(&ctx(req), ino.0), |o| reply
            .opened(FileHandle(o.fh), fopen(&o)))
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        reply!(
            reply,
            self.ops.readdir(&ctx(req), ino.0, fh.0, offset),
            |entries| {
                for e in entries {
                    let name = OsStr::from_bytes(&e.name);
                    if reply.add(INodeNo(e.ino), e.offset, file_type(e.kind), name) {
                        break;
                    }
                }
                reply.ok()
            }
        )
    }

    fn releasedir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply!(reply, self.ops.releasedir(&ctx(req), ino.0, fh.0), |_v| {
            reply.ok()
        })
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let res = self.ops.fsyncdir(&ctx(req), ino.0, fh.0, datasync);
        reply!(reply, res, |_v| reply.ok())
    }

    fn statfs(&self, req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        reply!(reply, self.ops.statfs(&ctx(req), ino.0), |s| reply.statfs(
            s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize
        ))
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let how = if flags & libc::XATTR_CREATE != 0 {
            XattrSet::Create
        } else if flags & libc::XATTR_REPLACE != 0 {
            XattrSet::Replace
        } else {
            XattrSet::Any
        };
        let res = self.ops.setxattr(&ctx(req), ino.0, name, value, how);
        reply!(reply, res, |_v| reply.ok())
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        reply!(reply, self.ops.getxattr(&ctx(req), ino.0, name), |v| {
            xattr_reply(reply, &v, size)
        })
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        reply!(reply, self.ops.listxattr(&ctx(req), ino.0), |names| {
            let mut buf = Vec::new();
            for n in names {
                buf.extend_from_slice(&n);
                buf.push(0);
            }
            xattr_reply(reply, &buf, size)
        })
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply!(reply, self.ops.removexattr(&ctx(req), ino.0, name), |_v| {
            reply.ok()
        })
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply!(
            reply,
            self.ops.access(&ctx(req), ino.0, mask.bits()),
            |_v| { reply.ok() }
        )
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let res = self
            .ops
            .create(&ctx_umask(req, umask), parent.0, name, mode, flags);
        reply!(reply, res, |v| reply.created(
            &T::TTL,
            &file_attr(&v.0),
            Generation(0),
            FileHandle(v.1.fh),
            fopen(&v.1)
        ))
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let res = self
            .ops
            .fallocate(&ctx(req), ino.0, fh.0, offset, length, mode);
        reply!(reply, res, |_v| reply.ok())
    }

    /// No fvfs face has device controls: every ioctl is ENOTTY ("not a terminal", what a
    /// regular file on ext4 answers), silently. fuser's default logs each one, and
    /// programs ask (isatty at every fopen) thousands of times.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(fuser::Errno::ENOTTY);
    }
}

#[cfg(test)]
#[path = "adapter_tests.rs"]
mod tests;
