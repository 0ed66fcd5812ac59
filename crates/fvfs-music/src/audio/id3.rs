//! The MP3 encoder: a new ID3v2.4 tag before the original audio frames.
//!
//! Layout of the header written: `ID3`, version 4.0, no flags, a syncsafe size, then
//! the frames in [`tag_list`] order (TIT2, TPE1, TALB, TPE2, TCON, TDRC, TRCK, TPOS,
//! then the extra tags: TPUB, TCMP, TCOM or TXXX), then the APIC frames of the
//! original's ID3v2 tags, bodies copied byte for byte. No padding, no unsynchronisation,
//! no extended header. Text is UTF-8 (encoding byte 3). The trailer is empty: ID3v1,
//! APEv2 and appended ID3v2 tags of the original are dropped, so a reader merging tags
//! cannot show a stale value for a field the index left empty.
//!
//! Invariants:
//! - TRCK and TPOS are `n` or `n/total` (`tracktotal` / `disctotal` of the row's extra);
//!   a total without its number is not written (ID3 has no frame for it alone).
//! - An APIC frame is copied only when it can be verbatim: from an ID3v2.3 or 2.4 tag
//!   without tag-level unsynchronisation, the frame itself neither compressed,
//!   encrypted, grouped, unsynchronised nor with a data length indicator. Others (and
//!   ID3v2.2 `PIC` frames) are dropped. A damaged frame list ends the copy, it does not
//!   fail the overlay.
//! - Frame and tag sizes are checked against the 28-bit syncsafe limit
//!   ([`OverlayError::TooLarge`]).

use bytes::Bytes;
use fvfs_meta::MusicTrack;

use super::overlay::{malformed, tag_list, Key, Overlay, OverlayError};
use super::read_exact_at;
use super::region::{mp3_layout, syncsafe, Id3v2};
use crate::tags::RangedReader;

/// The largest syncsafe size.
const MAX_SIZE: u64 = 0x0FFF_FFFF;
/// Text encoding byte: UTF-8.
const UTF8: u8 = 3;

/// Where a tag goes: a text frame of its own, or a TXXX with a description.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    Text(&'static [u8; 4]),
    User(String),
}

fn frame_of(k: Key<'_>) -> Frame {
    match k {
        Key::Title => Frame::Text(b"TIT2"),
        Key::Artist => Frame::Text(b"TPE1"),
        Key::Album => Frame::Text(b"TALB"),
        Key::AlbumArtist => Frame::Text(b"TPE2"),
        Key::Genre => Frame::Text(b"TCON"),
        Key::Date => Frame::Text(b"TDRC"),
        Key::Track | Key::TrackTotal => Frame::Text(b"TRCK"),
        Key::Disc | Key::DiscTotal => Frame::Text(b"TPOS"),
        Key::Label => Frame::Text(b"TPUB"),
        Key::Compilation => Frame::Text(b"TCMP"),
        Key::Composer => Frame::Text(b"TCOM"),
        Key::CatalogNumber => Frame::User("CATALOGNUMBER".into()),
        Key::MbAlbumId => Frame::User("MusicBrainz Album Id".into()),
        Key::AlbumType => Frame::User("MusicBrainz Album Type".into()),
        Key::Country => Frame::User("MusicBrainz Album Release Country".into()),
        Key::AlbumDisambig => Frame::User("MusicBrainz Album Comment".into()),
        Key::ReleaseGroupDisambig => Frame::User("MusicBrainz Release Group Comment".into()),
        Key::Other(name) => Frame::User(name.to_ascii_uppercase()),
    }
}

fn syncsafe_bytes(n: u64) -> [u8; 4] {
    [
        (n >> 21) as u8 & 0x7F,
        (n >> 14) as u8 & 0x7F,
        (n >> 7) as u8 & 0x7F,
        n as u8 & 0x7F,
    ]
}

fn push_frame(out: &mut Vec<u8>, id: &[u8; 4], body: &[u8]) -> Result<(), OverlayError> {
    let len = body.len() as u64;
    if len > MAX_SIZE {
        return Err(OverlayError::TooLarge { format: "mp3", len });
    }
    out.extend_from_slice(id);
    out.extend_from_slice(&syncsafe_bytes(len));
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(body);
    Ok(())
}

