//! Namespace operations with POSIX semantics: ownership of new inodes, setgid
//! inheritance, the umask and POSIX ACLs of new inodes, setattr (including truncate
//! through the write buffer), readdir with `.` and `..`, fallocate, statfs, xattrs.
//! Access checks are the kernel's (`default_permissions`, which consults the access
//! ACLs stored here); ownership and mode rules that the kernel leaves to the filesystem
//! are applied here.
//!
//! Invariant: a stored access ACL and the mode agree (its owner, group class and other
//! entries are the mode's rwx bits): every change of one changes the other in the same
//! metadata transaction (acl.rs has the rules).

use crate::acl::{self, Acl, AclKind, ACL_ACCESS, ACL_DEFAULT};
use crate::{now_ns, Ctx, Result, Vfs, VfsError};
use fvfs_meta::alloc::chunk_alloc;
use fvfs_meta::{
    Attr, Commit, DirEntry, MetaError, NewInode, NewSlice, RenameFlags, SetAttr, XattrChange,
    XattrMode,
};
use fvfs_types::{FileKind, Ino, CHUNK_SIZE, NAME_MAX, ROOT_INO};

/// A time to set: leave alone, now, or a given instant (ns since the epoch).
#[derive(Clone, Copy, Debug, Default)]
pub enum TimeSet {
    #[default]
    Omit,
    Now,
    At(i64),
}

/// What one setattr changes (chmod, chown, truncate, utimes); `None` and
/// [`TimeSet::Omit`] leave a field as it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttrChange {
    pub perm: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: TimeSet,
    pub mtime: TimeSet,
}

impl AttrChange {
    /// Only a new size (truncate).
    pub fn size(size: u64) -> AttrChange {
        AttrChange {
            size: Some(size),
            ..AttrChange::default()
        }
    }
}

impl TimeSet {
    fn resolve(self, now: i64) -> Option<i64> {
        match self {
            TimeSet::Omit => None,
            TimeSet::Now => Some(now),
            TimeSet::At(t) => Some(t),
        }
    }
}

/// Filesystem totals for statfs(2).
#[derive(Clone, Copy, Debug)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
}

const S_ISGID: u32 = 0o2000;
/// The synthetic xattr naming the tiers that hold a file.
pub const TIERS_XATTR: &[u8] = b"user.fvfs.tiers";

fn check_name(name: &[u8]) -> Result<()> {
    if name.len() > NAME_MAX {
        return Err(VfsError::NameTooLong);
    }
    Ok(())
}

