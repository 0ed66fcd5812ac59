//! The keeper: a small process beside the daemon that holds a second reference to the
//! listener's fanotify group, so that a daemon dying without stopping (kill -9, the OOM
//! killer, an abort) does not close the group. A closed group lets every pending access
//! through, and stubs would read as holes (zeros) until a daemon ran again.
//!
//! While the keeper holds the group and no daemon is attached:
//! - accesses to stubs wait in the kernel (the marks belong to the group and survive);
//! - the accesses the dead daemon had read but not answered are answered `EIO` at once.
//!   fanotify matches an answer by the fd number the event was read with, and those
//!   numbers died with the daemon, so every number below the open-file limit is tried
//!   (`tests/fanotify.rs::an_event_whose_fd_was_closed_is_answered_by_its_number`);
//! - after `grace` without a daemon, the keeper answers every access itself with `EIO`;
//! - a daemon that starts takes the group over (`Listener::start`) and watches every
//!   stub again.
//!
//! A daemon that stops cleanly while stubs remain leaves the keeper holding the group too,
//! failing every access to a stub with `EIO` at once (as Windows Cloud Files fails a
//! placeholder whose provider is not running), until a daemon runs again: a backup taken
//! while fvfs is stopped must not copy zeros. With no stub left it lets the keeper go,
//! which exits. Stubs read as holes only while no keeper runs at all: before the first
//! start after boot, or once the keeper is killed.
//!
//! Protocol, on the abstract Unix stream socket `fvfs-hsm-keeper-<fs uuid>` (one keeper
//! per filesystem and host). Both ends check that the peer runs as their own user
//! (`SO_PEERCRED`): a group fd lets its holder fail any access to a stub and write into
//! every stub, so it never goes to another user, whoever binds or connects first.
//! - On connect the keeper sends `G` + mode byte + the group fd (SCM_RIGHTS) if it holds
//!   one, else `N`, and the daemon answers with `G` + mode + its own group.
//! - The connection stays open for the daemon's life. `B` from the daemon (a clean stop,
//!   no stub left) makes the keeper close the group and exit; `S` (a clean stop with
//!   stubs) makes it fail accesses at once after the daemon is gone; the end of the stream
//!   otherwise is the daemon's death (accesses wait `grace`). A second daemon while one is
//!   attached gets `X` and no group.

use crate::error::{HsmError, Result};
use crate::fanotify::{Group, Mode, Response};
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

/// How long a daemon waits for a keeper it spawned to listen, and a keeper with no group
/// for its first daemon.
const STARTUP: Duration = Duration::from_secs(10);
/// Bound of one handshake's reads.
const HANDSHAKE: Duration = Duration::from_secs(5);
/// The highest fd number tried when the dead daemon's unanswered events are failed.
const SWEEP_MAX: u64 = 1 << 20;

/// How a daemon runs its keeper.
#[derive(Clone, Debug)]
pub struct KeeperSpec {
    /// Program and arguments that run [`run`] (the daemon's own binary: `fvfsd hsm
    /// keep`); `--fs UUID --grace-secs N` are appended.
    pub command: Vec<OsString>,
    /// The filesystem whose stubs the group watches.
    pub fs: uuid::Uuid,
    /// How long accesses wait for a new daemon before the keeper fails them with EIO.
    pub grace: Duration,
}

fn address(fs: &uuid::Uuid) -> io::Result<SocketAddr> {
    SocketAddr::from_abstract_name(format!("fvfs-hsm-keeper-{fs}"))
}

fn mode_byte(m: Mode) -> u8 {
    match m {
        Mode::PreAccess => b'P',
        Mode::OpenPerm => b'O',
    }
}

fn mode_of(b: u8) -> io::Result<Mode> {
    match b {
        b'P' => Ok(Mode::PreAccess),
        b'O' => Ok(Mode::OpenPerm),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unknown group mode",
        )),
    }
}

/// The daemon's end of the link. Dropping it is a clean stop with stubs left (the keeper
/// goes on failing their accesses); [`Link::stop`] says whether any is left.
pub struct Link {
    stream: UnixStream,
    /// What the drop sends: `S`, `B`, or nothing (the daemon's death as far as the keeper
    /// can tell).
    last: Option<u8>,
}

impl Link {
    fn new(stream: UnixStream) -> Link {
        Link {
            stream,
            last: Some(b'S'),
        }
    }

    /// A clean stop: with `stubs_left`, the keeper fails their accesses until a daemon
    /// runs again; without, it lets the group go and exits.
    pub fn stop(mut self, stubs_left: bool) {
        self.last = Some(if stubs_left { b'S' } else { b'B' });
    }

