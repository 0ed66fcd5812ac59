//! Open files: the handle table and the per-inode state shared by all handles of an
//! inode (write buffer, cached chunk maps).
//!
//! Invariants:
//! - An inode's state lives while it has handles, or while it is *retained*: its last
//!   handle went while its buffer still held bytes whose commit had failed (a full
//!   descriptor table, a tier down). Bytes that `write` accepted are never dropped on a
//!   transient error: a retained state stays readable (reads, getattr, a later open
//!   share it), is committed by the writeback worker (writeback.rs), by any flush or
//!   fsync of the inode, or at stop (spooled to disk when even that fails, spool.rs).
//! - A retained state goes when its buffer is committed or discarded (truncate), or when
//!   its inode has no link left (nobody can see the bytes any more: they are dropped and
//!   the inode purged at the last close, as any unlinked file).
//! - The state is in the table when `state(ino)` answers; `is_open` counts handles only.

use crate::read::ChunkMap;
use crate::write::FileState;
use crate::{Result, Vfs, VfsError};
use fvfs_types::Ino;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// How a handle was opened.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenFlags {
    pub read: bool,
    pub write: bool,
    pub append: bool,
}

impl OpenFlags {
    /// O_RDONLY.
    pub const READ: OpenFlags = OpenFlags {
        read: true,
        write: false,
        append: false,
    };
    /// O_WRONLY.
    pub const WRITE: OpenFlags = OpenFlags {
        read: false,
        write: true,
        append: false,
    };
    /// O_RDWR.
    pub const READ_WRITE: OpenFlags = OpenFlags {
        read: true,
        write: true,
        append: false,
    };

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
    /// `Some` exactly while the buffer holds uncommitted bytes (set with the buffer).
    pub(crate) pending_attr: Mutex<Option<(u64, i64)>>,
    /// The buffered byte ranges, published with `pending_attr`: st_blocks of a file
    /// whose commit holds `file` still counts them (the kernel caches what getattr says).
    pub(crate) pending_ranges: Mutex<Vec<(u64, u64)>>,
    /// Bytes the buffer holds (set with the buffer), for the cap on retained bytes.
    pub(crate) buffered: AtomicU64,
    /// The state outlives its handles (see the module invariants).
    retained: AtomicBool,
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

    fn dirty(&self) -> bool {
        self.pending_attr.lock().is_some()
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
    /// A write came through this handle: its flush (close) is a durability point.
    pub(crate) wrote: AtomicBool,
}

#[derive(Default)]
pub(crate) struct Handles {
    next: AtomicU64,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    inodes: Mutex<HashMap<Ino, Arc<InodeState>>>,
    retained: AtomicUsize,
    /// Signalled when a state becomes retained (the writeback worker waits on it).
    pub(crate) retained_wake: tokio::sync::Notify,
    /// Shared filesystems: the (mtime, ctime, size) each inode had at its last open here,
    /// to tell whether what this host cached of it (chunk maps, the kernel's pages and
    /// attributes) still holds. Bounded by [`SEEN_MAX`] (cleared past it: every next
    /// open then revalidates).
    seen: Mutex<HashMap<Ino, (i64, i64, u64)>>,
    /// Open inodes that lost their last name (through this process): their last close
    /// purges them. Only these: a close of any other file costs no metadata read.
    orphaned: Mutex<std::collections::HashSet<Ino>>,
}

/// Most inodes [`Handles`] remembers the last-open attributes of.
const SEEN_MAX: usize = 1 << 16;

impl Handles {
    pub(crate) fn get(&self, fh: u64) -> Result<Arc<Handle>> {
        self.handles
            .lock()
            .get(&fh)
            .cloned()
            .ok_or(VfsError::BadHandle)
    }

    /// The state of an inode that is open or retained.
    pub(crate) fn state(&self, ino: Ino) -> Option<Arc<InodeState>> {
        self.inodes.lock().get(&ino).cloned()
    }

    /// Whether the inode has handles.
    pub(crate) fn is_open(&self, ino: Ino) -> bool {
        self.inodes
            .lock()
            .get(&ino)
            .is_some_and(|st| st.open.load(Ordering::SeqCst) > 0)
    }

    /// Inodes that have a state (open or retained).
    pub(crate) fn open_inodes(&self) -> Vec<Ino> {
        self.inodes.lock().keys().copied().collect()
    }

