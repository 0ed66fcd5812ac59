//! The data path through a real mount over S3: round trips, dedup, CDC stability,
//! corruption detection.

mod common;
use common::{data, Fixture};
use std::io::{Read, Write};
use std::path::PathBuf;

#[test]
fn round_trips_from_0_bytes_to_200_mib() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let sizes: [usize; 9] = [
        0,
        1,
        4095,
        4096,
        65_537,
        (1 << 20) + 7,
        5 << 20,
        64 << 20,
        200 << 20,
    ];
    for (i, &n) in sizes.iter().enumerate() {
        let p = f.path(&format!("f{i}"));
        let mut file = std::fs::File::create(&p).unwrap();
        // Odd-sized writes, as applications do.
        for piece in data(n, i as u64).chunks(333_333) {
            file.write_all(piece).unwrap();
        }
        drop(file);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), n as u64);
    }
    // Read back warm, then cold (empty local cache, new kernel cache): from S3.
    for round in 0..2 {
        for (i, &n) in sizes.iter().enumerate() {
            let mut got = Vec::with_capacity(n);
            std::fs::File::open(f.path(&format!("f{i}")))
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert!(
                got == data(n, i as u64),
                "file {i} ({n} bytes) differs in round {round}"
            );
        }
        if round == 0 {
            f.remount_cold();
        }
    }
}

#[test]
fn identical_content_is_stored_once() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let content = data(50 << 20, 7);
    std::fs::write(f.path("a"), &content).unwrap();
    assert!(std::fs::read(f.path("a")).unwrap() == content, "a differs");
    // Measured with no daemon running: a FUSE release runs after close(2) returns, and
    // after a flush by a forked process mid-write (any test alongside that spawns one)
    // it is the release that cuts the file's last blocks for good.
    f.unmount();
    let before = f.stats();
    let objects_before = f.s3_objects();
    f.mount();
    std::fs::write(f.path("b"), &content).unwrap();
    f.unmount();
    let after = f.stats();
    if after.blocks != before.blocks {
        let db = f.db();
        let mut st = db
            .prepare("SELECT ino, pos, len, blocks FROM slices ORDER BY ino, pos")
            .unwrap();
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .unwrap();
        for row in rows {
            let (ino, pos, len, b) = row.unwrap();
            let lens: Vec<u32> = b
                .chunks(36)
                .map(|c| u32::from_le_bytes(c[32..36].try_into().unwrap()))
                .collect();
            eprintln!("ino {ino} pos {pos} len {len} blocks {lens:?}");
        }
    }
    assert_eq!(
        after.blocks, before.blocks,
        "the second copy added blocks: {before:?} -> {after:?}"
    );
    // No live object was added. A FUSE flush in the middle of the write (any process
    // forked meanwhile, e.g. by a test running alongside, closes its inherited copy of
    // the descriptor at exec) stores the tail written so far as a provisional block,
    // which the next commit supersedes: garbage (refcount 0) until collection, allowed.
    let added: Vec<PathBuf> = f
        .s3_objects()
        .into_iter()
        .filter(|o| !objects_before.contains(o))
        .collect();
    let db = f.db();
    for o in &added {
        let id = o.file_name().unwrap().to_str().unwrap().to_uppercase();
        let refcount: i64 = db
            .query_row(
                "SELECT refcount FROM blocks WHERE hex(id) = ?1",
                [&id],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("object {o:?} has no block row: {e}"));
        assert_eq!(refcount, 0, "the second copy uploaded a live object {o:?}");
    }
    assert_eq!(after.referenced_bytes, 2 * before.referenced_bytes);
    f.mount();
    assert_eq!(std::fs::read(f.path("b")).unwrap(), content);
}

#[test]
fn inserting_one_byte_at_the_front_reuploads_few_blocks() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let content = data(64 << 20, 11);
    std::fs::write(f.path("orig"), &content).unwrap();
    let objects_before = f.s3_objects().len();
    let blocks_orig = f.stats().blocks;
    let mut shifted = Vec::with_capacity(content.len() + 1);
    shifted.push(0x5a);
    shifted.extend_from_slice(&content);
    std::fs::write(f.path("shifted"), &shifted).unwrap();
    // Live blocks only: a flush mid-write (see identical_content_is_stored_once) may add
    // a provisional object that is garbage at once.
    let new_blocks = f.stats().blocks - blocks_orig;
    let new_objects = f.s3_objects().len() - objects_before;
    let ratio = new_blocks as f64 / blocks_orig as f64;
    eprintln!(
        "{new_blocks} new blocks ({new_objects} new objects) for {blocks_orig} blocks ({:.1}%)",
        ratio * 100.0
    );
    assert!(
        ratio < 0.10,
        "{new_blocks} of {blocks_orig} blocks re-uploaded"
    );
    assert_eq!(std::fs::read(f.path("shifted")).unwrap(), shifted);
}

#[test]
fn a_corrupt_block_object_is_eio_not_wrong_data() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let content = data(3 << 20, 5);
    std::fs::write(f.path("victim"), &content).unwrap();
    f.unmount();
    let objects = f.s3_objects();
    assert!(!objects.is_empty());
    for o in &objects {
        let mut bytes = std::fs::read(o).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(o, bytes).unwrap();
    }
    let _ = std::fs::remove_dir_all(&f.cache);
    f.mount();
    let err = std::fs::read(f.path("victim")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "got {err}");
}

#[test]
fn deleted_data_is_collected_after_the_grace_period() {
    let Some(mut f) = Fixture::new() else { return };
    f.trash_off();
    f.mount();
    std::fs::write(f.path("keep"), data(1 << 20, 90)).unwrap();
    std::fs::write(f.path("gone"), data(3 << 20, 91)).unwrap();
    std::fs::remove_file(f.path("gone")).unwrap();
    f.unmount();
    // Counted once the daemon is gone: a FUSE release runs after close(2) returns, and
    // may still store a file's last blocks (after a flush by a forked process mid-write).
    let objects = f.s3_objects().len();
    // Within the grace period nothing is deleted (a backup may still need it).
    let out = f.run(&["gc", "--meta", &f.meta_url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(f.s3_objects().len(), objects);
    let out = f.run(&["gc", "--meta", &f.meta_url, "--grace-secs", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live = f.stats().blocks as usize;
    assert_eq!(f.s3_objects().len(), live, "garbage objects remain");
    assert!(live < objects);
    f.mount();
    assert!(std::fs::read(f.path("keep")).unwrap() == data(1 << 20, 90));
}

#[test]
fn an_unlinked_open_file_stays_readable_until_the_last_close() {
    let Some(mut f) = Fixture::new() else { return };
    // Without the trash, which would keep the file under a name of its own.
    f.trash_off();
    f.mount();
    let content = data(2 << 20, 92);
    std::fs::write(f.path("doomed"), &content).unwrap();
    let mut file = std::fs::File::open(f.path("doomed")).unwrap();
    std::fs::remove_file(f.path("doomed")).unwrap();
    assert!(!f.path("doomed").exists());
    assert_eq!(f.count("SELECT COUNT(*) FROM orphans"), 1);
    let mut got = Vec::new();
    file.read_to_end(&mut got).unwrap();
    assert!(got == content, "an unlinked open file lost its data");
    drop(file);
    f.wait_until(10, "the orphan purged at the last close", |f| {
        f.count("SELECT COUNT(*) FROM orphans") == 0
    });
    assert_eq!(f.count("SELECT COUNT(*) FROM blocks WHERE refcount > 0"), 0);
}
