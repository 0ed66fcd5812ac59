//! The FUSE face: a thin adapter from `fuser` callbacks to [`fvfs_vfs::Vfs`]. Each method
//! converts arguments, calls one Result-returning vfs function (blocking on the runtime
//! for async ones) and replies; errors become errnos through `VfsError::errno`, the one
//! table. Nothing here decides filesystem semantics.
//!
//! Caching: entries and attributes are cached by the kernel for [`TTL`]; file pages are
//! kept across opens (FOPEN_KEEP_CACHE) because every write to this filesystem from this
//! host passes through this mount, which keeps the kernel's cache coherent. Permission
//! checks are the kernel's (`default_permissions`, with POSIX ACLs: see `init`); POSIX
//! and flock locks are the kernel's
//! local locks (one host mounts an embedded-metadata filesystem).

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags as FuseOpenFlags, RenameFlags as FuseRename, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use fvfs_vfs::{Attr, Ctx, FileKind, OpenFlags, RenameFlags, TimeSet, Vfs, VfsError, XattrMode};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may cache entries and attributes.
pub const TTL: Duration = Duration::from_secs(1);
/// Preferred I/O size reported in st_blksize (1 MiB: the kernel's largest request).
const BLKSIZE: u32 = 1 << 20;

pub struct FuseFs {
    vfs: Arc<Vfs>,
    rt: tokio::runtime::Handle,
}

impl FuseFs {
    pub fn new(vfs: Arc<Vfs>, rt: tokio::runtime::Handle) -> FuseFs {
        FuseFs { vfs, rt }
    }
}

/// Whether the mount honours set-user-ID bits and device nodes. Both off by default
/// (`nosuid,nodev`): files can arrive through the HTTP API, and with `allow_other` every
/// local user runs what the mount holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountFlags {
    pub suid: bool,
    pub dev: bool,
}

/// Mount options used by fvfs: allow_other when root (so every user sees the mount, as on
/// a disk), kernel permission checks, `nosuid,nodev` unless `flags` say otherwise.
pub fn config(threads: usize, flags: MountFlags) -> fuser::Config {
    use fuser::MountOption as O;
    let mut c = fuser::Config::default();
    c.mount_options = vec![
        O::FSName("fvfs".into()),
        O::Subtype("fvfs".into()),
        O::DefaultPermissions,
        O::RW,
        if flags.suid { O::Suid } else { O::NoSuid },
        if flags.dev { O::Dev } else { O::NoDev },
    ];
    if unsafe { libc::geteuid() } == 0 {
        c.acl = fuser::SessionACL::All;
    }
    c.n_threads = Some(threads.max(1));
    c
}

/// Mounts and returns the session; the caller runs it (`Session::run`) and may unmount it
/// from another thread through `unmount_callable`.
pub fn session(
    fs: FuseFs,
    mountpoint: &Path,
    threads: usize,
    flags: MountFlags,
) -> std::io::Result<fuser::Session<FuseFs>> {
    fuser::Session::new(fs, mountpoint, &config(threads, flags))
}

fn time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

fn kind(k: FileKind) -> FileType {
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

fn attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: time(a.atime),
        mtime: time(a.mtime),
        ctime: time(a.ctime),
        crtime: time(a.ctime),
        kind: kind(a.kind),
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
    }
}

fn timeset(t: Option<TimeOrNow>) -> TimeSet {
    match t {
        None => TimeSet::Omit,
        Some(TimeOrNow::Now) => TimeSet::Now,
        Some(TimeOrNow::SpecificTime(t)) => TimeSet::At(ns(t)),
    }
}

/// The errno for an error, logged here where the face handles it.
fn errno(op: &str, e: VfsError) -> Errno {
    if e.is_expected() {
        tracing::debug!(op, error = %e);
    } else {
        tracing::error!(op, error = %e, "filesystem operation failed");
    }
    Errno::from_i32(e.errno())
}

