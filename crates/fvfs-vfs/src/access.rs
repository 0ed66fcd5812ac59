//! The POSIX permission rules as a local process meets them in the Linux kernel
//! (`generic_permission`, `may_create`, `may_delete`, the sticky bit, `may_linkat` with
//! `fs.protected_hardlinks = 1`, `setattr_prepare`), for callers the kernel does not check:
//! the HTTP API acts as a token's identity through the `*_as` entry points of `caller.rs`,
//! which ask a [`Checker`] before each operation. The FUSE face needs none of this: the
//! kernel checks its callers (`default_permissions`).
//!
//! Invariants:
//! - One function, [`permits`], answers every read/write/search question, and it alone
//!   consults the file's POSIX access ACL (through `acl::permits`). [`Checker::permits`] is the
//!   only caller and reads the ACL only when the answer can depend on it.
//! - An identity is one uid and one gid (a token's): there are no supplementary groups.
//!   uid 0 is root: read and write always, search/execute on directories or when any x bit
//!   is set, and every "owner or root" rule passes.
//! - A missing permission bit is `PermissionDenied` (EACCES); a rule that only the owner
//!   or root may pass (chmod, chown, explicit times, the sticky bit, protected hard links)
//!   is `NotPermitted` (EPERM), as the kernel answers.

use crate::{AttrChange, Ctx, Result, TimeSet, VfsError};
use fvfs_meta::Attr;
use fvfs_types::{FileKind, Ino};

pub const MAY_READ: u32 = 4;
pub const MAY_WRITE: u32 = 2;
pub const MAY_EXEC: u32 = 1;

/// The xattr holding a file's POSIX access ACL.
pub const ACL_ACCESS_XATTR: &[u8] = b"system.posix_acl_access";

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_ISVTX: u32 = 0o1000;
const S_IXGRP: u32 = 0o010;

fn is_root(ctx: &Ctx) -> bool {
    ctx.uid == 0
}

/// Whether the identity counts as a member of `gid` (its one group; root always, as
/// `in_group_or_capable` with CAP_FSETID).
fn in_group(ctx: &Ctx, gid: u32) -> bool {
    is_root(ctx) || ctx.gid == gid
}

fn owner_or_root(ctx: &Ctx, a: &Attr) -> bool {
    is_root(ctx) || ctx.uid == a.uid
}

/// THE permission check: may `ctx` access `a` for `mask` (a combination of [`MAY_READ`],
/// [`MAY_WRITE`], [`MAY_EXEC`])? `acl` is the value of the file's
/// `system.posix_acl_access` xattr when it has one.
pub fn permits(ctx: &Ctx, a: &Attr, acl: Option<&[u8]>, mask: u32) -> bool {
    let mask = mask & 0o7;
    if is_root(ctx) {
        // CAP_DAC_OVERRIDE: read and write always; execute only where some x bit is set,
        // search on every directory.
        return mask & MAY_EXEC == 0 || a.kind == FileKind::Dir || a.perm & 0o111 != 0;
    }
    let bits = if ctx.uid == a.uid {
        a.perm >> 6
    } else {
        // With an access ACL, the kernel's rule decides everything past the owner class
        // (acl::permits: named users, the owning and named groups under the mask, other).
        // As in the kernel's acl_permission_check, the ACL is consulted only when the
        // mode's group bits (the mask) grant something: with a mask of ---, the mode alone
        // decides. An ACL that does not parse grants nothing.
        if let Some(bytes) = acl.filter(|_| a.perm & 0o070 != 0) {
            return match crate::acl::Acl::from_xattr(bytes) {
                Ok(acl) => crate::acl::permits(&acl, a.uid, a.gid, ctx.uid, &[ctx.gid], mask),
                Err(_) => false,
            };
        }
        if ctx.gid == a.gid {
            a.perm >> 3
        } else {
            a.perm
        }
    };
    bits & mask == mask
}

