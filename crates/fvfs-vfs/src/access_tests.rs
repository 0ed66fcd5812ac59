//! Unit tests of access.rs: each rule as the kernel applies it.

use super::*;

/// The change of one setattr call, in the order chmod, chown, chgrp, truncate, utimes.
fn ch(
    perm: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    atime: TimeSet,
    mtime: TimeSet,
) -> AttrChange {
    AttrChange {
        perm,
        uid,
        gid,
        size,
        atime,
        mtime,
    }
}

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
        &ch(Some(0o600), None, None, None, t, t)
    )));
    let mine = file(0o644, 1000, 1000);
    assert_eq!(
        me.setattr(&mine, false, &ch(Some(0o2755), None, None, None, t, t))
            .unwrap(),
        SetattrPlan { perm: Some(0o2755) }
    );
    // A file of the caller's whose group it is not in: set-group-ID is cleared.
    let other_group = file(0o644, 1000, 50);
    assert_eq!(
        me.setattr(
            &other_group,
            false,
            &ch(Some(0o2755), None, None, None, t, t)
        )
        .unwrap()
        .perm,
        Some(0o755)
    );
    let root = Checker::without_acls(ctx(0, 0));
    assert_eq!(
        root.setattr(
            &other_group,
            false,
            &ch(Some(0o2755), None, None, None, t, t)
        )
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
        &ch(None, Some(1001), None, None, t, t)
    )));
    // Naming the present owner is no change.
    assert!(me
        .setattr(&mine, false, &ch(None, Some(1000), None, None, t, t))
        .is_ok());
    assert!(me
        .setattr(&mine, false, &ch(None, None, Some(1000), None, t, t))
        .is_ok());
    assert!(me
        .setattr(&mine, false, &ch(None, None, Some(50), None, t, t))
        .is_ok());
    assert!(eperm(me.setattr(
        &mine,
        false,
        &ch(None, None, Some(51), None, t, t)
    )));
    let theirs = file(0o666, 1001, 1000);
    assert!(eperm(me.setattr(
        &theirs,
        false,
        &ch(None, None, Some(1000), None, t, t)
    )));
    let root = Checker::without_acls(ctx(0, 0));
    assert!(root
        .setattr(&theirs, false, &ch(None, Some(5), Some(6), None, t, t))
        .is_ok());
    // The chown privilege (an admin token) gives any owner, but not chmod of others'.
    assert!(me
        .setattr(&theirs, true, &ch(None, Some(5), Some(6), None, t, t))
        .is_ok());
    assert!(eperm(me.setattr(
        &theirs,
        true,
        &ch(Some(0o600), None, None, None, t, t)
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
        &ch(None, None, None, None, o, TimeSet::At(5))
    )));
    assert!(eperm(me.setattr(
        &writable,
        false,
        &ch(None, None, None, None, TimeSet::At(5), o)
    )));
    assert!(me
        .setattr(
            &writable,
            false,
            &ch(None, None, None, None, TimeSet::Now, TimeSet::Now)
        )
        .is_ok());
    assert!(eacces(me.setattr(
        &readonly,
        false,
        &ch(None, None, None, None, o, TimeSet::Now)
    )));
    let mine = file(0o400, 1000, 1000);
    assert!(me
        .setattr(&mine, false, &ch(None, None, None, None, o, TimeSet::At(5)))
        .is_ok());
    assert!(me
        .setattr(&mine, false, &ch(None, None, None, None, o, TimeSet::Now))
        .is_ok());
}

#[test]
fn truncate_needs_write() {
    let me = Checker::without_acls(ctx(1000, 1000));
    let o = TimeSet::Omit;
    assert!(eacces(me.setattr(
        &file(0o444, 1000, 1000),
        false,
        &ch(None, None, None, Some(0), o, o)
    )));
    assert!(me
        .setattr(
            &file(0o646, 1001, 1001),
            false,
            &ch(None, None, None, Some(0), o, o)
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
