//! Safe wrapper over the Linux fanotify pre-content API, the kernel half of the HSM face.
//!
//! A [`Group`] is one `FAN_CLASS_PRE_CONTENT` fanotify group. Stub files are marked one by one
//! with an *inode* mark ([`Group::mark`]), so resident files generate no events at all. With
//! [`Mode::PreAccess`] (kernel 6.14+) an access to a marked file blocks in the kernel and
//! produces an [`Event`] with the accessed [`Range`]; the HSM fills the range by writing through
//! `event.fd` and answers with [`Group::respond`]. With [`Mode::OpenPerm`] (older kernels) the
//! open blocks instead (`FAN_OPEN_PERM`, no range): the whole file must be recalled.
//!
//! Constants missing from `libc`, checked against `include/uapi/linux/fanotify.h` of Linux
//! 6.14+: `FAN_PRE_ACCESS = 0x0010_0000` (early patch versions used 0x80000 and had a
//! `FAN_PRE_MODIFY`; the merged API has only `FAN_PRE_ACCESS`), `FAN_EVENT_INFO_TYPE_RANGE = 6`
//! with `struct fanotify_event_info_range { hdr(4 bytes); u32 pad; u64 offset; u64 count }`
//! (24 bytes), and `FAN_DENY_ERRNO(e) = FAN_DENY | (e & 0xff) << 24`; fanotify(7) lists the
//! errnos the kernel accepts there: EPERM, EIO, EBUSY, ETXTBSY, EAGAIN, ENOSPC, EDQUOT.
//!
//! # Kernel behaviour measured here (Linux 6.18, ext4 on a loop device, inode marks)
//!
//! Each fact below is asserted by a test in `tests/fanotify.rs` (named in brackets).
//!
//! Ranges are page-aligned: `[round_down(off, 4096), round_up(off + len, 4096))`.
//!
//! - **Mark type.** Inode marks on regular files accept `FAN_PRE_ACCESS` and work, so only
//!   stubs generate events (an unmarked file on the same fs: none). The mark follows the inode
//!   (rename, hard link). Directories can be marked too; an `O_PATH` fd gives `EBADF`; a tmpfs
//!   file gives `EOPNOTSUPP`. Unmarking an unmarked inode gives `ENOENT`. [unmark_and_mark_errors,
//!   unmarked_files_and_metadata_operations_produce_no_event]
//! - **read / pread / readv / O_DIRECT** of N bytes at off: one event, page-aligned range
//!   (4096 at 1 MiB -> (1048576, 4096); 10 at 100 -> (0, 4096); 4000 at 3000 -> (0, 8192);
//!   readv 100+5000 at 8192 -> (8192, 8192)). Not clipped at EOF; a read at or past EOF is an
//!   event too (so `std::fs::read` of a 4 MiB + 2 file gives (0, 4 MiB + 4096) then
//!   (4 MiB, 4096)); a 0-byte read at 0 gives (0, 0). [read_and_write_ranges_are_page_aligned]
//! - **write / pwrite**: same rule (5 bytes at 2 MiB -> (2 MiB, 4096)). `O_APPEND` writes
//!   report offset 0 (the fd position), not the end of file. [same test]
//! - **mmap**: one event at `mmap()` time for the mapped range, page-rounded, not clipped at EOF
//!   (8192 at 1 MiB -> (1 MiB, 8192); 100 bytes -> (0, 4096)), shared or private, read or
//!   read-write. Page faults on the mapping generate NO event (hooks on faults are disabled in
//!   the kernel), so the range must be filled before answering the mmap event. A denied
//!   mmap fails with the errno sent. [mmap_is_one_event_for_the_mapped_range_and_faults_are_silent]
//! - **truncate / ftruncate** to size S (shrink, grow, or same size): one event with range
//!   `[round_down(S), round_up(S))`, i.e. count 0 when S is page-aligned (3 MiB -> (3 MiB, 0)),
//!   else one page (3 MiB + 100 -> (3 MiB, 4096)). **open(O_TRUNC) generates no event.**
//!   [truncate_and_fallocate_ranges]
//! - **fallocate** (allocate, punch hole, zero range): the page-rounded range
//!   (10 bytes at 6 MiB + 100 -> (6 MiB, 4096)). [same test]
//! - **copy_file_range** (stub as source or as destination), **sendfile**, **splice** from the
//!   stub: one event with the exact (aligned) range. [direct_io_splice_sendfile_copy_file_range]
//! - **exec** of a marked file: several events (the kernel's header reads and the loader's
//!   mmaps; /bin/true: (0,4096) x3, (0,40960), (8192,16384), (24576,8192), (28672,8192));
//!   denying the first with EIO makes `execve` fail with EIO. [exec_of_a_marked_file]
//! - **No events**: stat, fstat, readdir, open + close, lseek(SEEK_DATA), posix_fadvise
//!   WILLNEED, readahead(2), rename, link, unlink. [unmarked_files_and_metadata_operations_...]
//! - **Open-time decision**: an fd opened before its inode was marked never generates events,
//!   even if the fs already had other pre-content marks at that open, and even for mmap.
//!   A new open after the mark does. An fd opened while a mark existed keeps generating events
//!   for a later group after the first is closed. So a process that has a file open when it
//!   is turned into a stub reads the holes: stub only files nobody has open (e.g. take a
//!   write lease first). [decision_is_taken_at_open_time, closing_the_group_allows_pending_events]
//! - **Filling**: writing (and reading) through the event's fd generates no event; the reader
//!   then sees the written data. [fill_through_event_fd_creates_no_event]
//! - **Answers**: the reader blocks until the answer; `FAN_DENY_ERRNO(e)` makes its syscall
//!   fail with exactly `e` for EPERM, EIO, EBUSY, EAGAIN, ENOSPC (EDQUOT, ETXTBSY also pass);
//!   any other errno makes the response write fail with EINVAL and the event stays pending.
//!   `event.pid` is the reader's thread id (`FAN_REPORT_TID`). [deny_errno_is_what_the_reader_sees,
//!   read_blocks_until_allow_and_reports_exact_range]
//! - **Listener death**: closing the event fd without answering leaves the reader blocked;
//!   closing the group (or SIGKILL of the listening process) ALLOWS every pending event, read
//!   or still queued: readers of a stub then see holes (zeros) and later accesses have no
//!   listener. [closing_the_group_allows_pending_events, killed_listener_process_allows_readers]
//! - **Fallback** ([`Mode::OpenPerm`]): `FAN_OPEN_PERM` on the inode blocks `open()`, no range
//!   record; Deny(EIO) fails the open with EIO; reads after an allowed open are not events.
//!   [open_perm_fallback_blocks_open_without_range]

