//! Where the tags end and the audio begins: the FLAC metadata section and the MP3 tags
//! at either end, walked through headers and footers only.
//!
//! Invariants:
//! - Every size read from a header is checked against the file's length before it moves
//!   the position; a tag or block running past the end is `UnexpectedEof`, a header
//!   that cannot be one (non-syncsafe size, block type 127, an APE header where a footer
//!   belongs) is `InvalidData`.
//! - Walks are bounded: at most [`MAX_PREPENDED_TAGS`] ID3v2 tags at the start (more are
//!   left in the audio), at most [`MAX_FLAC_BLOCKS`] metadata blocks, at most
//!   [`MAX_TRAILING_TAGS`] tags at the end; each step reads a few bytes.
//! - The result is a range of the file: `start + len <= file length`.

use std::io;

use super::{invalid, read_at, read_exact_at, AudioRegion};
use crate::tags::RangedReader;

/// ID3v2 tags skipped at the start of a file.
pub(super) const MAX_PREPENDED_TAGS: usize = 8;
/// Metadata blocks a FLAC file may have (real files have a handful).
pub(super) const MAX_FLAC_BLOCKS: usize = 1024;
/// Tags stripped from the end of an MP3 (ID3v1, APEv2, appended ID3v2).
pub(super) const MAX_TRAILING_TAGS: usize = 4;

/// FLAC metadata block types.
pub(super) const STREAMINFO: u8 = 0;
pub(super) const PADDING: u8 = 1;
pub(super) const VORBIS_COMMENT: u8 = 4;

/// An ID3v2 tag found in the file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Id3v2 {
    /// Offset of its `ID3` header.
    pub offset: u64,
    /// Major version (2, 3, 4).
    pub major: u8,
    pub flags: u8,
    /// Size of what follows the 10-byte header, footer excluded (the header's size).
    pub size: u64,
    /// Header, body and footer.
    pub total: u64,
}

/// One FLAC metadata block.
#[derive(Debug, Clone, Copy)]
pub(super) struct FlacBlock {
    pub kind: u8,
    /// Offset of its 4-byte header.
    pub offset: u64,
    /// Length of its body.
    pub len: u64,
}

pub(super) struct FlacLayout {
    pub blocks: Vec<FlacBlock>,
    pub region: AudioRegion,
}

pub(super) struct Mp3Layout {
    pub tags: Vec<Id3v2>,
    pub region: AudioRegion,
}

/// A 28-bit syncsafe integer (four bytes of 7 bits), `None` when a byte has its top bit.
pub(super) fn syncsafe(b: [u8; 4]) -> Option<u64> {
    b.iter().try_fold(0u64, |acc, &x| {
        (x < 0x80).then_some((acc << 7) | u64::from(x))
    })
}

fn four(b: &[u8], at: usize) -> Option<[u8; 4]> {
    b.get(at..at + 4)?.try_into().ok()
}

/// The ID3v2 header (or footer, `magic` `3DI`) in the 10 bytes `b`, if they are one.
fn id3v2_header(b: &[u8], magic: &[u8; 3], offset: u64) -> io::Result<Option<Id3v2>> {
    if b.len() < 10 || !b.starts_with(magic) {
        return Ok(None);
    }
    let (major, minor, flags) = (b[3], b[4], b[5]);
    let size = four(b, 6)
        .and_then(syncsafe)
        .filter(|_| major != 0xFF && minor != 0xFF)
        .ok_or_else(|| invalid(format!("malformed ID3v2 header at {offset}")))?;
    let footer = if major >= 4 && flags & 0x10 != 0 {
        10
    } else {
        0
    };
    Ok(Some(Id3v2 {
        offset,
        major,
        flags,
        size,
        total: 10 + size + footer,
    }))
}

/// The ID3v2 tags one after the other from the start, and where the first thing that
/// is not one begins.
fn prepended_id3v2(r: &mut RangedReader) -> io::Result<(Vec<Id3v2>, u64)> {
    let mut tags = Vec::new();
    let mut pos = 0u64;
    while tags.len() < MAX_PREPENDED_TAGS {
        let head = read_at(r, pos, 10)?;
        let Some(tag) = id3v2_header(&head, b"ID3", pos)? else {
            break;
        };
        let end = pos + tag.total;
        if end > r.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the ID3v2 tag at {pos} ends at {end}, past the end of the file"),
            ));
        }
        tags.push(tag);
        pos = end;
    }
    Ok((tags, pos))
}

