//! `fvfsd compact PATH` beside a live mount: a file fragmented by small fsynced writes
//! into many slices is merged into few; its bytes read the same through the mount that
//! stayed up, after a remount, and fsck is clean.

mod common;

use common::{data, Fixture};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;

/// The slices of chunk 0 of `ino`, through the store (either engine).
fn slices(f: &Fixture, ino: u64) -> usize {
    fvfs_meta::open(&f.meta_url, false)
        .expect("open the metadata")
        .read_chunk(ino, 0)
        .expect("read_chunk")
        .len()
}

#[test]
fn compact_merges_a_fragmented_file_beside_the_mount() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let mut want = data(2 << 20, 21);
    std::fs::write(f.path("frag"), &want).expect("write");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(f.path("frag"))
        .expect("open");
    // 20 small overwrites, each made durable on its own: one slice each (fewer than the
    // mount's own compaction threshold).
    for i in 0..20u64 {
        let at = (i * 97_003) % (2 << 20);
        let patch = data(3000, 100 + i);
        file.seek(SeekFrom::Start(at)).expect("seek");
        file.write_all(&patch).expect("write");
        file.sync_all().expect("fsync");
        want[at as usize..at as usize + 3000].copy_from_slice(&patch);
    }
    drop(file);
    let ino = std::fs::metadata(f.path("frag")).expect("stat").ino();
    let before = slices(&f, ino);
    assert!(before > 20, "fragmented: {before} slices");

    let out = f.ok(&["compact", "/frag"]);
    let after = slices(&f, ino);
    assert!(after < 4, "{after} slices after compaction: {out}");
    assert!(
        out.contains(&format!("compacted 1 file(s): {before} slices -> {after}")),
        "{out}"
    );
    assert!(
        std::fs::read(f.path("frag")).expect("read") == want,
        "through the live mount"
    );
    f.unmount();
    f.mount();
    assert!(
        std::fs::read(f.path("frag")).expect("read") == want,
        "after a remount"
    );
    f.unmount();
    f.assert_fsck_clean("after compaction");
}