mod event;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use event::{Event, Range};

/// Pre-content access hook (`FAN_PRE_ACCESS`, Linux 6.14+): before a read or write of a range.
pub const FAN_PRE_ACCESS: u64 = 0x0010_0000;
/// Info record type carrying the accessed range of a pre-content event.
pub const FAN_EVENT_INFO_TYPE_RANGE: u8 = 6;
/// Bits of the response that carry an errno (`FAN_ERRNO_BITS`).
const FAN_ERRNO_BITS: u32 = 8;
/// Shift of the errno inside the response (`FAN_ERRNO_SHIFT`).
const FAN_ERRNO_SHIFT: u32 = 32 - FAN_ERRNO_BITS;

/// `FAN_DENY_ERRNO(err)`: a deny response that makes the accessing syscall fail with `errno`
/// (only in `FAN_CLASS_PRE_CONTENT` groups, Linux 6.14+).
pub const fn fan_deny_errno(errno: i32) -> u32 {
    libc::FAN_DENY | (((errno as u32) & ((1 << FAN_ERRNO_BITS) - 1)) << FAN_ERRNO_SHIFT)
}

/// Errors of this layer: the failing syscall and the OS error, or a malformed event stream.
#[derive(Debug, thiserror::Error)]
pub enum FanError {
    /// A syscall failed.
    #[error("{syscall}: {source}")]
    Sys {
        /// The syscall (and the detail that matters, e.g. the mark operation).
        syscall: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The kernel returned a buffer this parser does not understand.
    #[error("malformed fanotify event: {what}")]
    Malformed {
        /// What was wrong.
        what: &'static str,
    },
    /// `Response::Deny` with an errno that cannot be encoded (must be 1..=255).
    #[error("errno {0} cannot be sent in a fanotify deny response")]
    InvalidErrno(i32),
    /// The requested mode is not supported by this kernel.
    #[error("fanotify mode {0:?} is not supported by this kernel")]
    Unsupported(Mode),
}

impl FanError {
    fn last(syscall: &'static str) -> Self {
        FanError::Sys {
            syscall,
            source: io::Error::last_os_error(),
        }
    }

