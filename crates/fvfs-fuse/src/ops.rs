//! The filesystem operations a FUSE face implements: [`FsOps`], with plain fvfs types
//! in and out (no `fuser` type crosses it), each returning [`Result`] whose error is an
//! [`Errno`]. The generic adapter (`adapter.rs`) turns kernel requests into these calls
//! and their results into replies; a face (the engine, the LAN client, a read-only view)
//! implements the trait and nothing of `fuser`.
//!
//! Invariants:
//! - A face never sees the kernel: conversions (times, kinds, attributes, reply flags,
//!   the xattr size protocol) are the adapter's.
//! - The defaults are those of a read-only face: operations that change the filesystem
//!   answer EROFS, operations a face has nothing to say about answer ENOSYS (which the
//!   kernel remembers for xattrs), and bookkeeping (flush, release, forget, access…)
//!   succeeds.
//! - Times are nanoseconds since the Unix epoch (i64), as everywhere in fvfs.

use fvfs_types::error::ErrorCode;
use std::ffi::OsStr;
use std::time::Duration;

pub use fvfs_types::FileKind;

/// An errno (positive), the one error a face returns to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    pub const EPERM: Errno = Errno(libc::EPERM);
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const EIO: Errno = Errno(libc::EIO);
    pub const EBADF: Errno = Errno(libc::EBADF);
    pub const EEXIST: Errno = Errno(libc::EEXIST);
    pub const ENOTDIR: Errno = Errno(libc::ENOTDIR);
    pub const EISDIR: Errno = Errno(libc::EISDIR);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const EFBIG: Errno = Errno(libc::EFBIG);
    pub const EROFS: Errno = Errno(libc::EROFS);
    pub const ERANGE: Errno = Errno(libc::ERANGE);
    pub const ENOSYS: Errno = Errno(libc::ENOSYS);
    pub const ESTALE: Errno = Errno(libc::ESTALE);

    pub fn from_i32(errno: i32) -> Errno {
        Errno(errno)
    }

    pub fn code(self) -> i32 {
        self.0
    }
}

impl From<ErrorCode> for Errno {
    fn from(c: ErrorCode) -> Errno {
        Errno(c.errno())
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

/// What every operation returns.
pub type Result<T, E = Errno> = std::result::Result<T, E>;

/// The caller of one request, from the kernel's request header. `umask` is the caller's
/// umask for mknod, mkdir and create (0 for other operations): with FUSE_DONT_MASK the
/// mode arrives unmasked and the face applies it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ctx {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub umask: u32,
}

/// The attributes of one inode, as the kernel caches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: FileKind,
    /// Permission bits including setuid/setgid/sticky (the low 12 bits of st_mode).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// st_blocks, 512-byte units.
    pub blocks: u64,
    pub nlink: u32,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
    pub rdev: u32,
}

/// A time setattr sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTime {
    /// The face's current time (utimensat's UTIME_NOW).
    Now,
    At(i64),
}

/// One setattr request; `None` leaves a field alone. `mode` holds permission bits only
/// (the adapter masks it with 0o7777).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
    pub ctime: Option<i64>,
    /// The handle the change comes through (ftruncate, futimens), if any.
    pub fh: Option<u64>,
}

impl SetAttr {
    /// Whether the request changes nothing (a plain stat through setattr).
    pub fn is_empty(&self) -> bool {
        self.mode.is_none()
            && self.uid.is_none()
            && self.gid.is_none()
            && self.size.is_none()
            && self.atime.is_none()
            && self.mtime.is_none()
    }
}

/// rename(2) flags a face may honour (RENAME_WHITEOUT never reaches a face: EINVAL).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenameFlags {
    pub noreplace: bool,
    pub exchange: bool,
}

/// setxattr(2) flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XattrSet {
    Any,
    /// XATTR_CREATE: fail if it exists.
    Create,
    /// XATTR_REPLACE: fail unless it exists.
    Replace,
}

