//! Releasing: an archived file becomes a stub. Its blocks are punched out of the native
//! file (same size, holes), its marker says `released`, and the listener's watch is on
//! its inode, so any later access is recalled first.
//!
//! The order makes every interruption safe: the payload is verified on the durable tier;
//! a write lease proves no one has the file open; size, mtime and ctime are compared with
//! the catalog (a file changed since its archive is not released); the inode is watched;
//! the row becomes `Released`; the marker is set; then the holes are punched and the
//! times restored. A crash before the punch leaves a whole file marked released, which a
//! recall rewrites with identical bytes.

use crate::error::{HsmError, Result};
use crate::marker::{self, Marker};
use crate::{open_file, restore_times, stamp, Hsm};
use fvfs_meta::HsmState;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Once;

/// A lease break is announced with SIGIO, whose default action ends the process; the
/// face holds leases for milliseconds and needs no notice, so the signal is ignored.
fn ignore_sigio() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: setting a signal's disposition to SIG_IGN is async-signal-safe and
        // affects only SIGIO, which nothing else in fvfs uses.
        unsafe {
            libc::signal(libc::SIGIO, libc::SIG_IGN);
        }
    });
}

/// A write lease held while it lives.
struct Lease<'a>(BorrowedFd<'a>);

impl<'a> Lease<'a> {
    fn take(fd: BorrowedFd<'a>, path: &Path) -> Result<Lease<'a>> {
        ignore_sigio();
        // SAFETY: fd is open; F_SETLEASE takes an int argument.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) } < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EBUSY) => Err(HsmError::Busy(path.to_path_buf())),
                _ => Err(HsmError::io("take a write lease on", path, e)),
            };
        }
        Ok(Lease(fd))
    }
}

impl<'a> Lease<'a> {
    /// [`Lease::take`], retried for up to two seconds while the file is busy: the
    /// listener closes an event's descriptor just after answering it, so a stub that was
    /// just read is still open for a moment (longer on a loaded host: half a second was
    /// seen to fall short with both cores busy).
    async fn take_soon(fd: BorrowedFd<'a>, path: &Path) -> Result<Lease<'a>> {
        for _ in 0..100 {
            match Lease::take(fd, path) {
                Err(HsmError::Busy(_)) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                }
                other => return other,
            }
        }
        Lease::take(fd, path)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // SAFETY: fd is open while the lease lives.
        unsafe {
            libc::fcntl(self.0.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK);
        }
    }
}

impl Hsm {
    /// Releases the archived file at `path`; returns its catalog id.
    pub async fn release(&self, path: &Path) -> Result<u64> {
        let (_, canon, _) = self.locate(path)?;
        let Some(watch) = self.watch() else {
            return Err(HsmError::NoListener);
        };
        let fd = open_file(&canon, true)?;
        let Some(m) = marker::read(fd.as_fd(), &canon)? else {
            return Err(HsmError::NotArchived(canon));
        };
        if m.released {
            // A recall answers its reader before it records the blocks it wrote, under
            // the file's recall lock: wait for that record, or a stub just recalled in
            // part (and maybe written) would look untouched.
            drop(self.recall_lock(m.id).lock().await);
        }
        let mut row = self.file(m.id)?;
        if m.released && row.state == HsmState::Released {
            if row.resident.iter().all(|b| *b == 0) {
                return Ok(row.id);
            }
            return self.release_again(fd.as_fd(), &canon, row.id).await;
        }
        if row.state != HsmState::Archived {
            return Err(HsmError::NotArchived(canon));
        }
        if row.pinned {
            return Err(HsmError::Pinned(canon));
        }
        if !self.tiering.durable_verified(&row.blocks).await? {
            return Err(HsmError::NotDurable(canon));
        }
        let lease = Lease::take(fd.as_fd(), &canon)?;
        let now = stamp(fd.as_fd(), &canon)?;
        if (now.size, now.mtime_ns, now.ctime_ns) != (row.size, row.mtime_ns, row.ctime_ns) {
            drop(lease);
            // Changed since its archive: the payload is stale, the file resident.
            marker::remove(fd.as_fd(), &canon)?;
            self.forget(row.id)?;
            return Err(HsmError::Changed(canon, "released"));
        }
        watch
            .watch(fd.as_fd())
            .map_err(|e| HsmError::io("watch", &canon, e))?;
        row.state = HsmState::Released;
        row.resident = vec![0; row.blocks.len().div_ceil(8)];
        self.meta.hsm_put(&row)?;
        crate::failpoint::hit("hsm.release.row");
        marker::write(
            fd.as_fd(),
            &canon,
            &Marker {
                released: true,
                ..m
            },
        )?;
        punch(fd.as_fd(), &canon, row.size)?;
        crate::failpoint::hit("hsm.release.punched");
        restore_times(fd.as_fd(), &canon, &now)?;
        row.ctime_ns = stamp(fd.as_fd(), &canon)?.ctime_ns;
        self.meta.hsm_put(&row)?;
        drop(lease);
        self.counters.released_files.fetch_add(1, Ordering::Relaxed);
        tracing::info!(path = %canon.display(), id = row.id, bytes = row.size, "released");
        Ok(row.id)
    }
}