    /// Leaves the keeper holding the group, as if this daemon had died: for a daemon
    /// that cannot start (its stubs must not read as holes meanwhile).
    pub fn abandon(mut self) {
        self.last = None;
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(b) = self.last {
            // A failure means the keeper is gone already.
            let _ = self.stream.write_all(&[b]);
        }
    }
}

/// Daemon side: the group to listen on, shared with a keeper. A keeper that holds the
/// group of a daemon that died gives it over (second value `true`); otherwise `new_group`
/// makes one and a keeper is spawned for it. When no keeper can be had, the group is the
/// daemon's alone (logged: its death would let stubs read as holes).
pub fn attach(
    spec: &KeeperSpec,
    new_group: impl FnOnce() -> std::result::Result<Group, crate::fanotify::FanError>,
) -> Result<(Group, Option<Link>, bool)> {
    let listener_err = |e: &dyn std::fmt::Display| HsmError::Listener(e.to_string());
    let stream = match connect(&spec.fs) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => None,
        Err(e) => return Err(listener_err(&format!("the keeper's socket: {e}"))),
    };
    let stream = match stream {
        Some(s) => s,
        None => match spawn(spec) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no HSM keeper: if this daemon dies, stubs read as holes until it runs again");
                return Ok((new_group().map_err(|e| listener_err(&e))?, None, false));
            }
        },
    };
    stream
        .set_read_timeout(Some(HANDSHAKE))
        .map_err(|e| listener_err(&e))?;
    let (tag, fd) = recv(&stream).map_err(|e| listener_err(&format!("keeper handshake: {e}")))?;
    match (tag, fd) {
        ([b'G', m], Some(fd)) => {
            let mode = mode_of(m).map_err(|e| listener_err(&e))?;
            stream
                .set_read_timeout(None)
                .map_err(|e| listener_err(&e))?;
            Ok((Group::from_fd(fd, mode), Some(Link::new(stream)), true))
        }
        ([b'N', _], None) => {
            let group = new_group().map_err(|e| listener_err(&e))?;
            send(
                &stream,
                &[b'G', mode_byte(group.mode())],
                Some(group.as_fd()),
            )
            .map_err(|e| listener_err(&format!("keeper handshake: {e}")))?;
            stream
                .set_read_timeout(None)
                .map_err(|e| listener_err(&e))?;
            Ok((group, Some(Link::new(stream)), false))
        }
        ([b'X', _], _) => Err(HsmError::Listener(
            "another daemon of this filesystem runs on this host".into(),
        )),
        _ => Err(HsmError::Listener(
            "keeper handshake: unexpected message".into(),
        )),
    }
}

/// Connects to the keeper of `fs`, checking it runs as this user.
fn connect(fs: &uuid::Uuid) -> io::Result<UnixStream> {
    let s = UnixStream::connect_addr(&address(fs)?)?;
    same_user(s.as_fd())?;
    Ok(s)
}

