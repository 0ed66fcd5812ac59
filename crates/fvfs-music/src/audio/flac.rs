//! The FLAC encoder: the original metadata section with a new VORBIS_COMMENT.
//!
//! Layout of the header written: `fLaC`, STREAMINFO, every other original block in
//! its original order as it is (SEEKTABLE, APPLICATION, CUESHEET, PICTURE, ...) except
//! VORBIS_COMMENT and PADDING, then the new VORBIS_COMMENT, the only block with the
//! last-block flag. No padding: the file is served read-only. ID3v2 tags before `fLaC`
//! (not FLAC, written by some taggers) are dropped.
//!
//! Invariants: the comment keeps the original vendor string byte for byte (`fvfs` when
//! the original had no comment); field names are the upper-case Vorbis names of
//! [`vorbis_name`]; block lengths are checked against the 24-bit length field
//! ([`OverlayError::TooLarge`]).

use bytes::Bytes;
use fvfs_meta::MusicTrack;

use super::overlay::{malformed, tag_list, Key, Overlay, OverlayError};
use super::region::{flac_layout, PADDING, VORBIS_COMMENT};
use super::{invalid, read_exact_at};
use crate::tags::RangedReader;

/// The vendor string of a comment made for a file that had none.
const DEFAULT_VENDOR: &[u8] = b"fvfs";
/// The largest block body a 24-bit length holds.
const MAX_BLOCK: u64 = 0xFF_FFFF;

/// The Vorbis comment field name of `k`.
pub(super) fn vorbis_name(k: Key<'_>) -> String {
    match k {
        Key::Title => "TITLE",
        Key::Artist => "ARTIST",
        Key::Album => "ALBUM",
        Key::AlbumArtist => "ALBUMARTIST",
        Key::Genre => "GENRE",
        Key::Date => "DATE",
        Key::Track => "TRACKNUMBER",
        Key::Disc => "DISCNUMBER",
        Key::TrackTotal => "TRACKTOTAL",
        Key::DiscTotal => "DISCTOTAL",
        Key::Label => "LABEL",
        Key::CatalogNumber => "CATALOGNUMBER",
        Key::Compilation => "COMPILATION",
        Key::MbAlbumId => "MUSICBRAINZ_ALBUMID",
        Key::AlbumType => "RELEASETYPE",
        Key::Country => "RELEASECOUNTRY",
        Key::AlbumDisambig => "MUSICBRAINZ_ALBUMCOMMENT",
        Key::ReleaseGroupDisambig => "RELEASEGROUPDISAMBIG",
        Key::Composer => "COMPOSER",
        Key::Other(name) => return name.to_ascii_uppercase(),
    }
    .to_string()
}

/// A VORBIS_COMMENT body: vendor, then `NAME=value` fields, lengths little-endian.
pub(super) fn vorbis_comment(
    vendor: &[u8],
    tags: &[(Key<'_>, String)],
) -> Result<Vec<u8>, OverlayError> {
    let too_large = |len: u64| OverlayError::TooLarge {
        format: "flac",
        len,
    };
    let mut out = Vec::new();
    let put = |out: &mut Vec<u8>, bytes: &[u8]| -> Result<(), OverlayError> {
        let n = u32::try_from(bytes.len()).map_err(|_| too_large(bytes.len() as u64))?;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(bytes);
        Ok(())
    };
    put(&mut out, vendor)?;
    let count = u32::try_from(tags.len()).map_err(|_| too_large(tags.len() as u64))?;
    out.extend_from_slice(&count.to_le_bytes());
    for (k, v) in tags {
        put(&mut out, format!("{}={v}", vorbis_name(*k)).as_bytes())?;
    }
    if out.len() as u64 > MAX_BLOCK {
        return Err(too_large(out.len() as u64));
    }
    Ok(out)
}

/// Appends a block (header and body) to `out`.
fn push_block(out: &mut Vec<u8>, kind: u8, last: bool, body: &[u8]) {
    let len = body.len() as u32;
    out.push(kind | if last { 0x80 } else { 0 });
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(body);
}

/// The overlay of a FLAC file.
pub(super) fn build(r: &mut RangedReader, track: &MusicTrack) -> Result<Overlay, OverlayError> {
    let bad = malformed("flac");
    let layout = flac_layout(r).map_err(&bad)?;
    let mut vendor: Option<Vec<u8>> = None;
    let mut kept: Vec<(u8, Vec<u8>)> = Vec::new();
    for b in &layout.blocks {
        match b.kind {
            VORBIS_COMMENT => {
                if vendor.is_none() {
                    vendor = Some(read_vendor(r, b.offset + 4, b.len).map_err(&bad)?);
                }
            }
            PADDING => {}
            kind => kept.push((kind, read_exact_at(r, b.offset + 4, b.len).map_err(&bad)?)),
        }
    }
    let comment = vorbis_comment(
        vendor.as_deref().unwrap_or(DEFAULT_VENDOR),
        &tag_list(track),
    )?;
    let mut header = b"fLaC".to_vec();
    for (kind, body) in &kept {
        push_block(&mut header, *kind, false, body);
    }
    push_block(&mut header, VORBIS_COMMENT, true, &comment);
    Ok(Overlay {
        header: Bytes::from(header),
        region: layout.region,
        trailer: Bytes::new(),
    })
}

/// The vendor string of the VORBIS_COMMENT body at `offset` (`len` bytes).
fn read_vendor(r: &mut RangedReader, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    if len < 4 {
        return Err(invalid(
            "VORBIS_COMMENT block shorter than its vendor length",
        ));
    }
    let n = read_exact_at(r, offset, 4)?;
    let n = u64::from(u32::from_le_bytes([n[0], n[1], n[2], n[3]]));
    if 4 + n > len {
        return Err(invalid(
            "the vendor string runs past its VORBIS_COMMENT block",
        ));
    }
    read_exact_at(r, offset + 4, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comment_is_vendor_count_and_fields() {
        let body = vorbis_comment(
            b"v",
            &[
                (Key::Title, "Jóga".into()),
                (Key::Other("mood"), "x".into()),
            ],
        )
        .unwrap();
        let mut want = vec![1, 0, 0, 0, b'v', 2, 0, 0, 0, 11, 0, 0, 0];
        want.extend_from_slice("TITLE=Jóga".as_bytes());
        want.extend_from_slice(&[6, 0, 0, 0]);
        want.extend_from_slice(b"MOOD=x");
        assert_eq!(body, want);
        let mut block = Vec::new();
        push_block(&mut block, VORBIS_COMMENT, true, &body);
        assert_eq!(block[..4], [0x84, 0, 0, body.len() as u8]);
    }

    #[test]
    fn a_comment_over_16_mib_is_too_large() {
        let huge = "x".repeat(MAX_BLOCK as usize);
        assert!(matches!(
            vorbis_comment(b"", &[(Key::Title, huge)]),
            Err(OverlayError::TooLarge { format: "flac", .. })
        ));
    }
}
