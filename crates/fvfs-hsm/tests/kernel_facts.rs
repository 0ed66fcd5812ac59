//! Which syscalls raise FAN_PRE_ACCESS on a marked (inode mark) ext4 file, and with which
//! range. Each assertion is a fact the module docs of `fvfs_hsm::fanotify` rely on.
//! Root + a loop-mounted ext4 image; skipped otherwise (failure if FVFS_REQUIRE_PRIVILEGED=1).

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use common::*;
use fvfs_hsm::fanotify::{Range, Response, FAN_PRE_ACCESS};

const P: u64 = 4096;

fn one(offset: u64, count: u64) -> Vec<(u64, Option<Range>)> {
    vec![(FAN_PRE_ACCESS, Some(Range { offset, count }))]
}

#[test]
fn read_and_write_ranges_are_page_aligned() {
    let Some(fs) = Ext4::new() else { return };
    let path = fs.create("stub", 4 * MIB);
    let rec = Recorder::new(marked_group(&path));
    let f = open_rw(&path);
    // (offset, len) of a pread -> the reported range: [round_down(off), round_up(off + len)).
    let reads = [
        ((MIB, 4096), (MIB, P)),
        ((100, 10), (0, P)),
        ((5000, 10), (P, P)),
        ((3000, 4000), (0, 2 * P)),
        ((P - 1, 2), (0, 2 * P)),
        ((1, 4096), (0, 2 * P)),
        ((MIB, 2 * MIB as usize), (MIB, 2 * MIB)),
        // Not clipped at EOF (file is 4 MiB), and a read past EOF is an event too.
        ((3 * MIB + MIB / 2, MIB as usize), (3 * MIB + MIB / 2, MIB)),
        ((10 * MIB, 100), (10 * MIB, P)),
        // Zero-length reads are events: aligned -> count 0, unaligned -> one page.
        ((0, 0), (0, 0)),
        ((100, 0), (0, P)),
    ];
    for ((off, len), (ro, rc)) in reads {
        let (_, seen) = rec.during(|| pread(&f, off, len).expect("pread"));
        assert_eq!(seen, one(ro, rc), "pread {len} at {off}");
    }
    let (_, seen) = rec.during(|| f.write_all_at(b"hello", 2 * MIB).expect("pwrite"));
    assert_eq!(seen, one(2 * MIB, P), "pwrite");
    let (_, seen) = rec.during(|| f.write_all_at(&[1u8; 4000], 3000).expect("pwrite"));
    assert_eq!(seen, one(0, 2 * P), "pwrite unaligned");
    // O_APPEND: reported at offset 0 (the fd's position), not at the end of the file.
    let (_, seen) = rec.during(|| {
        let mut a = OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open append");
        a.write_all(b"xy").expect("append");
    });
    assert_eq!(seen, one(0, P), "append");
    // readv: one event for the sum of the vectors.
    let (n, seen) = rec.during(|| {
        let (mut a, mut b) = ([0u8; 100], [0u8; 5000]);
        let iov = [
            libc::iovec {
                iov_base: a.as_mut_ptr().cast(),
                iov_len: a.len(),
            },
            libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            },
        ];
        // SAFETY: two live buffers described by matching iovecs.
        cvt(unsafe { libc::preadv(f.as_raw_fd(), iov.as_ptr(), 2, 2 * P as i64) } as i64)
    });
    assert_eq!(n.expect("preadv"), 5100);
    assert_eq!(seen, one(2 * P, 2 * P), "preadv");
    // std::fs::read of the whole (4 MiB + 2) file: the data read, then the read at EOF.
    let (data, seen) = rec.during(|| std::fs::read(&path).expect("read"));
    assert_eq!(data.len() as u64, 4 * MIB + 2);
    assert_eq!(
        seen,
        vec![one(0, 4 * MIB + P)[0], one(4 * MIB, P)[0]],
        "read to EOF"
    );
}