/// Whether the caller keeps a setgid bit when it sets a file's access ACL, as the kernel's
/// posix_acl_update_mode decides: root, or a member of the file's group (the fsgid, or a
/// supplementary group of a local caller, read from /proc/<pid>/status).
fn caller_in_group(ctx: &Ctx, gid: u32) -> bool {
    if ctx.uid == 0 || ctx.gid == gid {
        return true;
    }
    if ctx.pid == 0 {
        return false;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", ctx.pid)) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .is_some_and(|g| g.split_whitespace().any(|x| x.parse() == Ok(gid)))
}

impl Vfs {
    /// Attributes including the size, mtime and st_blocks of writes still in the buffer
    /// (the kernel may cache them past the commit, so they must already count).
    fn with_pending(&self, mut a: Attr) -> Attr {
        if let Some(st) = self.handles.state(a.ino) {
            if let Ok(fs) = st.file.try_lock() {
                if let Some((size, mtime)) = fs.pending() {
                    a.size = a.size.max(size);
                    a.mtime = mtime;
                    a.ctime = a.ctime.max(mtime);
                    a.blocks = self.blocks_with(a.ino, a.blocks, &fs.buffered_ranges());
                }
            } else if let Some((size, mtime)) = { *st.pending_attr.lock() } {
                // A commit holds the buffer: the published ranges count as they will once
                // committed (whether or not the commit has reached the store yet).
                a.size = a.size.max(size);
                a.mtime = mtime;
                let ranges = st.pending_ranges.lock().clone();
                a.blocks = self.blocks_with(a.ino, a.blocks, &ranges);
            }
        }
        a
    }

    /// st_blocks once buffered `ranges` are committed: each chunk they touch is counted
    /// again with them overlaid as the newest data. Best effort: on a metadata error the
    /// committed figure stands.
    fn blocks_with(&self, ino: Ino, committed: u64, ranges: &[(u64, u64)]) -> u64 {
        let mut pieces: Vec<(u64, u64, u64)> = Vec::new();
        for &(mut pos, end) in ranges {
            while pos < end {
                let (chunk, off) = (pos / CHUNK_SIZE, pos % CHUNK_SIZE);
                let len = (CHUNK_SIZE - off).min(end - pos);
                pieces.push((chunk, off, len));
                pos += len;
            }
        }
        let mut chunks: Vec<u64> = pieces.iter().map(|p| p.0).collect();
        chunks.sort_unstable();
        chunks.dedup();
        let mut bytes = committed * 512;
        for c in chunks {
            let Ok(slices) = self.meta.read_chunk(ino, c) else {
                return committed;
            };
            let mut segs: Vec<(u64, u64, bool)> = slices
                .iter()
                .map(|s| (s.pos as u64, s.len as u64, s.zero))
                .collect();
            let before = chunk_alloc(&segs);
            segs.extend(
                pieces
                    .iter()
                    .filter(|p| p.0 == c)
                    .map(|p| (p.1, p.2, false)),
            );
            bytes = (bytes + chunk_alloc(&segs)).saturating_sub(before);
        }
        bytes / 512
    }

    pub fn getattr(&self, ino: Ino) -> Result<Attr> {
        Ok(self.with_pending(self.meta.getattr(ino)?))
    }

    pub fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr> {
        check_name(name)?;
        Ok(self.with_pending(self.meta.lookup(parent, name)?))
    }

    /// Creates a node of the kind `mode` names (regular file, FIFO, socket, device, dir).
    pub fn mknod(
        &self,
        ctx: Ctx,
        parent: Ino,
        name: &[u8],
        mode: u32,
        umask: u32,
        rdev: u32,
    ) -> Result<Attr> {
        let kind = FileKind::from_mode(mode).ok_or(VfsError::Invalid("unknown file type"))?;
        self.create_node(ctx, parent, name, kind, (mode, umask), rdev, None)
    }

    pub fn mkdir(&self, ctx: Ctx, parent: Ino, name: &[u8], mode: u32, umask: u32) -> Result<Attr> {
        self.create_node(ctx, parent, name, FileKind::Dir, (mode, umask), 0, None)
    }

    pub fn symlink(&self, ctx: Ctx, parent: Ino, name: &[u8], target: &[u8]) -> Result<Attr> {
        if target.is_empty() {
            return Err(VfsError::Invalid("empty symlink target"));
        }
        if target.len() > 4095 {
            return Err(VfsError::NameTooLong);
        }
        self.create_node(
            ctx,
            parent,
            name,
            FileKind::Symlink,
            (0o777, 0),
            0,
            Some(target),
        )
    }

    /// Creates an inode with the requested `(mode, umask)`: setgid inheritance, then the
    /// parent's default ACL (inherited, umask ignored) or else the umask, as
    /// posix_acl_create; the inherited ACLs are stored in the creating transaction.
    #[allow(clippy::too_many_arguments)]
    fn create_node(
        &self,
        ctx: Ctx,
        parent: Ino,
        name: &[u8],
        kind: FileKind,
        (mode, umask): (u32, u32),
        rdev: u32,
        target: Option<&[u8]>,
    ) -> Result<Attr> {
        check_name(name)?;
        Self::check_not_trash(parent, name)?;
        let p = self.meta.getattr(parent)?;
        let mut gid = ctx.gid;
        let mut mode = mode & 0o7777;
        if p.perm & S_ISGID != 0 {
            gid = p.gid;
            if kind == FileKind::Dir {
                mode |= S_ISGID;
            }
        }
        let made = if kind == FileKind::Symlink {
            acl::create(None, false, mode, 0)
        } else {
            let def = self.stored_acl(parent, AclKind::Default)?;
            acl::create(def.as_ref(), kind == FileKind::Dir, mode, umask)
        };
        let access = made.access.as_ref().map(Acl::to_xattr);
        let default = made.default.as_ref().map(Acl::to_xattr);
        let mut xattrs: Vec<(&[u8], &[u8])> = Vec::new();
        if let Some(v) = &access {
            xattrs.push((ACL_ACCESS, v));
        }
        if let Some(v) = &default {
            xattrs.push((ACL_DEFAULT, v));
        }
        let new = NewInode {
            kind,
            perm: made.perm,
            uid: ctx.uid,
            gid,
            rdev,
            target,
            now: now_ns(),
            xattrs: &xattrs,
        };
        Ok(self.meta.create(parent, name, &new)?)
    }

    /// The stored ACL of `kind` on `ino`, if any (None: the mode says everything). With
    /// `acl::permits`, what a permission check on behalf of a network caller consults.
    pub(crate) fn stored_acl(&self, ino: Ino, kind: AclKind) -> Result<Option<Acl>> {
        let name = match kind {
            AclKind::Access => ACL_ACCESS,
            AclKind::Default => ACL_DEFAULT,
        };
        match self.meta.get_xattr(ino, name) {
            Ok(v) => Ok(Some(Acl::from_xattr(&v)?)),
            Err(MetaError::NoAttr) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The access and default ACLs of `ino` in the text form `getfacl` uses (None where
    /// the inode has none stored: its mode says everything).
    pub fn acl_texts(&self, ino: Ino) -> Result<(Option<String>, Option<String>)> {
        Ok((
            self.stored_acl(ino, AclKind::Access)?.map(|a| a.to_text()),
            self.stored_acl(ino, AclKind::Default)?.map(|a| a.to_text()),
        ))
    }

    /// create(2): a new regular file, opened.
    pub fn create(
        &self,
        ctx: Ctx,
        parent: Ino,
        name: &[u8],
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(Attr, u64)> {
        let a = self.create_node(ctx, parent, name, FileKind::File, (mode, umask), 0, None)?;
        let fh = self.open(a.ino, crate::OpenFlags::from_raw(flags))?;
        Ok((a, fh))
    }

    pub fn link(&self, ino: Ino, newparent: Ino, newname: &[u8]) -> Result<Attr> {
        check_name(newname)?;
        Self::check_not_trash(newparent, newname)?;
        Ok(self.with_pending(self.meta.link(ino, newparent, newname, now_ns())?))
    }

    pub fn unlink(&self, parent: Ino, name: &[u8]) -> Result<()> {
        check_name(name)?;
        let u = self.meta.unlink(parent, name, now_ns(), self.trash_on())?;
        if u.nlink == 0 {
            self.purge_if_orphan(u.ino)?;
        }
        Ok(())
    }

    pub fn rmdir(&self, parent: Ino, name: &[u8]) -> Result<()> {
        check_name(name)?;
        self.meta.rmdir(parent, name, now_ns())?;
        Ok(())
    }

    pub fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        newparent: Ino,
        newname: &[u8],
        flags: RenameFlags,
    ) -> Result<()> {
        check_name(name)?;
        check_name(newname)?;
        Self::check_not_trash(newparent, newname)?;
        let flags = RenameFlags {
            trash: self.trash_on(),
            ..flags
        };
        if let Some(u) = self
            .meta
            .rename(parent, name, newparent, newname, flags, now_ns())?
        {
            if u.nlink == 0 && u.kind != FileKind::Dir {
                self.purge_if_orphan(u.ino)?;
            }
        }
        Ok(())
    }

    pub fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        Ok(self.meta.readlink(ino)?)
    }

    /// Directory entries after `offset` (0 = start), `.` and `..` first. Each entry's
    /// `cookie` is the offset to resume after it.
    pub fn readdir(&self, ino: Ino, offset: u64, limit: usize) -> Result<Vec<DirEntry>> {
        let dir = self.meta.getattr(ino)?;
        if dir.kind != FileKind::Dir {
            return Err(fvfs_meta::MetaError::NotDir.into());
        }
        let mut out = Vec::new();
        if offset < 1 {
            out.push(DirEntry {
                name: b".".to_vec(),
                ino,
                kind: FileKind::Dir,
                cookie: 1,
            });
        }
        if offset < 2 {
            let up = if ino == ROOT_INO {
                ROOT_INO
            } else {
                dir.parent
            };
            out.push(DirEntry {
                name: b"..".to_vec(),
                ino: up,
                kind: FileKind::Dir,
                cookie: 2,
            });
        }
        let after = offset.saturating_sub(2);
        // The root hides the trash (trash.rs): one entry more is read so that hiding it
        // never returns a short page, which would end the listing.
        let hide = ino == ROOT_INO;
        let mut entries = self
            .meta
            .readdir(ino, after, limit.saturating_add(hide as usize))?;
        if hide {
            entries.retain(|e| e.name != fvfs_meta::sql::TRASH_NAME);
            entries.truncate(limit);
        }
        for mut e in entries {
            e.cookie += 2;
            out.push(e);
        }
        Ok(out)
    }

    /// chmod/chown/utimens/truncate in one call. `size` truncates through the write buffer.
    pub async fn setattr(&self, ctx: Ctx, ino: Ino, ch: AttrChange) -> Result<Attr> {
        let AttrChange {
            perm,
            uid,
            gid,
            size,
            atime,
            mtime,
        } = ch;
        let now = now_ns();
        if let Some(size) = size {
            self.truncate(ino, size).await?;
        }
        let cur = self.meta.getattr(ino)?;
        let mut set = SetAttr {
            perm,
            uid,
            gid,
            atime: atime.resolve(now),
            mtime: mtime.resolve(now),
            ctime: None,
        };
        // chown by anyone clears setuid, and setgid when group-executable (as ext4).
        let owner_change = uid.is_some_and(|u| u != cur.uid) || gid.is_some_and(|g| g != cur.gid);
        if owner_change && cur.kind != FileKind::Dir && perm.is_none() {
            let mut p = cur.perm & !0o4000;
            if p & 0o010 != 0 {
                p &= !S_ISGID;
            }
            if p != cur.perm {
                set.perm = Some(p);
            }
        }
        let _ = ctx;
        let nothing = set.perm.is_none()
            && set.uid.is_none()
            && set.gid.is_none()
            && set.atime.is_none()
            && set.mtime.is_none();
        if nothing && size.is_some() {
            return self.getattr(ino);
        }
        // A buffered mtime would otherwise win over an explicit one: commit it first (no
        // device flush: like the setattr itself, it is durable at the next sync).
        if set.mtime.is_some() {
            self.store_inode(ino).await?;
        }
        // chmod rewrites the access ACL's owner, group class and other entries
        // (posix_acl_chmod), in the same transaction as the mode.
        let acl = match set.perm {
            Some(p) if cur.kind != FileKind::Symlink => {
                self.stored_acl(ino, AclKind::Access)?.map(|mut acl| {
                    acl.chmod(p);
                    acl.to_xattr()
                })
            }
            _ => None,
        };
        let a = match &acl {
            Some(value) => {
                let change = XattrChange::Set {
                    name: ACL_ACCESS,
                    value,
                };
                self.meta.setattr_xattr(ino, &set, change, now)?
            }
            None => self.meta.setattr(ino, &set, now)?,
        };
        Ok(self.with_pending(a))
    }

    /// Sets the size. Buffered writes past the new size are dropped (they need no
    /// upload, so a retained buffer can be truncated while the tiers fail); buffered
    /// writes across it are committed first.
    pub async fn truncate(&self, ino: Ino, size: u64) -> Result<Attr> {
        if size > crate::write::MAX_FILE_SIZE {
            return Err(VfsError::TooBig);
        }
        match self.handles.state(ino) {
            Some(st) => {
                let mut fs = st.file.lock().await;
                if fs.straddles(size) {
                    self.commit_all(&st, &mut fs).await?;
                }
                let a = self.meta.truncate(ino, size, now_ns())?;
                fs.discard_from(size, a.mtime);
                crate::write::publish(&st, &fs);
                st.invalidate();
                drop(fs);
                self.handles.buffer_emptied(&st);
                self.tiering.gc_wake();
                Ok(a)
            }
            None => {
                let a = self.meta.truncate(ino, size, now_ns())?;
                self.tiering.gc_wake();
                Ok(a)
            }
        }
    }

    /// fallocate(2): mode 0 (reserve; extends the size), KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE
    /// and ZERO_RANGE. Space is not reserved: object storage has no such notion.
    pub async fn fallocate(&self, fh: u64, off: u64, len: u64, mode: i32) -> Result<()> {
        let h = self.handles.get(fh)?;
        if !h.flags.write {
            return Err(VfsError::BadHandle);
        }
        let end = off.checked_add(len).ok_or(VfsError::TooBig)?;
        if len == 0 {
            return Err(VfsError::Invalid("fallocate of length 0"));
        }
        if end > crate::write::MAX_FILE_SIZE {
            return Err(VfsError::TooBig);
        }
        let keep = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let punch = mode & libc::FALLOC_FL_PUNCH_HOLE != 0;
        let zero = mode & libc::FALLOC_FL_ZERO_RANGE != 0;
        let known =
            libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE;
        if mode & !known != 0 || (punch && !keep) || (punch && zero) {
            return Err(VfsError::NotSupported);
        }
        let st = h.state.clone();
        let mut fs = st.file.lock().await;
        self.commit_all(&st, &mut fs).await?;
        let size = self.meta.getattr(h.ino)?.size;
        let now = now_ns();
        if punch || zero {
            let zend = if punch || keep { end.min(size) } else { end };
            let mut slices = Vec::new();
            let mut pos = off;
            while pos < zend {
                let chunk = pos / CHUNK_SIZE;
                let lo = pos % CHUNK_SIZE;
                let n = (CHUNK_SIZE - lo).min(zend - pos);
                slices.push(NewSlice {
                    chunk,
                    pos: lo as u32,
                    len: n as u32,
                    zero: true,
                    blocks: vec![],
                });
                pos += n;
            }
            let min_size = if keep { 0 } else { end };
            let c = Commit {
                slices: &slices,
                min_size,
                mtime: Some(now),
                ..Default::default()
            };
            self.meta.commit(h.ino, &c)?;
        } else if !keep && end > size {
            let c = Commit {
                min_size: end,
                mtime: Some(now),
                ..Default::default()
            };
            self.meta.commit(h.ino, &c)?;
        }
        st.invalidate();
        Ok(())
    }

    pub fn statfs(&self) -> Result<StatFs> {
        let s = self.meta.stats()?;
        let bsize = 4096u64;
        let total = 1u64 << 50; // object storage: report 1 PiB of capacity
        let used = s.stored_bytes.div_ceil(bsize);
        Ok(StatFs {
            blocks: total / bsize,
            bfree: (total / bsize).saturating_sub(used),
            files: s.inodes + (1 << 32),
            ffree: 1 << 32,
            bsize: bsize as u32,
            namelen: NAME_MAX as u32,
        })
    }

    /// Extended attributes. `user.fvfs.tiers` is synthetic and read-only: the file's tier
    /// bitmask as "0x7" (not listed, so copies of a file do not try to set it).
    pub fn get_xattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        if name == TIERS_XATTR {
            let a = self.meta.getattr(ino)?;
            if a.kind == FileKind::File {
                return Ok(format!("0x{:x}", self.file_tiers(ino)?).into_bytes());
            }
        }
        Ok(self.meta.get_xattr(ino, name)?)
    }
    /// Sets an xattr. The two POSIX ACL names are parsed and validated (EINVAL) and
    /// applied as the kernel's set_acl path does for ext4: see [`Vfs::set_acl`].
    pub fn set_xattr(
        &self,
        ctx: Ctx,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
    ) -> Result<()> {
        if name == TIERS_XATTR {
            return Err(fvfs_meta::MetaError::NotPermitted.into());
        }
        if let Some(kind) = acl::acl_name(name) {
            return self.set_acl(ctx, ino, kind, &Acl::from_xattr(value)?);
        }
        Ok(self.meta.set_xattr(ino, name, value, mode, now_ns())?)
    }

    /// Sets an ACL (the xattr flags do not apply: the kernel's set_acl passes none).
    /// Access: the mode's rwx bits become the ACL's owner, group class and other entries,
    /// setgid is cleared unless the caller is in the file's group, and an ACL equivalent to
    /// the mode is not stored (a stored one is removed) — posix_acl_update_mode. Default:
    /// directories only (EACCES otherwise), stored as given. Symlinks take no ACL.
    pub fn set_acl(&self, ctx: Ctx, ino: Ino, kind: AclKind, acl: &Acl) -> Result<()> {
        let a = self.meta.getattr(ino)?;
        if a.kind == FileKind::Symlink {
            return Err(VfsError::NotSupported);
        }
        let now = now_ns();
        match kind {
            AclKind::Access => {
                let u = acl::update_mode(acl.clone(), a.perm, caller_in_group(&ctx, a.gid));
                let set = SetAttr {
                    perm: Some(u.perm),
                    ..Default::default()
                };
                let value = u.acl.as_ref().map(Acl::to_xattr);
                let change = match &value {
                    Some(value) => XattrChange::Set {
                        name: ACL_ACCESS,
                        value,
                    },
                    None => XattrChange::Remove { name: ACL_ACCESS },
                };
                self.meta.setattr_xattr(ino, &set, change, now)?;
            }
            AclKind::Default => {
                if a.kind != FileKind::Dir {
                    return Err(VfsError::PermissionDenied(
                        "a default ACL is for directories only",
                    ));
                }
                let value = acl.to_xattr();
                let change = XattrChange::Set {
                    name: ACL_DEFAULT,
                    value: &value,
                };
                self.meta
                    .setattr_xattr(ino, &SetAttr::default(), change, now)?;
            }
        }
        Ok(())
    }

    pub fn list_xattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        Ok(self.meta.list_xattr(ino)?)
    }

    /// Removes an xattr (ENODATA if missing). Removing an ACL leaves the mode as it is and
    /// succeeds when there is none, as on ext4.
    pub fn remove_xattr(&self, ino: Ino, name: &[u8]) -> Result<()> {
        if acl::acl_name(name).is_some() {
            let change = XattrChange::Remove { name };
            self.meta
                .setattr_xattr(ino, &SetAttr::default(), change, now_ns())?;
            return Ok(());
        }
        Ok(self.meta.remove_xattr(ino, name, now_ns())?)
    }
}