    /// Retained inodes (no handle, uncommitted bytes).
    pub(crate) fn retained_inodes(&self) -> Vec<Ino> {
        if self.retained.load(Ordering::SeqCst) == 0 {
            return Vec::new();
        }
        self.inodes
            .lock()
            .values()
            .filter(|st| st.retained.load(Ordering::SeqCst))
            .map(|st| st.ino)
            .collect()
    }

    /// Bytes held by retained states.
    pub(crate) fn retained_bytes(&self) -> u64 {
        if self.retained.load(Ordering::SeqCst) == 0 {
            return 0;
        }
        self.inodes
            .lock()
            .values()
            .filter(|st| st.retained.load(Ordering::SeqCst))
            .map(|st| st.buffered.load(Ordering::SeqCst))
            .sum()
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
                    pending_ranges: Mutex::new(Vec::new()),
                    buffered: AtomicU64::new(0),
                    retained: AtomicBool::new(false),
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
                wrote: AtomicBool::new(false),
            }),
        );
        fh
    }

    /// Removes a handle; true if it was the inode's last. The last handle of a dirty
    /// state leaves it retained.
    fn remove(&self, fh: u64) -> Option<(Arc<Handle>, bool)> {
        let h = self.handles.lock().remove(&fh)?;
        let mut inodes = self.inodes.lock();
        let st = &h.state;
        let last = st.open.fetch_sub(1, Ordering::SeqCst) == 1;
        if last {
            if st.dirty() {
                if !st.retained.swap(true, Ordering::SeqCst) {
                    self.retained.fetch_add(1, Ordering::SeqCst);
                    self.retained_wake.notify_one();
                }
            } else {
                self.unretain_locked(&mut inodes, st);
            }
        }
        Some((h, last))
    }

    /// Called once a state's buffer is empty (committed or discarded): it is no longer
    /// retained, and goes from the table if it has no handle.
    pub(crate) fn buffer_emptied(&self, st: &InodeState) {
        let mut inodes = self.inodes.lock();
        if !st.dirty() {
            self.unretain_locked(&mut inodes, st);
        }
    }

    fn unretain_locked(&self, inodes: &mut HashMap<Ino, Arc<InodeState>>, st: &InodeState) {
        if st.retained.swap(false, Ordering::SeqCst) {
            self.retained.fetch_sub(1, Ordering::SeqCst);
        }
        let ours = inodes
            .get(&st.ino)
            .is_some_and(|s| std::ptr::eq(Arc::as_ptr(s), st));
        if ours && st.open.load(Ordering::SeqCst) == 0 {
            inodes.remove(&st.ino);
        }
    }

    /// Forgets the state of an inode without handles, buffered bytes included (the inode
    /// lost its last link). The bytes' block pins go when the last user drops the state.
    fn forget(&self, ino: Ino) {
        let mut inodes = self.inodes.lock();
        let Some(st) = inodes.get(&ino).cloned() else {
            return;
        };
        if st.open.load(Ordering::SeqCst) > 0 {
            return;
        }
        if st.retained.swap(false, Ordering::SeqCst) {
            self.retained.fetch_sub(1, Ordering::SeqCst);
            tracing::debug!(
                ino,
                "dropped the uncommitted writes of a file that has no name"
            );
        }
        inodes.remove(&ino);
    }
}

impl Vfs {
    /// Opens an inode and returns a handle number.
    pub fn open(&self, ino: Ino, flags: OpenFlags) -> Result<u64> {
        Ok(self.open_fresh(ino, flags)?.0)
    }

    /// Opens an inode: the handle number and whether what was cached of the file at its
    /// previous open here still holds. On a shared filesystem (close-to-open) the open
    /// reads the inode from the metadata, and when another host changed it since
    /// (mtime, ctime or size differ) drops this process's chunk maps of it (unless this
    /// process has uncommitted writes of its own) and answers `false`: the face then
    /// drops the kernel's pages and attributes. Alone on the filesystem: always `true`.
    pub fn open_fresh(&self, ino: Ino, flags: OpenFlags) -> Result<(u64, bool)> {
        let a = self.meta.getattr(ino)?;
        if !self.cfg.shared {
            return Ok((self.handles.insert(ino, flags), true));
        }
        let stamp = (a.mtime, a.ctime, a.size);
        let valid = {
            let mut seen = self.handles.seen.lock();
            if seen.len() >= SEEN_MAX {
                seen.clear();
            }
            seen.insert(ino, stamp) == Some(stamp)
        };
        if !valid {
            if let Some(st) = self.handles.state(ino) {
                if !st.dirty() {
                    st.invalidate();
                }
            }
        }
        Ok((self.handles.insert(ino, flags), valid))
    }

