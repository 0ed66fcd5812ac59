//! [`RangedReader`]: `std::io::Read + Seek` over a [`RangeSource`], fetching aligned
//! blocks and keeping a few of them, so a tag parser's many small reads and seeks cost a
//! handful of ranged requests instead of a whole-file download.
//!
//! Invariants:
//! - Every request is for whole aligned blocks `[k * block_size, (k + n) * block_size)`
//!   cut at the end of the file, so a read near the end fetches only the last block and
//!   cached blocks never overlap.
//! - A block is cached only if the source returned exactly its length; a short or long
//!   answer means the file changed under us and is an error (never a short read that
//!   would look like the end of the file).
//! - At most `max_blocks` blocks are held (least recently used evicted first); a miss
//!   fetches the run of missing blocks the caller's buffer covers in one request, capped
//!   at half the cache so one large read cannot evict everything.
//! - The position may be anywhere at or past the end: reads there return 0. A seek to a
//!   negative position is `InvalidInput` and leaves the position unchanged.
//! - [`RangedReader::requests`] and [`RangedReader::fetched_bytes`] count every request
//!   made and every byte received, so tests and metrics can check how much tag reading
//!   costs.
//! - The first error from the source is kept ([`RangedReader::take_source_error`]): a
//!   parser sees only an `io::Error` and may report it as a malformed file; the caller
//!   asks the reader whether the source itself failed.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;

use crate::source::RangeSource;

/// Default block size: a FLAC or MP3 header, or the last ID3v1/APE bytes, fit in one.
pub const DEFAULT_BLOCK_SIZE: u64 = 64 * 1024;
/// Default number of cached blocks (1 MiB with the default block size).
pub const DEFAULT_MAX_BLOCKS: usize = 16;

/// A seekable reader over a ranged source with a small LRU block cache.
pub struct RangedReader {
    src: Arc<dyn RangeSource>,
    /// The source's length, read once: every block boundary is computed against it.
    len: u64,
    pos: u64,
    block_size: u64,
    max_blocks: usize,
    /// `(block index, bytes)`, least recently used first. A handful of entries: a linear
    /// scan is cheaper than a map.
    blocks: Vec<(u64, Bytes)>,
    requests: u64,
    fetched: u64,
    source_error: Option<io::Error>,
}

impl std::fmt::Debug for RangedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangedReader")
            .field("len", &self.len)
            .field("pos", &self.pos)
            .field("block_size", &self.block_size)
            .field("cached_blocks", &self.blocks.len())
            .field("requests", &self.requests)
            .field("fetched", &self.fetched)
            .finish_non_exhaustive()
    }
}

impl RangedReader {
    /// A reader with [`DEFAULT_BLOCK_SIZE`] and [`DEFAULT_MAX_BLOCKS`].
    pub fn new(src: Arc<dyn RangeSource>) -> RangedReader {
        RangedReader::with_blocks(src, DEFAULT_BLOCK_SIZE, DEFAULT_MAX_BLOCKS)
    }

    /// A reader with `block_size`-byte blocks (at least 1) keeping `max_blocks` of them
    /// (at least 1).
    pub fn with_blocks(
        src: Arc<dyn RangeSource>,
        block_size: u64,
        max_blocks: usize,
    ) -> RangedReader {
        let len = src.len();
        RangedReader {
            src,
            len,
            pos: 0,
            block_size: block_size.max(1),
            max_blocks: max_blocks.max(1),
            blocks: Vec::new(),
            requests: 0,
            fetched: 0,
            source_error: None,
        }
    }

    /// The file's length, as the source reported it when the reader was made.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Ranged requests made to the source so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Bytes received from the source so far.
    pub fn fetched_bytes(&self) -> u64 {
        self.fetched
    }

    /// The first error the source returned (or the length mismatch detected), if any,
    /// leaving none behind.
    pub fn take_source_error(&mut self) -> Option<io::Error> {
        self.source_error.take()
    }

    /// Whether the source has failed since the last [`RangedReader::take_source_error`].
    pub fn source_failed(&self) -> bool {
        self.source_error.is_some()
    }

    /// Number of blocks in the file.
    fn block_count(&self) -> u64 {
        self.len.div_ceil(self.block_size)
    }

    /// Exact length of block `k` (the last one may be short).
    fn block_len(&self, k: u64) -> u64 {
        let start = k * self.block_size;
        self.block_size.min(self.len.saturating_sub(start))
    }

    /// The cached block `k`, marked most recently used.
    fn cached(&mut self, k: u64) -> Option<Bytes> {
        let i = self.blocks.iter().position(|(b, _)| *b == k)?;
        let entry = self.blocks.remove(i);
        let bytes = entry.1.clone();
        self.blocks.push(entry);
        Some(bytes)
    }

