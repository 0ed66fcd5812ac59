//! The fanotify layer against a real kernel: blocking, answers, filling through the event fd,
//! marks, listener death and the FAN_OPEN_PERM fallback. Root + a loop-mounted ext4 image;
//! skipped otherwise (a failure when FVFS_REQUIRE_PRIVILEGED=1).

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use fvfs_hsm::fanotify::{FanError, Group, Mode, Range, Response, FAN_PRE_ACCESS};

fn expected(off: u64, len: u64) -> Vec<u8> {
    (off..off + len).map(pattern).collect()
}

#[test]
fn read_blocks_until_allow_and_reports_exact_range() {
    let Some(fs) = Ext4::new() else { return };
    let path = fs.create("stub", 4 * MIB);
    let group = marked_group(&path);
    let f = File::open(&path).expect("open");
    let reader = spawn(move || pread(&f, MIB, 4096));

    let mut evs = wait_events(&group, 1);
    assert_eq!(evs.len(), 1);
    let ev = evs.pop().expect("event");
    assert_eq!(ev.mask, FAN_PRE_ACCESS);
    assert_eq!(
        ev.range,
        Some(Range {
            offset: MIB,
            count: 4096
        })
    );
    // FAN_REPORT_TID: the reader thread's id, a thread of this process.
    let status = std::fs::read_to_string(format!("/proc/{}/status", ev.pid)).unwrap();
    let tgid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(tgid, std::process::id(), "the reporting thread's process");
    assert_ne!(
        ev.pid,
        std::process::id() as i32,
        "a thread id: the reader is not the main thread"
    );
    // The reader stays blocked until we answer.
    assert!(
        reader.recv_timeout(QUIET).is_err(),
        "reader returned before the answer"
    );
    group
        .respond(ev.fd.as_raw_fd(), Response::Allow)
        .expect("respond");
    drop(ev);
    let data = reader
        .recv_timeout(WAIT)
        .expect("reader finished")
        .expect("read ok");
    assert_eq!(data, expected(MIB, 4096));
    assert_no_event(&group);
}

#[test]
fn deny_errno_is_what_the_reader_sees() {
    let Some(fs) = Ext4::new() else { return };
    let path = fs.create("stub", MIB);
    let group = marked_group(&path);
    let f = Arc::new(File::open(&path).expect("open"));
    // fanotify(7): only these errnos may be sent; plain FAN_DENY is EPERM.
    for errno in [
        libc::EIO,
        libc::EPERM,
        libc::EBUSY,
        libc::EAGAIN,
        libc::ENOSPC,
    ] {
        let f2 = f.clone();
        let reader = spawn(move || pread(&f2, 0, 100));
        let ev = wait_events(&group, 1).pop().expect("event");
        group
            .respond(ev.fd.as_raw_fd(), Response::Deny(errno))
            .expect("respond");
        let got = reader.recv_timeout(WAIT).expect("reader finished");
        assert_eq!(errno_of(got), errno);
    }
    // Any other errno is refused by the kernel (EINVAL) and the event stays pending.
    let f2 = f.clone();
    let reader = spawn(move || pread(&f2, 0, 100));
    let ev = wait_events(&group, 1).pop().expect("event");
    let err = group
        .respond(ev.fd.as_raw_fd(), Response::Deny(libc::ENOENT))
        .expect_err("EINVAL");
    assert_eq!(
        err.os_error().and_then(|e| e.raw_os_error()),
        Some(libc::EINVAL)
    );
    assert!(
        reader.recv_timeout(QUIET).is_err(),
        "refused answer must not release the reader"
    );
    assert!(matches!(
        group.respond(ev.fd.as_raw_fd(), Response::Deny(0)),
        Err(FanError::InvalidErrno(0))
    ));
    group
        .respond(ev.fd.as_raw_fd(), Response::Allow)
        .expect("respond");
    assert_eq!(
        reader
            .recv_timeout(WAIT)
            .expect("reader")
            .expect("read")
            .len(),
        100
    );
}

