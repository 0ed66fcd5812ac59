//! Log shipping of the embedded database: the frames of every committed transaction, taken
//! from SQLite's write-ahead log in order, so that a copy elsewhere (the durable tier) can
//! be brought to any commit by SQLite's own WAL recovery.
//!
//! Owns the shipping position, the WAL hook of the writer connection (it replaces SQLite's
//! auto-checkpoint while shipping is on, so checkpoints happen here, in the writer) and
//! the WAL format checks.
//!
//! Invariants:
//! - a generation starts with a TRUNCATE checkpoint: its base is a raw copy of the database
//!   file as it is then (raw, so the shipped page images apply to it page for page), and
//!   its log index 0 is the next WAL SQLite writes;
//! - every frame of every committed transaction is handed out exactly once and in WAL
//!   order: before the writer checkpoints (which lets SQLite reuse the log), it moves the
//!   frames not handed out yet into `queued`, under the writer's lock, so no commit falls
//!   between the copy and the checkpoint;
//! - what is handed out is whole frames whose salts and checksums verify, ending with a
//!   commit frame: SQLite's recovery applies all of them, and nothing of an unfinished
//!   transaction;
//! - only the shipping store checkpoints: helpers beside it turn their auto-checkpoint
//!   off ([`SqliteStore::leave_checkpoints`]), because a checkpoint made elsewhere lets
//!   SQLite restart the log over frames not taken yet;
//! - when continuity cannot be proven (the log restarted after a checkpoint that this
//!   store did not make, or that did not cover exactly the frames taken), `take` fails with
//!   [`MetaError::LogGap`] and shipping needs a new generation (a new base); nothing is
//!   handed out that could apply to the wrong base.

