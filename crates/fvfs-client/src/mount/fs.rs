//! The client mount's face: [`ClientFs`], its state, and its `fvfs_fuse::FsOps`
//! implementation, each method one call of a Result-returning method of [`ClientFs`]
//! (namespace operations in `meta.rs`, file contents in `io.rs`). The kernel glue is
//! fvfs-fuse's adapter; errnos come from the one table in `errno.rs`.
//!
//! Caching: the kernel keeps entries and attributes for the adapter's TTL (1 s); file
//! pages are dropped at every open (no FOPEN_KEEP_CACHE), which with the manifest fetched
//! at open gives close-to-open consistency against writers on other hosts. Permission
//! checks are the kernel's (`default_permissions`, no POSIX ACLs); POSIX and flock locks
//! are the kernel's local locks. Attributes sent are remembered ([`ClientFs::attrs`]) for
//! inodes that lose their path while open.

use crate::client::Client;
use crate::mount::errno::errno;
use crate::mount::handles::{Blocks, Handles};
use crate::mount::inodes::Inodes;
use crate::mount::spool::Spool;
use bytes::Bytes;
use fvfs_fuse::ops::{
    Attr, Ctx, DirEntry as FuseDirEntry, FileKind, FsOps, Opened, RenameFlags, Result, SetAttr,
    SetTime, StatFs,
};
use fvfs_fuse::Errno;
use fvfs_types::api::{Kind, Stat};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

/// Most directory entries one readdir call hands the adapter.
const READDIR_BATCH: usize = 256;

