//! The HSM face end to end on a loop-mounted ext4 image, with the real engine (SQLite
//! metadata, a hot directory tier and a durable S3 tier served by the in-process test
//! server) and the real fanotify listener: archive → release → every way of reading a
//! stub gives the original bytes; partial reads recall only their blocks; writes and
//! truncates keep every old byte; renames and hard links keep the identity; an
//! unreachable tier gives EIO and leaves the stub recallable; a file changed or open
//! during archiving is not released. Root only (skips fail under
//! FVFS_REQUIRE_PRIVILEGED=1).

mod common;
mod env;

use env::{payload, sh, Env};
use fvfs_hsm::HsmError;
use fvfs_meta::HsmState;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::atomic::Ordering;
use std::time::Duration;

#[test]
fn released_files_read_byte_identical_through_cat_cp_mmap_and_exec() {
    let Some(env) = Env::new(256, true) else {
        return;
    };
    let big = payload(5 << 20, 1);
    let text = b"a small text file\n".repeat(100);
    let a = env.file("big.bin", &big);
    let b = env.file("small.txt", &text);
    let exe = env.data.join("true");
    std::fs::copy("/bin/true", &exe).unwrap();
    let exe_bytes = std::fs::read(&exe).unwrap();
    let mtime = std::fs::metadata(&a).unwrap().mtime();
    for p in [&a, &b, &exe] {
        env.stub(p);
        assert!(env.marker(p).unwrap().released);
    }
    // Size and times unchanged by the release.
    assert_eq!(std::fs::metadata(&a).unwrap().len(), big.len() as u64);
    assert_eq!(std::fs::metadata(&a).unwrap().mtime(), mtime);
    // cat (another process), cp, mmap, exec.
    let got = sh("cat", &[a.to_str().unwrap()]).stdout;
    let zeros = got.iter().filter(|b| **b == 0).count();
    eprintln!(
        "DEBUG len {} zeros {} recalled {} failures {}",
        got.len(),
        zeros,
        env.recalled_bytes(),
        env.hsm.counters.recall_failures.load(Ordering::Relaxed)
    );
    assert!(got == big, "cat of a stub");
    let copy = env.fs.scratch().join("copy.txt");
    sh("cp", &[b.to_str().unwrap(), copy.to_str().unwrap()]);
    assert_eq!(std::fs::read(&copy).unwrap(), text);
    sh("/bin/sh", &["-c", &format!("{} && echo ok", exe.display())]);
    assert_eq!(std::fs::read(&exe).unwrap(), exe_bytes);
    // Every file read whole is archived again (payload kept), no longer a stub.
    for p in [&a, &b, &exe] {
        let m = env.marker(p).unwrap();
        assert!(!m.released, "{}", p.display());
        assert_eq!(
            env.meta.hsm_get(m.id).unwrap().unwrap().state,
            HsmState::Archived
        );
    }
    assert_eq!(
        std::fs::metadata(&a).unwrap().mtime(),
        mtime,
        "a read is not a write"
    );
    // mmap of a fresh stub: one event for the mapping, then plain page faults.
    env.release(&a);
    let f = std::fs::File::open(&a).unwrap();
    let len = big.len();
    // SAFETY: a read-only shared mapping of an open file, unmapped below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
        )
    };
    assert_ne!(ptr, libc::MAP_FAILED);
    // SAFETY: ptr maps len readable bytes.
    let mapped = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }.to_vec();
    // SAFETY: unmapping what was mapped above.
    unsafe { libc::munmap(ptr, len) };
    assert!(mapped == big, "mmap of a stub sees the original bytes");
}