    /// The OS error, if this is a syscall failure.
    pub fn os_error(&self) -> Option<&io::Error> {
        match self {
            FanError::Sys { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// How the group learns about accesses to stubs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `FAN_PRE_ACCESS`: an event per read/write with its range (Linux 6.14+).
    PreAccess,
    /// `FAN_OPEN_PERM`: an event per open of a marked file, no range (whole-file recall).
    OpenPerm,
}

impl Mode {
    /// The event mask marks are added with in this mode.
    pub fn mask(self) -> u64 {
        match self {
            Mode::PreAccess => FAN_PRE_ACCESS,
            Mode::OpenPerm => libc::FAN_OPEN_PERM,
        }
    }
}

/// The answer to a permission / pre-content event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Let the access proceed (after the range has been filled).
    Allow,
    /// Fail the access with this errno, sent as `FAN_DENY_ERRNO` (the kernel accepts EPERM,
    /// EIO, EBUSY, ETXTBSY, EAGAIN, ENOSPC, EDQUOT; others fail with EINVAL and the event stays
    /// pending). In [`Mode::OpenPerm`], if the kernel refuses it (no `FAN_DENY_ERRNO`), a plain
    /// `FAN_DENY` is sent and the opener sees EPERM.
    Deny(i32),
}

/// One fanotify group of class `FAN_CLASS_PRE_CONTENT`.
#[derive(Debug)]
pub struct Group {
    fd: OwnedFd,
    mode: Mode,
    overflows: AtomicU64,
}

/// Flags of `fanotify_init`: pre-content class, the accessing thread's id in each event,
/// no queue or mark limits.
const INIT_FLAGS: libc::c_uint = libc::FAN_CLASS_PRE_CONTENT
    | libc::FAN_REPORT_TID
    | libc::FAN_CLOEXEC
    | libc::FAN_UNLIMITED_QUEUE
    | libc::FAN_UNLIMITED_MARKS;
/// `event_f_flags` of `fanotify_init`: event fds are opened read-write so the HSM can fill.
const EVENT_F_FLAGS: libc::c_uint = (libc::O_RDWR | libc::O_LARGEFILE | libc::O_CLOEXEC) as _;
/// Size of the buffer one `read(2)` fills (about 340 range events).
const READ_BUF: usize = 16 * 1024;

impl Group {
    /// A new group in the best mode the kernel supports ([`Mode::PreAccess`] if it can).
    pub fn new() -> Result<Group, FanError> {
        let fd = init()?;
        let mode = if probe_pre_access(&fd)? {
            Mode::PreAccess
        } else {
            Mode::OpenPerm
        };
        tracing::debug!(?mode, "fanotify group created");
        Ok(Group {
            fd,
            mode,
            overflows: AtomicU64::new(0),
        })
    }

    /// A new group in a given mode (e.g. `OpenPerm` to exercise the fallback on a new kernel).
    pub fn with_mode(mode: Mode) -> Result<Group, FanError> {
        let fd = init()?;
        if mode == Mode::PreAccess && !probe_pre_access(&fd)? {
            return Err(FanError::Unsupported(mode));
        }
        Ok(Group {
            fd,
            mode,
            overflows: AtomicU64::new(0),
        })
    }

    /// A group created elsewhere (by [`Group::new`] or [`Group::with_mode`] in another
    /// process, received over a Unix socket), in the mode it was created with.
    pub fn from_fd(fd: OwnedFd, mode: Mode) -> Group {
        Group {
            fd,
            mode,
            overflows: AtomicU64::new(0),
        }
    }

    /// The mode chosen at creation.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Number of `FAN_Q_OVERFLOW` records seen so far. Permission events are never dropped
    /// and the queue is unlimited, so this stays 0 unless the kernel behaves unexpectedly.
    pub fn overflows(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
    }

    /// Marks the inode `fd` refers to (a stub): accesses to it now generate events.
    /// Only regular files are accepted for pre-content events (the kernel returns EINVAL
    /// otherwise) and only on filesystems that allow HSM (not tmpfs: EOPNOTSUPP/EINVAL).
    pub fn mark(&self, fd: BorrowedFd<'_>) -> Result<(), FanError> {
        self.modify(libc::FAN_MARK_ADD, fd, 0, "fanotify_mark(FAN_MARK_ADD)")
    }

    /// Like [`Group::mark`], with `extra` events besides the mode's (e.g. `FAN_OPEN_PERM`
    /// in [`Mode::PreAccess`], to see who opens a stub).
    pub fn mark_with(&self, fd: BorrowedFd<'_>, extra: u64) -> Result<(), FanError> {
        self.modify(libc::FAN_MARK_ADD, fd, extra, "fanotify_mark(FAN_MARK_ADD)")
    }

    /// Removes the mark of the inode `fd` refers to (the file is resident again). Fails with
    /// `ENOENT` if the inode was not marked.
    pub fn unmark(&self, fd: BorrowedFd<'_>) -> Result<(), FanError> {
        self.modify(
            libc::FAN_MARK_REMOVE,
            fd,
            0,
            "fanotify_mark(FAN_MARK_REMOVE)",
        )
    }

    /// Removes a mark made with [`Group::mark_with`] and the same `extra`.
    pub fn unmark_with(&self, fd: BorrowedFd<'_>, extra: u64) -> Result<(), FanError> {
        self.modify(
            libc::FAN_MARK_REMOVE,
            fd,
            extra,
            "fanotify_mark(FAN_MARK_REMOVE)",
        )
    }

    fn modify(
        &self,
        op: libc::c_uint,
        fd: BorrowedFd<'_>,
        extra: u64,
        name: &'static str,
    ) -> Result<(), FanError> {
        let flags = op | libc::FAN_MARK_INODE;
        // SAFETY: plain syscall; both fds are valid for the call's duration (borrowed), and a
        // null pathname makes the kernel mark the object `fd` refers to.
        let rc = unsafe {
            libc::fanotify_mark(
                self.fd.as_raw_fd(),
                flags,
                self.mode.mask() | extra,
                fd.as_raw_fd(),
                std::ptr::null(),
            )
        };
        if rc < 0 {
            return Err(FanError::last(name));
        }
        Ok(())
    }

    /// Blocks until at least one event is available and returns all events read.
    /// Records without an fd (`FAN_Q_OVERFLOW`, `FAN_NOFD`) are logged and counted, not returned.
    pub fn read_events(&self) -> Result<Vec<Event>, FanError> {
        let mut buf = vec![0u8; READ_BUF];
        let n = loop {
            // SAFETY: `buf` is a live, writable allocation of `buf.len()` bytes.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                break n as usize;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(FanError::Sys {
                    syscall: "read(fanotify)",
                    source: err,
                });
            }
        };
        let parsed = event::parse(&buf[..n])?;
        if parsed.overflows > 0 {
            self.overflows
                .fetch_add(parsed.overflows, Ordering::Relaxed);
            tracing::warn!(count = parsed.overflows, "fanotify queue overflow");
        }
        if parsed.no_fd > 0 {
            tracing::warn!(count = parsed.no_fd, "fanotify events without fd ignored");
        }
        Ok(parsed.events)
    }

