//! The trash through the engine, on the metadata engine `FVFS_TEST_META` names: deleted and
//! replaced files land in `/.trash/<date>/`, hidden from the root's listing, restorable by
//! a rename, purged for good (their blocks become garbage) once their date expired, and
//! not kept at all with `trash_days` = 0.

mod common;

use fvfs_types::ROOT_INO;
use fvfs_vfs::{Ctx, OpenFlags, RenameFlags, TierPolicy, Vfs, VfsConfig, VfsError};
use std::sync::Arc;

const DAY_NS: i64 = 86_400_000_000_000;

struct Env {
    _dir: tempfile::TempDir,
    vfs: Arc<Vfs>,
    meta: Arc<dyn fvfs_meta::MetaStore>,
}

fn env(trash_days: u32) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (meta, store) = common::one_tier(
        dir.path(),
        &dir.path().join("tier"),
        "6f1c1d6e-0000-4000-8000-000000000002",
    );
    let vfs = Vfs::new(
        meta.clone(),
        store,
        VfsConfig {
            policy: TierPolicy {
                trash_days,
                ..TierPolicy::default()
            },
            // Closes store blocks, so a purge has blocks to free.
            write_journal: false,
            ..VfsConfig::default()
        },
    )
    .unwrap();
    Env {
        _dir: dir,
        vfs,
        meta,
    }
}

async fn write_file(vfs: &Vfs, name: &[u8], data: &[u8]) -> u64 {
    let (a, fh) = common::create(vfs, name);
    vfs.write(fh, 0, data).await.unwrap();
    vfs.release(fh).await.unwrap();
    a.ino
}

async fn read_file(vfs: &Vfs, ino: u64) -> Vec<u8> {
    let fh = vfs.open(ino, OpenFlags::READ).unwrap();
    let got = vfs.read(fh, 0, 1 << 24).await.unwrap();
    vfs.release(fh).await.unwrap();
    got
}

/// Names in directory `ino`, `.` and `..` left out.
fn names(vfs: &Vfs, ino: u64) -> Vec<String> {
    let mut v: Vec<String> = vfs
        .readdir(ino, 2, 1000)
        .unwrap()
        .into_iter()
        .map(|e| String::from_utf8(e.name).unwrap())
        .collect();
    v.sort();
    v
}

fn today() -> String {
    fvfs_meta::sql::date_of(fvfs_vfs::now_ns())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_and_replaced_files_are_kept_restorable_and_purged_when_expired() {
    let e = env(1);
    let vfs = &e.vfs;
    let gone = fvfs_testkit::pseudo_random(300_000, 1);
    let old = fvfs_testkit::pseudo_random(200_000, 2);
    let a = write_file(vfs, b"gone.bin", &gone).await;
    let b = write_file(vfs, b"target", &old).await;
    write_file(vfs, b"new", b"replacement").await;
    let garbage_before = e.meta.stats().unwrap().garbage_blocks;

    vfs.unlink(ROOT_INO, b"gone.bin").unwrap();
    vfs.rename(
        ROOT_INO,
        b"new",
        ROOT_INO,
        b"target",
        RenameFlags::default(),
    )
    .unwrap();
    // Nothing was freed; the root lists neither the trash nor the deleted names.
    assert_eq!(e.meta.stats().unwrap().garbage_blocks, garbage_before);
    assert_eq!(names(vfs, ROOT_INO), vec!["target"]);
    let trash = vfs.lookup(ROOT_INO, b".trash").unwrap();
    assert_eq!((trash.perm, trash.uid), (0o700, 0));
    assert_eq!(names(vfs, trash.ino), vec![today()]);
    let day = vfs.lookup(trash.ino, today().as_bytes()).unwrap();
    let kept_a = format!("{ROOT_INO}-{a}-gone.bin");
    let kept_b = format!("{ROOT_INO}-{b}-target");
    assert_eq!(names(vfs, day.ino), vec![kept_a.clone(), kept_b.clone()]);
    assert_eq!(vfs.getattr(a).unwrap().nlink, 1);

    // Restored by a rename; the other stays until its date expires.
    vfs.rename(
        day.ino,
        kept_a.as_bytes(),
        ROOT_INO,
        b"restored.bin",
        RenameFlags::default(),
    )
    .unwrap();
    assert!(
        read_file(vfs, a).await == gone,
        "the restored file's content"
    );

    // Not expired one day later minus a second (kept at least `trash_days` days)...
    let now = fvfs_vfs::now_ns();
    assert_eq!(
        vfs.purge_trash(now + DAY_NS - 1_000_000_000).await.unwrap(),
        0
    );
    assert_eq!(names(vfs, day.ino), vec![kept_b.clone()]);
    // ...expired two days later: gone for good, its blocks garbage, the date dir removed.
    assert_eq!(vfs.purge_trash(now + 2 * DAY_NS).await.unwrap(), 1);
    assert_eq!(names(vfs, trash.ino), Vec::<String>::new());
    let err = vfs.getattr(b).unwrap_err();
    assert!(
        matches!(err, VfsError::Meta(fvfs_meta::MetaError::NotFound)),
        "{err}"
    );
    assert!(e.meta.stats().unwrap().garbage_blocks > garbage_before);
    assert!(read_file(vfs, a).await == gone);

    // The name is reserved in the root.
    let err = vfs
        .create(Ctx::root(), ROOT_INO, b".trash", 0o644, 0, libc::O_RDWR)
        .unwrap_err();
    assert_eq!(err.errno(), libc::EPERM, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_trash_a_delete_frees_at_once_and_a_purge_empties_it() {
    let e = env(0);
    let vfs = &e.vfs;
    let a = write_file(vfs, b"f", &fvfs_testkit::pseudo_random(100_000, 3)).await;
    vfs.unlink(ROOT_INO, b"f").unwrap();
    assert!(vfs.getattr(a).is_err(), "purged at the unlink");
    assert!(vfs.lookup(ROOT_INO, b".trash").is_err(), "no trash made");
    let err = vfs
        .mkdir(Ctx::root(), ROOT_INO, b".trash", 0o700, 0)
        .unwrap_err();
    assert_eq!(err.errno(), libc::EPERM, "{err}");
}
