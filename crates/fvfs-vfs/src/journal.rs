//! The write journal: how fsync and close are acknowledged at local-disk speed.
//!
//! When the hottest tier is a local directory (or write-back is on), an fsync does not cut
//! and store the unsealed tail of a file as blocks. It appends the tail bytes written
//! since the last append to the file's journal records in the metadata store (one small
//! transaction), then syncs the metadata once: the bytes and the size and mtime they
//! imply are then durable on local disk. A close appends the same way without the sync
//! (a close is no durability point, as on ext4) and leaves the buffer *retained*: the
//! writeback worker cuts it into blocks, stores them on the hottest tier (each block
//! durable before its commit) and commits them, replacing the journal records in the same
//! transaction. Replication to the other tiers follows from the queue as for any block.
//!
//! Invariants:
//! - Committed content plus the file's journal records replayed in order equal the buffer
//!   as of the last append or commit: every commit that stores buffered bytes of a file
//!   with records replaces the records by the bytes still buffered (write.rs,
//!   `commit_front`, `commit_all`), a truncate clips them, a purge deletes them.
//! - Records are replayed before anything is served (`replay_journal`, at mount), so a
//!   reader never sees committed content that the journal overrides.
//! - Full blocks are never journaled: sealed blocks are stored and committed at fsync.

use crate::handle::InodeState;
use crate::write::FileState;
use crate::{OpenFlags, Result, Vfs, VfsError};
use fvfs_meta::MetaError;
use fvfs_types::{FileKind, Ino};
use std::time::{Duration, Instant};

/// A file's journal records may hold this many bytes, or twice its buffer if more, before
/// they are rewritten as one copy of the buffer.
const JOURNAL_SLACK: u64 = 8 << 20;

/// Most buffered bytes a close journals (a bigger buffer is stored as blocks at close).
pub(crate) const JOURNAL_CLOSE_MAX: u64 = 1 << 20;

/// An open file's journaled bytes are stored as blocks (and so start replicating) once
/// its oldest record is this old, even if it is never closed (a database).
pub(crate) const JOURNAL_MAX_AGE: Duration = Duration::from_secs(30);

impl Vfs {
    /// Records and bytes in the write journal (acknowledged, not yet stored as blocks).
    pub fn journal_totals(&self) -> Result<(u64, u64)> {
        Ok(self.meta.journal_totals()?)
    }

    /// Whether fsync and close are acknowledged from the write journal.
    pub fn journaled(&self) -> bool {
        self.journal
    }

    /// fsync with the journal: stores and commits sealed blocks, appends the unjournaled
    /// tail bytes, syncs the metadata once.
    pub(crate) async fn journal_durable(&self, st: &InodeState, fs: &mut FileState) -> Result<()> {
        self.commit_sealed(st, fs).await?;
        self.journal_append(st, fs)?;
        self.meta.sync()?;
        Ok(())
    }