    /// Like [`Group::read_events`] but waits at most `timeout`; returns an empty vector when
    /// nothing arrived in time. Meant for a reader thread that checks a shutdown flag between
    /// calls. Only one thread should read a group (two readers may race past `poll`).
    pub fn read_events_timeout(&self, timeout: Duration) -> Result<Vec<Event>, FanError> {
        if !poll_readable(self.fd.as_fd(), timeout)? {
            return Ok(Vec::new());
        }
        self.read_events()
    }

    /// Answers the event whose fd is `ev_fd` (use `event.fd.as_raw_fd()`, then drop the event).
    pub fn respond(&self, ev_fd: RawFd, response: Response) -> Result<(), FanError> {
        let code = match response {
            Response::Allow => libc::FAN_ALLOW,
            Response::Deny(errno) if !(1..=255).contains(&errno) => {
                return Err(FanError::InvalidErrno(errno))
            }
            Response::Deny(libc::EPERM) => libc::FAN_DENY,
            Response::Deny(errno) if self.mode == Mode::PreAccess => fan_deny_errno(errno),
            // An OpenPerm group may be on a kernel without FAN_DENY_ERRNO: try it, then
            // fall back to a plain deny (the opener sees EPERM).
            Response::Deny(errno) => match self.write_response(ev_fd, fan_deny_errno(errno)) {
                Ok(()) => return Ok(()),
                Err(e) if e.os_error().and_then(io::Error::raw_os_error) == Some(libc::EINVAL) => {
                    libc::FAN_DENY
                }
                Err(e) => return Err(e),
            },
        };
        self.write_response(ev_fd, code)
    }