#[test]
fn direct_io_splice_sendfile_copy_file_range() {
    let Some(fs) = Ext4::new() else { return };
    let path = fs.create("stub", 4 * MIB);
    let other = fs.create("other", 4 * MIB);
    let rec = Recorder::new(marked_group(&path));
    let f = open_rw(&path);
    let o = open_rw(&other);
    let (n, seen) = rec.during(|| {
        let d = open_with(&path, libc::O_DIRECT);
        let layout = std::alloc::Layout::from_size_align(8192, 4096).expect("layout");
        // SAFETY: an aligned 8 KiB buffer, freed after the read.
        unsafe {
            let buf = std::alloc::alloc(layout);
            let n = libc::pread(d.as_raw_fd(), buf.cast(), 8192, MIB as i64);
            std::alloc::dealloc(buf, layout);
            cvt(n as i64)
        }
    });
    assert_eq!(
        (n.expect("O_DIRECT"), seen),
        (8192, one(MIB, 8192)),
        "O_DIRECT pread"
    );
    let (n, seen) = rec.during(|| {
        let (mut src, mut dst) = (MIB as i64, 0i64);
        // SAFETY: plain syscall on valid fds and offsets.
        cvt(unsafe {
            libc::copy_file_range(f.as_raw_fd(), &mut src, o.as_raw_fd(), &mut dst, 8192, 0)
        } as i64)
    });
    assert_eq!(
        (n.expect("cfr"), seen),
        (8192, one(MIB, 8192)),
        "copy_file_range from stub"
    );
    let (n, seen) = rec.during(|| {
        let (mut src, mut dst) = (0i64, 2 * MIB as i64);
        // SAFETY: as above.
        cvt(unsafe {
            libc::copy_file_range(o.as_raw_fd(), &mut src, f.as_raw_fd(), &mut dst, 8192, 0)
        } as i64)
    });
    assert_eq!(
        (n.expect("cfr"), seen),
        (8192, one(2 * MIB, 8192)),
        "copy_file_range into stub"
    );
    let null = File::create("/dev/null").expect("/dev/null");
    let (n, seen) = rec.during(|| {
        let mut off = MIB as i64;
        // SAFETY: as above.
        cvt(unsafe { libc::sendfile(null.as_raw_fd(), f.as_raw_fd(), &mut off, 8192) } as i64)
    });
    assert_eq!(
        (n.expect("sendfile"), seen),
        (8192, one(MIB, 8192)),
        "sendfile"
    );
    let (n, seen) = rec.during(|| {
        let mut fds = [0i32; 2];
        // SAFETY: pipe fills two fds that are closed below; splice moves file -> pipe.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            let mut off = MIB as i64;
            let n = libc::splice(
                f.as_raw_fd(),
                &mut off,
                fds[1],
                std::ptr::null_mut(),
                8192,
                0,
            );
            let n = cvt(n as i64);
            libc::close(fds[0]);
            libc::close(fds[1]);
            n
        }
    });
    assert_eq!(
        (n.expect("splice"), seen),
        (8192, one(MIB, 8192)),
        "splice from stub"
    );
}

#[test]
fn mmap_is_one_event_for_the_mapped_range_and_faults_are_silent() {
    let Some(fs) = Ext4::new() else { return };
    let path = fs.create("stub", 4 * MIB);
    let rec = Recorder::new(marked_group(&path));
    let f = open_rw(&path);
    let (m, seen) = rec.during(|| Map::new(&f, MIB, 8192, libc::PROT_READ, libc::MAP_SHARED));
    assert_eq!(seen, one(MIB, 8192), "mmap read-only shared");
    let m = m.expect("mmap");
    let (b, seen) = rec.during(|| (m.touch(0), m.touch(4096)));
    assert_eq!(
        (b, seen),
        ((pattern(MIB), pattern(MIB + 4096)), vec![]),
        "page faults"
    );
    let (_, seen) =
        rec.during(|| Map::new(&f, 0, 4 * MIB as usize, libc::PROT_READ, libc::MAP_SHARED));
    assert_eq!(seen, one(0, 4 * MIB), "whole file");
    let (_, seen) = rec.during(|| Map::new(&f, 0, 100, libc::PROT_READ, libc::MAP_PRIVATE));
    assert_eq!(seen, one(0, P), "private, length rounded up to a page");
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let (_, seen) = rec.during(|| Map::new(&f, 2 * MIB, 8192, rw, libc::MAP_SHARED));
    assert_eq!(seen, one(2 * MIB, 8192), "read-write shared");
    drop(rec);
    // A denied mmap fails with the errno of the answer.
    let group = Arc::new(marked_group(&path));
    let f2 = open_rw(&path);
    let mapper =
        spawn(move || Map::new(&f2, 0, 8192, libc::PROT_READ, libc::MAP_SHARED).map(|_| ()));
    let ev = wait_events(&group, 1).pop().expect("event");
    group
        .respond(ev.fd.as_raw_fd(), Response::Deny(libc::EIO))
        .expect("respond");
    assert_eq!(
        errno_of(mapper.recv_timeout(WAIT).expect("mapper")),
        libc::EIO
    );
}