/// An open file or directory: its handle and how the kernel should treat its pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Opened {
    pub fh: u64,
    /// FOPEN_KEEP_CACHE: the kernel keeps the file's cached pages across this open (all
    /// writes pass through this mount); otherwise they are dropped at open.
    pub keep_cache: bool,
    /// FOPEN_DIRECT_IO: reads and writes bypass the page cache.
    pub direct_io: bool,
    /// FOPEN_CACHE_DIR (directories): the kernel keeps this listing and serves later
    /// listings of the directory from it until the directory's mtime changes. Only for
    /// listings that change with the directory's mtime; with `keep_cache` the kept
    /// listing also survives the next open.
    pub cache_dir: bool,
    /// The kernel's cached attributes of the inode are stale (another host changed the
    /// file): the adapter invalidates them before it replies, so the size the next read
    /// sees is the file's.
    pub stale: bool,
}

/// A file lock as fcntl's `struct flock` carries it: an inclusive byte range (a whole
/// file: 0 to `i64::MAX`), the type (`F_RDLCK`, `F_WRLCK`, `F_UNLCK`) and the holder's pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockInfo {
    pub start: u64,
    pub end: u64,
    pub typ: i32,
    pub pid: u32,
}

/// One directory entry of a readdir batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    /// The offset to pass back to continue after this entry (> 0).
    pub offset: u64,
    pub kind: FileKind,
    pub name: Vec<u8>,
}

/// Filesystem totals for statfs(2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}

