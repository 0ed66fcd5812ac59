//! The `fuser` adapter of the client mount: each callback converts its arguments, calls
//! one Result-returning method of [`ClientFs`] (namespace operations in `meta.rs`, file
//! contents in `io.rs`) and replies. Errnos come from the one table in `errno.rs`.
//!
//! Caching: the kernel keeps entries and attributes for [`TTL`]; file pages are dropped at
//! every open (no FOPEN_KEEP_CACHE), which with the manifest fetched at open gives
//! close-to-open consistency against writers on other hosts. Permission checks are the
//! kernel's (`default_permissions`); POSIX and flock locks are the kernel's local locks.

use crate::client::Client;
use crate::mount::errno::errno;
use crate::mount::handles::{Blocks, Handles};
use crate::mount::inodes::Inodes;
use crate::mount::spool::Spool;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, TimeOrNow, WriteFlags,
};
use fvfs_types::api::{Kind, Stat};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may cache entries and attributes.
pub const TTL: Duration = Duration::from_secs(1);
/// Preferred I/O size reported in st_blksize.
const BLKSIZE: u32 = 1 << 20;

/// One directory entry served by readdir.
pub struct DirEntry {
    pub ino: u64,
    pub kind: FileType,
    pub name: Vec<u8>,
}

pub struct ClientFs {
    pub(super) client: Client,
    pub(super) rt: tokio::runtime::Handle,
    pub(super) inodes: Mutex<Inodes>,
    pub(super) handles: Handles,
    pub(super) blocks: Blocks,
    /// Where temporary files of written handles go (anonymous files).
    pub(super) tmp_dir: PathBuf,
    /// Listings of open directories, by handle: readdir pages through a snapshot.
    pub(super) dirs: Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
    pub(super) next_dir: AtomicU64,
    /// The last attributes sent for each inode, for inodes that lost their path while open.
    pub(super) attrs: Mutex<HashMap<u64, FileAttr>>,
    /// Uploads the daemon could not take (`pending.rs`).
    pub(super) spool: Spool,
    /// The spool may hold entries of an earlier run still to upload.
    pub(super) earlier: AtomicBool,
    /// Earlier entries the daemon refused for good (not retried in this run).
    pub(super) gave_up: Mutex<HashSet<String>>,
    /// The daemon lets this mount's token name owners (an admin token): new objects and
    /// uploads carry the local caller's uid/gid, or the file's owner. Otherwise they
    /// belong to the token's identity, so the mount names no owner (naming another one
    /// would be refused).
    pub(super) name_owner: bool,
}

/// What `fuser` serves: the [`ClientFs`] shared with the uploads worker.
pub struct Mount(pub Arc<ClientFs>);

impl std::ops::Deref for Mount {
    type Target = ClientFs;
    fn deref(&self) -> &ClientFs {
        &self.0
    }
}

impl ClientFs {
    pub fn new(
        client: Client,
        rt: tokio::runtime::Handle,
        root: &Stat,
        blocks: Blocks,
        tmp_dir: &Path,
        spool: Spool,
        name_owner: bool,
    ) -> ClientFs {
        ClientFs {
            client,
            rt,
            inodes: Mutex::new(Inodes::new(root.ino)),
            handles: Handles::default(),
            blocks,
            tmp_dir: tmp_dir.to_path_buf(),
            dirs: Mutex::new(HashMap::new()),
            next_dir: AtomicU64::new(0),
            attrs: Mutex::new(HashMap::new()),
            spool,
            earlier: AtomicBool::new(true),
            gave_up: Mutex::new(HashSet::new()),
            name_owner,
        }
    }

    /// Runs one API call to completion on the runtime; a failure becomes an errno.
    pub(super) fn call<T>(
        &self,
        op: &str,
        fut: impl std::future::Future<Output = crate::client::Result<T>>,
    ) -> Result<T, Errno> {
        self.rt.block_on(fut).map_err(|e| errno(op, &e))
    }

    pub(super) fn path(&self, ino: u64) -> Result<String, Errno> {
        self.inodes.lock().path(ino).ok_or(Errno::ENOENT)
    }

    pub(super) fn child_path(&self, parent: u64, name: &str) -> Result<String, Errno> {
        self.inodes
            .lock()
            .child_path(parent, name)
            .ok_or(Errno::ENOENT)
    }

    /// The attributes to send for `ino` described by `st`: a file with a local temporary
    /// file reports that file's size. Remembered for [`ClientFs::attrs`].
    pub(super) fn attr(&self, ino: u64, st: &Stat) -> FileAttr {
        let mut a = to_attr(ino, st);
        if let Some((size, changed)) = self.local_state(ino) {
            a.size = size;
            // The local copy is written whole at close; until then count it as allocated.
            a.blocks = size.div_ceil(512);
            if let Some(t) = changed {
                a.mtime = time(t);
                a.ctime = a.ctime.max(time(t));
            }
        }
        self.attrs.lock().insert(ino, a);
        a
    }

    /// [`Self::attr`] with a size the caller just set on the local copy.
    pub(super) fn attr_with_size(&self, ino: u64, st: &Stat, size: u64) -> FileAttr {
        let mut a = self.attr(ino, st);
        if a.size != size {
            a.size = size;
            a.blocks = size.div_ceil(512);
            self.attrs.lock().insert(ino, a);
        }
        a
    }
}

/// A file name as the API takes it: UTF-8.
pub(super) fn name_str(name: &OsStr) -> Result<&str, Errno> {
    name.to_str().ok_or(Errno::EINVAL)
}

