//! What the listener does before it serves: every interrupted step is finished or rolled
//! back, and every stub is watched again (marks die with the process that made them).
//!
//! - `Archiving` rows (an archive interrupted): the file was never punched; its marker,
//!   if it got one, is removed and the row and its partial payload are forgotten.
//! - `Released` rows: the inode is found by its handle, wherever it was renamed, and
//!   watched; one whose marker still says archived (a release interrupted before its
//!   marker, so before any punch) is archived again. A handle that no longer opens (the stub was deleted) forgets the row.
//! - `Archived` rows need nothing: the file is whole.

use crate::error::{HsmError, Result};
use crate::{handle, marker, Hsm, Watch};
use fvfs_meta::{HsmDir, HsmState};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

/// What `recover` found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub watched: u64,
    pub rolled_back: u64,
    /// Releases interrupted before the marker: archived again.
    pub unreleased: u64,
    pub gone: u64,
}

fn dir_fds(dirs: &[HsmDir]) -> Result<HashMap<u64, OwnedFd>> {
    let mut out = HashMap::new();
    for d in dirs {
        let f = std::fs::File::open(&d.path)
            .map_err(|e| HsmError::io("open the managed directory", &d.path, e))?;
        out.insert(d.id, OwnedFd::from(f));
    }
    Ok(out)
}

impl Hsm {
    /// Finishes or rolls back interrupted steps and watches every stub through `watch`.
    pub async fn recover(&self, watch: &dyn Watch) -> Result<Recovered> {
        let dirs = dir_fds(&self.meta.hsm_dirs()?)?;
        let mut done = Recovered::default();
        for row in self.meta.hsm_list(Some(HsmState::Archiving))? {
            if let Some(dir) = dirs.get(&row.dir) {
                if let Ok(fd) = handle::open_by_handle(dir.as_fd(), &row.handle, libc::O_RDONLY) {
                    let path = handle::path_of(fd.as_fd()).unwrap_or_default();
                    if matches!(marker::read(fd.as_fd(), &path), Ok(Some(m)) if m.id == row.id) {
                        marker::remove(fd.as_fd(), &path)?;
                    }
                }
            }
            self.forget(row.id)?;
            done.rolled_back += 1;
        }
        for row in self.meta.hsm_list(Some(HsmState::Released))? {
            let Some(dir) = dirs.get(&row.dir) else {
                continue;
            };
            match handle::open_by_handle(dir.as_fd(), &row.handle, libc::O_RDONLY) {
                Ok(fd) => {
                    let path = handle::path_of(fd.as_fd()).unwrap_or_default();
                    if matches!(marker::read(fd.as_fd(), &path)?, Some(m) if m.id == row.id && !m.released)
                    {
                        // A release interrupted before its marker: nothing was punched
                        // (the punch follows the marker), the file is whole. A group kept
                        // across the crash (keeper.rs) may still watch it: not any more.
                        let _ = watch.unwatch(fd.as_fd());
                        let mut row = row;
                        row.state = HsmState::Archived;
                        row.resident.clear();
                        self.meta.hsm_put(&row)?;
                        done.unreleased += 1;
                        continue;
                    }
                    watch
                        .watch(fd.as_fd())
                        .map_err(|e| HsmError::io("watch", &path, e))?;
                    done.watched += 1;
                }
                Err(e) if e.raw_os_error() == Some(libc::ESTALE) => {
                    tracing::info!(
                        id = row.id,
                        "a released file was deleted; its payload is forgotten"
                    );
                    self.forget(row.id)?;
                    done.gone += 1;
                }
                Err(e) => {
                    return Err(HsmError::io(
                        "find the stub of catalog row",
                        format!("{} (id {})", String::from_utf8_lossy(&row.path), row.id),
                        e,
                    ))
                }
            }
        }
        tracing::info!(
            watched = done.watched,
            rolled_back = done.rolled_back,
            gone = done.gone,
            "HSM catalog recovered"
        );
        Ok(done)
    }
}
