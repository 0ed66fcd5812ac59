//! The audio bytes of a track apart from its tags, and files served with the index's
//! tags in place of the original ones.
//!
//! Layout: `region.rs` finds the [`AudioRegion`] (FLAC metadata blocks, MP3 ID3v2 tags
//! at the start and ID3v1 / APEv2 / appended ID3v2 tags at the end); `overlay.rs` the
//! [`Overlay`] (`header ++ original[region] ++ trailer`), its ranged reads, and the
//! tags of an index row in the order every encoder writes them; `flac.rs` and `id3.rs`
//! the two encoders (a FLAC metadata section with a new VORBIS_COMMENT, an ID3v2.4 tag).
//!
//! Invariants:
//! - Only the bytes needed are read, through the caller's [`RangedReader`]: the header
//!   at the start, the tags' footers at the end, kept metadata blocks (pictures) whole.
//!   Finding a region never reads the audio.
//! - Malformed or truncated input is an error (or `None` for a format without a region),
//!   never a panic: every length read from the file is checked against the file's length
//!   before it is used, and no file byte is indexed without a bounds check.
//! - A region is an exact byte range of the original: `start + len <= file length`.
//! - [`audio_id`] depends only on the region's bytes (its length, first and last
//!   [`AUDIO_ID_SPAN`] bytes): rewriting the tags leaves it unchanged.
//! - An overlay is a pure function of the original file's bytes and the index row: the
//!   same track gives the same bytes, so its length is exact before any read and stable
//!   across restarts.
//! - A source failure is told apart from a malformed file by the reader
//!   ([`RangedReader::take_source_error`]), as in `tags`: [`build_overlay`] returns
//!   [`OverlayError::Io`] whenever a request failed.

mod flac;
mod id3;
mod overlay;
mod region;

use std::io::{self, Read, Seek, SeekFrom};

use crate::tags::RangedReader;

pub use overlay::{build_overlay, Overlay, OverlayError};

/// How many bytes at each end of the region [`audio_id`] hashes.
pub const AUDIO_ID_SPAN: u64 = 64 * 1024;

/// The byte range of a file that holds its audio, tags excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AudioRegion {
    /// Offset of the first audio byte in the original file.
    pub start: u64,
    /// Number of audio bytes.
    pub len: u64,
}

impl AudioRegion {
    /// One past the last audio byte.
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// The audio region of a file of `format` (`flac` or `mp3`, as [`crate::tags`] names
/// formats); `None` for other formats, whose tags are not separated from the audio.
///
/// FLAC: everything after `fLaC` and the metadata blocks (through the block with the
/// last-block flag); ID3v2 tags some taggers put before `fLaC` are skipped too.
/// MP3: everything after the ID3v2 tag(s) at the start (footer flag honoured, several
/// tags in a row skipped) and before the tags at the end: ID3v1 (128 bytes, with an
/// extended `TAG+` block before it), APEv2 (with or without its header), an ID3v2 tag
/// with a footer, in any order.
///
/// Errors: `InvalidData` for a malformed header, `UnexpectedEof` when a tag or block
/// runs past the end of the file, or the source's own error.
pub fn audio_region(r: &mut RangedReader, format: &str) -> io::Result<Option<AudioRegion>> {
    match format {
        "flac" => region::flac_layout(r).map(|l| Some(l.region)),
        "mp3" => region::mp3_layout(r).map(|l| Some(l.region)),
        _ => Ok(None),
    }
}

/// Recognises audio bytes across tag edits: BLAKE3 of the region's length (u64,
/// little-endian), then its first `min(len, 64 KiB)` bytes, then its last
/// `min(len, 64 KiB)` bytes (the two spans overlap in a region under 128 KiB).
///
/// A change in the middle of a long region, beyond both spans, is not seen: this tells
/// a retag from a different file, it is not a content hash.
pub fn audio_id(r: &mut RangedReader, region: &AudioRegion) -> io::Result<[u8; 32]> {
    let end = region
        .start
        .checked_add(region.len)
        .filter(|end| *end <= r.len())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "audio region [{}, +{}) past the end of a {}-byte file",
                    region.start,
                    region.len,
                    r.len()
                ),
            )
        })?;
    let span = region.len.min(AUDIO_ID_SPAN);
    let mut h = blake3::Hasher::new();
    h.update(&region.len.to_le_bytes());
    h.update(&read_exact_at(r, region.start, span)?);
    h.update(&read_exact_at(r, end - span, span)?);
    Ok(*h.finalize().as_bytes())
}

/// Up to `n` bytes at `offset`: fewer only where the file ends. Never allocates more
/// than the file holds, whatever `n` a header claims.
fn read_at(r: &mut RangedReader, offset: u64, n: u64) -> io::Result<Vec<u8>> {
    let n = n.min(r.len().saturating_sub(offset));
    let mut buf = vec![0u8; n as usize];
    r.seek(SeekFrom::Start(offset))?;
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..])? {
            0 => break,
            k => done += k,
        }
    }
    buf.truncate(done);
    Ok(buf)
}

/// Exactly `n` bytes at `offset`, else `UnexpectedEof`.
fn read_exact_at(r: &mut RangedReader, offset: u64, n: u64) -> io::Result<Vec<u8>> {
    let buf = read_at(r, offset, n)?;
    if buf.len() as u64 != n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{n} bytes at {offset} wanted, the {}-byte file ends first",
                r.len()
            ),
        ));
    }
    Ok(buf)
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}