#[test]
fn a_partial_read_of_a_1_gib_stub_recalls_only_the_blocks_it_touches() {
    let Some(env) = Env::new(1536, true) else {
        return;
    };
    let data = payload(1 << 30, 2);
    let p = env.file("large.bin", &data);
    let id = env.stub(&p);
    let row = env.meta.hsm_get(id).unwrap().unwrap();
    let before = env.recalled_bytes();
    let off = 700 << 20;
    let f = std::fs::File::open(&p).unwrap();
    let mut buf = vec![0u8; 4096];
    f.read_exact_at(&mut buf, off).unwrap();
    assert_eq!(&buf[..], &data[off as usize..off as usize + 4096]);
    env.settle(&p, off);
    // The blocks overlapping the page-aligned range the kernel reported, and no more.
    let mut at = 0u64;
    let mut expected = 0u64;
    for b in &row.blocks {
        let end = at + b.len as u64;
        if at < off + 4096 && end > off {
            expected += b.len as u64;
        }
        at = end;
    }
    assert!(expected > 0 && expected < 16 << 20, "{expected}");
    assert_eq!(env.recalled_bytes() - before, expected);
    assert!(env.marker(&p).unwrap().released, "still a stub");
    let on_disk = std::fs::metadata(&p).unwrap().blocks() * 512;
    assert!(
        on_disk >= expected && on_disk < expected + (1 << 20),
        "{on_disk}"
    );
}

#[test]
fn releasing_a_partly_recalled_stub_again_frees_its_blocks_unless_it_was_written() {
    let Some(env) = Env::new(256, true) else {
        return;
    };
    let data = payload(24 << 20, 12);
    let p = env.file("again.bin", &data);
    let id = env.stub(&p);
    let f = std::fs::File::open(&p).unwrap();
    let mut buf = vec![0u8; 4096];
    f.read_exact_at(&mut buf, 10 << 20).unwrap();
    assert!(buf[..] == data[10 << 20..(10 << 20) + 4096]);
    drop(f);
    env.settle(&p, 10 << 20);
    let before = std::fs::metadata(&p).unwrap();
    assert!(
        before.blocks() * 512 >= 1 << 18,
        "the recalled block is on disk"
    );
    assert_eq!(env.release(&p), id);
    let after = std::fs::metadata(&p).unwrap();
    assert!(
        after.blocks() * 512 <= after.blksize(),
        "punched again: {} blocks",
        after.blocks()
    );
    assert_eq!(after.mtime_nsec(), before.mtime_nsec());
    assert_eq!(after.mtime(), before.mtime());
    let row = env.meta.hsm_get(id).unwrap().unwrap();
    assert_eq!(row.state, HsmState::Released);
    assert!(row.resident.iter().all(|b| *b == 0));
    assert!(std::fs::read(&p).unwrap() == data, "recalls byte-identical");

    // Written after a partial recall: not released again, every byte kept.
    let q = env.file("written.bin", &data);
    let qid = env.stub(&q);
    let w = std::fs::OpenOptions::new().write(true).open(&q).unwrap();
    w.write_all_at(b"XY", 5 << 20).unwrap();
    drop(w);
    let err = env.rt.block_on(env.hsm.release(&q)).unwrap_err();
    assert!(matches!(err, HsmError::Changed(..)), "{err}");
    assert!(env.marker(&q).unwrap().released, "still a stub");
    let mut want = data.clone();
    want[5 << 20..(5 << 20) + 2].copy_from_slice(b"XY");
    assert!(std::fs::read(&q).unwrap() == want, "old and new bytes");
    assert!(
        env.meta.hsm_get(qid).unwrap().is_none(),
        "an ordinary file again"
    );
}

#[test]
fn writes_and_truncates_of_stubs_keep_every_old_byte() {
    let Some(env) = Env::new(256, true) else {
        return;
    };
    let data = payload(6 << 20, 3);
    let p = env.file("w.bin", &data);
    let id = env.stub(&p);
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    let at = (3 << 20) + 10;
    f.write_all_at(b"HELLO", at).unwrap();
    drop(f);
    let mut want = data.clone();
    want[at as usize..at as usize + 5].copy_from_slice(b"HELLO");
    assert!(
        std::fs::read(&p).unwrap() == want,
        "old bytes around the write survive"
    );
    // Modified: an ordinary file again, the stale payload forgotten.
    assert!(env.marker(&p).is_none());
    assert!(env.meta.hsm_get(id).unwrap().is_none());

    // Truncate a stub to half, then grow it back: the first half is the old bytes, the
    // rest zeros (never payload bytes from beyond the cut).
    let q = env.file("t.bin", &data);
    env.stub(&q);
    let half = data.len() as u64 / 2 + 123;
    let f = std::fs::OpenOptions::new().write(true).open(&q).unwrap();
    f.set_len(half).unwrap();
    f.set_len(data.len() as u64).unwrap();
    drop(f);
    let got = std::fs::read(&q).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got[..half as usize] == data[..half as usize]);
    assert!(got[half as usize..].iter().all(|b| *b == 0));
    assert!(env.marker(&q).is_none());

    // open(O_TRUNC) gives no event: the next write still must not bring old bytes back.
    let r = env.file("o.bin", &data);
    env.stub(&r);
    std::fs::write(&r, b"new").unwrap();
    assert_eq!(std::fs::read(&r).unwrap(), b"new");
}