use super::Sqlite;
use crate::error::{MetaError, Result};
use crate::types::LogFrames;
use parking_lot::Mutex;
use rusqlite::{ffi, Connection};
use std::os::raw::{c_char, c_int, c_void};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Frames in the log after which the writer checkpoints (SQLite's default).
const CHECKPOINT_FRAMES: u32 = 1000;
/// Most log bytes one take reads (the rest waits for the next take).
pub const MAX_TAKE: u64 = 16 << 20;
/// Frames moved aside for the shipper past which the writer stops checkpointing: the
/// log then grows on disk, not in memory, until the shipper has taken them.
const MAX_QUEUED: u64 = 16 << 20;
/// Size of the WAL header and of a frame header.
pub const WAL_HEADER: u64 = 32;
pub(super) const FRAME_HEADER: u64 = 24;

/// Shipping state shared by the writer (through the WAL hook) and `take`.
#[derive(Default)]
pub(crate) struct Tap {
    on: AtomicBool,
    /// Frames in the log after the writer's last commit (set by the WAL hook).
    frames: AtomicU32,
    state: Mutex<Position>,
}

#[derive(Default)]
struct Position {
    /// Index of the log being shipped within the generation.
    index: u32,
    /// Salts of that log's header; `None` until its header is read (after a TRUNCATE).
    salts: Option<[u32; 2]>,
    big_endian: bool,
    page_size: u32,
    /// Running checksum after the last frame handed out.
    cksum: [u32; 2],
    /// Bytes of the log handed out (or queued): the offset the next take starts at.
    taken: u64,
    /// `taken` when this store's last checkpoint backfilled the whole log: a restart
    /// of the log is continuous only from there.
    ckpt_at: Option<u64>,
    /// Frames moved out before a checkpoint, not handed out yet.
    queued: Vec<LogFrames>,
}

/// The WAL hook: records the frame count after each commit of the writer. It replaces the
/// auto-checkpoint hook; `after_commit` checkpoints instead.
unsafe extern "C" fn wal_hook(
    ctx: *mut c_void,
    _db: *mut ffi::sqlite3,
    _name: *const c_char,
    frames: c_int,
) -> c_int {
    // SAFETY: ctx is the `Tap` inside the store's `Arc`, which outlives the writer
    // connection (the store drops the connection first, see `SqliteStore`).
    let tap = unsafe { &*(ctx as *const Tap) };
    tap.frames.store(frames.max(0) as u32, Ordering::Release);
    ffi::SQLITE_OK
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> MetaError + '_ {
    move |source| MetaError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(super) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing from `s`.
pub(super) fn checksum(data: &[u8], big_endian: bool, mut s: [u32; 2]) -> [u32; 2] {
    for w in data.chunks_exact(8) {
        let (x0, x1) = if big_endian {
            (be32(&w[0..4]), be32(&w[4..8]))
        } else {
            (
                u32::from_le_bytes([w[0], w[1], w[2], w[3]]),
                u32::from_le_bytes([w[4], w[5], w[6], w[7]]),
            )
        };
        s[0] = s[0].wrapping_add(x0).wrapping_add(s[1]);
        s[1] = s[1].wrapping_add(x1).wrapping_add(s[0]);
    }
    s
}

/// A parsed, verified WAL header.
pub(super) struct Header {
    pub(super) big_endian: bool,
    pub(super) page_size: u32,
    pub(super) salts: [u32; 2],
    pub(super) cksum: [u32; 2],
}

pub(super) fn parse_header(h: &[u8]) -> Option<Header> {
    let big_endian = match be32(&h[0..4]) {
        0x377f_0682 => false,
        0x377f_0683 => true,
        _ => return None,
    };
    let page_size = match be32(&h[8..12]) {
        1 => 65_536,
        n if (512..=32_768).contains(&n) && n.is_power_of_two() => n,
        _ => return None,
    };
    let cksum = [be32(&h[24..28]), be32(&h[28..32])];
    (checksum(&h[..24], big_endian, [0, 0]) == cksum).then_some(Header {
        big_endian,
        page_size,
        salts: [be32(&h[16..20]), be32(&h[20..24])],
        cksum,
    })
}

impl Tap {
    /// Moves the committed frames not handed out yet into a [`LogFrames`], verifying
    /// them. The caller holds the position lock; commits may be appending meanwhile (a
    /// frame not fully written fails its checksum and ends the take).
    fn take_locked(&self, pos: &mut Position, wal_path: &Path) -> Result<Option<LogFrames>> {
        let io = io_err(wal_path);
        let wal = match std::fs::File::open(wal_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let mut head = [0u8; WAL_HEADER as usize];
        match wal.read_exact_at(&mut head, 0) {
            Ok(()) => {}
            // Empty: truncated by the generation's checkpoint, nothing written since.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io(e)),
        }
        let Some(h) = parse_header(&head) else {
            return Err(MetaError::LogGap(format!(
                "{} has no valid WAL header",
                wal_path.display()
            )));
        };
        match pos.salts {
            None => {}
            Some(s) if s == h.salts => {}
            Some(_) if pos.ckpt_at == Some(pos.taken) => {
                // The log restarted after our checkpoint of everything handed out.
                pos.index += 1;
                pos.salts = None;
            }
            Some(_) => {
                return Err(MetaError::LogGap(format!(
                    "the write-ahead log restarted after a checkpoint this process did not \
                     make (log {} of the generation, {} bytes shipped)",
                    pos.index, pos.taken
                )))
            }
        }
        if pos.salts.is_none() {
            pos.salts = Some(h.salts);
            pos.big_endian = h.big_endian;
            pos.page_size = h.page_size;
            pos.cksum = h.cksum;
            pos.taken = 0;
            pos.ckpt_at = None;
        }
        // The log's committed end is found as SQLite's recovery finds it: frames that
        // verify, up to the last commit frame. So commits of other processes (helpers
        // beside the mount) are taken too, not only those the WAL hook saw.
        let frame = FRAME_HEADER + u64::from(pos.page_size);
        let len = wal.metadata().map_err(&io)?.len();
        let first = pos.taken.max(WAL_HEADER);
        let end = len.min(first + MAX_TAKE / frame * frame);
        if end < first + frame {
            return Ok(None);
        }
        let start = pos.taken;
        let mut buf = vec![0u8; (end - start) as usize];
        let got = read_full_at(&wal, &mut buf, start).map_err(&io)?;
        buf.truncate(got);
        // Verify frame by frame; keep up to the last commit frame.
        let salts = pos.salts.expect("set above");
        let mut cksum = pos.cksum;
        let mut at = (first - start) as usize;
        let mut keep: Option<(usize, [u32; 2])> = None;
        while at + frame as usize <= buf.len() {
            let f = &buf[at..at + frame as usize];
            if [be32(&f[8..12]), be32(&f[12..16])] != salts {
                break;
            }
            let c = checksum(&f[..8], pos.big_endian, cksum);
            let c = checksum(&f[FRAME_HEADER as usize..], pos.big_endian, c);
            if c != [be32(&f[16..20]), be32(&f[20..24])] {
                break;
            }
            cksum = c;
            at += frame as usize;
            if be32(&f[4..8]) != 0 {
                keep = Some((at, c));
            }
        }
        let Some((len, c)) = keep else {
            return Ok(None);
        };
        buf.truncate(len);
        pos.cksum = c;
        pos.taken = start + len as u64;
        Ok(Some(LogFrames {
            index: pos.index,
            start,
            end: pos.taken,
            bytes: buf,
        }))
    }
}

/// Reads into `buf` from `off` until it is full or the file ends; returns bytes read.
fn read_full_at(f: &std::fs::File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// `PRAGMA wal_checkpoint(mode)`: (busy, frames in the log, frames checkpointed).
fn checkpoint(conn: &Connection, mode: &str) -> Result<(i64, i64, i64)> {
    Ok(
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?,
    )
}

impl Sqlite {
    /// After each commit of the writer (its lock held): while shipping is on, the
    /// checkpoint SQLite would have made, with the frames not handed out moved aside
    /// first. A failure leaves the log as it is (it grows; nothing is lost) and is logged.
    pub(super) fn after_commit(&self, conn: &Connection) {
        let tap = &self.tap;
        if !tap.on.load(Ordering::Relaxed) || tap.frames.load(Ordering::Acquire) < CHECKPOINT_FRAMES
        {
            return;
        }
        let mut pos = tap.state.lock();
        // Every committed frame is moved aside before the checkpoint (a take reads at
        // most MAX_TAKE), unless that would hold more than MAX_QUEUED: then the log stays
        // as it is until the shipper has taken it.
        let mut queued: u64 = pos.queued.iter().map(|f| f.bytes.len() as u64).sum();
        loop {
            if queued >= MAX_QUEUED {
                return;
            }
            match tap.take_locked(&mut pos, &self.wal_path()) {
                Ok(Some(f)) => {
                    queued += f.bytes.len() as u64;
                    pos.queued.push(f);
                }
                Ok(None) => break,
                Err(e) => {
                    // A gap is reported by the next `take`; an I/O error leaves the log
                    // unchecked so that its frames can still be taken.
                    tracing::warn!(error = %e, "metadata log not checkpointed");
                    return;
                }
            }
        }
        // The restart that follows a whole checkpoint continues the log only if every
        // frame of it was taken: the log SQLite counted is the log handed out.
        let frame = FRAME_HEADER + u64::from(pos.page_size);
        match checkpoint(conn, "PASSIVE") {
            Ok((0, log, done))
                if log == done
                    && pos.salts.is_some()
                    && WAL_HEADER + log.max(0) as u64 * frame == pos.taken =>
            {
                pos.ckpt_at = Some(pos.taken)
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "metadata checkpoint failed"),
        }
    }

    /// For a process beside the one that ships (`fvfsd flush`, `status`, ...): this
    /// store's writes never checkpoint the log (the shipping store does; the log grows
    /// meanwhile, and SQLite checkpoints it when the last connection closes).
    pub fn leave_checkpoints(&self) -> Result<()> {
        self.writer
            .lock()
            .execute_batch("PRAGMA wal_autocheckpoint=0;")?;
        Ok(())
    }

    /// Starts shipping, or a new generation of it: checkpoints the whole log into the
    /// database file (TRUNCATE) and copies that file to `dest` (a new file), the base
    /// the frames of later [`SqliteStore::ship_take`] calls apply to. Commits go on
    /// while the copy runs. Returns the page size.
    pub fn begin_log_shipping(&self, dest: &Path) -> Result<u32> {
        let io = io_err(dest);
        if dest.symlink_metadata().is_ok() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "base copy destination already exists",
            )));
        }
        // A connection of its own: a pooled reader may be busy with a long read, and the
        // writer's lock is held while this one begins its transaction.
        let reader = super::open_conn(&self.path, false)?;
        {
            let conn = self.writer.lock();
            if !self.tap.on.load(Ordering::Relaxed) {
                // SAFETY: the hook's context is `self.tap`, which the store drops after
                // the writer connection (field order), and the hook only stores a count.
                unsafe {
                    ffi::sqlite3_wal_hook(
                        conn.handle(),
                        Some(wal_hook),
                        &*self.tap as *const Tap as *mut c_void,
                    );
                }
                self.tap.on.store(true, Ordering::Relaxed);
            }
            let (busy, _, _) = checkpoint(&conn, "TRUNCATE")?;
            if busy != 0 {
                return Err(MetaError::LogGap(
                    "readers kept the write-ahead log busy; the base copy is retried".into(),
                ));
            }
            let mut pos = self.tap.state.lock();
            *pos = Position::default();
            self.tap.frames.store(0, Ordering::Release);
            // A read transaction begun on the empty log reads the database file alone
            // and holds SQLite's read lock 0, which no checkpoint (of any process) can
            // pass: the file stays as it is until the copy is done, while the writer
            // goes on appending to the log.
            reader.execute_batch("BEGIN DEFERRED; SELECT COUNT(*) FROM sqlite_master;")?;
        }
        let copied = std::fs::copy(&self.path, dest)
            .and_then(|_| std::fs::File::open(dest)?.sync_all())
            .map_err(&io);
        let ended = reader.execute_batch("COMMIT");
        if copied.is_err() || ended.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        copied?;
        ended?;
        let page_size: i64 = reader.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(page_size as u32)
    }

    /// The frames committed since the last call (or since [`SqliteStore::begin_log_shipping`]),
    /// oldest first. Fails with [`MetaError::LogGap`] when continuity is lost.
    pub fn take_log(&self) -> Result<Vec<LogFrames>> {
        if !self.tap.on.load(Ordering::Relaxed) {
            return Err(MetaError::Invalid("log shipping has not begun"));
        }
        // Only the position's lock: the writer goes on committing meanwhile. Frames it is
        // appending fail their checksum and wait for the next take; the log restarts
        // only after a checkpoint in `after_commit`, which takes this lock first.
        let mut pos = self.tap.state.lock();
        let new = self.tap.take_locked(&mut pos, &self.wal_path())?;
        let mut out = std::mem::take(&mut pos.queued);
        out.extend(new);
        Ok(out)
    }
}