/// What a file's ACL is, when [`permits`] needs it: the xattr's value, or `None`.
pub type AclSource<'a> = &'a dyn Fn(Ino) -> Result<Option<Vec<u8>>>;

fn no_acl(_: Ino) -> Result<Option<Vec<u8>>> {
    Ok(None)
}

/// The rules for one identity. Built by `Vfs::checker` (ACLs read from the metadata) or
/// [`Checker::without_acls`] (tests).
pub struct Checker<'a> {
    pub ctx: Ctx,
    acl: AclSource<'a>,
}

/// What a checked setattr may change: the permission bits after the kernel's adjustments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetattrPlan {
    pub perm: Option<u32>,
}

impl<'a> Checker<'a> {
    pub fn new(ctx: Ctx, acl: AclSource<'a>) -> Checker<'a> {
        Checker { ctx, acl }
    }

    pub fn without_acls(ctx: Ctx) -> Checker<'static> {
        Checker { ctx, acl: &no_acl }
    }

    /// [`permits`], reading the ACL only when the answer can depend on it (the caller is
    /// neither root nor the owner).
    pub fn permits(&self, a: &Attr, mask: u32) -> Result<bool> {
        let acl = if is_root(&self.ctx) || self.ctx.uid == a.uid {
            None
        } else {
            (self.acl)(a.ino)?
        };
        Ok(permits(&self.ctx, a, acl.as_deref(), mask))
    }

    /// `mask` on `a`, else EACCES saying `what` was missing.
    pub fn need(&self, a: &Attr, mask: u32, what: &'static str) -> Result<()> {
        if self.permits(a, mask)? {
            Ok(())
        } else {
            Err(VfsError::PermissionDenied(what))
        }
    }

    /// Search (x) on a directory on the way to a name.
    pub fn search(&self, dir: &Attr) -> Result<()> {
        self.need(
            dir,
            MAY_EXEC,
            "no search (x) permission on a directory of the path",
        )
    }

    /// Read a file's content.
    pub fn read(&self, a: &Attr) -> Result<()> {
        self.need(a, MAY_READ, "no read permission on the file")
    }

    /// List a directory with the attributes of its entries (readdir needs r, the
    /// attributes x).
    pub fn list(&self, dir: &Attr) -> Result<()> {
        self.need(
            dir,
            MAY_READ | MAY_EXEC,
            "listing a directory needs read and search (r-x) permission on it",
        )
    }

    /// Create a name in `dir`: write and search on it.
    pub fn may_create(&self, dir: &Attr) -> Result<()> {
        self.need(
            dir,
            MAY_WRITE | MAY_EXEC,
            "no write and search (wx) permission on the directory",
        )
    }

    /// Remove (or replace) `victim`'s name in `dir`: write and search on `dir`, and in a
    /// sticky directory only the owner of the file or of the directory (or root).
    pub fn may_delete(&self, dir: &Attr, victim: &Attr) -> Result<()> {
        self.may_create(dir)?;
        let ctx = &self.ctx;
        if dir.perm & S_ISVTX != 0 && !is_root(ctx) && ctx.uid != victim.uid && ctx.uid != dir.uid {
            return Err(VfsError::NotPermitted(
                "the directory is sticky: only the owner of the entry or of the directory may remove or replace it",
            ));
        }
        Ok(())
    }

    /// rename(2): `src` leaves `from_dir`, and `to_dir` gets it, replacing `target` if
    /// any. A directory moving to another parent needs write on itself (its `..` changes).
    pub fn may_rename(
        &self,
        from_dir: &Attr,
        src: &Attr,
        to_dir: &Attr,
        target: Option<&Attr>,
    ) -> Result<()> {
        self.may_delete(from_dir, src)?;
        match target {
            Some(t) => self.may_delete(to_dir, t)?,
            None => self.may_create(to_dir)?,
        }
        if src.kind == FileKind::Dir && from_dir.ino != to_dir.ino {
            self.need(
                src,
                MAY_WRITE,
                "moving a directory to another parent needs write permission on it",
            )?;
        }
        Ok(())
    }