    /// Appends the buffer's unjournaled tail bytes (and the size and mtime they imply) to
    /// the journal, unsynced.
    pub(crate) fn journal_append(&self, st: &InodeState, fs: &mut FileState) -> Result<()> {
        let Some((size, mtime)) = fs.pending() else {
            return Ok(());
        };
        let records: Vec<(u64, &[u8])> = fs.extents().flat_map(|e| e.unjournaled()).collect();
        if records.is_empty() && fs.journaled_pending == Some((size, mtime)) {
            return Ok(());
        }
        let added: u64 = records.iter().map(|r| r.1.len() as u64).sum();
        let buffered = fs.buffered_bytes();
        if fs.journal_bytes + added > (2 * buffered).max(JOURNAL_SLACK) {
            // Overwrites in place (a database's log) would grow the records without
            // bound: they are replaced by one copy of the buffer.
            let all = fs.extents_bytes();
            let refs: Vec<(u64, &[u8])> = all.iter().map(|(o, b)| (*o, b.as_slice())).collect();
            let reset = fvfs_meta::JournalReset {
                records: &refs,
                size,
                mtime,
            };
            let c = fvfs_meta::Commit {
                journal: Some(reset),
                ..Default::default()
            };
            self.meta.commit(st.ino, &c)?;
            fs.journal_bytes = buffered;
        } else {
            self.meta.journal_append(st.ino, &records, size, mtime)?;
            fs.journal_bytes += added;
        }
        for e in fs.extents_mut() {
            e.unjournaled.clear();
        }
        fs.journaled = true;
        fs.journaled_pending = Some((size, mtime));
        fs.journaled_since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// A close's flush with the journal: the buffer's bytes reach the journal (unsynced),
    /// so a failure to record them is reported to `close`.
    pub(crate) async fn journal_flush(&self, ino: Ino) -> Result<()> {
        if let Some(st) = self.handles.state(ino) {
            let mut fs = st.file.lock().await;
            self.journal_append(&st, &mut fs)?;
        }
        Ok(())
    }

    /// Whether a closing file's buffer goes to the journal and stays retained for the
    /// writeback worker: a small buffer (`JOURNAL_CLOSE_MAX`), up to
    /// `journal_retain_bytes` in all. A bigger one is stored as blocks by the close itself:
    /// journaling it would write its bytes twice.
    pub(crate) fn may_retain(&self, ino: Ino) -> bool {
        let own = self.handles.state(ino).map_or(0, |st| {
            st.buffered.load(std::sync::atomic::Ordering::SeqCst)
        });
        self.journal
            && own <= JOURNAL_CLOSE_MAX
            && self.handles.retained_bytes() + own <= self.cfg.journal_retain_bytes
    }

    /// Open files whose journal records are older than `JOURNAL_MAX_AGE` (their lock is
    /// free now).
    pub(crate) fn stale_journaled(&self) -> Vec<Ino> {
        let mut out = Vec::new();
        for ino in self.handles.open_inodes() {
            let Some(st) = self.handles.state(ino) else {
                continue;
            };
            let Ok(fs) = st.file.try_lock() else {
                continue;
            };
            if fs
                .journaled_since
                .is_some_and(|t| t.elapsed() >= JOURNAL_MAX_AGE)
            {
                out.push(ino);
            }
        }
        out
    }

    /// Stores the write journal a previous run left (a crash, a kill): each file's records
    /// are applied to its content in order and committed. Runs before anything is served.
    /// Returns the number of files stored.
    pub async fn replay_journal(&self) -> Result<usize> {
        let mut n = 0;
        for ino in self.meta.journal_inodes()? {
            match self.meta.getattr(ino) {
                Ok(a) if a.kind == FileKind::File && a.nlink > 0 => {}
                Ok(_) | Err(MetaError::NotFound) => {
                    self.meta.journal_clear(ino)?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let records = self.meta.journal_read(ino)?;
            let fh = self.open(ino, OpenFlags::WRITE)?;
            let applied = async {
                let st = self.handles.get(fh)?.state.clone();
                let mut fs = st.file.lock().await;
                let (mut size, mut mtime) = (0, 0);
                for r in &records {
                    if !r.data.is_empty() {
                        self.buffer_write(&st, &mut fs, r.off, &r.data).await?;
                    }
                    size = r.size;
                    mtime = r.mtime;
                }
                let size = fs.pending().map_or(0, |p| p.0).max(size);
                fs.set_pending(size, mtime);
                fs.journaled = true;
                crate::write::publish(&st, &fs);
                self.commit_all(&st, &mut fs).await
            }
            .await;
            let released = self.release(fh).await;
            applied.map_err(|e| {
                VfsError::Internal(format!(
                    "cannot store the write journal of inode {ino}: {e}"
                ))
            })?;
            released?;
            tracing::info!(
                ino,
                records = records.len(),
                "stored the write journal of a file"
            );
            n += 1;
        }
        if n > 0 {
            self.meta.sync()?;
        }
        Ok(n)
    }
}
