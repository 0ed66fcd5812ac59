//! The listener: one fanotify pre-content group whose marks are the stubs' inodes, a
//! thread that reads its events, and one task per event that recalls the touched range
//! through the event's descriptor and answers. Resident files carry no mark and cost
//! nothing.
//!
//! Invariants:
//! - `start` returns only after every stub in the catalog is watched again (recover.rs),
//!   and the listener is the `Watch` releases go through, so a stub is never unwatched
//!   while the listener lives.
//! - Every event is answered exactly once: Allow after its range is resident, or
//!   `Deny(EIO)` when the recall failed; a reader never proceeds into holes.
//! - With a keeper (keeper.rs) the group outlives the daemon: after its death accesses
//!   wait for the next daemon, which takes the group over here, or fail with EIO; after a
//!   clean stop with stubs left they fail with EIO at once. Never holes. Without a keeper,
//!   when the listener stops (or its process dies) the kernel allows what is pending and
//!   stubs read as holes until it runs again (docs/SEMANTICS.md).

use crate::error::{HsmError, Result};
use crate::fanotify::{Event, Group, Mode, Response};
use crate::keeper::{self, KeeperSpec, Link};
use crate::{handle, BulkPolicy, Hsm, Watch};
use fvfs_meta::HsmState;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the reader thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(200);

struct GroupWatch(Arc<Group>);

/// Besides the range events, opens of a stub are reported: tools that look for data
/// with `SEEK_DATA` (which reports no event) before they read would copy the holes.
fn extra(g: &Group) -> u64 {
    match g.mode() {
        Mode::PreAccess => libc::FAN_OPEN_PERM,
        Mode::OpenPerm => 0,
    }
}

impl Watch for GroupWatch {
    fn watch(&self, fd: BorrowedFd<'_>) -> std::io::Result<()> {
        self.0
            .mark_with(fd, extra(&self.0))
            .map_err(std::io::Error::other)
    }
    fn unwatch(&self, fd: BorrowedFd<'_>) -> std::io::Result<()> {
        self.0
            .unmark_with(fd, extra(&self.0))
            .map_err(std::io::Error::other)
    }
}