/// The metadata blocks of a FLAC stream and the audio after them.
pub(super) fn flac_layout(r: &mut RangedReader) -> io::Result<FlacLayout> {
    // ID3v2 tags before `fLaC` are not FLAC, but some taggers write them.
    let (_, mut pos) = prepended_id3v2(r)?;
    if read_at(r, pos, 4)? != b"fLaC" {
        return Err(invalid(format!("no fLaC marker at {pos}")));
    }
    pos += 4;
    let mut blocks = Vec::new();
    loop {
        if blocks.len() == MAX_FLAC_BLOCKS {
            return Err(invalid(format!(
                "more than {MAX_FLAC_BLOCKS} FLAC metadata blocks"
            )));
        }
        let h = read_exact_at(r, pos, 4)?;
        let (last, kind) = (h[0] & 0x80 != 0, h[0] & 0x7F);
        let len = u64::from(h[1]) << 16 | u64::from(h[2]) << 8 | u64::from(h[3]);
        if kind == 127 {
            return Err(invalid(format!(
                "invalid FLAC metadata block type at {pos}"
            )));
        }
        if blocks.is_empty() && kind != STREAMINFO {
            return Err(invalid("the first FLAC metadata block is not STREAMINFO"));
        }
        let end = pos + 4 + len;
        if end > r.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the FLAC metadata block at {pos} ends past the end of the file"),
            ));
        }
        blocks.push(FlacBlock {
            kind,
            offset: pos,
            len,
        });
        pos = end;
        if last {
            break;
        }
    }
    Ok(FlacLayout {
        blocks,
        region: AudioRegion {
            start: pos,
            len: r.len() - pos,
        },
    })
}

/// The ID3v2 tags at the start of an MP3 and the audio between them and the tags at
/// the end.
pub(super) fn mp3_layout(r: &mut RangedReader) -> io::Result<Mp3Layout> {
    let (tags, start) = prepended_id3v2(r)?;
    let mut end = r.len();
    for _ in 0..MAX_TRAILING_TAGS {
        match trailing_tag(r, start, end)? {
            Some(len) => end -= len,
            None => break,
        }
    }
    Ok(Mp3Layout {
        tags,
        region: AudioRegion {
            start,
            len: end - start,
        },
    })
}

fn le32(b: &[u8], at: usize) -> u64 {
    four(b, at).map_or(0, |x| u64::from(u32::from_le_bytes(x)))
}

/// The length of the tag that ends at `end`, if one does (and fits after `start`).
fn trailing_tag(r: &mut RangedReader, start: u64, end: u64) -> io::Result<Option<u64>> {
    let avail = end - start;
    let past_start = |what: &str| {
        invalid(format!(
            "the {what} ending at {end} starts before the audio"
        ))
    };
    // ID3v1, maybe with the 227-byte extended block before it.
    if avail >= 128 && read_exact_at(r, end - 128, 3)? == b"TAG" {
        let extended = avail >= 128 + 227 && read_exact_at(r, end - 355, 4)? == b"TAG+";
        return Ok(Some(if extended { 355 } else { 128 }));
    }
    // APEv2 (or v1) footer: "APETAGEX", version, size (items + footer), count, flags.
    if avail >= 32 {
        let f = read_exact_at(r, end - 32, 32)?;
        if f.starts_with(b"APETAGEX") {
            let (size, flags) = (le32(&f, 12), le32(&f, 20));
            if flags & (1 << 29) != 0 {
                return Err(invalid(format!(
                    "an APE header where a footer belongs at {end}"
                )));
            }
            let total = size + if flags & (1 << 31) != 0 { 32 } else { 0 };
            if size < 32 || total > avail {
                return Err(past_start("APE tag"));
            }
            return Ok(Some(total));
        }
    }
    // An ID3v2 tag appended with a footer.
    if avail >= 20 {
        let f = read_exact_at(r, end - 10, 10)?;
        if let Some(tag) = id3v2_header(&f, b"3DI", end - 10)? {
            if tag.size + 20 > avail {
                return Err(past_start("appended ID3v2 tag"));
            }
            return Ok(Some(tag.size + 20));
        }
    }
    Ok(None)
}
