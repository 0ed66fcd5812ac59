//! The engine's entry points "as a caller": the path-level operations of the HTTP face,
//! each checked with the caller's identity by the rules of `access.rs` before it runs,
//! the way the kernel checks a local process. The unchecked operations (`paths.rs`,
//! `ns.rs`) stay for the FUSE face, whose callers the kernel has checked already, and
//! for the engine itself.
//!
//! Invariants:
//! - Every directory a path walks through needs search (x) permission; the object at the
//!   end then needs what the operation needs (read for content, r-x to list, wx on the
//!   parent to create, remove or rename, …).
//! - A new object is owned by the caller unless the `NewOwner` names someone (a face
//!   lets only privileged callers do that); its group is the caller's, or the parent's
//!   under a set-group-ID parent, unless the `NewOwner` names one.
//! - Checks read attributes just before the operation; they are not atomic with it (a
//!   concurrent chmod may land in between, as with any network filesystem).

use crate::access::{Checker, ACL_ACCESS_XATTR};
use crate::paths::{FileLayout, FileReader, NewOwner, Upload};
use crate::{AttrChange, Ctx, Result, Vfs, VfsError};
use fvfs_meta::{Attr, DirEntry, MetaError, RenameFlags};
use fvfs_types::{FileKind, Ino, ROOT_INO};
use std::sync::Arc;

const S_ISGID: u32 = 0o2000;

fn not_dir() -> VfsError {
    MetaError::NotDir.into()
}

