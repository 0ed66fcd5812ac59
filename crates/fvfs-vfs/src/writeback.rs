//! Writes held after their close: the writeback worker that stores retained buffers
//! (files whose last close left their bytes in the write journal, journal.rs, or could
//! not commit them, handle.rs), syncs the metadata every few seconds, and the stop
//! policy (commit with a bounded retry, then spool to disk, spool.rs).
//!
//! Invariants: the worker only ever commits (never drops) a buffer; at stop every buffer
//! is committed or spooled, and `stop_writeback` fails only when a buffer could be
//! neither (then the caller must say so loudly: those bytes live only in this process).

use crate::spool::Spool;
use crate::worker::{Worker, WorkerState};
use crate::{Result, Vfs};
use futures::future::BoxFuture;
use fvfs_types::Ino;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How long a stopping process keeps retrying commits before it spools.
pub const STOP_RETRY: Duration = Duration::from_secs(10);

/// The worker also looks every this often, whatever woke it, and syncs the metadata: a
/// close is durable within this time even if nothing calls fsync.
const RECHECK: Duration = Duration::from_secs(5);

/// Retained files stored at once.
const STORE_CONCURRENCY: usize = 8;

/// After a wake, the worker waits this long so closes in a burst are stored together
/// (their bytes are in the journal meanwhile).
const GATHER: Duration = Duration::from_millis(50);

impl Vfs {
    /// Tries once to commit every retained buffer. Ok(n): n buffers were stored; an
    /// error is the first failure (the others were tried too).
    pub async fn writeback_pass(&self) -> Result<usize> {
        use futures::StreamExt;
        let mut stored = 0;
        let mut failed = None;
        let mut inodes = self.handles.retained_inodes();
        if self.journal {
            inodes.extend(self.stale_journaled());
            inodes.sort_unstable();
            inodes.dedup();
        }
        let mut results = futures::stream::iter(inodes)
            .map(|ino| async move { (ino, self.store_inode(ino).await) })
            .buffer_unordered(STORE_CONCURRENCY);
        while let Some((ino, r)) = results.next().await {
            match r {
                Ok(()) => {
                    stored += 1;
                    tracing::debug!(ino, "stored the retained writes of a closed file");
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        drop(results);
        // Commits of closes are durable from here (and at the latest RECHECK later).
        self.meta.sync()?;
        failed.map_or(Ok(stored), Err)
    }

    /// Inodes whose buffer holds uncommitted bytes (open or retained).
    pub fn dirty_inodes(&self) -> Vec<Ino> {
        self.handles
            .open_inodes()
            .into_iter()
            .filter(|&ino| {
                self.handles
                    .state(ino)
                    .is_some_and(|st| st.pending_attr.lock().is_some())
            })
            .collect()
    }

    /// Inodes retained after a failed commit at their last close.
    pub fn retained_inodes(&self) -> Vec<Ino> {
        self.handles.retained_inodes()
    }

    /// At stop, once nothing writes any more: commits every buffer, retrying for
    /// `retry_for`, then writes what still cannot be committed to `spool` (each file
    /// logged at ERROR). Fails only if some bytes could be neither committed nor spooled.
    pub async fn stop_writeback(&self, spool: Option<&Spool>, retry_for: Duration) -> Result<()> {
        let deadline = Instant::now() + retry_for;
        let mut delay = Duration::from_millis(100);
        loop {
            let flushed = self.flush_all().await;
            if self.dirty_inodes().is_empty() {
                // Every byte is committed; a failed metadata sync is SQLite's to finish at
                // its checkpoint.
                if let Err(e) = flushed {
                    tracing::warn!(error = %e, "syncing the metadata at stop failed");
                }
                return Ok(());
            }
            let err = flushed.err().map(|e| e.to_string()).unwrap_or_default();
            if Instant::now() + delay > deadline {
                tracing::error!(error = %err, "buffered writes could not be stored before stop");
                break;
            }
            tracing::warn!(error = %err, retry_in = ?delay, "storing buffered writes at stop failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        let Some(spool) = spool else {
            let n = self.dirty_inodes().len();
            tracing::error!(
                files = n,
                "no spool: the writes of these files are lost with this process"
            );
            return Err(crate::VfsError::Internal(format!(
                "{n} files have writes that could not be stored"
            )));
        };
        for f in self.spool_dirty(spool).await? {
            tracing::error!(
                file = %f.display(),
                "uncommitted writes saved to the spool; they are committed at the next start (docs/FORMAT.md, \"Writeback spool\")"
            );
        }
        Ok(())
    }
}

/// Commits retained buffers in the background, with the workers' backoff after failures.
pub struct WritebackWorker {
    vfs: Weak<Vfs>,
    /// When freed heap memory was last handed back to the system.
    trimmed: Instant,
}

impl WritebackWorker {
    pub fn new(vfs: &Arc<Vfs>) -> WritebackWorker {
        WritebackWorker {
            vfs: Arc::downgrade(vfs),
            trimmed: Instant::now(),
        }
    }
}

/// How often an idle process hands memory back: the metadata page caches and freed heap
/// (`malloc_trim`: a big copy frees hundreds of MiB across the threads' malloc arenas,
/// which glibc keeps otherwise).
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// The block cache is emptied once no read or write used it for this long (re-reads are
/// then served by the kernel's page cache, the disk cache or the hot tier).
const CACHE_IDLE: Duration = Duration::from_secs(3);

impl Worker for WritebackWorker {
    type Error = crate::VfsError;
    fn name(&self) -> String {
        "writeback".into()
    }
    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState>> {
        Box::pin(async move {
            let Some(vfs) = self.vfs.upgrade() else {
                return Ok(WorkerState::Done);
            };
            let stored = vfs.writeback_pass().await?;
            if stored == 0 {
                // Caches that only speed things up go first: the blocks no read wanted for
                // a while, then the metadata store's page caches and the freed heap.
                // Not while a writer is busy: its transactions would refill SQLite's cache.
                let dropped = vfs.store.trim_idle(CACHE_IDLE);
                let quiet = vfs.tiering.state.writers_idle_for(TRIM_EVERY);
                if dropped > 0 || (quiet && self.trimmed.elapsed() >= TRIM_EVERY) {
                    self.trimmed = Instant::now();
                    vfs.meta.release_memory();
                    // SAFETY: malloc_trim only releases free heap memory; no pointer is
                    // touched.
                    #[cfg(target_env = "gnu")]
                    unsafe {
                        libc::malloc_trim(0);
                    }
                }
            }
            Ok(WorkerState::Idle)
        })
    }
    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(vfs) = self.vfs.upgrade() else {
                return;
            };
            let woken = tokio::time::timeout(RECHECK, vfs.handles.retained_wake.notified()).await;
            if woken.is_ok() && vfs.journal {
                tokio::time::sleep(GATHER).await;
            }
        })
    }
}