macro_rules! reply {
    ($reply:ident, $op:expr, $res:expr, |$v:ident| $ok:expr) => {
        match $res {
            Ok($v) => $ok,
            Err(e) => $reply.error(errno($op, e)),
        }
    };
}

impl Filesystem for FuseFs {
    /// POSIX ACLs: with FUSE_POSIX_ACL the kernel reads the ACL xattrs, caches them and
    /// checks permissions against them (it turns `default_permissions` on); the vfs keeps
    /// mode and ACL together and applies default ACLs to new inodes. FUSE_DONT_MASK makes
    /// the kernel send the mode of a create/mkdir/mknod unmasked, with the caller's umask
    /// in its own field: the umask must not apply under a default ACL, which only the vfs
    /// knows (fs/fuse/dir.c masks the mode itself unless `dont_mask`).
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        let acl = InitFlags::FUSE_POSIX_ACL | InitFlags::FUSE_DONT_MASK;
        if let Err(missing) = config.add_capabilities(acl) {
            tracing::warn!(
                ?missing,
                "the kernel does not offer POSIX ACL support: ACLs are stored but not enforced"
            );
            let _ = config.add_capabilities(acl & !missing);
        }
        Ok(())
    }

    fn destroy(&mut self) {
        if let Err(e) = self.rt.block_on(self.vfs.flush_all()) {
            tracing::error!(error = %e, "flushing buffered writes at unmount failed");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        reply!(
            reply,
            "lookup",
            self.vfs.lookup(parent.0, name.as_bytes()),
            |a| entry(reply, &a)
        )
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply!(reply, "getattr", self.vfs.getattr(ino.0), |a| reply
            .attr(&TTL, &attr(&a)))
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
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let res = self.rt.block_on(self.vfs.setattr(
            ctx(req),
            ino.0,
            mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            timeset(atime),
            timeset(mtime),
        ));
        reply!(reply, "setattr", res, |a| reply.attr(&TTL, &attr(&a)))
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        reply!(reply, "readlink", self.vfs.readlink(ino.0), |t| reply
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
            .vfs
            .mknod(ctx(req), parent.0, name.as_bytes(), mode, umask, rdev);
        reply!(reply, "mknod", res, |a| entry(reply, &a))
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
        let res = self
            .vfs
            .mkdir(ctx(req), parent.0, name.as_bytes(), mode, umask);
        reply!(reply, "mkdir", res, |a| entry(reply, &a))
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply!(
            reply,
            "unlink",
            self.vfs.unlink(parent.0, name.as_bytes()),
            |_v| reply.ok()
        )
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply!(
            reply,
            "rmdir",
            self.vfs.rmdir(parent.0, name.as_bytes()),
            |_v| reply.ok()
        )
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let res = self.vfs.symlink(
            ctx(req),
            parent.0,
            link_name.as_bytes(),
            target.as_os_str().as_bytes(),
        );
        reply!(reply, "symlink", res, |a| entry(reply, &a))
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: FuseRename,
        reply: ReplyEmpty,
    ) {
        if flags.contains(FuseRename::RENAME_WHITEOUT) {
            return reply.error(Errno::from_i32(libc::EINVAL));
        }
        let f = RenameFlags {
            noreplace: flags.contains(FuseRename::RENAME_NOREPLACE),
            exchange: flags.contains(FuseRename::RENAME_EXCHANGE),
        };
        let res = self.vfs.rename(
            parent.0,
            name.as_bytes(),
            newparent.0,
            newname.as_bytes(),
            f,
        );
        reply!(reply, "rename", res, |_v| reply.ok())
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let res = self.vfs.link(ino.0, newparent.0, newname.as_bytes());
        reply!(reply, "link", res, |a| entry(reply, &a))
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: FuseOpenFlags, reply: ReplyOpen) {
        let res = self.vfs.open(ino.0, OpenFlags::from_raw(flags.0));
        reply!(reply, "open", res, |fh| reply
            .opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE))
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: FuseOpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let res = self.rt.block_on(self.vfs.read(fh.0, offset, size));
        reply!(reply, "read", res, |d| reply.data(&d))
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: FuseOpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let res = self.rt.block_on(self.vfs.write(fh.0, offset, data));
        reply!(reply, "write", res, |n| reply.written(n))
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply!(
            reply,
            "flush",
            self.rt.block_on(self.vfs.flush(fh.0)),
            |_v| reply.ok()
        )
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: FuseOpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply!(
            reply,
            "release",
            self.rt.block_on(self.vfs.release(fh.0)),
            |_v| reply.ok()
        )
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply!(
            reply,
            "fsync",
            self.rt.block_on(self.vfs.fsync(fh.0)),
            |_v| reply.ok()
        )
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: FuseOpenFlags, reply: ReplyOpen) {
        reply!(reply, "opendir", self.vfs.getattr(ino.0), |a| {
            if a.kind == FileKind::Dir {
                reply.opened(FileHandle(0), FopenFlags::empty())
            } else {
                reply.error(Errno::from_i32(libc::ENOTDIR))
            }
        })
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        reply!(
            reply,
            "readdir",
            self.vfs.readdir(ino.0, offset, 256),
            |entries| {
                for e in entries {
                    if reply.add(
                        INodeNo(e.ino),
                        e.cookie,
                        kind(e.kind),
                        OsStr::from_bytes(&e.name),
                    ) {
                        break;
                    }
                }
                reply.ok()
            }
        )
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Every metadata operation is committed before it returns; this adds the flush.
        reply!(reply, "fsyncdir", self.vfs.sync_metadata(), |_v| reply.ok())
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply!(reply, "statfs", self.vfs.statfs(), |s| reply.statfs(
            s.blocks, s.bfree, s.bfree, s.files, s.ffree, s.bsize, s.namelen, s.bsize
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
        let mode = if flags & libc::XATTR_CREATE != 0 {
            XattrMode::Create
        } else if flags & libc::XATTR_REPLACE != 0 {
            XattrMode::Replace
        } else {
            XattrMode::Any
        };
        let res = self
            .vfs
            .set_xattr(ctx(req), ino.0, name.as_bytes(), value, mode);
        reply!(reply, "setxattr", res, |_v| reply.ok())
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        reply!(
            reply,
            "getxattr",
            self.vfs.get_xattr(ino.0, name.as_bytes()),
            |v| xattr_reply(reply, &v, size)
        )
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        reply!(reply, "listxattr", self.vfs.list_xattr(ino.0), |names| {
            let mut buf = Vec::new();
            for n in names {
                buf.extend_from_slice(&n);
                buf.push(0);
            }
            xattr_reply(reply, &buf, size)
        })
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply!(
            reply,
            "removexattr",
            self.vfs.remove_xattr(ino.0, name.as_bytes()),
            |_v| reply.ok()
        )
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok()
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
            .vfs
            .create(ctx(req), parent.0, name.as_bytes(), mode, umask, flags);
        reply!(reply, "create", res, |created| reply.created(
            &TTL,
            &attr(&created.0),
            Generation(0),
            FileHandle(created.1),
            FopenFlags::FOPEN_KEEP_CACHE
        ))
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let res = self
            .rt
            .block_on(self.vfs.fallocate(fh.0, offset, length, mode));
        reply!(reply, "fallocate", res, |_v| reply.ok())
    }
}

/// Replies a new or looked-up entry with the standard TTL (inode numbers are never
/// reused, so the generation is always 0).
fn entry(reply: ReplyEntry, a: &Attr) {
    reply.entry(&TTL, &attr(a), Generation(0))
}

fn xattr_reply(reply: ReplyXattr, value: &[u8], size: u32) {
    if size == 0 {
        reply.size(value.len() as u32)
    } else if value.len() > size as usize {
        reply.error(Errno::from_i32(libc::ERANGE))
    } else {
        reply.data(value)
    }
}