    fn is_cached(&self, k: u64) -> bool {
        self.blocks.iter().any(|(b, _)| *b == k)
    }

    fn insert(&mut self, k: u64, bytes: Bytes) {
        if self.blocks.len() == self.max_blocks {
            self.blocks.remove(0);
        }
        self.blocks.push((k, bytes));
    }

    /// Fetches blocks `first..` (up to `wanted` of them, stopping before one already
    /// cached) in one request and caches them. Returns block `first`.
    fn fetch(&mut self, first: u64, wanted: u64) -> io::Result<Bytes> {
        let cap = (self.max_blocks as u64 / 2).max(1);
        let last = self.block_count();
        let mut n = 1;
        while n < wanted.min(cap) && first + n < last && !self.is_cached(first + n) {
            n += 1;
        }
        let offset = first * self.block_size;
        let expected: u64 = (first..first + n).map(|k| self.block_len(k)).sum();
        self.requests += 1;
        let data = match self.src.read_range(offset, expected) {
            Ok(data) => data,
            Err(e) => return Err(self.fail(e)),
        };
        self.fetched += data.len() as u64;
        if data.len() as u64 != expected {
            let e = io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "source returned {} bytes for [{offset}, +{expected}) of a {}-byte file: \
                     the file changed while being read",
                    data.len(),
                    self.len
                ),
            );
            return Err(self.fail(e));
        }
        let mut at = 0usize;
        for k in first..first + n {
            let l = self.block_len(k) as usize;
            self.insert(k, data.slice(at..at + l));
            at += l;
        }
        Ok(data.slice(..self.block_len(first) as usize))
    }

    /// Keeps the first source error and hands the parser a copy of its kind and text.
    fn fail(&mut self, e: io::Error) -> io::Error {
        let copy = io::Error::new(e.kind(), e.to_string());
        self.source_error.get_or_insert(e);
        copy
    }
}

impl Read for RangedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0usize;
        while done < buf.len() && self.pos < self.len {
            let k = self.pos / self.block_size;
            let block = match self.cached(k) {
                Some(b) => b,
                // Fetch what the rest of the buffer covers; after a partial copy, stop
                // at the cache instead of fetching more than asked (a short read is fine).
                None if done > 0 => break,
                None => {
                    let end = self.pos.saturating_add(buf.len() as u64).min(self.len);
                    let wanted = (end - 1) / self.block_size - k + 1;
                    self.fetch(k, wanted)?
                }
            };
            let within = (self.pos - k * self.block_size) as usize;
            let n = (block.len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&block[within..within + n]);
            done += n;
            self.pos += n as u64;
        }
        Ok(done)
    }
}

