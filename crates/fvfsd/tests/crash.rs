//! Crash safety and consistency checks: kill -9 after fsync, fsck on injected damage.

mod common;
use common::{data, Fixture};
use std::io::{Seek, SeekFrom, Write};

#[test]
fn kill_9_after_fsync_loses_no_fsynced_byte() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let a = data(9 << 20, 1);
    let mut file = std::fs::File::create(f.path("synced")).unwrap();
    file.write_all(&a).unwrap();
    file.sync_all().unwrap();
    // An overwrite in the middle, fsynced too.
    file.seek(SeekFrom::Start(1_000_000)).unwrap();
    file.write_all(b"fsynced overwrite").unwrap();
    file.sync_all().unwrap();
    // Unsynced appends may be lost but must not corrupt what was synced.
    file.seek(SeekFrom::End(0)).unwrap();
    file.write_all(&data(1 << 20, 2)).unwrap();
    f.kill9();
    drop(file);
    f.mount();
    assert_eq!(
        f.count("SELECT COUNT(*) FROM sessions"),
        1,
        "the dead session was ended"
    );
    let got = std::fs::read(f.path("synced")).unwrap();
    let mut want = a.clone();
    want[1_000_000..1_000_017].copy_from_slice(b"fsynced overwrite");
    assert!(got.len() >= want.len());
    assert!(
        got[..want.len()] == want[..],
        "fsynced bytes differ after kill -9"
    );
}

#[test]
fn fsck_finds_and_repairs_a_dangling_block_reference() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    std::fs::write(f.path("good"), data(2 << 20, 3)).unwrap();
    f.unmount();
    let out = f.run(&["fsck", "--meta", &f.meta_url]);
    assert!(
        out.status.success(),
        "clean fs: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A slice pointing at a block that has no row and no object.
    let ino: i64 = f
        .db()
        .query_row("SELECT ino FROM inodes WHERE kind = 1 LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut blob = vec![0xabu8; 32];
    blob.extend_from_slice(&10u32.to_le_bytes());
    f.db()
        .execute(
            "INSERT INTO slices (ino, chunk, pos, len, zero, blocks) VALUES (?1, 0, 0, 10, 0, ?2)",
            rusqlite::params![ino, blob],
        )
        .unwrap();
    let out = f.run(&["fsck", "--meta", &f.meta_url]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("DANGLING"), "{text}");

    let out = f.run(&["fsck", "--meta", &f.meta_url, "--repair"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = f.run(&["fsck", "--meta", &f.meta_url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn fsck_finds_a_missing_block_object() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    std::fs::write(f.path("x"), data(1 << 20, 4)).unwrap();
    f.unmount();
    for o in f.s3_objects() {
        std::fs::remove_file(o).unwrap();
    }
    let out = f.run(&["fsck", "--meta", &f.meta_url]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("MISSING"), "{text}");
}