#[test]
fn renamed_moved_and_linked_stubs_recall_also_after_a_listener_restart() {
    let Some(mut env) = Env::new(256, true) else {
        return;
    };
    let data = payload(3 << 20, 4);
    let p = env.file("r.bin", &data);
    env.stub(&p);
    std::fs::create_dir(env.data.join("sub")).unwrap();
    let moved = env.data.join("sub/renamed.bin");
    std::fs::rename(&p, &moved).unwrap();
    let link = env.data.join("link.bin");
    std::fs::hard_link(&moved, &link).unwrap();
    // The listener restarts (marks die with it): it finds the stub by handle.
    env.restart_listener();
    assert_eq!(std::fs::read(&link).unwrap(), data);
    assert_eq!(std::fs::read(&moved).unwrap(), data);
}

#[test]
fn an_unreachable_tier_gives_eio_and_the_stub_recalls_later() {
    let Some(env) = Env::new(256, false) else {
        return;
    };
    let data = payload(2 << 20, 5);
    let p = env.file("u.bin", &data);
    env.stub(&p);
    env.rt.block_on(env.s3.stop());
    let err = std::fs::read(&p).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(env.marker(&p).unwrap().released);
    let m = std::fs::metadata(&p).unwrap();
    assert!(m.blocks() * 512 <= m.blksize(), "the stub is unchanged");
    assert!(env.hsm.counters.recall_failures.load(Ordering::Relaxed) > 0);
    env.rt.block_on(env.s3.restart()).unwrap();
    // Later: the first request after the restart may meet a connection the server closed
    // (the test tiers do not retry), so a reader that retries gets the bytes.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let got = loop {
        match std::fs::read(&p) {
            Ok(got) => break got,
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "still EIO 20 s after S3 came back"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(got == data);
}

#[test]
fn files_changed_or_open_are_not_released_and_unarchived_files_are_refused() {
    let Some(env) = Env::new(256, true) else {
        return;
    };
    let data = payload(1 << 20, 6);
    let p = env.file("c.bin", &data);
    env.archive(&p);
    env.flush();
    // Open elsewhere: no write lease.
    let held = std::fs::File::open(&p).unwrap();
    assert!(matches!(
        env.rt.block_on(env.hsm.release(&p)),
        Err(HsmError::Busy(_))
    ));
    drop(held);
    // Changed since its archive: not released, the marker and the payload go.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .unwrap()
        .write_all_at(b"x", data.len() as u64)
        .unwrap();
    assert!(matches!(
        env.rt.block_on(env.hsm.release(&p)),
        Err(HsmError::Changed(..))
    ));
    assert!(env.marker(&p).is_none());
    assert_eq!(std::fs::metadata(&p).unwrap().len(), data.len() as u64 + 1);
    // Never archived.
    let q = env.file("n.bin", b"plain");
    assert!(matches!(
        env.rt.block_on(env.hsm.release(&q)),
        Err(HsmError::NotArchived(_))
    ));
    // Not durable yet: archived but not replicated.
    let r = env.file("d.bin", &payload(1 << 20, 7));
    env.archive(&r);
    let res = env.rt.block_on(env.hsm.release(&r));
    assert!(matches!(res, Err(HsmError::NotDurable(_))), "{res:?}");
    // Outside every managed directory.
    let outside = env.fs.path("outside.bin");
    std::fs::write(&outside, b"x").unwrap();
    assert!(matches!(
        env.rt.block_on(env.hsm.archive(&outside)),
        Err(HsmError::NotManaged(_))
    ));
}
