//! Open files: the handle table and the per-inode state shared by all handles of an
//! inode (write buffer, cached chunk maps). An inode's state lives while it has handles;
//! when the last one is released an unlinked inode (nlink 0) is purged.

use crate::read::ChunkMap;
use crate::write::FileState;
use crate::{Result, Vfs, VfsError};
use fvfs_types::Ino;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How a handle was opened.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenFlags {
    pub read: bool,
    pub write: bool,
    pub append: bool,
}

impl OpenFlags {
    /// From open(2) flags.
    pub fn from_raw(flags: i32) -> OpenFlags {
        let acc = flags & libc::O_ACCMODE;
        OpenFlags {
            read: acc == libc::O_RDONLY || acc == libc::O_RDWR,
            write: acc == libc::O_WRONLY || acc == libc::O_RDWR,
            append: flags & libc::O_APPEND != 0,
        }
    }
}

pub(crate) struct InodeState {
    pub(crate) ino: Ino,
    open: AtomicU64,
    pub(crate) file: tokio::sync::Mutex<FileState>,
    /// Size and mtime of buffered writes, readable while `file` is held by a commit.
    pub(crate) pending_attr: Mutex<Option<(u64, i64)>>,
    /// Resolved chunk maps of committed data, dropped on every commit or truncate.
    pub(crate) chunks: Mutex<HashMap<u64, Arc<ChunkMap>>>,
    /// Bumped by every `invalidate`.
    pub(crate) chunks_gen: AtomicU64,
}

impl InodeState {
    /// Drops the cached chunk maps after the committed data changed. The generation
    /// makes a map loaded before the change unable to enter the cache after it.
    pub(crate) fn invalidate(&self) {
        let mut chunks = self.chunks.lock();
        self.chunks_gen.fetch_add(1, Ordering::SeqCst);
        chunks.clear();
    }
}

/// Sequential-read detection of one handle.
#[derive(Default)]
pub(crate) struct ReadState {
    pub(crate) last_end: u64,
    pub(crate) prefetched_to: u64,
}

pub(crate) struct Handle {
    pub(crate) ino: Ino,
    pub(crate) flags: OpenFlags,
    pub(crate) state: Arc<InodeState>,
    pub(crate) read: Mutex<ReadState>,
}

#[derive(Default)]
pub(crate) struct Handles {
    next: AtomicU64,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    inodes: Mutex<HashMap<Ino, Arc<InodeState>>>,
}

impl Handles {
    pub(crate) fn get(&self, fh: u64) -> Result<Arc<Handle>> {
        self.handles
            .lock()
            .get(&fh)
            .cloned()
            .ok_or(VfsError::BadHandle)
    }

    /// The state of an open inode, if it is open.
    pub(crate) fn state(&self, ino: Ino) -> Option<Arc<InodeState>> {
        self.inodes.lock().get(&ino).cloned()
    }

    pub(crate) fn is_open(&self, ino: Ino) -> bool {
        self.inodes.lock().contains_key(&ino)
    }

    pub(crate) fn open_inodes(&self) -> Vec<Ino> {
        self.inodes.lock().keys().copied().collect()
    }

    fn insert(&self, ino: Ino, flags: OpenFlags) -> u64 {
        let state = {
            let mut inodes = self.inodes.lock();
            let st = inodes.entry(ino).or_insert_with(|| {
                Arc::new(InodeState {
                    ino,
                    open: AtomicU64::new(0),
                    file: tokio::sync::Mutex::new(FileState::default()),
                    pending_attr: Mutex::new(None),
                    chunks: Mutex::new(HashMap::new()),
                    chunks_gen: AtomicU64::new(0),
                })
            });
            st.open.fetch_add(1, Ordering::SeqCst);
            st.clone()
        };
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.handles.lock().insert(
            fh,
            Arc::new(Handle {
                ino,
                flags,
                state,
                read: Mutex::new(ReadState::default()),
            }),
        );
        fh
    }

    /// Removes a handle; true if it was the inode's last.
    fn remove(&self, fh: u64) -> Option<(Arc<Handle>, bool)> {
        let h = self.handles.lock().remove(&fh)?;
        let mut inodes = self.inodes.lock();
        let last = h.state.open.fetch_sub(1, Ordering::SeqCst) == 1;
        if last {
            inodes.remove(&h.ino);
        }
        Some((h, last))
    }
}

impl Vfs {
    /// Opens an inode and returns a handle number.
    pub fn open(&self, ino: Ino, flags: OpenFlags) -> Result<u64> {
        self.meta.getattr(ino)?;
        Ok(self.handles.insert(ino, flags))
    }

    /// Makes the handle's buffered writes durable (close(2) calls this for every
    /// descriptor, and so does every exec of a process that inherited one).
    pub async fn flush(&self, fh: u64) -> Result<()> {
        let h = self.handles.get(fh)?;
        if h.flags.write {
            self.sync_inode(h.ino).await?;
        }
        Ok(())
    }

    /// Makes buffered writes durable.
    pub async fn fsync(&self, fh: u64) -> Result<()> {
        let h = self.handles.get(fh)?;
        self.sync_inode(h.ino).await
    }

    /// Closes a handle. The last close of an unlinked inode frees its data.
    pub async fn release(&self, fh: u64) -> Result<()> {
        let h = self.handles.get(fh)?;
        let flushed = if h.flags.write {
            self.flush_inode(h.ino).await
        } else {
            Ok(())
        };
        if let Some((h, last)) = self.handles.remove(fh) {
            if last {
                self.purge_if_orphan(h.ino)?;
            }
        }
        flushed
    }

    /// Purges an inode with no links and no open handles.
    pub(crate) fn purge_if_orphan(&self, ino: Ino) -> Result<()> {
        if self.handles.is_open(ino) {
            return Ok(());
        }
        match self.meta.getattr(ino) {
            Ok(a) if a.nlink == 0 => {
                self.meta.purge_inode(ino)?;
                self.gc_wake();
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