/// One directory entry served by readdir.
pub struct DirEntry {
    pub ino: u64,
    pub kind: FileKind,
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
    pub(super) attrs: Mutex<HashMap<u64, Attr>>,
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
    ) -> Result<T> {
        self.rt.block_on(fut).map_err(|e| errno(op, &e))
    }

    pub(super) fn path(&self, ino: u64) -> Result<String> {
        self.inodes.lock().path(ino).ok_or(Errno::ENOENT)
    }

    pub(super) fn child_path(&self, parent: u64, name: &str) -> Result<String> {
        self.inodes
            .lock()
            .child_path(parent, name)
            .ok_or(Errno::ENOENT)
    }

    /// The attributes to send for `ino` described by `st`: a file with a local temporary
    /// file reports that file's size. Remembered for [`ClientFs::attrs`].
    pub(super) fn attr(&self, ino: u64, st: &Stat) -> Attr {
        let mut a = to_attr(ino, st);
        if let Some((size, changed)) = self.local_state(ino) {
            a.size = size;
            // The local copy is written whole at close; until then count it as allocated.
            a.blocks = size.div_ceil(512);
            if let Some(t) = changed {
                a.mtime = t;
                a.ctime = a.ctime.max(t);
            }
        }
        self.attrs.lock().insert(ino, a);
        a
    }

    /// [`Self::attr`] with a size the caller just set on the local copy.
    pub(super) fn attr_with_size(&self, ino: u64, st: &Stat, size: u64) -> Attr {
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
pub(super) fn name_str(name: &OsStr) -> Result<&str> {
    name.to_str().ok_or(Errno::EINVAL)
}

pub(super) fn file_kind(k: Kind) -> FileKind {
    match k {
        Kind::File => FileKind::File,
        Kind::Dir => FileKind::Dir,
        Kind::Symlink => FileKind::Symlink,
        Kind::Fifo => FileKind::Fifo,
        Kind::Socket => FileKind::Socket,
        Kind::CharDev => FileKind::CharDev,
        Kind::BlockDev => FileKind::BlockDev,
    }
}

fn to_attr(ino: u64, st: &Stat) -> Attr {
    Attr {
        ino,
        kind: file_kind(st.kind),
        perm: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        size: st.size,
        blocks: st.blocks,
        nlink: st.nlink.max(1),
        atime: st.atime_ns,
        mtime: st.mtime_ns,
        ctime: st.ctime_ns,
        rdev: st.rdev,
    }
}

/// A time setattr sets, as the API takes it.
fn set_time(t: SetTime) -> i64 {
    match t {
        SetTime::Now => crate::mount::io::now_ns(),
        SetTime::At(ns) => ns,
    }
}

/// What open and create answer: the kernel drops the file's cached pages (no
/// FOPEN_KEEP_CACHE), for close-to-open consistency.
fn opened(fh: u64) -> Opened {
    Opened {
        fh,
        ..Opened::default()
    }
}

impl FsOps for ClientFs {
    fn destroy(&self) {
        self.flush_all();
    }

    fn lookup(&self, _ctx: &Ctx, parent: u64, name: &OsStr) -> Result<Attr> {
        self.lookup_entry(parent, name)
    }

    fn forget(&self, ino: u64, nlookup: u64) {
        self.forget_inode(ino, nlookup)
    }

    fn getattr(&self, _ctx: &Ctx, ino: u64, _fh: Option<u64>) -> Result<Attr> {
        self.get_attr(ino)
    }

    fn setattr(&self, _ctx: &Ctx, ino: u64, set: &SetAttr) -> Result<Attr> {
        self.set_attr(
            ino,
            set.mode,
            set.uid,
            set.gid,
            set.size,
            set.atime.map(set_time),
            set.mtime.map(set_time),
            set.fh,
        )
    }

    fn readlink(&self, _ctx: &Ctx, ino: u64) -> Result<Vec<u8>> {
        self.read_link(ino).map(String::into_bytes)
    }

    fn mknod(&self, ctx: &Ctx, parent: u64, name: &OsStr, mode: u32, rdev: u32) -> Result<Attr> {
        if mode & libc::S_IFMT == libc::S_IFREG || mode & libc::S_IFMT == 0 {
            self.create_file(ctx, parent, name, mode, ctx.umask, true)
                .map(|a| a.0)
        } else {
            self.make_special(ctx, parent, name, mode, ctx.umask, rdev)
        }
    }

    fn mkdir(&self, ctx: &Ctx, parent: u64, name: &OsStr, mode: u32) -> Result<Attr> {
        self.make_dir(ctx, parent, name, mode & !ctx.umask & 0o7777)
    }

    fn unlink(&self, _ctx: &Ctx, parent: u64, name: &OsStr) -> Result<()> {
        self.remove(parent, name, "unlink")
    }

    fn rmdir(&self, _ctx: &Ctx, parent: u64, name: &OsStr) -> Result<()> {
        self.remove(parent, name, "rmdir")
    }

    fn symlink(&self, ctx: &Ctx, parent: u64, name: &OsStr, target: &OsStr) -> Result<Attr> {
        self.make_symlink(ctx, parent, name, target)
    }

    fn rename(
        &self,
        _ctx: &Ctx,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        if flags.exchange {
            return Err(Errno::EINVAL);
        }
        self.rename_entry(parent, name, newparent, newname, flags.noreplace)
    }

    fn link(&self, _ctx: &Ctx, ino: u64, newparent: u64, newname: &OsStr) -> Result<Attr> {
        self.link_entry(ino, newparent, newname)
    }

    fn open(&self, _ctx: &Ctx, ino: u64, flags: i32) -> Result<Opened> {
        self.open_file(ino, flags).map(opened)
    }

    fn read(&self, _ctx: &Ctx, _ino: u64, fh: u64, offset: u64, size: u32) -> Result<Bytes> {
        self.read_file(fh, offset, size).map(Bytes::from)
    }

    fn write(&self, _ctx: &Ctx, _ino: u64, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        self.write_file(fh, offset, data)
    }

    fn flush(&self, _ctx: &Ctx, _ino: u64, fh: u64) -> Result<()> {
        self.flush_handle(fh, false)
    }

    fn release(&self, _ctx: &Ctx, _ino: u64, fh: u64) -> Result<()> {
        self.release_handle(fh)
    }

    fn fsync(&self, _ctx: &Ctx, _ino: u64, fh: u64, _datasync: bool) -> Result<()> {
        self.flush_handle(fh, true)
    }

    fn opendir(&self, _ctx: &Ctx, ino: u64) -> Result<Opened> {
        self.open_dir(ino).map(|fh| Opened {
            fh,
            ..Opened::default()
        })
    }

    /// Pages through the listing taken at opendir; an entry's offset is its index + 1.
    fn readdir(&self, _ctx: &Ctx, _ino: u64, fh: u64, offset: u64) -> Result<Vec<FuseDirEntry>> {
        let entries = self.dirs.lock().get(&fh).cloned().ok_or(Errno::EBADF)?;
        Ok(entries
            .iter()
            .enumerate()
            .skip(offset as usize)
            .take(READDIR_BATCH)
            .map(|(i, e)| FuseDirEntry {
                ino: e.ino,
                offset: i as u64 + 1,
                kind: e.kind,
                name: e.name.clone(),
            })
            .collect())
    }

    fn releasedir(&self, _ctx: &Ctx, _ino: u64, fh: u64) -> Result<()> {
        self.dirs.lock().remove(&fh);
        Ok(())
    }

    fn fsyncdir(&self, _ctx: &Ctx, _ino: u64, _fh: u64, _datasync: bool) -> Result<()> {
        // Every namespace call is committed by the daemon before it answers.
        Ok(())
    }

    // No xattrs through the API: the trait's defaults answer ENOSYS, which the kernel
    // remembers and reports as EOPNOTSUPP from then on.

    fn statfs(&self, _ctx: &Ctx, _ino: u64) -> Result<StatFs> {
        // Fixed, generous figures: the daemon's tiers are not a single device.
        let blocks = 1u64 << 40;
        Ok(StatFs {
            blocks,
            bfree: blocks / 2,
            bavail: blocks / 2,
            files: 1 << 32,
            ffree: 1 << 31,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
        })
    }

    fn fallocate(
        &self,
        _ctx: &Ctx,
        _ino: u64,
        fh: u64,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<()> {
        self.fallocate_file(fh, offset, length, mode)
    }

    fn create(
        &self,
        ctx: &Ctx,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
    ) -> Result<(Attr, Opened)> {
        let excl = flags & libc::O_EXCL != 0;
        let (a, existed) = self.create_file(ctx, parent, name, mode, ctx.umask, excl)?;
        // A new file is empty: truncating it is a no-op.
        let flags = if existed {
            flags
        } else {
            flags & !libc::O_TRUNC
        };
        Ok((a, opened(self.open_file(a.ino, flags)?)))
    }
}
