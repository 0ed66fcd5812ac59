//! The trash through a real mount with the default configuration (`[trash] days = 1`):
//! `rm` and `mv` over a file keep them under `/.trash/<date>/`, hidden from `ls /`,
//! restorable with `mv`; a date directory that expired is purged by the mount's trash
//! worker, and the purged file's blocks become garbage.

mod common;

use common::{data, Fixture};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    v.sort();
    v
}

fn mv(from: &std::path::Path, to: &std::path::Path) {
    let st = Command::new("mv").arg(from).arg(to).status().expect("mv");
    assert!(st.success(), "mv {} {}", from.display(), to.display());
}

#[test]
fn deleted_files_are_restorable_with_mv_and_purged_once_expired() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let doc = data(1 << 20, 11);
    let old = data(600_000, 12);
    std::fs::write(f.path("doc.bin"), &doc).expect("write doc");
    std::fs::write(f.path("over"), &old).expect("write over");
    std::fs::write(f.path("new"), b"new content").expect("write new");
    let doc_ino = std::fs::metadata(f.path("doc.bin")).expect("stat").ino();
    let over_ino = std::fs::metadata(f.path("over")).expect("stat").ino();

    std::fs::remove_file(f.path("doc.bin")).expect("rm");
    mv(&f.path("new"), &f.path("over"));
    assert_eq!(names(&f.mnt), vec!["over"], "ls / hides the trash");
    let trash = f.path(".trash");
    let meta = std::fs::metadata(&trash).expect("/.trash by name");
    assert_eq!((meta.permissions().mode() & 0o7777, meta.uid()), (0o700, 0));
    let days = names(&trash);
    assert_eq!(days.len(), 1, "one date directory: {days:?}");
    let day = trash.join(&days[0]);
    let kept_doc = format!("1-{doc_ino}-doc.bin");
    let kept_over = format!("1-{over_ino}-over");
    assert_eq!(names(&day), vec![kept_doc.clone(), kept_over.clone()]);

    // Restore with mv: the same file, byte for byte.
    mv(&day.join(&kept_doc), &f.path("doc.bin"));
    assert!(std::fs::read(f.path("doc.bin")).expect("read") == doc);
    assert_eq!(std::fs::read(f.path("over")).expect("read"), b"new content");

    // A date directory past its days: the worker purges it when the mount starts.
    let expired = trash.join("2000-01-01");
    std::fs::create_dir(&expired).expect("mkdir an old date");
    mv(&day.join(&kept_over), &expired.join(&kept_over));
    let garbage = f.stats().garbage_blocks;
    f.unmount();
    f.mount();
    f.wait_until(60, "the expired trash directory purged", |f| {
        !f.path(".trash/2000-01-01").exists()
    });
    assert!(
        f.stats().garbage_blocks > garbage,
        "the purged file's blocks are garbage"
    );
    assert_eq!(names(&day), Vec::<String>::new(), "today's directory stays");
    assert!(std::fs::read(f.path("doc.bin")).expect("read") == doc);
    f.unmount();
    f.assert_fsck_clean("after the purge");
}