impl Hsm {
    /// A stub some of whose blocks were recalled (read) gives that space back: if no one
    /// changed it since (size, mtime and ctime as the last recall or release left them,
    /// under a write lease), its content is punched out again and every block is absent.
    /// A stub written meanwhile is refused and left as it is (`recall` it whole: it then
    /// becomes an ordinary file). Holds the file's recall lock, so no recall writes
    /// while the holes are punched.
    async fn release_again(&self, fd: BorrowedFd<'_>, path: &Path, id: u64) -> Result<u64> {
        let lock = self.recall_lock(id);
        let _one_per_file = lock.lock().await;
        let mut row = self.file(id)?;
        if row.state != HsmState::Released {
            return Err(HsmError::Changed(path.to_path_buf(), "released again"));
        }
        // No other open file, and no change since the catalog's last look. The lease
        // goes before the punch: the punch's own access event makes the listener open
        // the file, which would break the lease and wait out the break timeout.
        let now = {
            let _lease = Lease::take_soon(fd, path).await?;
            let now = stamp(fd, path)?;
            if (now.size, now.mtime_ns, now.ctime_ns) != (row.size, row.mtime_ns, row.ctime_ns) {
                return Err(HsmError::Changed(path.to_path_buf(), "recalled in part"));
            }
            now
        };
        // Bits first: a crash before the punch leaves blocks the catalog calls absent,
        // which a recall rewrites with the same bytes. From here, any other access to the
        // file waits for the recall lock held here, then recalls what it touches.
        row.resident = vec![0; row.blocks.len().div_ceil(8)];
        self.meta.hsm_put(&row)?;
        // `fd` was opened while the inode was watched, so the punch reports an access;
        // it runs on a blocking thread, never on a runtime worker the answer needs.
        let owned = fd
            .try_clone_to_owned()
            .map_err(|e| HsmError::io("duplicate the descriptor of", path, e))?;
        let (punching, at, size) = (self.punching.clone(), path.to_path_buf(), row.size);
        tokio::task::spawn_blocking(move || {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            punching.lock().insert(tid);
            let punched = punch(owned.as_fd(), &at, size);
            punching.lock().remove(&tid);
            punched
        })
        .await
        .map_err(|e| HsmError::Listener(format!("punch task: {e}")))??;
        restore_times(fd, path, &now)?;
        row.ctime_ns = stamp(fd, path)?.ctime_ns;
        self.meta.hsm_put(&row)?;
        self.recall_ends.lock().remove(&id);
        tracing::info!(path = %path.display(), id, "released again (recalled blocks punched)");
        Ok(id)
    }
}

/// The largest filesystem block size (ext4, XFS and btrfs go up to 64 KiB).
const PUNCH_ALIGN: u64 = 64 << 10;

/// Punches the whole content out (the size stays) and makes it durable.
fn punch(fd: BorrowedFd<'_>, path: &Path, size: u64) -> Result<()> {
    if size > 0 {
        // SAFETY: fd is open for writing.
        let r = unsafe {
            libc::fallocate(
                fd.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                0,
                // Whole filesystem blocks only are freed: the last partial one goes too
                // (KEEP_SIZE: punching past the end changes nothing else).
                size.next_multiple_of(PUNCH_ALIGN) as libc::off_t,
            )
        };
        if r < 0 {
            return Err(HsmError::io(
                "punch the content out of",
                path,
                std::io::Error::last_os_error(),
            ));
        }
    }
    // SAFETY: fd is open.
    if unsafe { libc::fsync(fd.as_raw_fd()) } < 0 {
        return Err(HsmError::io("fsync", path, std::io::Error::last_os_error()));
    }
    Ok(())
}
