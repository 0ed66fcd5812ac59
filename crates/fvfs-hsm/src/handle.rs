//! File handles: the identity of an inode that survives renames. The catalog keeps each
//! archived file's handle (`name_to_handle_at`) so the listener can find and watch a
//! stub at start wherever it was moved (`open_by_handle_at`, with any descriptor on the
//! same filesystem).
//!
//! Encoding in the catalog: the handle type (4 bytes, little endian), then its bytes.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

const MAX_HANDLE: usize = 128;

#[repr(C)]
struct RawHandle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; MAX_HANDLE],
}

/// The handle of the open file `fd`.
pub fn handle_of(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut h = RawHandle {
        handle_bytes: MAX_HANDLE as u32,
        handle_type: 0,
        f_handle: [0; MAX_HANDLE],
    };
    let mut mount_id: libc::c_int = 0;
    let empty: &CStr = c"";
    // SAFETY: fd is open; `empty` is NUL-terminated; h is a file_handle with room for
    // MAX_HANDLE bytes, as handle_bytes says; mount_id is writable.
    let r = unsafe {
        libc::name_to_handle_at(
            fd.as_raw_fd(),
            empty.as_ptr(),
            (&mut h as *mut RawHandle).cast(),
            &mut mount_id,
            libc::AT_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = (h.handle_bytes as usize).min(MAX_HANDLE);
    let mut out = h.handle_type.to_le_bytes().to_vec();
    out.extend_from_slice(&h.f_handle[..n]);
    Ok(out)
}

/// Opens the inode `handle` names on the filesystem of `mount_fd` (needs
/// CAP_DAC_READ_SEARCH). A deleted inode is `ESTALE`.
pub fn open_by_handle(mount_fd: BorrowedFd<'_>, handle: &[u8], flags: i32) -> io::Result<OwnedFd> {
    if handle.len() < 4 || handle.len() - 4 > MAX_HANDLE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a file handle in the catalog has a bad length",
        ));
    }
    let mut h = RawHandle {
        handle_bytes: (handle.len() - 4) as u32,
        handle_type: i32::from_le_bytes([handle[0], handle[1], handle[2], handle[3]]),
        f_handle: [0; MAX_HANDLE],
    };
    h.f_handle[..handle.len() - 4].copy_from_slice(&handle[4..]);
    // SAFETY: mount_fd is open; h is a valid file_handle of handle_bytes bytes.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount_fd.as_raw_fd(),
            (&mut h as *mut RawHandle).cast(),
            flags | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by the kernel and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The current path of an open file (for messages and `hsm ls`); a deleted file's path
/// ends in " (deleted)".
pub fn path_of(fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}
