//! Tests of the trash (a deleted or replaced file kept under /.trash/<date>/) and of
//! writers that meet on the same rows, on the engine under test (`crate::testing`).

use super::tests::{data_commit, file, store};
use crate::types::*;
use fvfs_types::{FileKind, ROOT_INO};

#[test]
fn trash_keeps_deleted_and_replaced_files_until_deleted_there() {
    let (_d, s) = store();
    let day = super::date_of(4);
    let f = s.create(ROOT_INO, b"doomed", &file()).unwrap();
    data_commit(&*s, f.ino, 0, 0, 100, 1);
    // unlink with the trash: the file keeps its data under a name in /.trash/<date>/.
    let u = s.unlink(ROOT_INO, b"doomed", 4, true).unwrap();
    assert_eq!((u.ino, u.nlink), (f.ino, 1));
    assert!(s.orphans().unwrap().is_empty());
    let trash = s.lookup(ROOT_INO, super::TRASH_NAME).unwrap();
    assert_eq!(
        (trash.perm, trash.uid, trash.kind),
        (0o700, 0, FileKind::Dir)
    );
    let dated = s.lookup(trash.ino, day.as_bytes()).unwrap();
    let kept = format!("{ROOT_INO}-{}-doomed", f.ino);
    let k = s.lookup(dated.ino, kept.as_bytes()).unwrap();
    assert_eq!((k.ino, k.size, k.nlink), (f.ino, 100, 1));
    // rename over a file with the trash: the replaced file goes there too.
    let a = s.create(ROOT_INO, b"a", &file()).unwrap();
    let b = s.create(ROOT_INO, b"b", &file()).unwrap();
    let flags = RenameFlags {
        trash: true,
        ..RenameFlags::default()
    };
    let r = s
        .rename(ROOT_INO, b"a", ROOT_INO, b"b", flags, 5)
        .unwrap()
        .unwrap();
    assert_eq!((r.ino, r.nlink), (b.ino, 1));
    let kb = format!("{ROOT_INO}-{}-b", b.ino);
    assert_eq!(s.lookup(dated.ino, kb.as_bytes()).unwrap().ino, b.ino);
    assert_eq!(s.lookup(ROOT_INO, b"b").unwrap().ino, a.ino);
    // Restored with a rename, it is an ordinary file again.
    s.rename(
        dated.ino,
        kept.as_bytes(),
        ROOT_INO,
        b"back",
        RenameFlags::default(),
        6,
    )
    .unwrap();
    assert_eq!(s.lookup(ROOT_INO, b"back").unwrap().ino, f.ino);
    // A deletion inside the trash is final, whatever the flag says.
    let u = s.unlink(dated.ino, kb.as_bytes(), 7, true).unwrap();
    assert_eq!(u.nlink, 0);
    assert_eq!(s.orphans().unwrap(), vec![b.ino]);
    // Without the flag, nothing is kept.
    let c = s.create(ROOT_INO, b"c", &file()).unwrap();
    assert_eq!(s.unlink(ROOT_INO, b"c", 8, false).unwrap().nlink, 0);
    assert!(s.orphans().unwrap().contains(&c.ino));
}

/// Writers that touch the same rows at once (creates in one directory update its row):
/// on PostgreSQL they conflict and are retried, and every one of them lands once.
#[test]
fn concurrent_writers_to_one_directory_all_land() {
    let (_d, s) = store();
    let dir = NewInode {
        kind: FileKind::Dir,
        perm: 0o755,
        ..file()
    };
    let d = s.create(ROOT_INO, b"shared", &dir).unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (s, dir) = (&s, &dir);
            scope.spawn(move || {
                for i in 0..50 {
                    let name = format!("t{t}-{i}");
                    s.create(d.ino, name.as_bytes(), dir).unwrap();
                }
            });
        }
    });
    assert_eq!(s.readdir(d.ino, 0, 1000).unwrap().len(), 200);
    assert_eq!(s.getattr(d.ino).unwrap().nlink, 2 + 200);
    assert!(s.nlink_mismatches().unwrap().is_empty());
}
