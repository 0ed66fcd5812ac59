//! Tests of what several hosts share through the store, on the engine under test
//! (`crate::testing`): file locks, sessions ending (cleanly or reaped) and the orphans a
//! session owns.

use super::tests::{file, store};
use crate::store::{FileLock, LockKind, LockOwner};
use crate::MetaError;
use fvfs_types::ROOT_INO;

const END: u64 = i64::MAX as u64;

fn who(session: u64, owner: u64) -> LockOwner {
    LockOwner { session, owner }
}

#[test]
fn locks_conflict_across_owners_and_split_within_one() {
    let (_d, s) = store();
    let f = s.create(ROOT_INO, b"f", &file()).unwrap();
    let (a, b) = (who(1, 7), who(2, 7));
    assert_eq!(
        s.set_lock(f.ino, a, 10, 0, 99, Some(LockKind::Write))
            .unwrap(),
        None
    );
    // Same owner number in another session is another owner: refused, told who holds it.
    let held = FileLock {
        owner: a,
        start: 0,
        end: 99,
        kind: LockKind::Write,
        pid: 10,
    };
    assert_eq!(
        s.set_lock(f.ino, b, 20, 50, 60, Some(LockKind::Read))
            .unwrap(),
        Some(held)
    );
    assert_eq!(
        s.test_lock(f.ino, b, 99, END, LockKind::Write).unwrap(),
        Some(held)
    );
    assert_eq!(
        s.test_lock(f.ino, a, 0, END, LockKind::Write).unwrap(),
        None
    );
    assert_eq!(
        s.set_lock(f.ino, b, 20, 100, END, Some(LockKind::Read))
            .unwrap(),
        None
    );
    // a turns the middle of its range into a read lock: b may now read-lock there.
    s.set_lock(f.ino, a, 10, 40, 59, Some(LockKind::Read))
        .unwrap();
    assert_eq!(
        s.set_lock(f.ino, b, 20, 40, 59, Some(LockKind::Read))
            .unwrap(),
        None
    );
    let mine: Vec<_> = s
        .locks(f.ino)
        .unwrap()
        .into_iter()
        .filter(|l| l.owner == a)
        .map(|l| (l.start, l.end, l.kind))
        .collect();
    assert_eq!(
        mine,
        vec![
            (0, 39, LockKind::Write),
            (40, 59, LockKind::Read),
            (60, 99, LockKind::Write)
        ]
    );
    // Unlocking never conflicts; a's release frees the rest for b's write lock.
    assert_eq!(s.set_lock(f.ino, b, 20, 0, END, None).unwrap(), None);
    assert_eq!(
        s.set_lock(f.ino, b, 20, 0, 9, Some(LockKind::Write))
            .unwrap()
            .map(|l| l.owner),
        Some(a)
    );
    s.release_locks(f.ino, a).unwrap();
    assert_eq!(
        s.set_lock(f.ino, b, 20, 0, END, Some(LockKind::Write))
            .unwrap(),
        None
    );
    assert_eq!(
        s.locks(f.ino)
            .unwrap()
            .iter()
            .map(|l| (l.owner, l.start, l.end))
            .collect::<Vec<_>>(),
        vec![(b, 0, END)]
    );
}

#[test]
fn ending_or_reaping_a_session_drops_its_locks_and_frees_its_orphans() {
    let (_d, s) = store();
    let f = s.create(ROOT_INO, b"f", &file()).unwrap();
    let g = s.create(ROOT_INO, b"g", &file()).unwrap();
    let other = s.register_session("b", 2, "/n", 100).unwrap();
    let me = s.register_session("a", 1, "/m", 100).unwrap();
    s.set_lock(f.ino, who(other, 1), 2, 0, END, Some(LockKind::Write))
        .unwrap();
    s.set_lock(g.ino, who(me, 1), 1, 0, END, Some(LockKind::Write))
        .unwrap();
    // An unlink of this handle leaves an orphan of its session (the latest registered).
    s.unlink(ROOT_INO, b"f", 101, false).unwrap();
    assert_eq!(s.orphans().unwrap(), vec![f.ino]);
    assert!(s.unowned_orphans().unwrap().is_empty());
    // The other session heartbeats at 150: not reaped for a horizon at or before it.
    s.heartbeat(other, 150).unwrap();
    assert!(!s.reap_session(other, 150).unwrap());
    assert!(s.reap_session(other, 151).unwrap());
    assert!(!s.reap_session(other, 151).unwrap(), "reaped once");
    assert!(matches!(
        s.heartbeat(other, 160),
        Err(MetaError::SessionGone(id)) if id == other
    ));
    assert!(s.locks(f.ino).unwrap().is_empty(), "its lock went with it");
    assert_eq!(s.locks(g.ino).unwrap().len(), 1);
    assert!(
        s.unowned_orphans().unwrap().is_empty(),
        "the orphan is mine"
    );
    s.end_session(me).unwrap();
    assert!(s.locks(g.ino).unwrap().is_empty());
    assert_eq!(s.unowned_orphans().unwrap(), vec![f.ino]);
    assert!(s.sessions().unwrap().is_empty());
}
