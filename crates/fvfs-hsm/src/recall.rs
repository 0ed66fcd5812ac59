//! Recall: the bytes of a stub's blocks written back into the native file, before the
//! process that touched them may go on.
//!
//! A range is rounded out to whole payload blocks; only blocks not yet resident are
//! fetched (each verified against its BLAKE3 id by the block store), written at their
//! offsets (never past the file's current size), made durable (`fdatasync`), and recorded
//! as resident in the catalog, and the file's atime and mtime are put back: a read must
//! not look like a modification. When every block is resident the whole file is hashed:
//! equal to the archived hash, it is archived again (marker `archived`, payload kept, a
//! later release costs no upload); different (a process wrote into it while it was a
//! stub), it is an ordinary file again and the stale payload is forgotten. Either way
//! the watch goes.
//!
//! Recalls of one file are serialised (a lock per catalog id) and at most
//! `recall_concurrency` run at once.
//!
//! Invariant: the catalog records a block resident only once its bytes are durable in
//! the file. When the process that asked is answered depends on what it does
//! (`recall_fd_answering`):
//! - an access that only reads (the listener's `reads_only`), whose blocks are all in
//!   the first fetch step, is answered as soon as its own pages are written (page cache,
//!   not yet synced), before the rest of their blocks (never written over those pages)
//!   and before the record. It changes nothing, and a crash before the record only has
//!   those blocks recalled again: the same payload bytes;
//! - any other reader is answered once its blocks are durable, before the record;
//! - an access that may write (or truncate) is answered only after the record. Its bytes
//!   land in those blocks: a crash that lost the record would have them recalled over.
//!
//! The record is made under the per-file lock while the inode is still watched: any
//! other access to the file, a write included, is an event that waits for that lock, so
//! nothing but the answered access changes the file before the record. A record that
//! fails fails an access not yet answered (EIO), and otherwise only leaves blocks marked
//! not resident, which a later access recalls again before it proceeds. The access that
//! makes a file whole is answered after its hash check and marker, so a process that
//! saw the file whole finds it resident or archived.

use crate::error::{HsmError, Result};
use crate::marker::{self, Marker};
use crate::{restore_times, stamp, Hsm};
use fvfs_meta::{hsm_holder_key, HsmFile, HsmState, HSM_HOLDER};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;
use std::sync::atomic::Ordering;

/// Blocks fetched per step (memory: at most this many blocks at once).
const FETCH_STEP: usize = 8;

/// How far a sequential reader's recall reaches past its range.
const READ_AHEAD: u64 = 8 << 20;

/// `(offset, count)` of a file, or none (the whole file / nothing to prefetch).
type Span = Option<(u64, u64)>;

/// What a recall did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recalled {
    /// Payload bytes written into the file.
    pub bytes: u64,
    /// The file is whole again (no longer a stub).
    pub whole: bool,
}

fn is_resident(bits: &[u8], i: usize) -> bool {
    bits.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

fn set_resident(bits: &mut Vec<u8>, i: usize) {
    if bits.len() <= i / 8 {
        bits.resize(i / 8 + 1, 0);
    }
    bits[i / 8] |= 1 << (i % 8);
}

/// Indexes of the blocks that overlap `[offset, offset + count)` (all with None), with
/// each block's offset in the payload.
fn blocks_in(row: &HsmFile, range: Option<(u64, u64)>) -> Vec<(usize, u64)> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for (i, b) in row.blocks.iter().enumerate() {
        let end = at + b.len as u64;
        let hit = match range {
            None => true,
            Some((off, count)) => at < off.saturating_add(count.max(1)) && end > off,
        };
        if hit {
            out.push((i, at));
        }
        at = end;
    }
    out
}

