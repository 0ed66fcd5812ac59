//! Several hosts mount one filesystem whose metadata is on PostgreSQL (docs/SEMANTICS.md,
//! "Several hosts"), through the real binary: the fixture's mount is host A, a second
//! `fvfsd mount` process with its own cache directory is host B.
//!
//! - close-to-open: a file closed on one host reads byte-identical when opened on the
//!   other afterwards, also when the reader kept an older descriptor open;
//! - file locks (flock and fcntl) are seen by both hosts; a host killed with -9 holds
//!   them until its session times out, then the other host gets them (also a waiting
//!   F_SETLKW);
//! - a file unlinked while open stays while its host lives (another host starting or
//!   stopping does not purge it), and the reaper of the other host frees its blocks once
//!   the killed host's session has expired;
//! - a command that must run alone (`fvfsd load`) is refused while any host is mounted.

mod common;

use common::hosts::on_postgres;
use common::{data, Fixture};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Session timeout of these tests' mounts: a killed host's locks and files are freed
/// within it plus one heartbeat (a fifth of it).
const TIMEOUT_SECS: u64 = 2;

fn two_hosts() -> Option<(Fixture, common::hosts::Host)> {
    let mut f = on_postgres()?;
    f.trash_off();
    f.add_config(&format!("\n[sessions]\ntimeout_secs = {TIMEOUT_SECS}\n"));
    f.mount();
    let b = f.mount_host("b");
    Some((f, b))
}

fn read_all(mut file: &File) -> Vec<u8> {
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut out = Vec::new();
    file.read_to_end(&mut out).unwrap();
    out
}

/// flock(2) without waiting: Ok or the errno.
fn flock(file: &File, op: i32) -> Result<(), i32> {
    // SAFETY: flock on a descriptor the File owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap())
    }
}

fn whole(typ: i32) -> libc::flock {
    libc::flock {
        l_type: typ as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// fcntl F_SETLK (or F_SETLKW) of the whole file: Ok or the errno.
fn posix_lock(file: &File, typ: i32, wait: bool) -> Result<(), i32> {
    let fl = whole(typ);
    let cmd = if wait { libc::F_SETLKW } else { libc::F_SETLK };
    // SAFETY: fcntl on a descriptor the File owns, with a valid struct flock.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &fl) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap())
    }
}

/// fcntl F_GETLK of a whole-file write lock: (type, pid) of the lock in the way.
fn posix_test(file: &File) -> (i32, i32) {
    let mut fl = whole(libc::F_WRLCK);
    // SAFETY: as above; the kernel fills `fl`.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) };
    assert_eq!(rc, 0, "F_GETLK: {}", std::io::Error::last_os_error());
    (i32::from(fl.l_type), fl.l_pid)
}

fn open_rw(p: &std::path::Path) -> File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .unwrap()
}

#[test]
fn a_file_closed_on_one_host_opens_identical_on_the_other() {
    let Some((f, b)) = two_hosts() else { return };
    let v1 = data((3 << 20) + 17, 1);
    std::fs::write(f.path("f"), &v1).unwrap();
    assert!(
        std::fs::read(b.path("f")).unwrap() == v1,
        "B reads A's file"
    );

    // B keeps a descriptor open, having read the whole file (its page cache and chunk
    // maps hold v1), while A rewrites it with other bytes of the same length.
    let old = File::open(b.path("f")).unwrap();
    assert!(read_all(&old) == v1);
    let v2 = data(v1.len(), 2);
    std::fs::write(f.path("f"), &v2).unwrap();
    let new = File::open(b.path("f")).unwrap();
    assert!(
        read_all(&new) == v2,
        "B's new open reads A's closed content"
    );
    // An older descriptor of B reads what B's latest open found (the host's cache of
    // the file was renewed by that open).
    assert!(read_all(&old) == v2, "B's old descriptor");
    // Longer: B's next open sees the new size at once.
    let v3 = data((5 << 20) + 99, 3);
    std::fs::write(f.path("f"), &v3).unwrap();
    let got = read_all(&File::open(b.path("f")).unwrap());
    assert_eq!(got.len(), v3.len(), "the size B sees after A's close");
    assert!(got == v3, "B reads the longer file");

    // And the other way round, with a shorter file and a new directory.
    std::fs::create_dir(b.path("d")).unwrap();
    let v3 = data(70_000, 3);
    std::fs::write(b.path("d/g"), &v3).unwrap();
    std::fs::write(b.path("f"), b"short").unwrap();
    assert!(std::fs::read(f.path("d/g")).unwrap() == v3);
    assert_eq!(std::fs::read(f.path("f")).unwrap(), b"short");

    // A command that must run alone is refused while mounted, and says why.
    let dump = f.dir.path().join("dump.json");
    std::fs::write(&dump, b"").unwrap();
    let out = f.run(&["load", dump.to_str().unwrap(), "--meta", &f.meta_url]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("is mounted"), "{said}");
    drop((old, new));
    let mut b = b;
    b.unmount();
    let mut f = f;
    f.unmount();
    f.assert_fsck_clean("after two hosts");
}

