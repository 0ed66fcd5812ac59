//! Batches of shipped log: the frames of many commits of one write-ahead log, merged into
//! one transaction that holds the last image of each page they wrote.
//!
//! Restore points are segment boundaries, so the commits inside a segment need not be
//! replayed one by one: the last image of every page, committed once, brings the database
//! to the segment's end as the whole run of frames would. Hot pages (the root directory,
//! the b-tree pages of a busy table) are written by nearly every commit, so a busy
//! second of commits shrinks to the pages it touched, and a batch never holds more than
//! one image per page of the database.
//!
//! Invariants:
//! - the segments of one shipped log concatenate into a valid WAL: the first begins
//!   with the log's header, every frame carries the log's salts and a checksum chained
//!   from the previous shipped frame (the header's checksum for the first), and each
//!   segment ends with a commit frame holding the database size of the last commit it
//!   merged;
//! - `shipped` counts bytes of the log as shipped: segment keys name offsets in it;
//! - frames are absorbed only in the store's log order (each take continues where the
//!   last ended, or begins the store's next log after a checkpoint that backfilled all
//!   of the previous one, which `take_log` guarantees), so merging across the store's
//!   log restarts is exact.

use super::ship::{be32, checksum, parse_header, FRAME_HEADER, WAL_HEADER};
use crate::error::{MetaError, Result};
use crate::types::LogFrames;
use std::collections::HashMap;

/// The log of a generation as shipped: its output position and the batch gathered since
/// the last segment. Shipped logs are fvfs's own WALs, numbered from 0 within the
/// generation and started anew ([`ShipLog::roll`]) when one grows large; they are not
/// SQLite's local logs, whose restarts (every checkpoint) the batches merge across.
pub struct ShipLog {
    pub index: u32,
    page_size: u32,
    salts: [u32; 2],
    /// Checksum after the last frame shipped (the header's before any).
    cksum: [u32; 2],
    /// Bytes of this log shipped so far: the next segment's start.
    shipped: u64,
    /// The log's header while it is not shipped yet.
    header: Option<Vec<u8>>,
    /// Where the store's log continues: (local log index, byte offset); None before the
    /// first frames (which must begin a local log).
    local: Option<(u32, u64)>,
    /// The batch: page number → slot in `pages`.
    slots: HashMap<u32, usize>,
    pgnos: Vec<u32>,
    pages: Vec<u8>,
    /// Database size (pages) after the last commit absorbed.
    db_pages: u32,
}

/// A segment ready to upload: bytes `[start, end)` of the log as shipped.
pub struct Sealed {
    pub index: u32,
    pub start: u64,
    pub end: u64,
    pub bytes: Vec<u8>,
    cksum: [u32; 2],
}

fn gap(why: String) -> MetaError {
    MetaError::LogGap(why)
}

/// The WAL header of shipped log `index`: SQLite's format (magic for little-endian
/// checksums, format 3007000), checkpoint sequence `index`, the given salts.
fn wal_header(index: u32, page_size: u32, salts: [u32; 2]) -> (Vec<u8>, [u32; 2]) {
    let mut h = Vec::with_capacity(WAL_HEADER as usize);
    let size_field = if page_size == 65_536 { 1 } else { page_size };
    for w in [
        0x377f_0682u32,
        3_007_000,
        size_field,
        index,
        salts[0],
        salts[1],
    ] {
        h.extend_from_slice(&w.to_be_bytes());
    }
    let c = checksum(&h, false, [0, 0]);
    h.extend_from_slice(&c[0].to_be_bytes());
    h.extend_from_slice(&c[1].to_be_bytes());
    (h, c)
}

impl ShipLog {
    /// Shipped log `index` of a database with pages of `page_size` bytes; `salt` makes
    /// its frames differ from those of any other log (SQLite ignores frames whose salts
    /// are not its header's).
    pub fn new(index: u32, page_size: u32, salt: u32) -> ShipLog {
        let salts = [salt, index.wrapping_mul(0x9e37_79b9) ^ 0x5f3c_0a17];
        let (header, cksum) = wal_header(index, page_size, salts);
        ShipLog {
            index,
            page_size,
            salts,
            cksum,
            shipped: 0,
            header: Some(header),
            local: None,
            slots: HashMap::new(),
            pgnos: Vec::new(),
            pages: Vec::new(),
            db_pages: 0,
        }
    }

    /// The page size a store's log declares, from frames that begin it (its header).
    pub fn page_size_of(frames: &LogFrames) -> Result<u32> {
        let head = frames
            .bytes
            .get(..WAL_HEADER as usize)
            .filter(|_| frames.start == 0)
            .ok_or_else(|| {
                gap(format!(
                    "log {} does not start with its header",
                    frames.index
                ))
            })?;
        parse_header(head)
            .map(|h| h.page_size)
            .ok_or_else(|| gap(format!("log {} has no valid header", frames.index)))
    }

