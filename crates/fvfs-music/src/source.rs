//! A byte source of known length that serves ranges: a track on an origin, a track in
//! the music cache. Tag reading (`tags`) and the view's reads take ranges from it; no
//! caller ever needs a whole file to read part of it.
//!
//! Invariants: `len` is the exact length of the bytes `read_range` serves (a source whose
//! object changed length is an error, never a short read presented as the whole);
//! `read_range` returns exactly `min(len, self.len() - offset)` bytes, and nothing for
//! an offset at or past the end.

use bytes::Bytes;

/// Read-only ranged access to one file's bytes. Blocking: tag parsers (lofty) read
/// through `std::io::Read + Seek`, so callers run it on a blocking thread.
pub trait RangeSource: Send + Sync {
    /// The file's length in bytes.
    fn len(&self) -> u64;
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The bytes `[offset, offset + len)`, cut at the end of the file.
    fn read_range(&self, offset: u64, len: u64) -> std::io::Result<Bytes>;
}

/// A source over bytes in memory (tests, embedded art, a file already fetched whole).
impl RangeSource for Bytes {
    fn len(&self) -> u64 {
        Bytes::len(self) as u64
    }
    fn read_range(&self, offset: u64, len: u64) -> std::io::Result<Bytes> {
        let total = Bytes::len(self) as u64;
        let start = offset.min(total);
        let end = offset.saturating_add(len).min(total);
        Ok(self.slice(start as usize..end as usize))
    }
}