/// Starts a keeper and connects to it once it listens.
fn spawn(spec: &KeeperSpec) -> io::Result<UnixStream> {
    let (program, args) = spec
        .command
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no keeper command"))?;
    let mut child = std::process::Command::new(program)
        .args(args)
        .arg("--fs")
        .arg(spec.fs.to_string())
        .arg("--grace-secs")
        .arg(spec.grace.as_secs().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        // Its own process group: a terminal's Ctrl-C stops the daemon cleanly (which
        // lets the keeper go) and never kills the keeper first.
        .process_group(0)
        .spawn()?;
    let deadline = Instant::now() + STARTUP;
    let stream = loop {
        match connect(&spec.fs) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
            Err(_) => {
                if let Ok(Some(st)) = child.try_wait() {
                    return Err(io::Error::other(format!("the keeper exited: {st}")));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    // Reaped when it exits, so it never lingers as a zombie beside a live daemon.
    std::thread::Builder::new()
        .name("hsm-keeper-reaper".into())
        .spawn(move || {
            let _ = child.wait();
        })?;
    Ok(stream)
}

/// The keeper process: holds the group of filesystem `fs` while its daemon lives, and
/// after it (see the module comment). Returns when a daemon stops cleanly with no stub
/// left, when no daemon brings a group within its first seconds, or when another keeper
/// of `fs` already runs.
pub fn run(fs: &uuid::Uuid, grace: Duration) -> io::Result<()> {
    let listener = match UnixListener::bind_addr(&address(fs)?) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            tracing::info!(%fs, "an HSM keeper of this filesystem runs already");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let mut keeper = Keeper {
        group: None,
        daemon: None,
        alone_since: Instant::now(),
        grace,
        stopping: false,
        stopped: false,
    };
    loop {
        if keeper.group.is_none()
            && keeper.daemon.is_none()
            && keeper.alone_since.elapsed() >= STARTUP
        {
            return Ok(());
        }
        let failing = keeper.failing();
        let timeout = match (&keeper.daemon, &keeper.group) {
            (Some(_), _) => None,
            (None, None) => Some(STARTUP.saturating_sub(keeper.alone_since.elapsed())),
            (None, Some(_)) if failing => None,
            (None, Some(_)) => Some(grace.saturating_sub(keeper.alone_since.elapsed())),
        };
        let group_fd = match (&keeper.group, failing) {
            (Some(g), true) => Some(g.as_fd()),
            _ => None,
        };
        let ready = poll3(
            listener.as_fd(),
            keeper.daemon.as_ref().map(|d| d.as_fd()),
            group_fd,
            timeout,
        )?;
        if ready[0] {
            match listener.accept() {
                Ok((s, _)) => keeper.welcome(s),
                Err(e) => tracing::warn!(error = %e, "HSM keeper: accept failed"),
            }
        }
        if ready[1] && keeper.daemon_left() {
            tracing::info!(
                "HSM keeper: the daemon stopped with no stub left; letting the group go"
            );
            return Ok(());
        }
        if ready[2] {
            keeper.fail_pending();
        }
    }
}

struct Keeper {
    group: Option<Group>,
    daemon: Option<UnixStream>,
    /// When the last daemon left (or the keeper started).
    alone_since: Instant,
    grace: Duration,
    /// The attached daemon said it stops cleanly with stubs left (`S`).
    stopping: bool,
    /// The last daemon stopped cleanly: accesses fail at once, with no grace.
    stopped: bool,
}

impl Keeper {
    /// Whether accesses are answered EIO by the keeper now (no daemon for `grace`).
    fn failing(&self) -> bool {
        self.daemon.is_none()
            && self.group.is_some()
            && (self.stopped || self.alone_since.elapsed() >= self.grace)
    }

    fn welcome(&mut self, s: UnixStream) {
        if let Err(e) = self.handshake(s) {
            tracing::warn!(error = %e, "HSM keeper: a connection failed its handshake");
        }
    }

    fn handshake(&mut self, s: UnixStream) -> io::Result<()> {
        same_user(s.as_fd())?;
        s.set_read_timeout(Some(HANDSHAKE))?;
        if self.daemon.is_some() {
            return send(&s, b"X", None);
        }
        match &self.group {
            Some(g) => send(&s, &[b'G', mode_byte(g.mode())], Some(g.as_fd()))?,
            None => {
                send(&s, b"N", None)?;
                let ([tag, m], fd) = recv(&s)?;
                match (tag, fd) {
                    (b'G', Some(fd)) => self.group = Some(Group::from_fd(fd, mode_of(m)?)),
                    _ => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "expected a group",
                        ))
                    }
                }
            }
        }
        s.set_read_timeout(None)?;
        self.daemon = Some(s);
        self.stopping = false;
        self.stopped = false;
        Ok(())
    }

    /// Reads from the attached daemon: true on `B` (a clean stop, no stub left). `S` is a
    /// clean stop with stubs left. The end of its stream is its exit: the events it had
    /// read and not answered fail now, and later accesses fail at once after `S`, after
    /// the grace otherwise (a death: a supervisor may bring a daemon back).
    fn daemon_left(&mut self) -> bool {
        let Some(d) = self.daemon.as_mut() else {
            return false;
        };
        let mut b = [0u8; 1];
        match d.read(&mut b) {
            Ok(1) if b[0] == b'B' => return true,
            Ok(1) => {
                self.stopping |= b[0] == b'S';
                return false;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return false,
            _ => {}
        }
        self.daemon = None;
        self.alone_since = Instant::now();
        self.stopped = self.stopping;
        let failed = self.group.as_ref().map(sweep).unwrap_or(0);
        if self.stopped {
            tracing::info!(
                failed,
                "HSM keeper: the daemon stopped with stubs left; accesses to them fail with EIO until a daemon runs again"
            );
        } else {
            tracing::warn!(
                failed,
                grace_secs = self.grace.as_secs(),
                "HSM keeper: the daemon died; the accesses it had not answered failed with EIO, new ones wait for a daemon up to the grace, then fail with EIO"
            );
        }
        false
    }

    fn fail_pending(&self) {
        let Some(g) = &self.group else { return };
        match g.read_events_timeout(Duration::ZERO) {
            Ok(events) => {
                for ev in events {
                    if let Err(e) = g.respond(ev.fd.as_raw_fd(), Response::Deny(libc::EIO)) {
                        tracing::warn!(error = %e, "HSM keeper: could not fail an access");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "HSM keeper: reading events failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Answers EIO every event read by a process that is gone, by trying each fd number it
/// may have used (below this process's open-file limit, which a keeper inherits from its
/// daemon). Returns how many were answered.
fn sweep(g: &Group) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct passed.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(SWEEP_MAX)
    } else {
        SWEEP_MAX
    };
    (0..max)
        .filter(|&n| g.respond(n as RawFd, Response::Deny(libc::EIO)).is_ok())
        .count() as u64
}

/// Refuses a peer that runs as another user.
fn same_user(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if cred.uid != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("the HSM keeper's peer runs as uid {}, not {me}", cred.uid),
        ));
    }
    Ok(())
}

/// Space for one fd in a control message, 8-aligned as `cmsghdr` needs.
#[repr(C, align(8))]
struct CmsgBuf([u8; 32]);

fn send(s: &UnixStream, bytes: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let mut buf = CmsgBuf([0; 32]);
    // SAFETY: a zeroed msghdr is valid (no iov, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG_* compute sizes and pointers inside `buf`, which holds
        // CMSG_SPACE(sizeof(int)) = 24 bytes on this target; the header and the fd are
        // written within it.
        unsafe {
            msg.msg_control = buf.0.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd.as_raw_fd());
        }
    }
    // SAFETY: `msg` points at live `iov` and `buf` for the call's duration.
    let n = unsafe { libc::sendmsg(s.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != bytes.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short send"));
    }
    Ok(())
}

/// Receives one message: its tag (and mode byte for `G`), and the fd it carried.
fn recv(s: &UnixStream) -> io::Result<([u8; 2], Option<OwnedFd>)> {
    let mut bytes = [0u8; 2];
    let mut iov = libc::iovec {
        iov_base: bytes.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut buf = CmsgBuf([0; 32]);
    // SAFETY: a zeroed msghdr is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = buf.0.as_mut_ptr().cast();
    msg.msg_controllen = buf.0.len() as _;
    // SAFETY: `msg` points at live `iov` (1 byte of `bytes`) and `buf`.
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the peer left",
        ));
    }
    let mut fd = None;
    // SAFETY: the kernel filled `msg_control` up to `msg_controllen`; CMSG_FIRSTHDR /
    // CMSG_NXTHDR stay within it, and an SCM_RIGHTS record holds whole ints, each a new
    // fd owned by this process.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    let raw = std::ptr::read_unaligned(data.add(i));
                    let owned = OwnedFd::from_raw_fd(raw);
                    if fd.is_none() {
                        fd = Some(owned);
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if bytes[0] == b'G' {
        (&*s).read_exact(&mut bytes[1..])?;
    }
    Ok((bytes, fd))
}

/// Waits until one of up to three fds is readable (or hung up), or `timeout` passes.
fn poll3(
    a: BorrowedFd<'_>,
    b: Option<BorrowedFd<'_>>,
    c: Option<BorrowedFd<'_>>,
    timeout: Option<Duration>,
) -> io::Result<[bool; 3]> {
    let pfd = |fd: Option<BorrowedFd<'_>>| libc::pollfd {
        fd: fd.map(|f| f.as_raw_fd()).unwrap_or(-1),
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = [pfd(Some(a)), pfd(b), pfd(c)];
    let ms = match timeout {
        None => -1,
        Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
    };
    // SAFETY: `fds` holds three live pollfds; a negative fd is ignored by poll.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 3, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok([false; 3]);
        }
        return Err(e);
    }
    Ok(fds.map(|f| f.revents != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_tag_mode_and_fd() {
        let (a, b) = UnixStream::pair().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        send(&a, b"GP", Some(file.as_fd())).unwrap();
        let (tag, fd) = recv(&b).unwrap();
        assert_eq!(&tag, b"GP");
        let fd = fd.expect("an fd came along");
        assert_ne!(fd.as_raw_fd(), file.as_raw_fd());
        let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert_eq!(target, std::path::Path::new("/dev/null"));
        send(&a, b"N", None).unwrap();
        let (tag, fd) = recv(&b).unwrap();
        assert_eq!(tag[0], b'N');
        assert!(fd.is_none());
        drop(a);
        assert_eq!(recv(&b).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        same_user(b.as_fd()).unwrap();
    }
}