/// The command name of the process of thread `tid` (its thread group's
/// `/proc/TGID/comm`: a worker thread may carry a name of its own), empty when it is gone.
fn command_of(tid: i32) -> String {
    let tgid = std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse::<i32>().ok())
        })
        .unwrap_or(tid);
    std::fs::read_to_string(format!("/proc/{tgid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default()
}

/// Whether thread `tid` is blocked in a call that only reads the file: a read, an exec,
/// or a mapping that cannot write to it. The pages it asked for may then be answered
/// before the rest of their blocks is written (recall.rs): no byte, size or time of the
/// file changes before the recall's record, since any other access waits for it. A
/// write would change the file under the recall (its ctime recorded as the recall's), a
/// truncate would see the rest of its blocks written past its new end. Unknown (no
/// `/proc/TID/syscall`, an io_uring worker, any other call): no.
fn reads_only(tid: i32) -> bool {
    const READS: &[libc::c_long] = &[
        libc::SYS_read,
        libc::SYS_pread64,
        libc::SYS_readv,
        libc::SYS_preadv,
        libc::SYS_preadv2,
        libc::SYS_execve,
        libc::SYS_execveat,
    ];
    let Ok(line) = std::fs::read_to_string(format!("/proc/{tid}/syscall")) else {
        return false;
    };
    // "NR ARG0 … ARG5 SP PC", the arguments in hex.
    let mut words = line.split_whitespace();
    let Some(nr) = words.next().and_then(|w| w.parse::<libc::c_long>().ok()) else {
        return false;
    };
    let args: Vec<u64> = words
        .take(6)
        .filter_map(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok())
        .collect();
    match nr {
        libc::SYS_mmap => {
            args.len() == 6 && {
                let (prot, flags) = (args[2] as i32, args[3] as i32);
                prot & libc::PROT_WRITE == 0 || flags & libc::MAP_SHARED == 0
            }
        }
        _ => READS.contains(&nr),
    }
}

/// A running listener; `stop` (or drop) ends it.
pub struct Listener {
    hsm: Arc<Hsm>,
    group: Arc<Group>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The keeper's hold on the group, let go at a clean stop.
    keeper: Option<Link>,
}

impl Listener {
    /// Creates the group, watches every stub of the catalog (finishing or rolling back
    /// interrupted steps first), and starts reading events. Recalls run on `rt`. With a
    /// `keeper`, the group is the one a keeper holds for a daemon that died (its waiting
    /// accesses are answered from here on), or a new one a keeper is started for.
    pub fn start(
        hsm: Arc<Hsm>,
        rt: tokio::runtime::Handle,
        keeper: Option<&KeeperSpec>,
    ) -> Result<Listener> {
        let (group, link) = match keeper {
            Some(spec) => {
                let (group, link, adopted) = keeper::attach(spec, Group::new)?;
                if adopted {
                    tracing::warn!("HSM listener: took over the fanotify group the HSM keeper held since a daemon died; accesses waiting since are answered now");
                }
                (group, link)
            }
            None => (
                Group::new().map_err(|e| HsmError::Listener(e.to_string()))?,
                None,
            ),
        };
        let group = Arc::new(group);
        match group.mode() {
            Mode::PreAccess => tracing::info!(
                "HSM listener: fanotify FAN_PRE_ACCESS (ranges recalled on access)"
            ),
            Mode::OpenPerm => tracing::warn!(
                "HSM listener: this kernel has no FAN_PRE_ACCESS; falling back to FAN_OPEN_PERM (whole files recalled at open)"
            ),
        }
        let watch: Arc<dyn Watch> = Arc::new(GroupWatch(group.clone()));
        hsm.set_watch(Some(watch.clone()));
        // Events are read from here on: an adopted group's marks are live, and the opens
        // of stubs by `recover` below are events too.
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (hsm, group, stop, rt) = (hsm.clone(), group.clone(), stop.clone(), rt.clone());
            std::thread::Builder::new()
                .name("hsm-listener".into())
                .spawn(move || read_loop(hsm, group, stop, rt))
        };
        let mut listener = Listener {
            hsm: hsm.clone(),
            group,
            stop,
            thread: None,
            keeper: None,
        };
        let recovered = match thread {
            Ok(t) => {
                listener.thread = Some(t);
                rt.block_on(hsm.recover(watch.as_ref())).map(|_| ())
            }
            Err(e) => Err(HsmError::Listener(format!(
                "cannot start the reader thread: {e}"
            ))),
        };
        if let Err(e) = recovered {
            // A listener that cannot start leaves its keeper holding the group.
            drop(listener);
            if let Some(l) = link {
                l.abandon();
            }
            return Err(e);
        }
        listener.keeper = link;
        Ok(listener)
    }

    pub fn mode(&self) -> Mode {
        self.group.mode()
    }

    /// Stops reading events and unregisters the watch. Events already read are answered
    /// by their tasks; the group closes when the last of them is done, unless a keeper
    /// holds it because stubs are left (keeper.rs).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.hsm.set_watch(None);
        if let Some(link) = self.keeper.take() {
            // Unknown counts as stubs left: the keeper then fails their accesses.
            let stubs_left = self
                .hsm
                .meta
                .hsm_list(Some(HsmState::Released))
                .map_or(true, |rows| !rows.is_empty());
            link.stop(stubs_left);
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.halt();
    }
}

fn read_loop(hsm: Arc<Hsm>, group: Arc<Group>, stop: Arc<AtomicBool>, rt: tokio::runtime::Handle) {
    let mut failures = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let events = match group.read_events_timeout(POLL) {
            Ok(ev) => {
                failures = 0;
                ev
            }
            Err(e) => {
                failures += 1;
                tracing::error!(error = %e, "reading fanotify events failed");
                std::thread::sleep(Duration::from_millis(100 * failures.min(50) as u64));
                continue;
            }
        };
        for ev in events {
            let (hsm, group) = (hsm.clone(), group.clone());
            rt.spawn(async move { answer(&hsm, &group, ev).await });
        }
    }
}

/// An open of a stub by a backup tool: refused (EAGAIN), or recalled whole in the one bulk
/// slot.
async fn bulk(hsm: &Hsm, group: &Group, ev: Event, path: &std::path::Path, cmd: &str) {
    let response = match hsm.cfg.bulk_policy {
        BulkPolicy::Refuse => {
            tracing::debug!(path = %path.display(), command = %cmd, "bulk open refused (EAGAIN)");
            Response::Deny(libc::EAGAIN)
        }
        BulkPolicy::Queue => {
            let _one_bulk = hsm.bulk_slot.acquire().await;
            match hsm.recall_fd(ev.fd.as_fd(), path, None).await {
                Ok(_) => Response::Allow,
                // Logged by recall_fd.
                Err(_) => Response::Deny(libc::EIO),
            }
        }
    };
    reply(group, &ev, path, response);
}

