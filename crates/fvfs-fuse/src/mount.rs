//! Mounting a face: the mountpoint checks, the kernel mount options, the session and the
//! unmount on SIGINT/SIGTERM. Every fvfs mount goes through here.
//!
//! Invariants:
//! - Nothing is mounted on a mountpoint that is missing, not a directory or already a
//!   mount point, nor (unless the caller allows it) on one that holds files, which the
//!   mount would hide.
//! - Mounts are `nosuid,nodev` unless [`MountFlags`] say otherwise: files can arrive from
//!   other hosts, and with `allow_other` (when run as root) every local user runs what the
//!   mount holds. Permission checks are the kernel's (`default_permissions`).

use crate::adapter::FuseAdapter;
use crate::ops::FsOps;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether the mount honours set-user-ID bits and device nodes. Both off by default
/// (`nosuid,nodev`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountFlags {
    pub suid: bool,
    pub dev: bool,
}

/// How one face is mounted.
#[derive(Clone, Debug)]
pub struct MountConfig {
    /// The source column of the mount table (`fvfs`, `fvfsc`); the type is `fuse.fvfs`.
    pub fsname: String,
    /// Threads serving kernel requests (at least 1).
    pub threads: usize,
    pub flags: MountFlags,
    /// Mount read-only (`ro`): the kernel refuses every change with EROFS itself.
    pub read_only: bool,
}

impl MountConfig {
    /// The `fuser` configuration: allow_other when root (every user sees the mount, as on
    /// a disk), kernel permission checks, read-write unless `read_only`, `nosuid,nodev`
    /// unless `flags` say otherwise.
    pub fn fuser(&self) -> fuser::Config {
        use fuser::MountOption as O;
        let mut c = fuser::Config::default();
        c.mount_options = vec![
            O::FSName(self.fsname.clone()),
            O::Subtype("fvfs".into()),
            O::DefaultPermissions,
            if self.read_only { O::RO } else { O::RW },
            if self.flags.suid { O::Suid } else { O::NoSuid },
            if self.flags.dev { O::Dev } else { O::NoDev },
        ];
        if unsafe { libc::geteuid() } == 0 {
            c.acl = fuser::SessionACL::All;
        }
        c.n_threads = Some(self.threads.max(1));
        c
    }
}

/// umount2(2) of `mp` with `flags` (0 or `MNT_DETACH`).
fn umount(mp: &Path, flags: libc::c_int) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(mp.as_os_str().as_bytes())?;
    // SAFETY: a NUL-terminated path that outlives the call.
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Ends a mount whose session runs on `thread`: unmounts (retrying for `retry` while the
/// mount is busy, then detaching it lazily) and waits at most `wait` for the session to
/// end. Returns whether it ended.
pub fn unmount_and_wait(
    mut unmounter: fuser::SessionUnmounter,
    thread: std::thread::JoinHandle<()>,
    mp: &Path,
    retry: Duration,
    wait: Duration,
) -> bool {
    if !thread.is_finished() {
        if let Err(e) = unmounter.unmount() {
            tracing::warn!(error = %e, "unmount refused; retrying");
            let deadline = Instant::now() + retry;
            while is_mounted(mp) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
                let _ = umount(mp, 0);
            }
            if is_mounted(mp) {
                tracing::warn!(mountpoint = %mp.display(), "mount still busy: detaching it lazily");
                if let Err(e) = umount(mp, libc::MNT_DETACH) {
                    tracing::error!(error = %e, "lazy unmount failed");
                }
            }
        }
    }
    let deadline = Instant::now() + wait;
    while !thread.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if thread.is_finished() {
        let _ = thread.join();
        true
    } else {
        false
    }
}

/// Mounts `ops` at `mountpoint` and returns the session; the caller runs it
/// (`Session::run`) and may unmount it from another thread through `unmount_callable`.
pub fn session<T: FsOps>(
    ops: Arc<T>,
    mountpoint: &Path,
    config: &MountConfig,
) -> std::io::Result<fuser::Session<FuseAdapter<T>>> {
    let adapter = FuseAdapter::new(ops);
    let slot = adapter.notifier_slot();
    let session = fuser::Session::new(adapter, mountpoint, &config.fuser())?;
    let _ = slot.set(session.notifier());
    Ok(session)
}