    fn write_response(&self, ev_fd: RawFd, code: u32) -> Result<(), FanError> {
        let resp = libc::fanotify_response {
            fd: ev_fd,
            response: code,
        };
        let len = std::mem::size_of::<libc::fanotify_response>();
        // SAFETY: `resp` is a live, initialised `struct fanotify_response` of `len` bytes.
        let n = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&resp as *const libc::fanotify_response).cast(),
                len,
            )
        };
        if n < 0 {
            return Err(FanError::last("write(fanotify_response)"));
        }
        if n as usize != len {
            return Err(FanError::Sys {
                syscall: "write(fanotify_response)",
                source: io::Error::new(io::ErrorKind::WriteZero, "short write"),
            });
        }
        Ok(())
    }
}

impl AsFd for Group {
    /// The group fd, for callers that `poll` it together with their own shutdown fd.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Group {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn init() -> Result<OwnedFd, FanError> {
    // SAFETY: plain syscall with constant flags; it returns a new fd or -1.
    let fd = unsafe { libc::fanotify_init(INIT_FLAGS, EVENT_F_FLAGS) };
    if fd < 0 {
        return Err(FanError::last("fanotify_init"));
    }
    // SAFETY: `fd` was just returned by fanotify_init and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether the kernel knows `FAN_PRE_ACCESS`, without adding a mark: removing a mark that
/// does not exist fails with ENOENT once the mask has been validated, and with EINVAL when
/// the mask has unknown bits (kernels before 6.14).
fn probe_pre_access(group: &OwnedFd) -> Result<bool, FanError> {
    // SAFETY: plain syscall; the path is a valid NUL-terminated string.
    let rc = unsafe {
        libc::fanotify_mark(
            group.as_raw_fd(),
            libc::FAN_MARK_REMOVE | libc::FAN_MARK_INODE,
            FAN_PRE_ACCESS,
            libc::AT_FDCWD,
            c"/".as_ptr(),
        )
    };
    let err = io::Error::last_os_error();
    match (rc, err.raw_os_error()) {
        (0, _) => Ok(true), // cannot happen (no mark existed), but the mask was accepted
        (_, Some(libc::ENOENT)) => Ok(true),
        (_, Some(libc::EINVAL)) => Ok(false),
        _ => Err(FanError::Sys {
            syscall: "fanotify_mark(probe FAN_PRE_ACCESS)",
            source: err,
        }),
    }
}

/// Waits until `fd` is readable or `timeout` has passed (EINTR resumes with the time left).
fn poll_readable(fd: BorrowedFd<'_>, timeout: Duration) -> Result<bool, FanError> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Round up so a sub-millisecond remainder still waits instead of spinning.
        let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one live pollfd, matching the count 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc > 0 {
            return Ok(true);
        }
        if rc == 0 {
            return Ok(false);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(FanError::Sys {
                syscall: "poll(fanotify)",
                source: err,
            });
        }
    }
}
