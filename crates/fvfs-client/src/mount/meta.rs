//! Namespace operations of the client mount: lookup, attributes, directories, symlinks,
//! special files, hard links, unlink and rename, each one API call (plus a parent `stat` where POSIX ownership
//! rules need the parent's mode).
//!
//! Invariants: the inode table changes only after the daemon confirmed the operation.
//! A path that now names another server inode than the one an inode stands for (bound
//! to another FUSE inode) is ENOENT for the stale inode; an unbound new server inode of a
//! path is taken as the same file rewritten elsewhere (a `PUT` replaces the inode).

use crate::mount::fs::{file_kind, name_str, ClientFs, DirEntry};
use fvfs_fuse::ops::{Attr, Ctx, FileKind};
use fvfs_fuse::Errno;
use fvfs_types::api::{
    CreateRequest, Kind, LinkRequest, MknodRequest, RenameRequest, SetAttrRequest, Stat,
};
use std::ffi::OsStr;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl ClientFs {
    pub(super) fn lookup_entry(&self, parent: u64, name: &OsStr) -> Result<Attr, Errno> {
        let name = name_str(name)?;
        let path = self.child_path(parent, name)?;
        let st = self.call("lookup", self.client.stat(&path))?;
        let ino = self
            .inodes
            .lock()
            .bind(parent, name, st.ino, st.kind == Kind::Dir);
        Ok(self.attr(ino, &st))
    }

    pub(super) fn forget_inode(&self, ino: u64, n: u64) {
        let mut inodes = self.inodes.lock();
        // A pending upload needs the file's path until it reaches the daemon.
        if self.handles.file(ino).is_some() {
            inodes.forget_keep(ino, n);
        } else {
            inodes.forget(ino, n);
        }
        if inodes.server(ino).is_none() {
            self.attrs.lock().remove(&ino);
        }
    }

    /// A fresh `stat` of `ino`, checked to still be the same object. A hard-linked inode
    /// whose addressing name is gone on the daemon is tried under its other names.
    pub(super) fn stat_ino(&self, ino: u64) -> Result<Stat, Errno> {
        let mut tries = crate::mount::inodes::MAX_NAMES;
        let st = loop {
            let path = self.path(ino)?;
            match self.call("getattr", self.client.stat(&path)) {
                Err(Errno::ENOENT) if tries > 1 && self.inodes.lock().drop_stale_name(ino) => {
                    tries -= 1;
                }
                r => break r?,
            }
        };
        let mut inodes = self.inodes.lock();
        if inodes.server(ino) != Some(st.ino) {
            if inodes.bound(st.ino).is_some_and(|other| other != ino) {
                // The path now names another inode the kernel knows.
                return Err(Errno::ENOENT);
            }
            inodes.rebind_server(ino, st.ino);
        }
        Ok(st)
    }

    pub(super) fn get_attr(&self, ino: u64) -> Result<Attr, Errno> {
        if !self.inodes.lock().is_attached(ino) {
            // Unlinked but still open: what was last known, with no link left.
            let mut a = self.attrs.lock().get(&ino).copied().ok_or(Errno::ENOENT)?;
            if let Some((size, _)) = self.local_state(ino) {
                a.size = size;
            }
            a.nlink = 0;
            return Ok(a);
        }
        let st = self.stat_ino(ino)?;
        Ok(self.attr(ino, &st))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn set_attr(
        &self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime_ns: Option<i64>,
        mtime_ns: Option<i64>,
        fh: Option<u64>,
    ) -> Result<Attr, Errno> {
        let mut size = size;
        // The size set on the local copy, which the reply must show: the upload that
        // carries it may run (a release) between the server's stat below and the look at
        // the local state, and a reply with the server's older size would be cached.
        let mut local_len = None;
        // A size change of an open file applies to its local copy (made now if needed):
        // the upload at close carries it.
        if let (Some(len), Some(state)) = (size, self.handles.file(ino)) {
            let handle = fh.and_then(|f| self.handles.get(f)).filter(|h| h.write);
            let mut st = state.lock();
            // Any open handle: its writes land on a local copy made from the content it
            // opened, so a size change the daemon applied alone would be undone by the
            // upload at close (O_TRUNC reaches us as open, then a truncate without `fh`).
            if st.temp.is_none() {
                match &handle {
                    Some(h) => self.ensure_temp(&mut st, h)?,
                    None => st.temp = Some(self.current_copy(ino, len)?),
                }
            }
            if let Some(t) = &st.temp {
                t.set_len(len)
                    .map_err(|e| crate::mount::errno::io_errno("truncate", &e))?;
                st.dirty = true;
                st.changed_ns = Some(crate::mount::io::now_ns());
                size = None;
                local_len = Some(len);
            }
            if st.dirty {
                st.atime_ns = atime_ns.or(st.atime_ns);
                st.mtime_ns = mtime_ns.or(st.mtime_ns);
            }
        }
        let req = SetAttrRequest {
            mode,
            uid,
            gid,
            size,
            atime_ns,
            mtime_ns,
        };
        let st = if mode.is_none()
            && uid.is_none()
            && gid.is_none()
            && size.is_none()
            && atime_ns.is_none()
            && mtime_ns.is_none()
        {
            self.stat_ino(ino)?
        } else {
            let path = self.path(ino)?;
            let st = self.call("setattr", self.client.setattr(&path, &req))?;
            self.inodes.lock().rebind_server(ino, st.ino);
            st
        };
        match local_len {
            Some(len) => Ok(self.attr_with_size(ino, &st, len)),
            None => Ok(self.attr(ino, &st)),
        }
    }

    pub(super) fn read_link(&self, ino: u64) -> Result<String, Errno> {
        let st = self.stat_ino(ino)?;
        st.target.ok_or(Errno::EINVAL)
    }

    /// The owner to name for a new object in `parent` made by the caller of `req` (none
    /// unless the token may name owners: the daemon then gives its identity), and whether
    /// the parent is set-group-ID (new objects then take the parent's group, directories
    /// its set-group-ID bit too).
    pub(super) fn owner(
        &self,
        req: &Ctx,
        parent: u64,
    ) -> Result<(Option<u32>, Option<u32>, bool), Errno> {
        let path = self.path(parent)?;
        let p = self.call("stat parent", self.client.stat(&path))?;
        let sgid = p.mode & libc::S_ISGID != 0;
        if !self.name_owner {
            return Ok((None, None, sgid));
        }
        let gid = if sgid { p.gid } else { req.gid };
        Ok((Some(req.uid), Some(gid), sgid))
    }

    pub(super) fn make_dir(
        &self,
        req: &Ctx,
        parent: u64,
        name: &OsStr,
        mode: u32,
    ) -> Result<Attr, Errno> {
        let name = name_str(name)?;
        let path = self.child_path(parent, name)?;
        let (uid, gid, sgid) = self.owner(req, parent)?;
        let mode = if sgid { mode | libc::S_ISGID } else { mode };
        let opts = CreateRequest {
            mode: Some(mode),
            uid,
            gid,
            ..Default::default()
        };
        let st = self.call("mkdir", self.client.mkdir(&path, &opts))?;
        let ino = self.inodes.lock().bind(parent, name, st.ino, true);
        Ok(self.attr(ino, &st))
    }

    pub(super) fn make_symlink(
        &self,
        req: &Ctx,
        parent: u64,
        name: &OsStr,
        target: &OsStr,
    ) -> Result<Attr, Errno> {
        let name = name_str(name)?;
        let target = name_str(target)?;
        let path = self.child_path(parent, name)?;
        let (uid, gid, _) = self.owner(req, parent)?;
        let opts = CreateRequest {
            mode: Some(0o777),
            uid,
            gid,
            target: Some(target.to_string()),
            ..Default::default()
        };
        let st = self.call("symlink", self.client.symlink(&path, &opts))?;
        let ino = self.inodes.lock().bind(parent, name, st.ino, false);
        Ok(self.attr(ino, &st))
    }

    /// A fifo, socket or device node (`mode` carries the type bits).
    pub(super) fn make_special(
        &self,
        req: &Ctx,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
    ) -> Result<Attr, Errno> {
        let kind = match mode & libc::S_IFMT {
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFSOCK => Kind::Socket,
            libc::S_IFCHR => Kind::CharDev,
            libc::S_IFBLK => Kind::BlockDev,
            _ => return Err(Errno::EINVAL),
        };
        let name = name_str(name)?;
        let path = self.child_path(parent, name)?;
        let (uid, gid, _) = self.owner(req, parent)?;
        let dev = matches!(kind, Kind::CharDev | Kind::BlockDev);
        let opts = MknodRequest {
            kind,
            mode: Some(mode & !umask & 0o7777),
            uid,
            gid,
            rdev: if dev { rdev } else { 0 },
        };
        let st = self.call("mknod", self.client.mknod(&path, &opts))?;
        let ino = self.inodes.lock().bind(parent, name, st.ino, false);
        Ok(self.attr(ino, &st))
    }

    /// A hard link: `newparent/newname` becomes a name of `ino` (the same FUSE inode).
    pub(super) fn link_entry(
        &self,
        ino: u64,
        newparent: u64,
        newname: &OsStr,
    ) -> Result<Attr, Errno> {
        let newname = name_str(newname)?;
        let req = LinkRequest {
            from: self.path(ino)?,
            to: self.child_path(newparent, newname)?,
        };
        let st = self.call("link", self.client.link(&req))?;
        let bound = {
            let mut inodes = self.inodes.lock();
            // The source path named the server inode `ino` stands for, unless it was
            // replaced meanwhile: then the new name is that other object's.
            if inodes.server(ino) != Some(st.ino) && inodes.bound(st.ino).is_none() {
                inodes.rebind_server(ino, st.ino);
            }
            inodes.bind(newparent, newname, st.ino, st.kind == Kind::Dir)
        };
        Ok(self.attr(bound, &st))
    }

    /// unlink and rmdir: the kernel has checked the kind of the entry (EISDIR/ENOTDIR).
    pub(super) fn remove(&self, parent: u64, name: &OsStr, op: &str) -> Result<(), Errno> {
        let name = name_str(name)?;
        let path = self.child_path(parent, name)?;
        let known = self.inodes.lock().child(parent, name);
        if let Some(ino) = known {
            self.keep_open_copy(ino);
        }
        self.call(op, self.client.delete(&path))?;
        self.inodes.lock().detach(parent, name);
        Ok(())
    }

    pub(super) fn rename_entry(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        noreplace: bool,
    ) -> Result<(), Errno> {
        let (name, newname) = (name_str(name)?, name_str(newname)?);
        let req = RenameRequest {
            from: self.child_path(parent, name)?,
            to: self.child_path(newparent, newname)?,
            noreplace,
        };
        if !noreplace {
            let known = self.inodes.lock().child(newparent, newname);
            if let Some(ino) = known {
                self.keep_open_copy(ino);
            }
        }
        self.call("rename", self.client.rename(&req))?;
        self.inodes.lock().rename(parent, name, newparent, newname);
        Ok(())
    }

    /// Lists the directory once; readdir pages through this snapshot.
    pub(super) fn open_dir(&self, ino: u64) -> Result<u64, Errno> {
        let path = self.path(ino)?;
        let listing = self.call("readdir", self.client.ls(&path))?;
        let mut entries = vec![
            DirEntry {
                ino,
                kind: FileKind::Dir,
                name: b".".to_vec(),
            },
            DirEntry {
                ino: 1,
                kind: FileKind::Dir,
                name: b"..".to_vec(),
            },
        ];
        {
            let inodes = self.inodes.lock();
            for e in listing.entries {
                let name = e
                    .path
                    .rsplit('/')
                    .next()
                    .unwrap_or(e.path.as_str())
                    .as_bytes()
                    .to_vec();
                entries.push(DirEntry {
                    ino: inodes.fuse_ino(e.ino),
                    kind: file_kind(e.kind),
                    name,
                });
            }
        }
        let fh = self.next_dir.fetch_add(1, Ordering::Relaxed) + 1;
        self.dirs.lock().insert(fh, Arc::new(entries));
        Ok(fh)
    }

    /// The size of `ino`'s local copy, if a handle holds one, and when it last changed
    /// (or the mtime set explicitly since) if it is dirty.
    pub(super) fn local_state(&self, ino: u64) -> Option<(u64, Option<i64>)> {
        let state = self.handles.file(ino)?;
        let st = state.lock();
        let t = st.temp.as_ref()?;
        let changed = if st.dirty {
            st.mtime_ns.or(st.changed_ns)
        } else {
            None
        };
        // The copy's length; a failed fstat falls back to the server's size.
        t.metadata().ok().map(|m| (m.len(), changed))
    }

    /// Bytes of the local copy (reads while a handle holds one).
    pub(super) fn read_local(t: &std::fs::File, off: u64, size: u32) -> std::io::Result<Vec<u8>> {
        let len = t.metadata()?.len();
        let n = (size as u64).min(len.saturating_sub(off)) as usize;
        let mut buf = vec![0u8; n];
        t.read_exact_at(&mut buf, off)?;
        Ok(buf)
    }
}