#[test]
fn fill_through_event_fd_creates_no_event() {
    let Some(fs) = Ext4::new() else { return };
    let path = fs.create("stub", 4 * MIB);
    punch(&open_rw(&path), 0, 4 * MIB); // now a stub: size kept, content gone
    let group = marked_group(&path);
    let f = File::open(&path).expect("open");
    let reader = spawn(move || pread(&f, MIB + 100, 5000));

    let ev = wait_events(&group, 1).pop().expect("event");
    // Page-aligned: [1 MiB, 1 MiB + 8192) covers bytes 100..5100 of the MiB.
    let range = ev.range.expect("range");
    assert_eq!(
        range,
        Range {
            offset: MIB,
            count: 8192
        }
    );
    // Fill exactly the range through the event fd, read it back through it too.
    let fill = expected(range.offset, range.count);
    ev.fd_file()
        .write_all_at(&fill, range.offset)
        .expect("fill");
    let mut back = vec![0u8; 10];
    ev.fd_file()
        .read_exact_at(&mut back, range.offset)
        .expect("read back");
    assert_eq!(back, fill[..10]);
    assert_no_event(&group);
    group
        .respond(ev.fd.as_raw_fd(), Response::Allow)
        .expect("respond");
    let data = reader.recv_timeout(WAIT).expect("reader").expect("read");
    assert_eq!(data, expected(MIB + 100, 5000));
    assert_no_event(&group);
}

/// `ev.fd` as a `File` view without taking ownership.
trait FdFile {
    fn fd_file(&self) -> std::mem::ManuallyDrop<File>;
}
impl FdFile for fvfs_hsm::fanotify::Event {
    fn fd_file(&self) -> std::mem::ManuallyDrop<File> {
        use std::os::fd::FromRawFd;
        // SAFETY: the File never closes the fd (ManuallyDrop); the event outlives its use.
        std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(self.fd.as_raw_fd()) })
    }
}

#[test]
fn unmarked_files_and_metadata_operations_produce_no_event() {
    let Some(fs) = Ext4::new() else { return };
    let stub = fs.create("stub", MIB);
    let other = fs.create("resident", MIB);
    let rec = Recorder::new(marked_group(&stub));
    let (_, seen) = rec.during(|| {
        let f = open_rw(&other);
        pread(&f, 0, 4096).expect("read");
        f.write_all_at(b"x", 10).expect("write");
        f.set_len(10).expect("truncate");
        Map::new(&f, 0, 4096, libc::PROT_READ, libc::MAP_SHARED)
            .expect("mmap")
            .touch(0);
    });
    assert_eq!(seen, vec![], "resident file");
    let (_, seen) = rec.during(|| {
        std::fs::metadata(&stub).expect("stat");
        let names = std::fs::read_dir(fs.path("")).expect("readdir").count();
        assert_eq!(names, 3); // lost+found, stub, resident
        let f = File::open(&stub).expect("open");
        f.metadata().expect("fstat");
        // SAFETY: plain syscalls on a valid fd.
        unsafe {
            assert_eq!(libc::lseek(f.as_raw_fd(), 0, libc::SEEK_DATA), 0);
            assert_eq!(
                libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED),
                0
            );
            assert_eq!(libc::readahead(f.as_raw_fd(), 0, MIB as usize), 0);
        }
        std::fs::rename(&stub, fs.path("moved")).expect("rename");
        std::fs::hard_link(fs.path("moved"), fs.path("link")).expect("link");
        std::fs::remove_file(fs.path("link")).expect("unlink");
    });
    assert_eq!(
        seen,
        vec![],
        "stat, readdir, open/close, lseek, fadvise, readahead, rename"
    );
    // The mark is on the inode: it follows renames.
    let (_, seen) = rec.during(|| pread(&File::open(fs.path("moved")).expect("open"), 0, 1));
    assert_eq!(
        seen,
        vec![(
            FAN_PRE_ACCESS,
            Some(Range {
                offset: 0,
                count: 4096
            })
        )]
    );
}

#[test]
fn decision_is_taken_at_open_time() {
    let Some(fs) = Ext4::new() else { return };
    let a = fs.create("a", MIB);
    let b = fs.create("b", MIB);
    let before_any = File::open(&a).expect("open a");
    let group = Group::new().expect("group");
    group
        .mark(File::open(&a).expect("open").as_fd())
        .expect("mark a");
    // b is opened while the fs already has a pre-content watcher, but before b's own mark.
    let before_own = File::open(&b).expect("open b");
    group.mark(before_own.as_fd()).expect("mark b");
    let rec = Recorder::new(group);
    let (_, seen) = rec.during(|| {
        pread(&before_any, 0, 10).expect("read a");
        pread(&before_own, 0, 10).expect("read b");
        Map::new(&before_own, 0, 4096, libc::PROT_READ, libc::MAP_SHARED)
            .expect("mmap")
            .touch(0);
    });
    assert_eq!(
        seen,
        vec![],
        "fds opened before their inode was marked never see events"
    );
    let (_, seen) = rec.during(|| pread(&File::open(&b).expect("reopen"), 0, 10));
    assert_eq!(
        seen,
        vec![(
            FAN_PRE_ACCESS,
            Some(Range {
                offset: 0,
                count: 4096
            })
        )]
    );
}