    /// The next shipped log, continuing where this one's frames left off. Call once
    /// its batch is shipped.
    pub fn roll(&self, salt: u32) -> ShipLog {
        debug_assert!(self.is_empty());
        ShipLog {
            local: self.local,
            db_pages: self.db_pages,
            ..ShipLog::new(self.index + 1, self.page_size, salt)
        }
    }

    /// Bytes of this log shipped so far.
    pub fn shipped_bytes(&self) -> u64 {
        self.shipped
    }

    /// Adds the next frames taken from the store to the batch: they continue the local
    /// log where the last ones ended, or begin the next local log (with its header).
    pub fn absorb(&mut self, frames: &LogFrames) -> Result<()> {
        let continues = match self.local {
            None => frames.start == 0,
            Some((i, at)) => {
                (frames.index == i && frames.start == at)
                    || (frames.index == i + 1 && frames.start == 0)
            }
        };
        if !continues {
            return Err(gap(format!(
                "the log continues at {:?}, got log {} from byte {}",
                self.local, frames.index, frames.start
            )));
        }
        let body = if frames.start == 0 {
            if Self::page_size_of(frames)? != self.page_size {
                return Err(gap(format!("log {} changed the page size", frames.index)));
            }
            &frames.bytes[WAL_HEADER as usize..]
        } else {
            &frames.bytes[..]
        };
        self.absorb_frames(body)?;
        self.local = Some((frames.index, frames.end));
        Ok(())
    }

    fn absorb_frames(&mut self, bytes: &[u8]) -> Result<()> {
        let ps = self.page_size as usize;
        let frame = FRAME_HEADER as usize + ps;
        if !bytes.len().is_multiple_of(frame) {
            return Err(gap(format!(
                "{} bytes of log are not whole frames of {frame}",
                bytes.len()
            )));
        }
        for f in bytes.chunks_exact(frame) {
            let pgno = be32(&f[0..4]);
            let page = &f[FRAME_HEADER as usize..];
            match self.slots.get(&pgno) {
                Some(&slot) => self.pages[slot * ps..(slot + 1) * ps].copy_from_slice(page),
                None => {
                    self.slots.insert(pgno, self.pgnos.len());
                    self.pgnos.push(pgno);
                    self.pages.extend_from_slice(page);
                }
            }
            let commit = be32(&f[4..8]);
            if commit != 0 {
                self.db_pages = commit;
            }
        }
        Ok(())
    }

    /// Whether the batch holds frames not shipped (a header alone is not shipped).
    pub fn is_empty(&self) -> bool {
        self.pgnos.is_empty()
    }

    /// Size of the segment [`ShipLog::seal`] would make.
    pub fn batch_bytes(&self) -> u64 {
        let head = self.header.as_ref().map_or(0, |h| h.len() as u64);
        head + self.pgnos.len() as u64 * (FRAME_HEADER + u64::from(self.page_size))
    }

    /// The batch as one segment; the log is unchanged until [`ShipLog::shipped`].
    pub fn seal(&self) -> Sealed {
        let ps = self.page_size as usize;
        let mut out = Vec::with_capacity(self.batch_bytes() as usize);
        if let Some(h) = &self.header {
            out.extend_from_slice(h);
        }
        let mut cksum = self.cksum;
        let last = self.pgnos.len().saturating_sub(1);
        for (slot, &pgno) in self.pgnos.iter().enumerate() {
            let commit = if slot == last { self.db_pages } else { 0 };
            let mut head = [0u8; FRAME_HEADER as usize];
            head[0..4].copy_from_slice(&pgno.to_be_bytes());
            head[4..8].copy_from_slice(&commit.to_be_bytes());
            head[8..12].copy_from_slice(&self.salts[0].to_be_bytes());
            head[12..16].copy_from_slice(&self.salts[1].to_be_bytes());
            let page = &self.pages[slot * ps..(slot + 1) * ps];
            // Shipped logs declare little-endian checksums (`wal_header`).
            cksum = checksum(&head[..8], false, cksum);
            cksum = checksum(page, false, cksum);
            head[16..20].copy_from_slice(&cksum[0].to_be_bytes());
            head[20..24].copy_from_slice(&cksum[1].to_be_bytes());
            out.extend_from_slice(&head);
            out.extend_from_slice(page);
        }
        Sealed {
            index: self.index,
            start: self.shipped,
            end: self.shipped + out.len() as u64,
            bytes: out,
            cksum,
        }
    }

    /// The sealed segment is on the tier: the next batch starts after it.
    pub fn shipped(&mut self, s: &Sealed) {
        debug_assert_eq!(s.start, self.shipped);
        self.shipped = s.end;
        self.cksum = s.cksum;
        self.header = None;
        self.slots.clear();
        self.pgnos.clear();
        self.pages.clear();
    }
}
