use super::*;

fn e(tag: Tag, perm: u32) -> Entry {
    Entry { tag, perm }
}

/// `user::rw-,user:1000:r-x,group::r--,mask::r-x,other::r--` (mode 0654 with a named user).
fn named() -> Acl {
    Acl::from_entries(vec![
        e(Tag::Other, 4),
        e(Tag::User(1000), 5),
        e(Tag::Mask, 5),
        e(Tag::GroupObj, 4),
        e(Tag::UserObj, 6),
    ])
    .unwrap()
}

/// The xattr bytes of (tag, perm, id) triples, in the order given.
fn raw(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (t, p, id) in entries {
        v.extend_from_slice(&t.to_le_bytes());
        v.extend_from_slice(&p.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

const U: u32 = u32::MAX;

#[test]
fn xattr_round_trip_is_canonical() {
    let acl = named();
    let bytes = acl.to_xattr();
    assert_eq!(
        bytes,
        raw(&[
            (0x01, 6, U),
            (0x02, 5, 1000),
            (0x04, 4, U),
            (0x10, 5, U),
            (0x20, 4, U)
        ])
    );
    assert_eq!(Acl::from_xattr(&bytes).unwrap(), acl);
    assert_eq!(
        acl.to_text(),
        "user::rw-,user:1000:r-x,group::r--,mask::r-x,other::r--"
    );
    // Named entries out of id order are sorted; ids of unnamed entries are ignored.
    let shuffled = raw(&[
        (0x01, 7, 0),
        (0x02, 1, 2000),
        (0x02, 2, 1000),
        (0x04, 0, 77),
        (0x08, 4, 50),
        (0x10, 7, 0),
        (0x20, 0, 0),
    ]);
    let a = Acl::from_xattr(&shuffled).unwrap();
    assert_eq!(
        a.to_text(),
        "user::rwx,user:1000:-w-,user:2000:--x,group::---,group:50:r--,mask::rwx,other::---"
    );
    assert_eq!(
        Acl::from_xattr(&a.to_xattr()).unwrap().to_xattr(),
        a.to_xattr()
    );
}

#[test]
fn malformed_acls_are_einval() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("header only", raw(&[])),
        ("short header", vec![2, 0, 0]),
        ("version 1", {
            let mut v = raw(&[(0x01, 6, U), (0x04, 4, U), (0x20, 4, U)]);
            v[0] = 1;
            v
        }),
        ("torn entry", {
            let mut v = raw(&[(0x01, 6, U), (0x04, 4, U), (0x20, 4, U)]);
            v.pop();
            v
        }),
        ("no other", raw(&[(0x01, 6, U), (0x04, 4, U)])),
        ("no owner", raw(&[(0x04, 4, U), (0x20, 4, U)])),
        ("no group", raw(&[(0x01, 6, U), (0x20, 4, U)])),
        (
            "two owners",
            raw(&[(0x01, 6, U), (0x01, 6, U), (0x04, 4, U), (0x20, 4, U)]),
        ),
        (
            "named without mask",
            raw(&[(0x01, 6, U), (0x02, 4, 5), (0x04, 4, U), (0x20, 4, U)]),
        ),
        (
            "two masks",
            raw(&[
                (0x01, 6, U),
                (0x04, 4, U),
                (0x10, 4, U),
                (0x10, 4, U),
                (0x20, 4, U),
            ]),
        ),
        (
            "same user twice",
            raw(&[
                (0x01, 6, U),
                (0x02, 4, 5),
                (0x02, 6, 5),
                (0x04, 4, U),
                (0x10, 6, U),
                (0x20, 4, U),
            ]),
        ),
        (
            "perm beyond rwx",
            raw(&[(0x01, 0o10, U), (0x04, 4, U), (0x20, 4, U)]),
        ),
        (
            "unknown tag",
            raw(&[(0x01, 6, U), (0x04, 4, U), (0x11, 4, U), (0x20, 4, U)]),
        ),
        (
            "kinds out of order",
            raw(&[(0x04, 4, U), (0x01, 6, U), (0x20, 4, U)]),
        ),
        (
            "named user without id",
            raw(&[
                (0x01, 6, U),
                (0x02, 4, U),
                (0x04, 4, U),
                (0x10, 4, U),
                (0x20, 4, U),
            ]),
        ),
    ];
    for (what, bytes) in cases {
        match Acl::from_xattr(&bytes) {
            Err(err @ VfsError::Invalid(_)) => assert_eq!(err.errno(), libc::EINVAL, "{what}"),
            other => panic!("{what}: expected EINVAL, got {other:?}"),
        }
    }
}

#[test]
fn update_mode_follows_owner_mask_other_and_drops_equivalent_acls() {
    // A named entry: stored; group bits are the mask's, not the owning group's.
    let u = update_mode(named(), 0o600, true);
    assert_eq!(u.perm, 0o654);
    assert_eq!(u.acl, Some(named()));
    // Setuid/sticky bits stay; setgid goes when the caller is not in the file's group.
    assert_eq!(update_mode(named(), 0o7000, true).perm, 0o7654);
    assert_eq!(update_mode(named(), 0o7000, false).perm, 0o5654);
    // Equivalent to a mode (what `cp -a` and `chmod` through libacl write): the mode is
    // set and nothing is stored.
    let min = Acl::from_mode(0o751);
    assert!(min.is_minimal());
    assert_eq!(
        update_mode(min, 0o2600, true),
        ModeUpdate {
            perm: 0o2751,
            acl: None
        }
    );
    // A mask without named entries is not equivalent (as posix_acl_equiv_mode).
    let masked = Acl::from_entries(vec![
        e(Tag::UserObj, 7),
        e(Tag::GroupObj, 7),
        e(Tag::Mask, 5),
        e(Tag::Other, 0),
    ])
    .unwrap();
    let u = update_mode(masked.clone(), 0, true);
    assert_eq!((u.perm, u.acl), (0o750, Some(masked)));
}

#[test]
fn chmod_rewrites_owner_mask_and_other() {
    let mut acl = named();
    acl.chmod(0o4710);
    assert_eq!(
        acl.to_text(),
        "user::rwx,user:1000:r-x,group::r--,mask::--x,other::---"
    );
    assert_eq!(acl.mode_bits(), 0o710);
    // Without a mask the owning group takes the group bits.
    let mut min = Acl::from_mode(0o644);
    min.chmod(0o570);
    assert_eq!(min.to_text(), "user::r-x,group::rwx,other::---");
}

#[test]
fn create_without_default_acl_applies_the_umask() {
    for (mode, umask, perm) in [
        (0o666, 0o022, 0o644),
        (0o666, 0o077, 0o600),
        (0o777, 0o022, 0o755),
        (0o2777, 0o077, 0o2700),
        (0o644, 0, 0o644),
    ] {
        assert_eq!(
            create(None, false, mode, umask),
            Created {
                perm,
                access: None,
                default: None
            },
            "mode {mode:o} umask {umask:o}"
        );
    }
}

#[test]
fn create_under_a_default_acl_ignores_the_umask() {
    // default: user::rwx, user:1000:rwx, group::r-x, mask::rwx, other::---
    let def = Acl::from_entries(vec![
        e(Tag::UserObj, 7),
        e(Tag::User(1000), 7),
        e(Tag::GroupObj, 5),
        e(Tag::Mask, 7),
        e(Tag::Other, 0),
    ])
    .unwrap();
    // A file created 0666 with umask 077: the mask narrows to rw-, mode 0660.
    let f = create(Some(&def), false, 0o666, 0o077);
    assert_eq!(f.perm, 0o660);
    assert_eq!(
        f.access.as_ref().unwrap().to_text(),
        "user::rw-,user:1000:rwx,group::r-x,mask::rw-,other::---"
    );
    assert_eq!(f.default, None, "files do not get a default ACL");
    // A directory 0777 (setgid inherited) keeps setgid and gets the default ACL too.
    let d = create(Some(&def), true, 0o2777, 0o022);
    assert_eq!(d.perm, 0o2770);
    assert_eq!(
        d.access.as_ref().unwrap().to_text(),
        "user::rwx,user:1000:rwx,group::r-x,mask::rwx,other::---"
    );
    assert_eq!(d.default.as_ref(), Some(&def));
    // A minimal default ACL gives a mode and no stored access ACL.
    let min = Acl::from_mode(0o750);
    let f = create(Some(&min), false, 0o666, 0o077);
    assert_eq!(
        f,
        Created {
            perm: 0o640,
            access: None,
            default: None
        }
    );
    let d = create(Some(&min), true, 0o755, 0o077);
    assert_eq!((d.perm, d.access, d.default), (0o750, None, Some(min)));
}

#[test]
fn permits_each_entry_kind_and_the_mask() {
    // Owner 10:20. user::rw-, user:30:rwx, group::r-x, group:40:-w-, mask::r--, other::--x
    let acl = Acl::from_entries(vec![
        e(Tag::UserObj, 6),
        e(Tag::User(30), 7),
        e(Tag::GroupObj, 5),
        e(Tag::Group(40), 2),
        e(Tag::Mask, 4),
        e(Tag::Other, 1),
    ])
    .unwrap();
    let p = |uid: u32, gids: &[u32], mask: u32| permits(&acl, 10, 20, uid, gids, mask);
    // Owner entry: not limited by the mask.
    assert!(p(10, &[99], MAY_READ | MAY_WRITE));
    assert!(!p(10, &[99], MAY_EXEC));
    // The owner entry decides even when a group would grant more.
    assert!(!p(10, &[20], MAY_EXEC));
    // Named user: rwx limited by the mask r--.
    assert!(p(30, &[99], MAY_READ));
    assert!(!p(30, &[99], MAY_WRITE));
    assert!(!p(30, &[99], MAY_EXEC));
    // Owning group r-x, limited to r--.
    assert!(p(50, &[20], MAY_READ));
    assert!(!p(50, &[20], MAY_EXEC));
    // Named group -w-, limited by the mask: no write.
    assert!(!p(50, &[40], MAY_WRITE));
    // Matched a group, no group grants: refused even though other has x.
    assert!(!p(50, &[40], MAY_EXEC));
    // Any one group holding all of the request grants it.
    assert!(p(50, &[40, 20], MAY_READ));
    // Other: only when no group matched.
    assert!(p(50, &[99], MAY_EXEC));
    assert!(!p(50, &[99], MAY_READ));
    // Nothing asked: granted.
    assert!(p(50, &[40], 0));

    // Without a mask, groups are not limited.
    let plain = Acl::from_mode(0o754);
    assert!(permits(&plain, 10, 20, 50, &[20], MAY_READ | MAY_EXEC));
    assert!(!permits(&plain, 10, 20, 50, &[20], MAY_WRITE));
    assert!(permits(&plain, 10, 20, 50, &[21], MAY_READ));
    assert!(!permits(&plain, 10, 20, 50, &[21], MAY_EXEC));
}

#[test]
fn acl_names() {
    assert_eq!(acl_name(b"system.posix_acl_access"), Some(AclKind::Access));
    assert_eq!(
        acl_name(b"system.posix_acl_default"),
        Some(AclKind::Default)
    );
    assert_eq!(acl_name(b"user.posix_acl_access"), None);
}
