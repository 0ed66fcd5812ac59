//! Catalog reads and the managed directories, for tools that have the metadata but no
//! engine running (`fvfsd hsm add|status|ls` beside a daemon): nothing here needs a
//! block store or a listener.

use crate::error::{HsmError, Result};
use crate::{handle, marker, Marker};
use fvfs_meta::{HsmDir, HsmFile, MetaStore};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// Puts `dir` under management (canonical, absolute, UTF-8); returns its id.
pub fn add_dir(meta: &dyn MetaStore, dir: &Path) -> Result<u64> {
    let canon = dir
        .canonicalize()
        .map_err(|e| HsmError::io("resolve", dir, e))?;
    if !canon.is_dir() {
        return Err(HsmError::io(
            "manage",
            dir,
            std::io::Error::from_raw_os_error(libc::ENOTDIR),
        ));
    }
    let text = canon.to_str().ok_or_else(|| {
        HsmError::io(
            "manage",
            dir,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "path is not UTF-8"),
        )
    })?;
    Ok(meta.hsm_add_dir(text, fvfs_vfs::now_ns())?)
}

/// The marker and catalog row of the file at `path` (None: not managed).
pub fn status_of(meta: &dyn MetaStore, path: &Path) -> Result<Option<(Marker, HsmFile)>> {
    let Some(m) = marker::read_at(path)? else {
        return Ok(None);
    };
    let row = meta.hsm_get(m.id)?.ok_or(HsmError::UnknownId(m.id))?;
    Ok(Some((m, row)))
}

/// Where the file of `row` is now (found by its handle), or None when it is gone.
pub fn current_path(dirs: &[HsmDir], row: &HsmFile) -> Option<PathBuf> {
    let dir = dirs.iter().find(|d| d.id == row.dir)?;
    let dfd = std::fs::File::open(&dir.path).ok()?;
    let fd = handle::open_by_handle(dfd.as_fd(), &row.handle, libc::O_PATH).ok()?;
    handle::path_of(fd.as_fd()).ok()
}
