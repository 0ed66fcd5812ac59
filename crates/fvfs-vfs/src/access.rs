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

use crate::{Ctx, Result, TimeSet, VfsError};
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
    #[allow(clippy::too_many_arguments)]
    pub fn setattr(
        &self,
        cur: &Attr,
        chown_any: bool,
        perm: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: TimeSet,
        mtime: TimeSet,
    ) -> Result<SetattrPlan> {
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
mod tests {
    use super::*;

    fn ctx(uid: u32, gid: u32) -> Ctx {
        Ctx { uid, gid, pid: 0 }
    }

    fn attr(kind: FileKind, perm: u32, uid: u32, gid: u32) -> Attr {
        Attr {
            ino: 7,
            kind,
            perm,
            uid,
            gid,
            size: 0,
            nlink: 1,
            atime: 0,
            mtime: 0,
            ctime: 0,
            rdev: 0,
            parent: 0,
            blocks: 0,
        }
    }

    fn file(perm: u32, uid: u32, gid: u32) -> Attr {
        attr(FileKind::File, perm, uid, gid)
    }

    fn dir(perm: u32, uid: u32, gid: u32) -> Attr {
        Attr {
            ino: 8,
            ..attr(FileKind::Dir, perm, uid, gid)
        }
    }

    fn eacces<T: std::fmt::Debug>(r: Result<T>) -> bool {
        matches!(r, Err(VfsError::PermissionDenied(_)))
    }

    fn eperm<T: std::fmt::Debug>(r: Result<T>) -> bool {
        matches!(r, Err(VfsError::NotPermitted(_)))
    }

    #[test]
    fn owner_group_other_classes() {
        let f = file(0o640, 1001, 100);
        assert!(permits(&ctx(1001, 5), &f, None, MAY_READ | MAY_WRITE));
        assert!(!permits(&ctx(1001, 5), &f, None, MAY_EXEC));
        assert!(permits(&ctx(1000, 100), &f, None, MAY_READ));
        assert!(!permits(&ctx(1000, 100), &f, None, MAY_WRITE));
        assert!(!permits(&ctx(1000, 5), &f, None, MAY_READ));
        // The owner class decides for the owner, even when group or other grant more.
        let g = file(0o077, 1001, 100);
        assert!(!permits(&ctx(1001, 100), &g, None, MAY_READ));
        assert!(permits(
            &ctx(1000, 100),
            &g,
            None,
            MAY_READ | MAY_WRITE | MAY_EXEC
        ));
        // Group decides for members, even when other grants more.
        let h = file(0o607, 1001, 100);
        assert!(!permits(&ctx(1000, 100), &h, None, MAY_READ));
        assert!(permits(&ctx(1000, 5), &h, None, MAY_READ));
    }

    #[test]
    fn root_bypasses_read_write_and_exec_when_any_x_bit() {
        let root = ctx(0, 0);
        let f = file(0o000, 1001, 100);
        assert!(permits(&root, &f, None, MAY_READ | MAY_WRITE));
        assert!(!permits(&root, &f, None, MAY_EXEC));
        assert!(permits(&root, &file(0o001, 1001, 100), None, MAY_EXEC));
        assert!(permits(
            &root,
            &dir(0o000, 1001, 100),
            None,
            MAY_EXEC | MAY_READ
        ));
    }

    #[test]
    fn the_acl_is_asked_only_past_the_owner_class() {
        let asked = std::cell::Cell::new(0);
        let src = |_: Ino| {
            asked.set(asked.get() + 1);
            Ok(None)
        };
        let f = file(0o640, 1001, 100);
        Checker::new(ctx(1001, 5), &src)
            .permits(&f, MAY_READ)
            .unwrap();
        Checker::new(ctx(0, 0), &src).permits(&f, MAY_READ).unwrap();
        assert_eq!(asked.get(), 0);
        Checker::new(ctx(1000, 100), &src)
            .permits(&f, MAY_READ)
            .unwrap();
        assert_eq!(asked.get(), 1);
    }

    #[test]
    fn an_access_acl_decides_past_the_owner_class() {
        use crate::acl::{Acl, Entry, Tag};
        let acl = |mask: u32| {
            let e = |tag, perm| Entry { tag, perm };
            Acl::from_entries(vec![
                e(Tag::UserObj, 6),
                e(Tag::User(1000), 6),
                e(Tag::GroupObj, 4),
                e(Tag::Group(50), 7),
                e(Tag::Mask, mask),
                e(Tag::Other, 0),
            ])
            .unwrap()
            .to_xattr()
        };
        // Mode 0640 (group bits = the mask r--), owned by 1001:100.
        let f = file(0o640, 1001, 100);
        let x = acl(4);
        let p = |uid, gid, mask| permits(&ctx(uid, gid), &f, Some(&x), mask);
        assert!(p(1000, 5, MAY_READ), "named user, limited by the mask");
        assert!(
            !p(1000, 5, MAY_WRITE),
            "the mask r-- takes w from user:1000:rw-"
        );
        assert!(
            p(1002, 50, MAY_READ) && !p(1002, 50, MAY_WRITE),
            "named group"
        );
        assert!(p(1002, 100, MAY_READ), "owning group");
        assert!(!p(1002, 7, MAY_READ), "other: ---");
        assert!(p(1001, 7, MAY_READ | MAY_WRITE), "the owner's own bits");
        // The mode's group bits are the mask: with 0604 (mask ---) the kernel ignores the
        // ACL and `other` (r--) decides for everyone but the owner.
        let f = file(0o604, 1001, 100);
        let x = acl(0);
        assert!(permits(&ctx(1002, 7), &f, Some(&x), MAY_READ));
        assert!(!permits(&ctx(1000, 5), &f, Some(&x), MAY_WRITE));
        // An ACL that does not parse grants nothing past the owner.
        let f = file(0o644, 1001, 100);
        assert!(!permits(&ctx(1002, 7), &f, Some(b"garbage"), MAY_READ));
        assert!(permits(&ctx(1002, 7), &f, None, MAY_READ));
    }

    #[test]
    fn search_read_list() {
        let c = Checker::without_acls(ctx(1000, 1000));
        assert!(c.search(&dir(0o755, 0, 0)).is_ok());
        assert!(eacces(c.search(&dir(0o754, 0, 0))));
        assert!(eacces(c.read(&file(0o600, 1001, 1001))));
        assert!(c.read(&file(0o604, 1001, 1001)).is_ok());
        assert!(eacces(c.list(&dir(0o751, 0, 0))));
        assert!(eacces(c.list(&dir(0o744, 0, 0))));
        assert!(c.list(&dir(0o755, 0, 0)).is_ok());
    }

    #[test]
    fn create_needs_write_and_search_on_the_parent() {
        let c = Checker::without_acls(ctx(1000, 1000));
        assert!(eacces(c.may_create(&dir(0o755, 1001, 1001))));
        assert!(eacces(c.may_create(&dir(0o776, 1001, 1001))));
        assert!(c.may_create(&dir(0o773, 1001, 1001)).is_ok());
        assert!(c.may_create(&dir(0o700, 1000, 5)).is_ok());
        assert!(Checker::without_acls(ctx(0, 0))
            .may_create(&dir(0o555, 1001, 1001))
            .is_ok());
    }

    #[test]
    fn sticky_directories() {
        let tmp = dir(0o1777, 0, 0);
        let theirs = file(0o666, 1001, 1001);
        let mine = file(0o600, 1000, 1000);
        let me = Checker::without_acls(ctx(1000, 1000));
        assert!(eperm(me.may_delete(&tmp, &theirs)));
        assert!(me.may_delete(&tmp, &mine).is_ok());
        // The directory's owner may remove anything in it; so may root.
        assert!(me.may_delete(&dir(0o1777, 1000, 1000), &theirs).is_ok());
        assert!(Checker::without_acls(ctx(0, 0))
            .may_delete(&tmp, &theirs)
            .is_ok());
        // Without the sticky bit write permission is enough.
        assert!(me.may_delete(&dir(0o777, 0, 0), &theirs).is_ok());
        // Write permission is checked first (EACCES before EPERM).
        assert!(eacces(me.may_delete(&dir(0o1755, 0, 0), &theirs)));
        // Replacing a name by rename follows the same rule.
        let other = dir(0o777, 0, 0);
        assert!(eperm(me.may_rename(&other, &mine, &tmp, Some(&theirs))));
        assert!(eperm(me.may_rename(&tmp, &theirs, &other, None)));
    }

    #[test]
    fn rename_of_a_directory_to_another_parent_needs_write_on_it() {
        let me = Checker::without_acls(ctx(1000, 1000));
        let a = Attr {
            ino: 20,
            ..dir(0o777, 0, 0)
        };
        let b = Attr {
            ino: 21,
            ..dir(0o777, 0, 0)
        };
        let d = Attr {
            ino: 22,
            ..dir(0o555, 1000, 1000)
        };
        assert!(eacces(me.may_rename(&a, &d, &b, None)));
        // Within one parent its `..` does not change.
        assert!(me.may_rename(&a, &d, &a, None).is_ok());
        let w = Attr {
            perm: 0o755,
            ..d.clone()
        };
        assert!(me.may_rename(&a, &w, &b, None).is_ok());
        // A file needs nothing of itself.
        assert!(me
            .may_rename(&a, &file(0o000, 1001, 1001), &b, None)
            .is_ok());
        // The target directory needs wx.
        let ro = Attr {
            ino: 23,
            ..dir(0o755, 0, 0)
        };
        assert!(eacces(me.may_rename(&a, &w, &ro, None)));
    }

    #[test]
    fn protected_hard_links() {
        let me = Checker::without_acls(ctx(1000, 1000));
        let d = dir(0o777, 0, 0);
        assert!(me.may_link(&file(0o600, 1000, 1000), &d).is_ok());
        assert!(eperm(me.may_link(&file(0o644, 1001, 1001), &d)));
        assert!(me.may_link(&file(0o666, 1001, 1001), &d).is_ok());
        assert!(eperm(me.may_link(&file(0o4666, 1001, 1001), &d)));
        assert!(eperm(me.may_link(&file(0o2676, 1001, 1001), &d)));
        assert!(eacces(
            me.may_link(&file(0o600, 1000, 1000), &dir(0o755, 0, 0))
        ));
    }

    #[test]
    fn chmod_only_by_the_owner_and_setgid_needs_the_group() {
        let me = Checker::without_acls(ctx(1000, 1000));
        let t = TimeSet::Omit;
        let theirs = file(0o666, 1001, 1001);
        assert!(eperm(me.setattr(
            &theirs,
            false,
            Some(0o600),
            None,
            None,
            None,
            t,
            t
        )));
        let mine = file(0o644, 1000, 1000);
        assert_eq!(
            me.setattr(&mine, false, Some(0o2755), None, None, None, t, t)
                .unwrap(),
            SetattrPlan { perm: Some(0o2755) }
        );
        // A file of the caller's whose group it is not in: set-group-ID is cleared.
        let other_group = file(0o644, 1000, 50);
        assert_eq!(
            me.setattr(&other_group, false, Some(0o2755), None, None, None, t, t)
                .unwrap()
                .perm,
            Some(0o755)
        );
        let root = Checker::without_acls(ctx(0, 0));
        assert_eq!(
            root.setattr(&other_group, false, Some(0o2755), None, None, None, t, t)
                .unwrap()
                .perm,
            Some(0o2755)
        );
    }

    #[test]
    fn chown_only_by_root_chgrp_by_the_owner_to_its_group() {
        let me = Checker::without_acls(ctx(1000, 1000));
        let t = TimeSet::Omit;
        let mine = file(0o644, 1000, 50);
        assert!(eperm(me.setattr(
            &mine,
            false,
            None,
            Some(1001),
            None,
            None,
            t,
            t
        )));
        // Naming the present owner is no change.
        assert!(me
            .setattr(&mine, false, None, Some(1000), None, None, t, t)
            .is_ok());
        assert!(me
            .setattr(&mine, false, None, None, Some(1000), None, t, t)
            .is_ok());
        assert!(me
            .setattr(&mine, false, None, None, Some(50), None, t, t)
            .is_ok());
        assert!(eperm(me.setattr(
            &mine,
            false,
            None,
            None,
            Some(51),
            None,
            t,
            t
        )));
        let theirs = file(0o666, 1001, 1000);
        assert!(eperm(me.setattr(
            &theirs,
            false,
            None,
            None,
            Some(1000),
            None,
            t,
            t
        )));
        let root = Checker::without_acls(ctx(0, 0));
        assert!(root
            .setattr(&theirs, false, None, Some(5), Some(6), None, t, t)
            .is_ok());
        // The chown privilege (an admin token) gives any owner, but not chmod of others'.
        assert!(me
            .setattr(&theirs, true, None, Some(5), Some(6), None, t, t)
            .is_ok());
        assert!(eperm(me.setattr(
            &theirs,
            true,
            Some(0o600),
            None,
            None,
            None,
            t,
            t
        )));
    }

    #[test]
    fn utimes_explicit_by_the_owner_now_also_with_write() {
        let me = Checker::without_acls(ctx(1000, 1000));
        let o = TimeSet::Omit;
        let writable = file(0o666, 1001, 1001);
        let readonly = file(0o644, 1001, 1001);
        assert!(eperm(me.setattr(
            &writable,
            false,
            None,
            None,
            None,
            None,
            o,
            TimeSet::At(5)
        )));
        assert!(eperm(me.setattr(
            &writable,
            false,
            None,
            None,
            None,
            None,
            TimeSet::At(5),
            o
        )));
        assert!(me
            .setattr(
                &writable,
                false,
                None,
                None,
                None,
                None,
                TimeSet::Now,
                TimeSet::Now
            )
            .is_ok());
        assert!(eacces(me.setattr(
            &readonly,
            false,
            None,
            None,
            None,
            None,
            o,
            TimeSet::Now
        )));
        let mine = file(0o400, 1000, 1000);
        assert!(me
            .setattr(&mine, false, None, None, None, None, o, TimeSet::At(5))
            .is_ok());
        assert!(me
            .setattr(&mine, false, None, None, None, None, o, TimeSet::Now)
            .is_ok());
    }

    #[test]
    fn truncate_needs_write() {
        let me = Checker::without_acls(ctx(1000, 1000));
        let o = TimeSet::Omit;
        assert!(eacces(me.setattr(
            &file(0o444, 1000, 1000),
            false,
            None,
            None,
            None,
            Some(0),
            o,
            o
        )));
        assert!(me
            .setattr(
                &file(0o646, 1001, 1001),
                false,
                None,
                None,
                None,
                Some(0),
                o,
                o
            )
            .is_ok());
    }

    #[test]
    fn setgid_files_in_setgid_directories() {
        let me = Checker::without_acls(ctx(1000, 1000));
        let sg = dir(0o2777, 0, 50);
        assert_eq!(me.create_mode(&sg, FileKind::File, 0o2755), 0o755);
        assert_eq!(me.create_mode(&sg, FileKind::File, 0o2745), 0o2745);
        assert_eq!(me.create_mode(&sg, FileKind::Dir, 0o2755), 0o2755);
        assert_eq!(
            me.create_mode(&dir(0o2777, 0, 1000), FileKind::File, 0o2755),
            0o2755
        );
        assert_eq!(
            me.create_mode(&dir(0o777, 0, 50), FileKind::File, 0o2755),
            0o2755
        );
    }
}
