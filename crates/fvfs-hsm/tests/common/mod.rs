//! Test harness: a loop-mounted ext4 image per test, skip rules, bounded waits and a
//! background "recorder" that answers every event and remembers what it saw.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fvfs_hsm::fanotify::{Event, Group, Mode, Range, Response};

/// Upper bound of every wait for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long we watch for something that should NOT happen (an event, an unblocked reader).
pub const QUIET: Duration = Duration::from_millis(300);
pub const MIB: u64 = 1 << 20;

/// Skips (returns None) when not root or the kernel lacks pre-content events, unless
/// FVFS_REQUIRE_PRIVILEGED=1, in which case a skip is a failure.
fn skip(why: &str) -> Option<Ext4> {
    if std::env::var("FVFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("FVFS_REQUIRE_PRIVILEGED=1 but the test cannot run: {why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

/// A fresh ext4 image mounted on a temporary directory (`fvfs_testkit::Ext4Image`).
pub struct Ext4 {
    image: fvfs_testkit::Ext4Image,
}

impl Ext4 {
    /// Mounts a new 64 MiB image, or returns None (after printing why) when the test must
    /// be skipped.
    pub fn new() -> Option<Ext4> {
        Ext4::with_size_mib(64)
    }

    /// Like [`Ext4::new`] with an image of `mib` MiB.
    pub fn with_size_mib(mib: u64) -> Option<Ext4> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return skip("not root");
        }
        match Group::new() {
            Ok(g) if g.mode() == Mode::PreAccess => {}
            Ok(_) => return skip("kernel lacks FAN_PRE_ACCESS"),
            Err(e) => return skip(&format!("fanotify unavailable: {e}")),
        }
        let image = fvfs_testkit::Ext4Image::mount(mib).expect("loop-mounted ext4 image");
        Some(Ext4 { image })
    }

    /// The scratch directory beside the mount (not on the image).
    pub fn scratch(&self) -> &Path {
        self.image.scratch()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.image.mnt().join(name)
    }

    /// Creates `name` with `len` bytes of a known pattern (byte i = i % 251), fsynced.
    pub fn create(&self, name: &str, len: u64) -> PathBuf {
        let path = self.path(name);
        let data: Vec<u8> = (0..len).map(pattern).collect();
        std::fs::write(&path, data).expect("write file");
        File::open(&path).expect("open").sync_all().expect("fsync");
        path
    }
}

pub fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

pub fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open rw")
}

/// A new group with `path` marked (the mark is by inode, via an fd that is then closed).
pub fn marked_group(path: &Path) -> Group {
    let group = Group::new().expect("group");
    assert_eq!(group.mode(), Mode::PreAccess);
    let f = File::open(path).expect("open for mark");
    group.mark(f.as_fd()).expect("mark");
    group
}

/// Runs `f` on a new thread; the result arrives on the returned channel.
pub fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

/// Reads events until `n` have arrived (or panics after WAIT).
pub fn wait_events(group: &Group, n: usize) -> Vec<Event> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out: {} of {n} events", got.len());
        got.extend(group.read_events_timeout(left).expect("read events"));
    }
    got
}

/// Asserts that no event arrives within QUIET.
pub fn assert_no_event(group: &Group) {
    let evs = group.read_events_timeout(QUIET).expect("read events");
    let seen: Vec<_> = evs.iter().map(|e| (e.mask, e.range)).collect();
    for e in &evs {
        let _ = group.respond(e.fd.as_raw_fd(), Response::Allow);
    }
    assert!(seen.is_empty(), "unexpected events: {seen:?}");
}

/// What the recorder saw: (mask, range, pid).
pub type Seen = (u64, Option<Range>, i32);

/// Answers every event of `group` with Allow on a background thread and records it.
pub struct Recorder {
    pub group: Arc<Group>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    pub fn new(group: Group) -> Recorder {
        let group = Arc::new(group);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s, st) = (group.clone(), seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                for ev in g
                    .read_events_timeout(Duration::from_millis(20))
                    .expect("read")
                {
                    s.lock().expect("lock").push((ev.mask, ev.range, ev.pid));
                    g.respond(ev.fd.as_raw_fd(), Response::Allow)
                        .expect("respond");
                }
            }
        });
        Recorder {
            group,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Runs `op` (which must complete since everything is allowed), waits QUIET for stragglers
    /// and returns the (mask, range) pairs seen during it.
    pub fn during<T>(&self, op: impl FnOnce() -> T) -> (T, Vec<(u64, Option<Range>)>) {
        self.seen.lock().expect("lock").clear();
        let out = op();
        std::thread::sleep(QUIET);
        let seen = std::mem::take(&mut *self.seen.lock().expect("lock"));
        (out, seen.into_iter().map(|(m, r, _)| (m, r)).collect())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// pread of `len` bytes at `off` through the std API.
pub fn pread(f: &File, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let n = std::os::unix::fs::FileExt::read_at(f, &mut buf, off)?;
    buf.truncate(n);
    Ok(buf)
}

pub fn open_with(path: &Path, flags: i32) -> File {
    OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .expect("open")
}

/// A memory mapping, unmapped on drop (mappings keep the filesystem busy).
pub struct Map {
    pub addr: usize,
    len: usize,
}

impl Map {
    pub fn new(f: &File, off: u64, len: usize, prot: i32, flags: i32) -> std::io::Result<Map> {
        // SAFETY: a fresh mapping chosen by the kernel; nothing aliases it yet.
        let m = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                flags,
                f.as_raw_fd(),
                off as i64,
            )
        };
        if m == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Map {
            addr: m as usize,
            len,
        })
    }

    /// Reads one byte of the mapping (faulting the page in).
    pub fn touch(&self, at: usize) -> u8 {
        assert!(at < self.len);
        // SAFETY: `at` is inside the live, readable mapping.
        unsafe { std::ptr::read_volatile((self.addr + at) as *const u8) }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this value created.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

/// Punches a hole (keeping the size), as the HSM does when it turns a file into a stub.
pub fn punch(f: &File, off: u64, len: u64) {
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: plain syscall on a valid fd.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), mode, off as i64, len as i64) };
    assert_eq!(rc, 0, "punch: {}", std::io::Error::last_os_error());
}

pub fn errno_of<T: std::fmt::Debug>(r: std::io::Result<T>) -> i32 {
    r.expect_err("expected an error")
        .raw_os_error()
        .expect("os error")
}

/// The syscall result as io::Result.
pub fn cvt(rc: i64) -> std::io::Result<i64> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}