impl Seek for RangedReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )),
        }
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    /// Bytes `i % 251` (a prime, so blocks differ) that records every request.
    struct Logged {
        data: Bytes,
        /// What `len()` claims; differs from the data's length to fake a changed file.
        claimed: u64,
        log: Mutex<Vec<(u64, u64)>>,
        fail: bool,
    }

    fn logged(len: usize) -> Arc<Logged> {
        let data: Bytes = (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>().into();
        Arc::new(Logged {
            claimed: len as u64,
            data,
            log: Mutex::new(Vec::new()),
            fail: false,
        })
    }

    impl RangeSource for Logged {
        fn len(&self) -> u64 {
            self.claimed
        }
        fn read_range(&self, offset: u64, len: u64) -> io::Result<Bytes> {
            self.log.lock().push((offset, len));
            if self.fail {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "origin timed out"));
            }
            self.data.read_range(offset, len)
        }
    }

    fn reader(src: &Arc<Logged>, block: u64, max: usize) -> RangedReader {
        RangedReader::with_blocks(src.clone(), block, max)
    }

    fn read_at(r: &mut RangedReader, pos: u64, n: usize) -> Vec<u8> {
        r.seek(SeekFrom::Start(pos)).unwrap();
        let mut buf = vec![0; n];
        r.read_exact(&mut buf).unwrap();
        buf
    }

    fn expected(pos: u64, n: usize) -> Vec<u8> {
        (pos..pos + n as u64).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn a_read_at_the_end_fetches_only_the_last_block() {
        let src = logged(10 * 64 + 20);
        let mut r = reader(&src, 64, 16);
        assert_eq!(r.seek(SeekFrom::End(-10)).unwrap(), 650);
        let mut buf = [0u8; 10];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(buf.to_vec(), expected(650, 10));
        assert_eq!(*src.log.lock(), vec![(640, 20)]);
        assert_eq!((r.requests(), r.fetched_bytes()), (1, 20));
        // Reading it again is served from the cache.
        assert_eq!(read_at(&mut r, 641, 5), expected(641, 5));
        assert_eq!(r.requests(), 1);
    }

    #[test]
    fn reading_the_whole_file_fetches_each_byte_once() {
        let src = logged(1000);
        let mut r = reader(&src, 64, 16);
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, expected(0, 1000));
        assert_eq!(r.fetched_bytes(), 1000);
        let log = src.log.lock();
        let mut next = 0;
        for &(offset, len) in log.iter() {
            assert_eq!(offset, next, "{log:?}");
            assert_eq!(offset % 64, 0);
            next = offset + len;
        }
        assert_eq!(next, 1000);
    }

    #[test]
    fn a_large_read_fetches_its_missing_blocks_in_one_request_capped_at_half_the_cache() {
        let src = logged(64 * 20);
        let mut r = reader(&src, 64, 8);
        assert_eq!(read_at(&mut r, 10, 64 * 2 + 10), expected(10, 138));
        assert_eq!(*src.log.lock(), vec![(0, 192)]);
        // 10 blocks wanted from block 5: runs of 4 (half of 8).
        assert_eq!(read_at(&mut r, 320, 640), expected(320, 640));
        assert_eq!(src.log.lock()[1..], [(320, 256), (576, 256), (832, 128)]);
    }

    #[test]
    fn a_run_stops_before_a_cached_block() {
        let src = logged(64 * 8);
        let mut r = reader(&src, 64, 16);
        read_at(&mut r, 128, 1);
        assert_eq!(read_at(&mut r, 0, 64 * 4), expected(0, 256));
        assert_eq!(*src.log.lock(), vec![(128, 64), (0, 128), (192, 64)]);
    }

    #[test]
    fn the_least_recently_used_block_is_evicted() {
        let src = logged(64 * 4);
        let mut r = reader(&src, 64, 2);
        read_at(&mut r, 0, 1);
        read_at(&mut r, 64, 1);
        read_at(&mut r, 0, 1); // block 0 is now the most recent
        read_at(&mut r, 128, 1); // evicts block 1
        assert_eq!(r.requests(), 3);
        read_at(&mut r, 0, 1);
        assert_eq!(r.requests(), 3);
        read_at(&mut r, 64, 1);
        assert_eq!(r.requests(), 4);
        assert_eq!(
            *src.log.lock(),
            vec![(0, 64), (64, 64), (128, 64), (64, 64)]
        );
    }

    #[test]
    fn seeks_past_the_end_read_nothing_and_negative_seeks_fail() {
        let src = logged(100);
        let mut r = reader(&src, 64, 4);
        assert_eq!(r.seek(SeekFrom::End(0)).unwrap(), 100);
        assert_eq!(r.seek(SeekFrom::Current(50)).unwrap(), 150);
        let mut buf = [7u8; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 0);
        assert_eq!(buf, [7u8; 8]);
        let err = r.seek(SeekFrom::Current(-151)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(r.stream_position().unwrap(), 150);
        assert_eq!(r.seek(SeekFrom::End(-100)).unwrap(), 0);
        assert!(r.seek(SeekFrom::End(-101)).is_err());
        assert_eq!(r.requests(), 0);
        assert_eq!(r.len(), 100);
    }

    #[test]
    fn a_source_that_changed_length_is_an_error_not_a_short_read() {
        let mut src = logged(100);
        Arc::get_mut(&mut src).unwrap().claimed = 200;
        let mut r = reader(&src, 64, 4);
        let mut buf = [0u8; 50];
        r.seek(SeekFrom::Start(120)).unwrap();
        let err = r.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(r.source_failed());
        assert_eq!(
            r.take_source_error().unwrap().kind(),
            io::ErrorKind::InvalidData
        );
        assert!(!r.source_failed());
        // Blocks 1 and 2 were asked for; the 36 bytes that came back count as fetched.
        assert_eq!(*src.log.lock(), vec![(64, 128)]);
        assert_eq!(r.fetched_bytes(), 36);
    }

    #[test]
    fn a_source_error_is_kept_for_the_caller() {
        let mut src = logged(100);
        Arc::get_mut(&mut src).unwrap().fail = true;
        let mut r = reader(&src, 64, 4);
        let err = r.read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let kept = r.take_source_error().unwrap();
        assert_eq!(
            (kept.kind(), kept.to_string()),
            (io::ErrorKind::TimedOut, "origin timed out".into())
        );
        assert_eq!((r.requests(), r.fetched_bytes()), (1, 0));
    }
}