#[test]
fn a_killed_hosts_locks_go_to_the_other_host_after_its_session_expires() {
    let Some((mut f, b)) = two_hosts() else {
        return;
    };
    std::fs::write(f.path("by-flock"), b"f").unwrap();
    std::fs::write(f.path("by-fcntl"), b"p").unwrap();
    // A takes a flock on one file and a POSIX write lock on the other.
    let a_flock = File::open(f.path("by-flock")).unwrap();
    flock(&a_flock, libc::LOCK_EX).unwrap();
    let a_posix = open_rw(&f.path("by-fcntl"));
    posix_lock(&a_posix, libc::F_WRLCK, false).unwrap();

    // B sees both: refused, and F_GETLK names the holder's pid.
    let b_flock = File::open(b.path("by-flock")).unwrap();
    assert_eq!(flock(&b_flock, libc::LOCK_EX), Err(libc::EWOULDBLOCK));
    assert_eq!(flock(&b_flock, libc::LOCK_SH), Err(libc::EWOULDBLOCK));
    let b_posix = open_rw(&b.path("by-fcntl"));
    assert_eq!(
        posix_lock(&b_posix, libc::F_RDLCK, false),
        Err(libc::EAGAIN)
    );
    assert_eq!(
        posix_test(&b_posix),
        (libc::F_WRLCK, std::process::id() as i32)
    );
    // A lock B waits for (F_SETLKW), from another thread.
    let waiter = open_rw(&b.path("by-fcntl"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let got = posix_lock(&waiter, libc::F_WRLCK, true);
        let _ = tx.send((got, Instant::now()));
        // Keep the descriptor (and the lock) until the test ends.
        std::thread::sleep(Duration::from_secs(60));
        drop(waiter);
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "the waiting lock must wait while A lives"
    );

    // A dies holding both: the locks stay until its session expires, then B gets them.
    let killed = Instant::now();
    f.kill9();
    let (waited, granted) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("B's waiting F_SETLKW is granted after A's session expired");
    assert_eq!(waited, Ok(()));
    assert!(
        granted.duration_since(killed) >= Duration::from_secs(TIMEOUT_SECS) / 2,
        "granted {:?} after the kill: before the session could expire",
        granted.duration_since(killed)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while flock(&b_flock, libc::LOCK_EX).is_err() {
        assert!(Instant::now() < deadline, "B never got A's flock");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(b
        .log_text()
        .contains("ended a session that stopped heartbeating"));
    drop((a_flock, a_posix, b_posix));
}

#[test]
fn the_reaper_frees_a_killed_hosts_unlinked_open_file() {
    let Some((mut f, b)) = two_hosts() else {
        return;
    };
    let body = data(4 << 20, 9);
    std::fs::write(f.path("doomed"), &body).unwrap();
    let meta = fvfs_meta::open(&f.meta_url, false).unwrap();
    let before = meta.stats().unwrap();
    let open = File::open(f.path("doomed")).unwrap();
    std::fs::remove_file(f.path("doomed")).unwrap();
    assert_eq!(meta.orphans().unwrap().len(), 1);
    // While A lives, a host that starts (C) and B's reaper leave A's orphan alone, and
    // A still reads it.
    let mut c = f.mount_host("c");
    c.unmount();
    std::thread::sleep(Duration::from_secs(3 * TIMEOUT_SECS));
    assert_eq!(
        meta.orphans().unwrap().len(),
        1,
        "A's orphan survives B's reaper"
    );
    assert!(read_all(&open) == body, "A reads its unlinked file");
    assert_eq!(meta.stats().unwrap().garbage_blocks, before.garbage_blocks);

    f.kill9();
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !meta.orphans().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the reaper never purged A's orphan"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = meta.stats().unwrap();
    assert!(
        after.blocks < before.blocks,
        "the file's blocks are no longer live: {} -> {}",
        before.blocks,
        after.blocks
    );
    assert_eq!(
        after.garbage_blocks - before.garbage_blocks,
        before.blocks - after.blocks,
        "every block the file held is garbage now"
    );
    assert!(b.log_text().contains("freed the unlinked files"));
}