/// The frames of the tags of `track`, in [`tag_list`] order.
fn text_frames(track: &MusicTrack, out: &mut Vec<u8>) -> Result<(), OverlayError> {
    let tags = tag_list(track);
    let value = |k: Key<'_>| tags.iter().find(|(t, _)| *t == k).map(|(_, v)| v.as_str());
    for (k, v) in &tags {
        let body = match (k, frame_of(*k)) {
            // Totals ride with their numbers.
            (Key::TrackTotal | Key::DiscTotal, _) => continue,
            (Key::Track | Key::Disc, Frame::Text(id)) => {
                let total = if *k == Key::Track {
                    Key::TrackTotal
                } else {
                    Key::DiscTotal
                };
                let text = match value(total) {
                    Some(t) => format!("{v}/{t}"),
                    None => v.clone(),
                };
                (id, text.into_bytes())
            }
            (_, Frame::Text(id)) => (id, v.as_bytes().to_vec()),
            (_, Frame::User(desc)) => {
                let mut b = desc.into_bytes();
                b.push(0);
                b.extend_from_slice(v.as_bytes());
                (b"TXXX", b)
            }
        };
        let (id, text) = body;
        let mut frame = Vec::with_capacity(1 + text.len());
        frame.push(UTF8);
        frame.extend_from_slice(&text);
        push_frame(out, id, &frame)?;
    }
    Ok(())
}

/// The APIC frame bodies of the ID3v2 tag `tag` that can be copied verbatim.
fn pictures(r: &mut RangedReader, tag: &Id3v2) -> std::io::Result<Vec<Vec<u8>>> {
    let mut found = Vec::new();
    if !(tag.major == 3 || tag.major == 4) || tag.flags & 0x80 != 0 {
        return Ok(found);
    }
    let body = read_exact_at(r, tag.offset + 10, tag.size)?;
    let mut pos = 0usize;
    if tag.flags & 0x40 != 0 {
        // Extended header: v2.3 size excludes its 4 bytes, v2.4 size includes them.
        let Some(size) = body.get(..4).and_then(|b| ext_size(tag.major, b)) else {
            return Ok(found);
        };
        pos = if tag.major == 3 { size + 4 } else { size };
    }
    while let Some(h) = body.get(pos..pos + 10) {
        if h[0] == 0 {
            break; // padding
        }
        let raw = [h[4], h[5], h[6], h[7]];
        let size = if tag.major == 4 {
            syncsafe(raw)
        } else {
            Some(u64::from(u32::from_be_bytes(raw)))
        };
        let end = size.and_then(|s| usize::try_from(s).ok()?.checked_add(pos + 10));
        let Some(frame) = end.and_then(|end| body.get(pos + 10..end)) else {
            break;
        };
        let plain = if tag.major == 4 {
            h[9] & 0x4F == 0
        } else {
            h[9] & 0xE0 == 0
        };
        if &h[..4] == b"APIC" && plain {
            found.push(frame.to_vec());
        }
        pos += 10 + frame.len();
    }
    Ok(found)
}

fn ext_size(major: u8, b: &[u8]) -> Option<usize> {
    let raw: [u8; 4] = b.try_into().ok()?;
    let n = if major == 4 {
        syncsafe(raw)?
    } else {
        u64::from(u32::from_be_bytes(raw))
    };
    usize::try_from(n).ok()
}

/// The overlay of an MP3 file.
pub(super) fn build(r: &mut RangedReader, track: &MusicTrack) -> Result<Overlay, OverlayError> {
    let bad = malformed("mp3");
    let layout = mp3_layout(r).map_err(&bad)?;
    let mut frames = Vec::new();
    text_frames(track, &mut frames)?;
    for tag in &layout.tags {
        for pic in pictures(r, tag).map_err(&bad)? {
            push_frame(&mut frames, b"APIC", &pic)?;
        }
    }
    let len = frames.len() as u64;
    if len > MAX_SIZE {
        return Err(OverlayError::TooLarge { format: "mp3", len });
    }
    let mut header = Vec::with_capacity(10 + frames.len());
    header.extend_from_slice(b"ID3\x04\x00\x00");
    header.extend_from_slice(&syncsafe_bytes(len));
    header.extend_from_slice(&frames);
    Ok(Overlay {
        header: Bytes::from(header),
        region: layout.region,
        trailer: Bytes::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncsafe_sizes_round_trip() {
        for n in [0, 1, 127, 128, 300, 0x0FFF_FFFF] {
            assert_eq!(syncsafe(syncsafe_bytes(n)), Some(n));
        }
        assert_eq!(syncsafe_bytes(300), [0, 0, 2, 44]);
    }

    #[test]
    fn numbers_carry_their_totals_and_extras_go_to_txxx() {
        let t = MusicTrack {
            title: Some("T".into()),
            track: Some(3),
            extra: vec![
                ("disctotal".into(), "2".into()),
                ("mood".into(), "calm".into()),
                ("tracktotal".into(), "12".into()),
            ],
            ..MusicTrack::default()
        };
        let mut out = Vec::new();
        text_frames(&t, &mut out).unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(b"TIT2\0\0\0\x02\0\0\x03T");
        want.extend_from_slice(b"TRCK\0\0\0\x05\0\0\x033/12");
        want.extend_from_slice(b"TXXX\0\0\0\x0A\0\0\x03MOOD\0calm");
        assert_eq!(out, want);
    }
}