/// Answers `ev`; a failed answer is logged here (the reader then waits until the group
/// closes, which allows it).
fn reply(group: &Group, ev: &Event, path: &std::path::Path, response: Response) {
    if let Err(e) = group.respond(ev.fd.as_raw_fd(), response) {
        tracing::error!(path = %path.display(), error = %e, "could not answer a fanotify event");
    }
}

async fn answer(hsm: &Hsm, group: &Group, ev: Event) {
    let path = handle::path_of(ev.fd.as_fd()).unwrap_or_else(|_| "?".into());
    if hsm.punching.lock().contains(&ev.pid) {
        // The access is the punch of a stub released again (release.rs): nothing to fill.
        return reply(group, &ev, &path, Response::Allow);
    }
    let range = match group.mode() {
        Mode::PreAccess if ev.mask & libc::FAN_OPEN_PERM != 0 => {
            // An open: only the commands that skip holes get the whole file now; every
            // other process gets its ranges as it touches them.
            let cmd = command_of(ev.pid);
            if hsm.cfg.bulk_commands.contains(&cmd) {
                return bulk(hsm, group, ev, &path, &cmd).await;
            }
            if !hsm.cfg.whole_file_commands.contains(&cmd) {
                return reply(group, &ev, &path, Response::Allow);
            }
            tracing::debug!(path = %path.display(), command = %cmd, "whole-file recall at open");
            None
        }
        Mode::PreAccess => ev.range.map(|r| (r.offset, r.count)),
        Mode::OpenPerm => None,
    };
    // Answered as soon as the range is durable in the file; a failure is logged by
    // recall_fd_answering, which handled it.
    let answer = |ok: bool| {
        let response = if ok {
            Response::Allow
        } else {
            Response::Deny(libc::EIO)
        };
        reply(group, &ev, &path, response)
    };
    let early = range.is_some() && reads_only(ev.pid);
    if let Ok(r) = hsm
        .recall_fd_answering(ev.fd.as_fd(), &path, range, early, answer)
        .await
    {
        tracing::debug!(path = %path.display(), pid = ev.pid, ?range, bytes = r.bytes, whole = r.whole, "recalled");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thread id of a thread that runs `f` after sending it, and a way to end it.
    fn blocked_in(f: impl FnOnce() + Send + 'static) -> i32 {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tx.send(unsafe { libc::gettid() }).unwrap();
            f();
        });
        let tid = rx.recv().unwrap();
        // Bounded wait until the thread sleeps in its call.
        for _ in 0..200 {
            let state = std::fs::read_to_string(format!("/proc/{tid}/stat")).unwrap_or_default();
            if state
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('S'))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        tid
    }

    /// A pipe's (read end, write end).
    fn pipe() -> (i32, i32) {
        let mut fds = [0i32; 2];
        // SAFETY: pipe writes two fds into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        (fds[0], fds[1])
    }

    #[test]
    fn only_reads_and_mappings_that_cannot_write_count_as_reads() {
        let (r, w) = pipe();
        // SAFETY: read into a live 1-byte buffer from our pipe.
        let reader = blocked_in(move || unsafe {
            libc::read(r, [0u8; 1].as_mut_ptr().cast(), 1);
        });
        assert!(reads_only(reader), "a thread blocked in read(2)");
        let (r2, w2) = pipe();
        // SAFETY: write from a live buffer to our pipe; it blocks once the pipe is full.
        let writer = blocked_in(move || unsafe {
            let big = vec![0u8; 1 << 20];
            libc::write(w2, big.as_ptr().cast(), big.len());
        });
        assert!(!reads_only(writer), "a thread blocked in write(2)");
        assert!(!reads_only(i32::MAX), "no such thread");
        // SAFETY: closing our own pipe ends; the threads' calls return.
        unsafe {
            libc::write(w, b"x".as_ptr().cast(), 1);
            libc::close(r2);
        }
    }
}