/// Brings the database at `db` forward by one log: writes `log` (a whole WAL: header and
/// frames) beside it, lets SQLite recover and checkpoint it, and removes it. Returns the
/// number of frames applied; fewer than `log` holds means its tail did not verify.
pub fn apply_log(db: &Path, log: &[u8]) -> Result<u64> {
    let wal = std::path::PathBuf::from(format!("{}-wal", db.display()));
    let shm = std::path::PathBuf::from(format!("{}-shm", db.display()));
    let _ = std::fs::remove_file(&shm);
    std::fs::write(&wal, log).map_err(io_err(&wal))?;
    let conn = Connection::open(db)?;
    // FULL reports the frames recovered (TRUNCATE reports the emptied log: 0).
    let (busy, frames, done) = checkpoint(&conn, "FULL")?;
    if busy == 0 && frames == done {
        checkpoint(&conn, "TRUNCATE")?;
    }
    drop(conn);
    if busy != 0 || frames != done {
        return Err(MetaError::Corrupt(format!(
            "the log beside {} was not applied whole ({done} of {frames} frames)",
            db.display()
        )));
    }
    let _ = std::fs::remove_file(&wal);
    let _ = std::fs::remove_file(&shm);
    Ok(frames.max(0) as u64)
}

/// Frames in a whole log (`header + frames`), by its length and page size.
pub fn log_frames(log: &[u8]) -> Option<u64> {
    let h = parse_header(log.get(..WAL_HEADER as usize)?)?;
    Some((log.len() as u64 - WAL_HEADER) / (FRAME_HEADER + u64::from(h.page_size)))
}

#[cfg(test)]
#[path = "ship_tests.rs"]
mod tests;