/// Unmounts `session` when the process gets SIGINT or SIGTERM (a task on `rt`); the
/// session's `run` then returns and the face's `destroy` has run.
pub fn unmount_on_signals<T: FsOps>(
    rt: &tokio::runtime::Handle,
    session: &mut fuser::Session<FuseAdapter<T>>,
) {
    let mut unmounter = session.unmount_callable();
    rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal received: unmounting");
        if let Err(e) = unmounter.unmount() {
            tracing::error!(error = %e, "unmount failed (is the mount busy?)");
        }
    });
}

/// Why a mountpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MountpointError {
    #[error("mountpoint {0} does not exist (create it with mkdir -p)")]
    Missing(PathBuf),
    #[error("mountpoint {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("{0} is already a mount point")]
    Mounted(PathBuf),
    #[error("mountpoint {0} is not empty: mounting over it would hide its files")]
    NotEmpty(PathBuf),
    #[error("/dev/fuse is missing: load the fuse module (modprobe fuse) or install fuse3")]
    NoFuse,
    #[error("cannot use mountpoint {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// The mountpoint, made absolute and canonical, if it is an existing directory that is
/// not a mount point yet and, unless `allow_non_empty`, holds nothing.
pub fn check_mountpoint(mp: &Path, allow_non_empty: bool) -> Result<PathBuf, MountpointError> {
    let io = |error| MountpointError::Io {
        path: mp.to_path_buf(),
        error,
    };
    let meta = match std::fs::metadata(mp) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MountpointError::Missing(mp.to_path_buf()))
        }
        Err(e) => return Err(io(e)),
    };
    if !meta.is_dir() {
        return Err(MountpointError::NotADirectory(mp.to_path_buf()));
    }
    if is_mounted(mp) {
        return Err(MountpointError::Mounted(mp.to_path_buf()));
    }
    if !allow_non_empty && std::fs::read_dir(mp).map_err(io)?.next().is_some() {
        return Err(MountpointError::NotEmpty(mp.to_path_buf()));
    }
    std::fs::canonicalize(mp).map_err(io)
}

/// Fails unless the kernel's FUSE device is there.
pub fn check_dev_fuse() -> Result<(), MountpointError> {
    if Path::new("/dev/fuse").exists() {
        Ok(())
    } else {
        Err(MountpointError::NoFuse)
    }
}

/// Whether the kernel lists a mount at `path` now (from /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(canon) = path.canonicalize() else {
        return false;
    };
    let want = mountinfo_escape(&canon);
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|t| {
        t.lines()
            .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
    })
}

/// `/proc/self/mountinfo`'s escaping of a path (space, tab, newline, backslash).
fn mountinfo_escape(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_escaped() {
        assert_eq!(mountinfo_escape(Path::new("/a b\\c")), "/a\\040b\\134c");
        assert!(is_mounted(Path::new("/")));
        assert!(!is_mounted(Path::new("/definitely/not/a/mount")));
    }

    #[test]
    fn mountpoint_checks() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            check_mountpoint(&missing, false),
            Err(MountpointError::Missing(_))
        ));
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            check_mountpoint(&file, false),
            Err(MountpointError::NotADirectory(_))
        ));
        assert!(matches!(
            check_mountpoint(dir.path(), false),
            Err(MountpointError::NotEmpty(_))
        ));
        assert!(check_mountpoint(dir.path(), true).is_ok());
        let empty = dir.path().join("mnt");
        std::fs::create_dir(&empty).unwrap();
        assert_eq!(
            check_mountpoint(&empty, false).unwrap(),
            empty.canonicalize().unwrap()
        );
        assert!(matches!(
            check_mountpoint(Path::new("/"), true),
            Err(MountpointError::Mounted(_))
        ));
    }
}