impl Vfs {
    fn acl_of(&self, ino: Ino) -> Result<Option<Vec<u8>>> {
        match self.meta.get_xattr(ino, ACL_ACCESS_XATTR) {
            Ok(v) => Ok(Some(v)),
            Err(MetaError::NoAttr) | Err(MetaError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `ctx` may access `a` for `mask` (`access::MAY_*`), ACL included.
    pub fn permits_as(&self, ctx: Ctx, a: &Attr, mask: u32) -> Result<bool> {
        let acl = |ino| self.acl_of(ino);
        Checker::new(ctx, &acl).permits(a, mask)
    }

    /// Runs `f` with the checker of `ctx`.
    fn with_checker<T>(&self, ctx: Ctx, f: impl FnOnce(&Checker<'_>) -> Result<T>) -> Result<T> {
        let acl = |ino| self.acl_of(ino);
        f(&Checker::new(ctx, &acl))
    }

    /// `name` in the directory `dir`, which the caller must be able to search.
    pub fn lookup_as(&self, ctx: Ctx, dir: &Attr, name: &[u8]) -> Result<Attr> {
        if dir.kind != FileKind::Dir {
            return Err(not_dir());
        }
        self.with_checker(ctx, |c| c.search(dir))?;
        self.lookup(dir.ino, name)
    }

    /// The object `comps` names from `start` (no symlink followed: one in the middle is
    /// `NotDir`), searching every directory on the way as `ctx`.
    pub fn walk_as<S: AsRef<[u8]>>(&self, ctx: Ctx, start: Attr, comps: &[S]) -> Result<Attr> {
        self.with_checker(ctx, |c| {
            let mut cur = start;
            for name in comps {
                if cur.kind != FileKind::Dir {
                    return Err(not_dir());
                }
                c.search(&cur)?;
                cur = self.lookup(cur.ino, name.as_ref())?;
            }
            Ok(cur)
        })
    }

    /// [`Vfs::resolve_path`] as `ctx`: the object `comps` names from the root.
    pub fn resolve_path_as<S: AsRef<[u8]>>(&self, ctx: Ctx, comps: &[S]) -> Result<Attr> {
        self.walk_as(ctx, self.getattr(ROOT_INO)?, comps)
    }

    /// The deepest existing directory on the way to `comps` from the root, and how many
    /// of `comps` it covers. A component that exists but is not a directory is
    /// `NotDir`.
    pub fn deepest_dir_as<S: AsRef<[u8]>>(&self, ctx: Ctx, comps: &[S]) -> Result<(Attr, usize)> {
        self.with_checker(ctx, |c| {
            let mut cur = self.getattr(ROOT_INO)?;
            for (i, name) in comps.iter().enumerate() {
                c.search(&cur)?;
                match self.lookup(cur.ino, name.as_ref()) {
                    Ok(a) if a.kind == FileKind::Dir => cur = a,
                    Ok(_) => return Err(not_dir()),
                    Err(VfsError::Meta(MetaError::NotFound)) => return Ok((cur, i)),
                    Err(e) => return Err(e),
                }
            }
            Ok((cur, comps.len()))
        })
    }

    /// The owner of a new object in `parent` made by `ctx`: the caller unless `owner`
    /// names someone (see the module invariants).
    fn owner_in(ctx: Ctx, parent: &Attr, owner: NewOwner) -> NewOwner {
        NewOwner {
            mode: owner.mode,
            uid: Some(owner.uid.unwrap_or(ctx.uid)),
            // None under a set-group-ID parent: the creation takes the parent's group.
            gid: owner
                .gid
                .or((parent.perm & S_ISGID == 0).then_some(ctx.gid)),
        }
    }

    /// Checks that `ctx` may create in `parent` and returns the owner and mode to use.
    fn prepare_create(
        &self,
        ctx: Ctx,
        parent: &Attr,
        kind: FileKind,
        owner: NewOwner,
    ) -> Result<NewOwner> {
        if parent.kind != FileKind::Dir {
            return Err(not_dir());
        }
        self.with_checker(ctx, |c| {
            c.may_create(parent)?;
            let mut o = Self::owner_in(ctx, parent, owner);
            o.mode = c.create_mode(parent, kind, o.mode);
            Ok(o)
        })
    }

    /// Like `mkdir -p` from `start` as `ctx`: every missing directory of `comps` is
    /// created with `owner`. Returns the last directory and whether this call made it.
    pub fn mkdir_p_as<S: AsRef<[u8]>>(
        &self,
        ctx: Ctx,
        start: Attr,
        comps: &[S],
        owner: NewOwner,
    ) -> Result<(Attr, bool)> {
        let mut cur = start;
        let mut created = false;
        for c in comps {
            let name = c.as_ref();
            cur = match self.lookup_as(ctx, &cur, name) {
                Ok(a) => {
                    created = false;
                    a
                }
                Err(VfsError::Meta(MetaError::NotFound)) => {
                    match self.create_dir_as(ctx, &cur, name, owner) {
                        Ok(a) => {
                            created = true;
                            a
                        }
                        // Created by someone else in between: use theirs.
                        Err(VfsError::Meta(MetaError::Exists)) => {
                            created = false;
                            self.lookup(cur.ino, name)?
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            };
        }
        if cur.kind != FileKind::Dir {
            return Err(MetaError::Exists.into());
        }
        Ok((cur, created))
    }

    /// A new directory in `parent`, made by `ctx`.
    pub fn create_dir_as(
        &self,
        ctx: Ctx,
        parent: &Attr,
        name: &[u8],
        owner: NewOwner,
    ) -> Result<Attr> {
        let o = self.prepare_create(ctx, parent, FileKind::Dir, owner)?;
        self.create_dir(parent.ino, name, o)
    }

    /// A new symlink in `parent`, made by `ctx`.
    pub fn create_symlink_as(
        &self,
        ctx: Ctx,
        parent: &Attr,
        name: &[u8],
        target: &[u8],
        owner: NewOwner,
    ) -> Result<Attr> {
        let o = self.prepare_create(ctx, parent, FileKind::Symlink, owner)?;
        self.create_symlink(parent.ino, name, target, o)
    }

    /// A new fifo, socket or device node in `parent`, made by `ctx`.
    pub fn create_special_as(
        &self,
        ctx: Ctx,
        parent: &Attr,
        name: &[u8],
        kind: FileKind,
        rdev: u32,
        owner: NewOwner,
    ) -> Result<Attr> {
        let o = self.prepare_create(ctx, parent, kind, owner)?;
        self.create_special(parent.ino, name, kind, rdev, o)
    }

    /// Starts an upload by `ctx` whose temporary file goes into `dir` (the target's
    /// directory, or its deepest existing ancestor when the upload creates the rest; see
    /// [`Upload::set_target_dir`]).
    pub fn begin_upload_as(
        self: &Arc<Self>,
        ctx: Ctx,
        dir: &Attr,
        name: &[u8],
        owner: NewOwner,
    ) -> Result<Upload> {
        let o = self.prepare_create(ctx, dir, FileKind::File, owner)?;
        self.begin_upload(dir.ino, name, o)
    }

    /// Whether `ctx` may put an upload at `parent/name`: as rename(2) over it (wx on the
    /// directory, the sticky rule for an existing name), and write permission on a
    /// hard-linked target, whose inode is rewritten in place.
    pub fn check_replace_as(&self, ctx: Ctx, parent: &Attr, name: &[u8]) -> Result<()> {
        let target = match self.lookup(parent.ino, name) {
            Ok(a) => Some(a),
            Err(VfsError::Meta(MetaError::NotFound)) => None,
            Err(e) => return Err(e),
        };
        self.with_checker(ctx, |c| match &target {
            None => c.may_create(parent),
            Some(t) => {
                c.may_delete(parent, t)?;
                if t.kind == FileKind::File && t.nlink > 1 {
                    c.need(
                        t,
                        crate::access::MAY_WRITE,
                        "a hard-linked file is rewritten in place: it needs write permission",
                    )?;
                }
                Ok(())
            }
        })
    }

    /// Removes `parent/name` (a file, symlink or empty directory) as `ctx`.
    pub fn remove_as(&self, ctx: Ctx, parent: &Attr, name: &[u8]) -> Result<()> {
        let victim = self.lookup_as(ctx, parent, name)?;
        self.with_checker(ctx, |c| c.may_delete(parent, &victim))?;
        self.remove(parent.ino, name)
    }

    /// rename(2) as `ctx`.
    pub fn rename_as(
        &self,
        ctx: Ctx,
        from_dir: &Attr,
        name: &[u8],
        to_dir: &Attr,
        newname: &[u8],
        flags: RenameFlags,
    ) -> Result<()> {
        let src = self.lookup_as(ctx, from_dir, name)?;
        let target = match self.lookup_as(ctx, to_dir, newname) {
            Ok(a) => Some(a),
            Err(VfsError::Meta(MetaError::NotFound)) => None,
            Err(e) => return Err(e),
        };
        self.with_checker(ctx, |c| {
            c.may_rename(from_dir, &src, to_dir, target.as_ref())
        })?;
        self.rename(from_dir.ino, name, to_dir.ino, newname, flags)
    }

    /// link(2) of `src` as `dir/name`, as `ctx`.
    pub fn link_as(&self, ctx: Ctx, src: &Attr, dir: &Attr, name: &[u8]) -> Result<Attr> {
        if dir.kind != FileKind::Dir {
            return Err(not_dir());
        }
        self.with_checker(ctx, |c| c.may_link(src, dir))?;
        self.link(src.ino, dir.ino, name)
    }

    /// chmod/chown/truncate/utimes of `a` as `ctx` (`access::Checker::setattr`);
    /// `chown_any`: the caller may give any owner and group (an admin token).
    #[allow(clippy::too_many_arguments)]
    pub async fn setattr_as(
        &self,
        ctx: Ctx,
        chown_any: bool,
        a: &Attr,
        ch: AttrChange,
    ) -> Result<Attr> {
        let plan = self.with_checker(ctx, |c| c.setattr(a, chown_any, &ch))?;
        let ch = AttrChange {
            perm: plan.perm,
            ..ch
        };
        self.setattr(ctx, a.ino, ch).await
    }

    /// Opens the regular file `a` for streamed reading as `ctx` (read permission).
    pub fn open_reader_as(self: &Arc<Self>, ctx: Ctx, a: &Attr) -> Result<FileReader> {
        self.with_checker(ctx, |c| c.read(a))?;
        self.open_reader(a.ino)
    }

    /// The block layout of the regular file `a` as `ctx` (read permission: it reveals the
    /// content's block ids).
    pub async fn manifest_as(&self, ctx: Ctx, a: &Attr) -> Result<FileLayout> {
        self.with_checker(ctx, |c| c.read(a))?;
        self.manifest(a.ino).await
    }

    /// [`Vfs::list_sorted`] of the directory `dir` as `ctx` (r-x on it).
    pub fn list_sorted_as(
        &self,
        ctx: Ctx,
        dir: &Attr,
        after: Option<&[u8]>,
        limit: usize,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<(Vec<DirEntry>, bool)> {
        if dir.kind != FileKind::Dir {
            return Err(not_dir());
        }
        self.with_checker(ctx, |c| c.list(dir))?;
        self.list_sorted(dir.ino, after, limit, keep)
    }
}