    /// Makes the handle's buffered writes durable (close(2) calls this for every
    /// descriptor, and so does every exec of a process that inherited one). A handle
    /// that wrote nothing, of a file with nothing buffered, has nothing to make durable:
    /// its close costs no metadata sync (a `create` and `close` is not a durability point
    /// for the new name, as on ext4; `fsync` of the file or its directory is).
    pub async fn flush(&self, fh: u64) -> Result<()> {
        let h = self.handles.get(fh)?;
        if h.flags.write && (h.wrote.load(Ordering::Relaxed) || h.state.dirty()) {
            if self.may_retain(h.ino) {
                self.journal_flush(h.ino).await?;
            } else if self.journal {
                // Too big to journal at close: stored now, so close reports a failure;
                // the buffer stays (this may be one descriptor of several).
                self.store_durable(h.ino).await?;
            } else {
                self.sync_inode(h.ino).await?;
            }
        }
        Ok(())
    }

    /// Makes buffered writes durable. Until they are, every fsync of the inode (through
    /// any handle) fails.
    pub async fn fsync(&self, fh: u64) -> Result<()> {
        let h = self.handles.get(fh)?;
        self.sync_inode(h.ino).await
    }

    /// Closes a handle. The last close of an unlinked inode frees its data. With the write
    /// journal (journal.rs) the bytes are journaled and the buffer stays retained for the
    /// writeback worker (up to `journal_retain_bytes`); otherwise they are committed, and
    /// the last close of an inode whose commit failed leaves its bytes retained (module
    /// doc) and returns the commit's error.
    pub async fn release(&self, fh: u64) -> Result<()> {
        let h = self.handles.get(fh)?;
        if self.cfg.shared {
            if let Err(e) = self.release_handle_locks(h.ino, fh) {
                tracing::warn!(ino = h.ino, error = %e, "cannot drop the file locks taken through a closed file: they end with this session");
            }
        }
        let flushed = if !h.flags.write {
            Ok(())
        } else if self.may_retain(h.ino) {
            // The journal holds the bytes; the writeback worker stores them.
            self.journal_flush(h.ino).await
        } else {
            self.store_inode(h.ino).await
        };
        if let Some((h, last)) = self.handles.remove(fh) {
            if last && self.handles.orphaned.lock().remove(&h.ino) {
                self.purge_if_orphan(h.ino)?;
                if flushed.is_err() && self.handles.state(h.ino).is_some() {
                    tracing::warn!(
                        ino = h.ino,
                        "the last close could not commit the file's writes: kept in memory and retried"
                    );
                }
            }
        }
        flushed
    }

    /// Purges an inode with no links and no open handles (with its retained bytes); one
    /// still open is purged at its last close.
    pub(crate) fn purge_if_orphan(&self, ino: Ino) -> Result<()> {
        if self.handles.is_open(ino) {
            self.handles.orphaned.lock().insert(ino);
            // The last close may have come between the check and the mark: whoever takes
            // the mark purges.
            if self.handles.is_open(ino) || !self.handles.orphaned.lock().remove(&ino) {
                return Ok(());
            }
        }
        match self.meta.getattr(ino) {
            Ok(a) if a.nlink == 0 => {
                self.handles.forget(ino);
                self.meta.purge_inode(ino)?;
                self.tiering.gc_wake();
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The blocks of files open now (their loaded chunk maps): eviction takes them last.
impl crate::BlockUsers for crate::Vfs {
    fn blocks_in_use(&self) -> std::collections::HashSet<fvfs_types::BlockId> {
        let mut out = std::collections::HashSet::new();
        for ino in self.handles.open_inodes() {
            if let Some(st) = self.handles.state(ino) {
                for map in st.chunks.lock().values() {
                    out.extend(map.block_ids());
                }
            }
        }
        out
    }
}
