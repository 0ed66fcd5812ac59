//! The marker a managed file carries: the `trusted.fvfs.hsm` xattr, a short text any
//! tool can read (`getfattr -n trusted.fvfs.hsm FILE`):
//! `fvfs-hsm/1 state=released id=42 blake3=<64 hex digits>`.
//!
//! Invariant: the marker names the catalog row by id, never by path, so a renamed,
//! moved or hard-linked file keeps it. Only `archived` and `released` are written: a
//! file without the marker is resident and unmanaged.

use crate::error::{HsmError, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

/// The xattr name. `trusted.` needs CAP_SYS_ADMIN to read or write, so an ordinary user
/// cannot forge or strip it.
pub const XATTR: &str = "trusted.fvfs.hsm";

/// What the marker says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    pub released: bool,
    pub id: u64,
    pub hash: [u8; 32],
}

impl Marker {
    pub fn encode(&self) -> String {
        format!(
            "fvfs-hsm/1 state={} id={} blake3={}",
            if self.released {
                "released"
            } else {
                "archived"
            },
            self.id,
            hex::encode(self.hash)
        )
    }

    pub fn decode(text: &[u8]) -> std::result::Result<Marker, String> {
        let text = std::str::from_utf8(text).map_err(|_| "not UTF-8".to_string())?;
        let mut parts = text.split_ascii_whitespace();
        if parts.next() != Some("fvfs-hsm/1") {
            return Err(format!("unknown version in {text:?}"));
        }
        let (mut released, mut id, mut hash) = (None, None, None);
        for p in parts {
            match p.split_once('=') {
                Some(("state", "released")) => released = Some(true),
                Some(("state", "archived")) => released = Some(false),
                Some(("id", v)) => id = v.parse::<u64>().ok(),
                Some(("blake3", v)) => {
                    hash = hex::decode(v)
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                }
                _ => return Err(format!("unknown field {p:?}")),
            }
        }
        match (released, id, hash) {
            (Some(released), Some(id), Some(hash)) => Ok(Marker { released, id, hash }),
            _ => Err(format!("incomplete marker {text:?}")),
        }
    }
}

fn name() -> CString {
    CString::new(XATTR).expect("no NUL in the xattr name")
}

/// The marker of the open file `fd` (`path` for messages): None when it has none.
pub fn read(fd: BorrowedFd<'_>, path: &Path) -> Result<Option<Marker>> {
    let mut buf = [0u8; 256];
    // SAFETY: fd is open; the name is NUL-terminated; buf is writable for its length.
    let n = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            name().as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    decoded(n, &buf, path)
}

/// The marker of the file at `path` (not following a final symlink), read without
/// opening the file: an open of a stub is an event for the listener, and a tool that
/// only looks (`fvfsd hsm status`) must work while none answers.
pub fn read_at(path: &Path) -> Result<Option<Marker>> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| {
        HsmError::io(
            "read the HSM marker of",
            path,
            std::io::Error::from_raw_os_error(libc::EINVAL),
        )
    })?;
    let mut buf = [0u8; 256];
    // SAFETY: both names are NUL-terminated; buf is writable for its length.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            name().as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    decoded(n, &buf, path)
}

/// The marker in the first `n` bytes of `buf`, as a `getxattr` call returned them.
fn decoded(n: isize, buf: &[u8], path: &Path) -> Result<Option<Marker>> {
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA) => Ok(None),
            _ => Err(HsmError::io("read the HSM marker of", path, e)),
        };
    }
    Marker::decode(&buf[..n as usize])
        .map(Some)
        .map_err(|why| HsmError::BadMarker(path.to_path_buf(), why))
}

/// Sets the marker of `fd` (this moves the file's ctime).
pub fn write(fd: BorrowedFd<'_>, path: &Path, m: &Marker) -> Result<()> {
    let v = m.encode();
    // SAFETY: fd is open; name is NUL-terminated; v is valid for its length.
    let r = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name().as_ptr(),
            v.as_ptr().cast(),
            v.len(),
            0,
        )
    };
    if r < 0 {
        return Err(HsmError::io(
            "set the HSM marker of",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Removes the marker of `fd`; no marker is fine.
pub fn remove(fd: BorrowedFd<'_>, path: &Path) -> Result<()> {
    // SAFETY: fd is open; name is NUL-terminated.
    let r = unsafe { libc::fremovexattr(fd.as_raw_fd(), name().as_ptr()) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENODATA) {
            return Err(HsmError::io("remove the HSM marker of", path, e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_garbage_is_refused() {
        let m = Marker {
            released: true,
            id: 42,
            hash: [0xab; 32],
        };
        let text = m.encode();
        assert!(text.starts_with("fvfs-hsm/1 state=released id=42 blake3=abab"));
        assert_eq!(Marker::decode(text.as_bytes()), Ok(m));
        let a = Marker {
            released: false,
            ..m
        };
        assert_eq!(Marker::decode(a.encode().as_bytes()), Ok(a));
        for bad in [
            &b"fvfs-hsm/2 state=released id=1 blake3=00"[..],
            b"fvfs-hsm/1 state=released id=1",
            b"fvfs-hsm/1 state=gone id=1 blake3=00",
            b"fvfs-hsm/1 state=released id=x blake3=00",
            b"\xff",
        ] {
            assert!(Marker::decode(bad).is_err(), "{bad:?}");
        }
    }
}
