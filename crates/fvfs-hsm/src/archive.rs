//! Archiving: a managed file's content becomes a payload of blocks held by its catalog
//! row, and the file gets its marker (state archived). The file stays whole.
//!
//! Steps, each safe to interrupt:
//! 1. a catalog row in state `Archiving` (a crash here leaves a row `recover` forgets);
//! 2. the content is read through a window and stored (`Tiering::held_writer`), held by
//!    the row as it goes;
//! 3. the file's size, mtime and ctime are compared with those before step 2: a file
//!    that changed is left alone and the row forgotten;
//! 4. the marker is set, then the row becomes `Archived` with the ctime the marker gave
//!    the file (later releases compare with it).

use crate::error::{HsmError, Result};
use crate::marker::{self, Marker};
use crate::{handle, open_file, stamp, Hsm};
use fvfs_meta::{hsm_holder_key, HsmFile, HsmState, HSM_HOLDER};
use fvfs_vfs::Placement;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::Ordering;

/// Bytes read from the file per step.
const READ_STEP: usize = 4 << 20;

/// What `archive` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Archived {
    /// Newly archived: the catalog id and the payload's size.
    New { id: u64, bytes: u64 },
    /// It already was (marker and catalog agree, file unchanged).
    Already { id: u64 },
}

impl Hsm {
    /// Archives the regular file at `path` (under a managed directory); new blocks go to
    /// the hottest tier with room.
    pub async fn archive(&self, path: &Path) -> Result<Archived> {
        self.archive_to(path, Placement::Hottest).await
    }

    /// Archives as `archive`, with new blocks written where `placement` says (the janitor
    /// writes straight to the durable tier what it is about to release).
    pub async fn archive_to(&self, path: &Path, placement: Placement) -> Result<Archived> {
        let (dir, canon, rel) = self.locate(path)?;
        let fd = open_file(&canon, false)?;
        let before = stamp(fd.as_fd(), &canon)?;
        if !before.regular {
            return Err(HsmError::NotRegular(canon));
        }
        let handle = handle::handle_of(fd.as_fd())
            .map_err(|e| HsmError::io("get the file handle of", &canon, e))?;
        if let Some(m) = marker::read(fd.as_fd(), &canon)? {
            match self.meta.hsm_get(m.id)? {
                // A copy of a managed file carries a marker naming another inode.
                Some(row) if row.handle == handle => {
                    if row.state != HsmState::Archiving
                        && (row.state == HsmState::Released
                            || (row.size, row.mtime_ns, row.ctime_ns)
                                == (before.size, before.mtime_ns, before.ctime_ns))
                    {
                        return Ok(Archived::Already { id: m.id });
                    }
                    // Changed since it was archived: the old payload goes.
                    self.forget(m.id)?;
                }
                _ => {}
            }
        }
        let mut row = HsmFile {
            id: 0,
            dir: dir.id,
            path: rel.as_os_str().as_encoded_bytes().to_vec(),
            handle,
            state: HsmState::Archiving,
            pinned: false,
            size: before.size,
            mtime_ns: before.mtime_ns,
            ctime_ns: before.ctime_ns,
            hash: [0; 32],
            blocks: Vec::new(),
            resident: Vec::new(),
            archived_at: fvfs_vfs::now_ns(),
            last_recall: None,
        };
        row.id = self.meta.hsm_new(&row)?;
        match self
            .store_payload(&canon, fd, &mut row, before, placement)
            .await
        {
            Ok(()) => {
                self.counters
                    .archived_bytes
                    .fetch_add(row.size, Ordering::Relaxed);
                tracing::info!(path = %canon.display(), id = row.id, bytes = row.size, "archived");
                Ok(Archived::New {
                    id: row.id,
                    bytes: row.size,
                })
            }
            Err(e) => {
                // Nothing references the partial payload but this row: forget both.
                if let Err(f) = self.forget(row.id) {
                    tracing::warn!(id = row.id, error = %f, "could not forget an interrupted archive; the next start will");
                }
                Err(e)
            }
        }
    }

    async fn store_payload(
        &self,
        canon: &Path,
        fd: std::os::fd::OwnedFd,
        row: &mut HsmFile,
        before: crate::Stamp,
        placement: Placement,
    ) -> Result<()> {
        let key = hsm_holder_key(row.id);
        let mut w = self.tiering.held_writer_to(HSM_HOLDER, &key, placement);
        let mut file = std::fs::File::from(fd);
        let mut buf = vec![0u8; READ_STEP];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| HsmError::io("read", canon, e))?;
            if n == 0 {
                break;
            }
            w.write(&buf[..n]).await?;
        }
        let payload = w.finish().await?;
        crate::failpoint::hit("hsm.archive.stored");
        let after = stamp(file.as_fd(), canon)?;
        if payload.len != before.size
            || (after.size, after.mtime_ns, after.ctime_ns)
                != (before.size, before.mtime_ns, before.ctime_ns)
        {
            return Err(HsmError::Changed(canon.to_path_buf(), "archived"));
        }
        let m = Marker {
            released: false,
            id: row.id,
            hash: payload.hash,
        };
        marker::write(file.as_fd(), canon, &m)?;
        crate::failpoint::hit("hsm.archive.marked");
        let marked = stamp(file.as_fd(), canon)?;
        if (marked.size, marked.mtime_ns) != (before.size, before.mtime_ns) {
            marker::remove(file.as_fd(), canon)?;
            return Err(HsmError::Changed(canon.to_path_buf(), "archived"));
        }
        row.state = HsmState::Archived;
        row.hash = payload.hash;
        row.blocks = payload.refs;
        row.ctime_ns = marked.ctime_ns;
        self.meta.hsm_put(row)?;
        Ok(())
    }

    /// Drops catalog row `id` and its payload's holds (its blocks become garbage unless
    /// something else holds them).
    pub(crate) fn forget(&self, id: u64) -> Result<()> {
        if self.meta.hsm_forget(id)? {
            self.tiering.gc_wake();
        }
        Ok(())
    }
}