fn pwrite_all(fd: BorrowedFd<'_>, path: &Path, mut data: &[u8], mut at: u64) -> Result<()> {
    while !data.is_empty() {
        // SAFETY: fd is open for writing; data is valid for its length.
        let n = unsafe {
            libc::pwrite(
                fd.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                at as libc::off_t,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(HsmError::io("write recalled bytes into", path, e));
        }
        data = &data[n as usize..];
        at += n as u64;
    }
    Ok(())
}

fn datasync(fd: BorrowedFd<'_>, path: &Path) -> Result<()> {
    // SAFETY: fd is open.
    if unsafe { libc::fdatasync(fd.as_raw_fd()) } < 0 {
        return Err(HsmError::io(
            "fdatasync",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// BLAKE3 of the file's first `len` bytes.
fn hash_file(fd: BorrowedFd<'_>, path: &Path, len: u64) -> Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let want = buf.len().min((len - at) as usize);
        // SAFETY: fd is open for reading; buf is writable for `want` bytes.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                want,
                at as libc::off_t,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(HsmError::io("read back", path, e));
        }
        if n == 0 {
            break;
        }
        h.update(&buf[..n as usize]);
        at += n as u64;
    }
    Ok(*h.finalize().as_bytes())
}

impl Hsm {
    /// A range that starts where the previous recall of the same file ended (a sequential
    /// reader such as `cat`) is stretched by `READ_AHEAD`, so its blocks are fetched in
    /// parallel instead of one per read, and the window after it is named for a
    /// prefetch, so the reader's next stretch finds its blocks fetched; any other range
    /// is recalled as asked, so a random read costs only the blocks it touches.
    /// Returns (the range to recall, the window to prefetch).
    fn read_ahead(&self, id: u64, range: Option<(u64, u64)>) -> (Span, Span) {
        let Some((off, count)) = range else {
            return (None, None);
        };
        let mut ends = self.recall_ends.lock();
        let (count, end, next) = match ends.get(&id).copied() {
            // Inside or at the edge of what was recalled for a reader going forward: the
            // range that crosses the edge takes the next window with it.
            Some(end) if off <= end && off + count > end => {
                let count = count.max(READ_AHEAD);
                let end = end.max(off + count);
                (count, end, Some((end, READ_AHEAD)))
            }
            Some(end) if off <= end => (count, end, None),
            _ => (count, off + count, None),
        };
        ends.insert(id, end);
        (Some((off, count)), next)
    }

    /// The pages `[lo, hi)` a reader asked for, when they can be answered before the
    /// rest of their blocks is written: every block they touch that is not resident is
    /// in the first fetch step, and the recall leaves the file a stub (the access that
    /// makes a file whole is answered after its hash check).
    fn early_answer(&self, row: &HsmFile, asked: Span, todo: &[(usize, u64)]) -> Span {
        let (off, count) = asked?;
        let first = &todo[..todo.len().min(FETCH_STEP)];
        let needed_first = blocks_in(row, asked)
            .iter()
            .filter(|(i, _)| !is_resident(&row.resident, *i))
            .all(|(i, _)| first.iter().any(|t| t.0 == *i));
        let whole_after = (0..row.blocks.len())
            .all(|i| is_resident(&row.resident, i) || todo.iter().any(|t| t.0 == i));
        (needed_first && !whole_after && !first.is_empty())
            .then_some((off, off.saturating_add(count.max(1))))
    }

    /// Recalls the blocks of `[offset, offset + count)` (the whole file with None) into
    /// the stub open as `fd` (open for writing, and not reporting accesses to the
    /// listener: the event's own descriptor, or any descriptor when no listener runs).
    /// A file without a `released` marker needs nothing.
    pub async fn recall_fd(
        &self,
        fd: BorrowedFd<'_>,
        path: &Path,
        range: Option<(u64, u64)>,
    ) -> Result<Recalled> {
        self.recall_fd_answering(fd, path, range, false, |_| {})
            .await
    }

    /// As `recall_fd`, and calls `answer` exactly once: `true` as soon as the access may
    /// go on (see the module's invariant: for a reader, before the catalog records its
    /// blocks; for an access that may write, after; for the access that makes the file
    /// whole, after its marker), `false` when the recall failed before that. The listener
    /// answers the event there. `early`: the access only reads, so its pages may be
    /// answered before the rest of their blocks is written and before the record.
    pub async fn recall_fd_answering(
        &self,
        fd: BorrowedFd<'_>,
        path: &Path,
        range: Option<(u64, u64)>,
        early: bool,
        answer: impl FnOnce(bool),
    ) -> Result<Recalled> {
        let mut answer = Some(answer);
        let result = self
            .recall_locked(fd, path, range, early, &mut answer)
            .await;
        let answered = answer.is_none();
        if let Some(a) = answer.take() {
            a(result.is_ok());
        }
        match &result {
            Ok(r) if r.bytes > 0 || r.whole => {
                self.counters.recalls.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) if answered => {
                tracing::error!(path = %path.display(), error = %e, "recording a recall failed; its blocks will be recalled again at their next access")
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "recall failed; the reader gets EIO");
                self.counters
                    .recall_failures
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    async fn recall_locked(
        &self,
        fd: BorrowedFd<'_>,
        path: &Path,
        range: Option<(u64, u64)>,
        early: bool,
        answer: &mut Option<impl FnOnce(bool)>,
    ) -> Result<Recalled> {
        let Some(m) = marker::read(fd, path)? else {
            return Ok(Recalled::default());
        };
        if !m.released {
            return Ok(Recalled::default());
        }
        let lock = self.recall_lock(m.id);
        let _one_per_file = lock.lock().await;
        let _slot = self
            .recall_slots
            .acquire()
            .await
            .map_err(|_| HsmError::NoListener)?;
        let mut row = self.file(m.id)?;
        if row.state != HsmState::Released {
            return Ok(Recalled::default());
        }
        let result = self.fill(fd, path, &mut row, range, early, answer).await;
        if matches!(result, Ok(Recalled { whole: true, .. })) {
            // No longer a stub: its per-file state goes (later callers find it resident).
            self.recall_ends.lock().remove(&row.id);
            self.recall_locks.lock().remove(&row.id);
        }
        result
    }

    async fn fill(
        &self,
        fd: BorrowedFd<'_>,
        path: &Path,
        row: &mut HsmFile,
        range: Option<(u64, u64)>,
        early: bool,
        answer: &mut Option<impl FnOnce(bool)>,
    ) -> Result<Recalled> {
        let before = stamp(fd, path)?;
        // Bytes past a size the stub was cut to are gone for good, even if the file grows
        // again: only [0, row.size) may ever be filled from the payload.
        if before.size < row.size {
            row.size = before.size;
        }
        let valid = row.size;
        let asked = range;
        let (range, next) = self.read_ahead(row.id, range);
        let todo: Vec<(usize, u64)> = blocks_in(row, range)
            .into_iter()
            .filter(|(i, _)| !is_resident(&row.resident, *i))
            .collect();
        if let Some(next) = next {
            let ahead: Vec<_> = blocks_in(row, Some(next))
                .into_iter()
                .filter(|(i, _)| !is_resident(&row.resident, *i) && !todo.iter().any(|t| t.0 == *i))
                .map(|(i, _)| row.blocks[i])
                .collect();
            self.tiering.prefetch_held(&ahead)?;
        }
        let key = hsm_holder_key(row.id);
        let mut written = 0u64;
        let reads_only = early;
        let mut early = match early {
            true => self.early_answer(row, asked, &todo),
            false => None,
        };
        for step in todo.chunks(FETCH_STEP) {
            let refs: Vec<_> = step.iter().map(|(i, _)| row.blocks[*i]).collect();
            self.pace(refs.iter().map(|r| r.len as u64).sum()).await;
            let parts = self
                .tiering
                .read_held_blocks(HSM_HOLDER, &key, &refs)
                .await?;
            // Each block's bytes, never past the current size: a stub truncated while no
            // listener ran keeps its size.
            let spans: Vec<(u64, &[u8])> = step
                .iter()
                .zip(&parts)
                .filter(|((_, at), _)| *at < valid)
                .map(|((_, at), part)| (*at, &part[..(part.len() as u64).min(valid - at) as usize]))
                .collect();
            let mut later = Vec::with_capacity(spans.len() + 1);
            match early.take() {
                Some((lo, hi)) => {
                    // The asked pages first, times back: then the reader goes on while
                    // the rest of its blocks is written (never over those pages, which it
                    // may have changed through a mapping by then). Not synced first: a
                    // reader reads the page cache, and a crash before the sync below
                    // loses only bytes the catalog does not record yet (recalled again).
                    for (at, bytes) in spans {
                        let end = at + bytes.len() as u64;
                        let (s, e) = (at.max(lo), end.min(hi));
                        if s >= e {
                            later.push((at, bytes));
                            continue;
                        }
                        pwrite_all(fd, path, &bytes[(s - at) as usize..(e - at) as usize], s)?;
                        written += e - s;
                        later.push((at, &bytes[..(s - at) as usize]));
                        later.push((e, &bytes[(e - at) as usize..]));
                    }
                    restore_times(fd, path, &before)?;
                    if let Some(a) = answer.take() {
                        a(true);
                    }
                }
                None => later = spans,
            }
            for (at, bytes) in later {
                pwrite_all(fd, path, bytes, at)?;
                written += bytes.len() as u64;
            }
            for (i, _) in step {
                set_resident(&mut row.resident, *i);
            }
        }
        if written > 0 {
            // Durable before the catalog records a block resident.
            datasync(fd, path)?;
            restore_times(fd, path, &before)?;
        }
        if written > 0 {
            // The catalog follows its own writes, so a later change by anyone else
            // (a write after this recall) shows as a ctime it did not record.
            row.ctime_ns = stamp(fd, path)?.ctime_ns;
        }
        if written > 0 {
            crate::failpoint::hit("hsm.recall.written");
        }
        row.last_recall = Some(fvfs_vfs::now_ns());
        self.counters
            .recalled_bytes
            .fetch_add(written, Ordering::Relaxed);
        let whole = (0..row.blocks.len()).all(|i| is_resident(&row.resident, i));
        if !whole {
            // A reader may go on before the record: it changes nothing, and a record lost
            // to a crash only has these blocks recalled again, the same bytes. An access
            // that may write goes on only after it: its bytes land in these blocks, and a
            // recall after a crash that lost the record would write the payload over them.
            if reads_only {
                if let Some(a) = answer.take() {
                    a(true);
                }
                crate::failpoint::hit("hsm.recall.answered");
            }
            self.meta.hsm_put(row)?;
            if let Some(a) = answer.take() {
                a(true);
            }
            return Ok(Recalled {
                bytes: written,
                whole: false,
            });
        }
        self.made_whole(fd, path, row, &before).await?;
        Ok(Recalled {
            bytes: written,
            whole: true,
        })
    }

    /// Every block is resident: archived again when the content is the payload, an
    /// ordinary file when a process changed it meanwhile.
    async fn made_whole(
        &self,
        fd: BorrowedFd<'_>,
        path: &Path,
        row: &mut HsmFile,
        before: &crate::Stamp,
    ) -> Result<()> {
        let archived_len: u64 = row.blocks.iter().map(|b| b.len as u64).sum();
        let same = before.size == archived_len
            && row.size == archived_len
            && hash_file(fd, path, archived_len)? == row.hash;
        if let Some(w) = self.watch() {
            if let Err(e) = w.unwatch(fd) {
                tracing::debug!(path = %path.display(), error = %e, "unwatch after recall");
            }
        }
        if same {
            marker::write(
                fd,
                path,
                &Marker {
                    released: false,
                    id: row.id,
                    hash: row.hash,
                },
            )?;
            let now = stamp(fd, path)?;
            row.state = HsmState::Archived;
            row.resident.clear();
            row.mtime_ns = now.mtime_ns;
            row.ctime_ns = now.ctime_ns;
            self.meta.hsm_put(row)?;
            tracing::info!(path = %path.display(), id = row.id, "recalled whole; archived copy kept");
        } else {
            marker::remove(fd, path)?;
            self.forget(row.id)?;
            tracing::info!(path = %path.display(), id = row.id, "recalled whole and modified: resident, payload forgotten");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fvfs_meta::BlockRef;
    use fvfs_types::BlockId;

    fn row(lens: &[u32]) -> HsmFile {
        HsmFile {
            id: 1,
            dir: 1,
            path: vec![],
            handle: vec![],
            state: HsmState::Released,
            pinned: false,
            size: lens.iter().map(|l| *l as u64).sum(),
            mtime_ns: 0,
            ctime_ns: 0,
            hash: [0; 32],
            blocks: lens
                .iter()
                .map(|l| BlockRef {
                    id: BlockId([0; 32]),
                    len: *l,
                })
                .collect(),
            resident: vec![],
            archived_at: 0,
            last_recall: None,
        }
    }

    #[test]
    fn a_range_maps_to_the_blocks_it_overlaps() {
        let r = row(&[100, 200, 300]);
        assert_eq!(blocks_in(&r, None), vec![(0, 0), (1, 100), (2, 300)]);
        assert_eq!(blocks_in(&r, Some((0, 1))), vec![(0, 0)]);
        assert_eq!(blocks_in(&r, Some((99, 2))), vec![(0, 0), (1, 100)]);
        assert_eq!(blocks_in(&r, Some((100, 200))), vec![(1, 100)]);
        assert_eq!(blocks_in(&r, Some((299, 1))), vec![(1, 100)]);
        assert_eq!(blocks_in(&r, Some((550, 4096))), vec![(2, 300)]);
        assert_eq!(blocks_in(&r, Some((600, 10))), vec![]);
        // A zero count (a truncate's point) still names the block it falls in.
        assert_eq!(blocks_in(&r, Some((150, 0))), vec![(1, 100)]);
    }

    #[test]
    fn resident_bits() {
        let mut bits = Vec::new();
        assert!(!is_resident(&bits, 9));
        set_resident(&mut bits, 9);
        assert!(is_resident(&bits, 9));
        assert!(!is_resident(&bits, 8));
        assert_eq!(bits, vec![0, 2]);
    }
}