    /// link(2) of `src` into `dir`, with `fs.protected_hardlinks = 1`: the owner (or
    /// root), or anyone with read and write on a regular file that is not set-id.
    pub fn may_link(&self, src: &Attr, dir: &Attr) -> Result<()> {
        if !owner_or_root(&self.ctx, src) {
            let setid =
                src.perm & S_ISUID != 0 || src.perm & (S_ISGID | S_IXGRP) == S_ISGID | S_IXGRP;
            if src.kind != FileKind::File || setid || !self.permits(src, MAY_READ | MAY_WRITE)? {
                return Err(VfsError::NotPermitted(
                    "a hard link to another user's file needs read and write permission on a regular, non-set-id file",
                ));
            }
        }
        self.may_create(dir)
    }

    /// The mode of a new object of `kind` in `dir`: a non-directory made set-group-ID in a
    /// set-group-ID directory whose group the caller is not in loses the bit
    /// (`mode_strip_sgid`).
    pub fn create_mode(&self, dir: &Attr, kind: FileKind, mode: u32) -> u32 {
        if kind != FileKind::Dir
            && mode & (S_ISGID | S_IXGRP) == S_ISGID | S_IXGRP
            && dir.perm & S_ISGID != 0
            && !in_group(&self.ctx, dir.gid)
        {
            mode & !S_ISGID
        } else {
            mode
        }
    }

    /// chmod, chown, truncate and utimes of `cur` in one call, as `setattr_prepare` and the
    /// syscalls before it check them. `chown_any`: the caller holds the privilege to give
    /// any owner and group (CAP_CHOWN: an admin token) whatever its identity. Returns the
    /// permission bits to set (set-group-ID cleared when the caller is not in the file's
    /// resulting group).
    pub fn setattr(&self, cur: &Attr, chown_any: bool, ch: &AttrChange) -> Result<SetattrPlan> {
        let AttrChange {
            perm,
            uid,
            gid,
            size,
            atime,
            mtime,
        } = *ch;
        let ctx = &self.ctx;
        let root = is_root(ctx);
        let owner = ctx.uid == cur.uid;
        if size.is_some() {
            self.need(
                cur,
                MAY_WRITE,
                "truncate needs write permission on the file",
            )?;
        }
        // Naming the present owner is no change, which the owner may ask.
        let may_chown = root || chown_any;
        if let Some(u) = uid {
            let allowed = may_chown || (owner && u == cur.uid);
            if !allowed {
                return Err(VfsError::NotPermitted(
                    "only root may change a file's owner",
                ));
            }
        }
        if let Some(g) = gid {
            let allowed = may_chown || (owner && (g == cur.gid || in_group(ctx, g)));
            if !allowed {
                return Err(VfsError::NotPermitted(
                    "only the owner may change a file's group, and only to its own group",
                ));
            }
        }
        let mut plan = SetattrPlan { perm };
        if let Some(p) = perm {
            if !root && !owner {
                return Err(VfsError::NotPermitted(
                    "only the owner may change a file's mode",
                ));
            }
            if !in_group(ctx, gid.unwrap_or(cur.gid)) {
                plan.perm = Some(p & !S_ISGID);
            }
        }
        let explicit = matches!(atime, TimeSet::At(_)) || matches!(mtime, TimeSet::At(_));
        let now = matches!(atime, TimeSet::Now) || matches!(mtime, TimeSet::Now);
        if explicit && !root && !owner {
            return Err(VfsError::NotPermitted(
                "only the owner may set a file's times to a given value",
            ));
        }
        if now && !root && !owner {
            self.need(
                cur,
                MAY_WRITE,
                "setting times to now needs ownership or write permission",
            )?;
        }
        Ok(plan)
    }
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