#[test]
fn unmark_and_mark_errors() {
    let Some(fs) = Ext4::new() else { return };
    let path = fs.create("stub", MIB);
    let group = marked_group(&path);
    // Marks are per inode: any fd of the file unmarks it.
    group
        .unmark(File::open(&path).expect("open").as_fd())
        .expect("unmark");
    let rec = Recorder::new(group);
    let (_, seen) = rec.during(|| pread(&File::open(&path).expect("open"), 0, 10));
    assert_eq!(seen, vec![]);
    let g = &rec.group;
    let os = |r: Result<(), FanError>| {
        r.expect_err("error")
            .os_error()
            .and_then(|e| e.raw_os_error())
    };
    assert_eq!(
        os(g.unmark(File::open(&path).expect("open").as_fd())),
        Some(libc::ENOENT)
    );
    let opath = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(&path)
        .expect("O_PATH");
    assert_eq!(
        os(g.mark(opath.as_fd())),
        Some(libc::EBADF),
        "O_PATH fds cannot be marked"
    );
    if let Ok(tmp) = tempfile::NamedTempFile::new_in("/dev/shm") {
        assert_eq!(
            os(g.mark(tmp.as_file().as_fd())),
            Some(libc::EOPNOTSUPP),
            "tmpfs has no HSM"
        );
    }
}

#[test]
fn read_events_timeout_is_bounded() {
    let Some(fs) = Ext4::new() else { return };
    let group = marked_group(&fs.create("stub", 10));
    let t = Instant::now();
    let evs = group
        .read_events_timeout(Duration::from_millis(200))
        .expect("read");
    let took = t.elapsed();
    assert!(evs.is_empty());
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[test]
fn closing_the_group_allows_pending_events() {
    let Some(fs) = Ext4::new() else { return };
    let path = fs.create("stub", MIB);
    punch(&open_rw(&path), 0, MIB);

    // 1. Event read, fd dropped without an answer: the reader stays blocked...
    let group = marked_group(&path);
    let f = Arc::new(File::open(&path).expect("open")); // after the mark: see open_time test
    let f2 = f.clone();
    let reader = spawn(move || pread(&f2, 0, 100));
    drop(wait_events(&group, 1));
    assert!(
        reader.recv_timeout(QUIET).is_err(),
        "an unanswered event keeps the reader blocked"
    );
    // ...until the group is closed: then the access is allowed and the reader sees the hole.
    drop(group);
    assert_eq!(
        reader.recv_timeout(WAIT).expect("reader").expect("read"),
        vec![0u8; 100]
    );

    // 2. Event still queued (never read) when the group is closed: allowed too. `f` was opened
    // under the first group: its open-time decision also serves the second group.
    let group = marked_group(&path);
    let f2 = f.clone();
    let reader = spawn(move || pread(&f2, 0, 100));
    assert!(reader.recv_timeout(QUIET).is_err());
    drop(group);
    assert_eq!(
        reader.recv_timeout(WAIT).expect("reader").expect("read"),
        vec![0u8; 100]
    );
}

/// What a listener that takes over a group from a dead one relies on (keeper.rs): an event
/// whose fd was closed unanswered (its reader process died) stays pending, and is answered by
/// the fd *number* it was read with, from any holder of the group.
#[test]
fn an_event_whose_fd_was_closed_is_answered_by_its_number() {
    let Some(fs) = Ext4::new() else { return };
    let path = fs.create("stub", MIB);
    punch(&open_rw(&path), 0, MIB);
    let group = marked_group(&path);
    let f = Arc::new(File::open(&path).expect("open"));
    let f2 = f.clone();
    let reader = spawn(move || pread(&f2, 0, 100));
    let ev = wait_events(&group, 1).pop().expect("event");
    let number = ev.fd.as_raw_fd();
    drop(ev);
    assert!(reader.recv_timeout(QUIET).is_err(), "still pending");
    // A number no event was read with: ENOENT, nothing answered.
    let err = group
        .respond(number + 1000, Response::Deny(libc::EIO))
        .expect_err("no such event");
    assert_eq!(
        err.os_error().and_then(|e| e.raw_os_error()),
        Some(libc::ENOENT)
    );
    assert!(reader.recv_timeout(QUIET).is_err(), "still pending");
    group
        .respond(number, Response::Deny(libc::EIO))
        .expect("the stale number answers the event");
    assert_eq!(
        errno_of(reader.recv_timeout(WAIT).expect("reader finished")),
        libc::EIO
    );
}

const CHILD_ENV: &str = "FVFS_HSM_TEST_LISTENER";

/// Not a test by itself: the listener process of `killed_listener_process_allows_readers`
/// (the test binary re-executed with CHILD_ENV set). Without the variable it does nothing.
#[test]
fn listener_child_process() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let group = marked_group(std::path::Path::new(&path));
    println!("ready");
    let evs = wait_events(&group, 1);
    println!("got {}", evs.len());
    std::thread::sleep(WAIT * 2); // killed long before this ends
}