/// The operations of one FUSE face. Inode numbers are the kernel's (`1` is the root);
/// `fh` is what the face returned from open/opendir/create.
#[allow(unused_variables)]
pub trait FsOps: Send + Sync + 'static {
    /// How long the kernel may cache entries and attributes.
    const TTL: Duration = Duration::from_secs(1);
    /// Ask the kernel for POSIX ACL enforcement (FUSE_POSIX_ACL) and unmasked modes
    /// (FUSE_DONT_MASK, the umask then arrives in [`Ctx::umask`]).
    const POSIX_ACL: bool = false;

    /// The session ends (unmounted): commit what is buffered.
    fn destroy(&self) {}

    fn lookup(&self, ctx: &Ctx, parent: u64, name: &OsStr) -> Result<Attr>;
    /// The kernel dropped `nlookup` references to `ino`.
    fn forget(&self, ino: u64, nlookup: u64) {}
    fn getattr(&self, ctx: &Ctx, ino: u64, fh: Option<u64>) -> Result<Attr>;
    fn setattr(&self, ctx: &Ctx, ino: u64, set: &SetAttr) -> Result<Attr> {
        Err(Errno::EROFS)
    }
    fn readlink(&self, ctx: &Ctx, ino: u64) -> Result<Vec<u8>> {
        Err(Errno::ENOSYS)
    }
    /// `mode` carries the type bits; see [`Ctx::umask`].
    fn mknod(&self, ctx: &Ctx, parent: u64, name: &OsStr, mode: u32, rdev: u32) -> Result<Attr> {
        Err(Errno::EROFS)
    }
    fn mkdir(&self, ctx: &Ctx, parent: u64, name: &OsStr, mode: u32) -> Result<Attr> {
        Err(Errno::EROFS)
    }
    fn unlink(&self, ctx: &Ctx, parent: u64, name: &OsStr) -> Result<()> {
        Err(Errno::EROFS)
    }
    fn rmdir(&self, ctx: &Ctx, parent: u64, name: &OsStr) -> Result<()> {
        Err(Errno::EROFS)
    }
    fn symlink(&self, ctx: &Ctx, parent: u64, name: &OsStr, target: &OsStr) -> Result<Attr> {
        Err(Errno::EROFS)
    }
    fn rename(
        &self,
        ctx: &Ctx,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        Err(Errno::EROFS)
    }
    fn link(&self, ctx: &Ctx, ino: u64, newparent: u64, newname: &OsStr) -> Result<Attr> {
        Err(Errno::EROFS)
    }
    /// `flags` are open(2)'s.
    fn open(&self, ctx: &Ctx, ino: u64, flags: i32) -> Result<Opened> {
        Ok(Opened::default())
    }
    /// The bytes at `offset` (fewer than `size` only at the end of the file). `Bytes`, so
    /// that a face serving from a shared buffer (a cache) replies without a copy.
    fn read(&self, ctx: &Ctx, ino: u64, fh: u64, offset: u64, size: u32) -> Result<bytes::Bytes> {
        Err(Errno::ENOSYS)
    }
    /// Returns the bytes written.
    fn write(&self, ctx: &Ctx, ino: u64, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        Err(Errno::EROFS)
    }
    fn flush(&self, ctx: &Ctx, ino: u64, fh: u64) -> Result<()> {
        Ok(())
    }
    fn release(&self, ctx: &Ctx, ino: u64, fh: u64) -> Result<()> {
        Ok(())
    }
    /// Whether the face keeps file locks itself (they must be seen by other hosts): the
    /// kernel then sends every fcntl and flock request (`getlk`, `setlk`,
    /// `release_locks`); otherwise it keeps them within this mount.
    fn remote_locks(&self) -> bool {
        false
    }
    /// F_GETLK: the lock of another owner in the way of `lock`, or `lock` with type
    /// `F_UNLCK` when there is none. `owner` is the kernel's lock owner.
    fn getlk(&self, ctx: &Ctx, ino: u64, fh: u64, owner: u64, lock: LockInfo) -> Result<LockInfo> {
        Err(Errno::ENOSYS)
    }
    /// F_SETLK, F_SETLKW (`sleep`) and flock: EAGAIN when another owner holds a
    /// conflicting lock and `sleep` is false; with `sleep` it returns once granted (the
    /// adapter calls it on a thread of its own).
    fn setlk(
        &self,
        ctx: &Ctx,
        ino: u64,
        fh: u64,
        owner: u64,
        lock: LockInfo,
        sleep: bool,
    ) -> Result<()> {
        Err(Errno::ENOSYS)
    }
    /// A close by lock owner `owner` (every flush; the release of a flock holder's file):
    /// its locks on `ino` end. Failures are the face's to log.
    fn release_locks(&self, ino: u64, owner: u64) {}
    fn fsync(&self, ctx: &Ctx, ino: u64, fh: u64, datasync: bool) -> Result<()> {
        Ok(())
    }
    fn opendir(&self, ctx: &Ctx, ino: u64) -> Result<Opened> {
        Ok(Opened::default())
    }
    /// The entries after `offset` (0: from the start), as many as the face likes; an
    /// empty batch ends the listing. The adapter sends what fits the kernel's buffer and
    /// the kernel asks again from the offset of the last entry it took.
    fn readdir(&self, ctx: &Ctx, ino: u64, fh: u64, offset: u64) -> Result<Vec<DirEntry>> {
        Err(Errno::ENOSYS)
    }
    fn releasedir(&self, ctx: &Ctx, ino: u64, fh: u64) -> Result<()> {
        Ok(())
    }
    fn fsyncdir(&self, ctx: &Ctx, ino: u64, fh: u64, datasync: bool) -> Result<()> {
        Ok(())
    }
    fn statfs(&self, ctx: &Ctx, ino: u64) -> Result<StatFs> {
        Ok(StatFs {
            blocks: 0,
            bfree: 0,
            bavail: 0,
            files: 0,
            ffree: 0,
            bsize: 512,
            namelen: 255,
            frsize: 0,
        })
    }
    fn setxattr(
        &self,
        ctx: &Ctx,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        how: XattrSet,
    ) -> Result<()> {
        Err(Errno::ENOSYS)
    }
    /// The whole value; the adapter answers size probes and ERANGE.
    fn getxattr(&self, ctx: &Ctx, ino: u64, name: &OsStr) -> Result<Vec<u8>> {
        Err(Errno::ENOSYS)
    }
    /// The names; the adapter joins them NUL-terminated and answers size probes.
    fn listxattr(&self, ctx: &Ctx, ino: u64) -> Result<Vec<Vec<u8>>> {
        Err(Errno::ENOSYS)
    }
    fn removexattr(&self, ctx: &Ctx, ino: u64, name: &OsStr) -> Result<()> {
        Err(Errno::ENOSYS)
    }
    /// Permission checks are the kernel's (`default_permissions`): allowed by default.
    fn access(&self, ctx: &Ctx, ino: u64, mask: i32) -> Result<()> {
        Ok(())
    }
    /// Creates and opens a regular file (`flags` are open(2)'s); see [`Ctx::umask`].
    fn create(
        &self,
        ctx: &Ctx,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> Result<(Attr, Opened)> {
        Err(Errno::EROFS)
    }
    fn fallocate(
        &self,
        ctx: &Ctx,
        ino: u64,
        fh: u64,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<()> {
        Err(Errno::EROFS)
    }
}