pub(super) fn time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

pub(super) fn ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

pub(super) fn time_ns(t: TimeOrNow) -> i64 {
    match t {
        TimeOrNow::Now => ns(SystemTime::now()),
        TimeOrNow::SpecificTime(t) => ns(t),
    }
}

pub(super) fn file_type(k: Kind) -> FileType {
    match k {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
        Kind::CharDev => FileType::CharDevice,
        Kind::BlockDev => FileType::BlockDevice,
    }
}

fn to_attr(ino: u64, st: &Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: st.size,
        blocks: st.blocks,
        atime: time(st.atime_ns),
        mtime: time(st.mtime_ns),
        ctime: time(st.ctime_ns),
        crtime: time(st.ctime_ns),
        kind: file_type(st.kind),
        perm: (st.mode & 0o7777) as u16,
        nlink: st.nlink.max(1),
        uid: st.uid,
        gid: st.gid,
        rdev: st.rdev,
        blksize: BLKSIZE,
        flags: 0,
    }
}

macro_rules! reply {
    ($reply:ident, $res:expr, |$v:ident| $ok:expr) => {
        match $res {
            Ok($v) => $ok,
            Err(e) => $reply.error(e),
        }
    };
}

impl Filesystem for Mount {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        Ok(())
    }

    fn destroy(&mut self) {
        self.flush_all();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        reply!(reply, self.lookup_entry(parent.0, name), |a| reply.entry(
            &TTL,
            &a,
            Generation(0)
        ))
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.forget_inode(ino.0, nlookup)
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply!(reply, self.get_attr(ino.0), |a| reply.attr(&TTL, &a))
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let res = self.set_attr(
            ino.0,
            mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime.map(time_ns),
            mtime.map(time_ns),
            fh.map(|f| f.0),
        );
        reply!(reply, res, |a| reply.attr(&TTL, &a))
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        reply!(reply, self.read_link(ino.0), |t| reply.data(t.as_bytes()))
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
        let res = if mode & libc::S_IFMT == libc::S_IFREG || mode & libc::S_IFMT == 0 {
            self.create_file(req, parent.0, name, mode, umask, true)
                .map(|a| a.0)
        } else {
            self.make_special(req, parent.0, name, mode, umask, rdev)
        };
        reply!(reply, res, |a| reply.entry(&TTL, &a, Generation(0)))
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
        let res = self.make_dir(req, parent.0, name, mode & !umask & 0o7777);
        reply!(reply, res, |a| reply.entry(&TTL, &a, Generation(0)))
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply!(reply, self.remove(parent.0, name, "unlink"), |_v| reply
            .ok())
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply!(reply, self.remove(parent.0, name, "rmdir"), |_v| reply.ok())
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let res = self.make_symlink(req, parent.0, link_name, target.as_os_str());
        reply!(reply, res, |a| reply.entry(&TTL, &a, Generation(0)))
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let res = self.rename_entry(parent.0, name, newparent.0, newname, noreplace);
        reply!(reply, res, |_v| reply.ok())
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let res = self.link_entry(ino.0, newparent.0, newname);
        reply!(reply, res, |a| reply.entry(&TTL, &a, Generation(0)))
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        reply!(reply, self.open_file(ino.0, flags.0), |fh| reply
            .opened(FileHandle(fh), FopenFlags::empty()))
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        reply!(reply, self.read_file(fh.0, offset, size), |d| reply
            .data(&d))
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply!(reply, self.write_file(fh.0, offset, data), |n| reply
            .written(n))
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply!(reply, self.flush_handle(fh.0, false), |_v| reply.ok())
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply!(reply, self.release_handle(fh.0), |_v| reply.ok())
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply!(reply, self.flush_handle(fh.0, true), |_v| reply.ok())
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply!(reply, self.open_dir(ino.0), |fh| reply
            .opened(FileHandle(fh), FopenFlags::empty()))
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(entries) = self.dirs.lock().get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(
                INodeNo(e.ino),
                i as u64 + 1,
                e.kind,
                OsStr::from_bytes(&e.name),
            ) {
                break;
            }
        }
        reply.ok()
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs.lock().remove(&fh.0);
        reply.ok()
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Every namespace call is committed by the daemon before it answers.
        reply.ok()
    }

    // No xattrs through the API: ENOSYS, which the kernel remembers and reports as
    // EOPNOTSUPP from then on (fuser's defaults would log each as unimplemented).
    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::ENOSYS)
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS)
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS)
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS)
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Fixed, generous figures: the daemon's tiers are not a single device.
        let blocks = 1u64 << 40;
        reply.statfs(
            blocks,
            blocks / 2,
            blocks / 2,
            1 << 32,
            1 << 31,
            4096,
            255,
            4096,
        )
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
        reply!(
            reply,
            self.fallocate_file(fh.0, offset, length, mode),
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
            .create_file(req, parent.0, name, mode, umask, flags & libc::O_EXCL != 0)
            .and_then(|(a, existed)| {
                // A new file is empty: truncating it is a no-op.
                let flags = if existed {
                    flags
                } else {
                    flags & !libc::O_TRUNC
                };
                Ok((a, self.open_file(a.ino.0, flags)?))
            });
        reply!(reply, res, |v| reply.created(
            &TTL,
            &v.0,
            Generation(0),
            FileHandle(v.1),
            FopenFlags::empty()
        ))
    }
}