/// A child process that is killed and reaped on drop, whatever path the test takes.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn killed_listener_process_allows_readers() {
    let Some(fs) = Ext4::new() else { return };
    let path = fs.create("stub", MIB);
    punch(&open_rw(&path), 0, MIB);
    let mut child = Reaped(
        Command::new(std::env::current_exe().expect("exe"))
            .args([
                "--exact",
                "listener_child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn listener"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let lines = spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    // Wait (bounded) until the child has marked the file: its mark makes our open "HSM".
    let deadline = Instant::now() + WAIT;
    let f = loop {
        assert!(Instant::now() < deadline, "listener never got ready");
        std::thread::sleep(Duration::from_millis(50));
        let f = File::open(&path).expect("open");
        // Probe without blocking forever: a thread that reads one byte.
        let probe = Arc::new(f);
        let p2 = probe.clone();
        let r = spawn(move || pread(&p2, 0, 1));
        if r.recv_timeout(QUIET).is_err() {
            // Blocked: the child holds the event. Kill it now.
            child.0.kill().expect("kill");
            let status = child.0.wait().expect("wait");
            assert!(!status.success());
            let got = r
                .recv_timeout(WAIT)
                .expect("reader released")
                .expect("read ok");
            assert_eq!(
                got,
                vec![0u8],
                "the killed listener's pending event was allowed: a hole"
            );
            break probe;
        }
    };
    assert_eq!(
        pread(&f, 10, 10).expect("read"),
        vec![0u8; 10],
        "no listener, no events"
    );
    let out = lines.recv_timeout(WAIT).expect("child stdout closed");
    assert!(out.iter().any(|l| l.ends_with("ready")), "{out:?}");
}

#[test]
fn open_perm_fallback_blocks_open_without_range() {
    let Some(fs) = Ext4::new() else { return };
    let path = fs.create("stub", MIB);
    let group = Group::with_mode(Mode::OpenPerm).expect("group");
    assert_eq!(group.mode(), Mode::OpenPerm);
    group
        .mark(File::open(&path).expect("open").as_fd())
        .expect("mark");
    for (answer, want) in [
        (Response::Deny(libc::EIO), Some(libc::EIO)),
        (Response::Allow, None),
    ] {
        let p = path.clone();
        let opener = spawn(move || File::open(p));
        let ev = wait_events(&group, 1).pop().expect("event");
        assert_eq!((ev.mask, ev.range), (libc::FAN_OPEN_PERM, None));
        assert!(
            opener.recv_timeout(QUIET).is_err(),
            "open blocks until the answer"
        );
        group.respond(ev.fd.as_raw_fd(), answer).expect("respond");
        let got = opener.recv_timeout(WAIT).expect("opener");
        match want {
            Some(errno) => assert_eq!(errno_of(got), errno),
            None => {
                let f = got.expect("open allowed");
                assert_eq!(pread(&f, 0, 10).expect("read"), expected(0, 10));
            }
        }
    }
    assert_no_event(&group); // reads after an allowed open are not events in this mode
}
