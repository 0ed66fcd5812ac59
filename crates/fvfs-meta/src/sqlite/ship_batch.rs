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
//! - the segments of one log concatenate into a valid WAL: the first begins with the
//!   log's header, every frame carries the log's salts and a checksum chained from the
//!   previous shipped frame (the header's checksum for the first), and each segment ends
//!   with a commit frame holding the database size of the last commit it merged;
//! - `shipped` counts bytes of the log as shipped: segment keys name offsets in it;
//! - frames are absorbed only in log order (each take continues where the last ended).

use super::ship::{be32, checksum, parse_header, FRAME_HEADER, WAL_HEADER};
use crate::error::{MetaError, Result};
use crate::types::LogFrames;
use std::collections::HashMap;

/// One log of a generation being shipped: its output position and the batch gathered
/// since the last segment.
pub struct ShipLog {
    pub index: u32,
    big_endian: bool,
    page_size: u32,
    salts: [u32; 2],
    /// Checksum after the last frame shipped (the header's before any).
    cksum: [u32; 2],
    /// Bytes of this log shipped so far: the next segment's start.
    shipped: u64,
    /// The log's header while it is not shipped yet.
    header: Option<Vec<u8>>,
    /// End of the frames absorbed, in the store's log (continuity check).
    taken: u64,
    /// The batch: page number → slot in `pages`.
    slots: HashMap<u32, usize>,
    pgnos: Vec<u32>,
    pages: Vec<u8>,
    /// Database size (pages) after the last commit absorbed.
    db_pages: u32,
    /// Log bytes absorbed into the batch (before merging).
    absorbed: u64,
}

/// A segment ready to upload: bytes `[start, end)` of the log as shipped.
pub struct Sealed {
    pub index: u32,
    pub start: u64,
    pub end: u64,
    pub bytes: Vec<u8>,
    /// Log bytes the segment merged (before merging).
    pub absorbed: u64,
    cksum: [u32; 2],
}

fn gap(why: String) -> MetaError {
    MetaError::LogGap(why)
}

impl ShipLog {
    /// Starts a log from its first frames (which begin with its header).
    pub fn begin(first: &LogFrames) -> Result<ShipLog> {
        let head = first
            .bytes
            .get(..WAL_HEADER as usize)
            .filter(|_| first.start == 0)
            .ok_or_else(|| {
                gap(format!(
                    "log {} does not start with its header",
                    first.index
                ))
            })?;
        let h = parse_header(head)
            .ok_or_else(|| gap(format!("log {} has no valid header", first.index)))?;
        let mut log = ShipLog {
            index: first.index,
            big_endian: h.big_endian,
            page_size: h.page_size,
            salts: h.salts,
            cksum: h.cksum,
            shipped: 0,
            header: Some(head.to_vec()),
            taken: WAL_HEADER,
            slots: HashMap::new(),
            pgnos: Vec::new(),
            pages: Vec::new(),
            db_pages: 0,
            absorbed: WAL_HEADER,
        };
        log.absorb_frames(&first.bytes[WAL_HEADER as usize..], first.end)?;
        Ok(log)
    }

    /// Adds the next frames of this log to the batch.
    pub fn absorb(&mut self, frames: &LogFrames) -> Result<()> {
        if frames.index != self.index || frames.start != self.taken {
            return Err(gap(format!(
                "log {} continues at byte {}, got log {} from byte {}",
                self.index, self.taken, frames.index, frames.start
            )));
        }
        self.absorb_frames(&frames.bytes, frames.end)
    }

    fn absorb_frames(&mut self, bytes: &[u8], end: u64) -> Result<()> {
        let ps = self.page_size as usize;
        let frame = FRAME_HEADER as usize + ps;
        if !bytes.len().is_multiple_of(frame) {
            return Err(gap(format!(
                "{} bytes of log {} are not whole frames of {frame}",
                bytes.len(),
                self.index
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
        self.taken = end;
        self.absorbed += bytes.len() as u64;
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
            cksum = checksum(&head[..8], self.big_endian, cksum);
            cksum = checksum(page, self.big_endian, cksum);
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
            absorbed: self.absorbed,
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
        self.absorbed = 0;
    }
}