#[test]
fn truncate_and_fallocate_ranges() {
    let Some(fs) = Ext4::new() else { return };
    let path = fs.create("stub", 4 * MIB);
    let rec = Recorder::new(marked_group(&path));
    let f = open_rw(&path);
    // Truncate reports [round_down(new size), round_up(new size)): count 0 when aligned.
    let sizes = [
        (3 * MIB, (3 * MIB, 0)),            // shrink, aligned
        (5 * MIB, (5 * MIB, 0)),            // grow, aligned
        (3 * MIB + 100, (3 * MIB, P)),      // unaligned
        (3 * MIB + 5000, (3 * MIB + P, P)), // unaligned
        (3 * MIB + 5000, (3 * MIB + P, P)), // same size: still an event
    ];
    for (size, (ro, rc)) in sizes {
        let (_, seen) = rec.during(|| f.set_len(size).expect("ftruncate"));
        assert_eq!(seen, one(ro, rc), "ftruncate to {size}");
    }
    let (rc, seen) = rec.during(|| {
        let c = std::ffi::CString::new(path.to_str().expect("utf-8")).expect("cstring");
        // SAFETY: valid NUL-terminated path.
        unsafe { libc::truncate(c.as_ptr(), 4 * MIB as i64) }
    });
    assert_eq!((rc, seen), (0, one(4 * MIB, 0)), "truncate(path)");
    // open(O_TRUNC) is NOT an event.
    let (_, seen) = rec.during(|| {
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .map(drop)
    });
    assert_eq!(seen, vec![], "open O_TRUNC");
    f.set_len(4 * MIB).expect("regrow");
    let modes = [
        (0, 6 * MIB, P, (6 * MIB, P)),
        (0, 6 * MIB + 100, 10, (6 * MIB, P)),
        (
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            MIB,
            P,
            (MIB, P),
        ),
        (libc::FALLOC_FL_ZERO_RANGE, MIB, 2 * P, (MIB, 2 * P)),
    ];
    for (mode, off, len, (ro, rc)) in modes {
        // SAFETY: plain syscall on a valid fd.
        let (r, seen) =
            rec.during(|| unsafe { libc::fallocate(f.as_raw_fd(), mode, off as i64, len as i64) });
        assert_eq!(
            (r, seen),
            (0, one(ro, rc)),
            "fallocate mode {mode:#x} {len} at {off}"
        );
    }
}

#[test]
fn exec_of_a_marked_file() {
    let Some(fs) = Ext4::new() else { return };
    let exe = fs.path("true");
    std::fs::copy("/bin/true", &exe).expect("copy /bin/true");
    let size = std::fs::metadata(&exe).expect("stat").len();
    let rec = Recorder::new(marked_group(&exe));
    let (st, seen) = rec.during(|| std::process::Command::new(&exe).status());
    assert!(st.expect("exec").success());
    // The loader's reads and mmaps: first the header page, then segments, each starting on a
    // page inside the file (mmap ranges are not clipped at EOF: /bin/true here gave
    // (0,4096) x3, (0,40960), (8192,16384), (24576,8192), (28672,8192) for a 35664-byte file).
    assert_eq!(seen.first(), Some(&one(0, P)[0]), "{seen:?}");
    assert!(seen.len() >= 2, "{seen:?}");
    let end = size.div_ceil(P) * P;
    for (mask, r) in &seen {
        let r = r.expect("range");
        assert!(
            *mask == FAN_PRE_ACCESS && r.offset % P == 0 && r.offset < end,
            "{seen:?}"
        );
    }
    drop(rec);
    // Denying the first access makes execve fail with that errno.
    let group = marked_group(&exe);
    let e2 = exe.clone();
    let runner = spawn(move || std::process::Command::new(&e2).status());
    let ev = wait_events(&group, 1).pop().expect("event");
    group
        .respond(ev.fd.as_raw_fd(), Response::Deny(libc::EIO))
        .expect("respond");
    assert_eq!(
        errno_of(runner.recv_timeout(WAIT).expect("runner")),
        libc::EIO
    );
}
