//! [`Overlay`]: a file served as `header ++ original[region] ++ trailer`, with the
//! index's tags in the header; [`build_overlay`] makes one from the original's head and
//! an index row; [`tag_list`] is the one list of tags, in order, every encoder writes.
//!
//! Invariants:
//! - [`Overlay::len`] is exact, and [`Overlay::read`] returns exactly
//!   `min(len, overlay.len() - offset)` bytes (nothing at or past the end), or an error
//!   when the region's reader answers short: never a short read passed on as whole.
//! - [`tag_list`] is deterministic: fixed fields in a fixed order, then the row's extra
//!   tags sorted by name (first value of a name kept); empty values, zero numbers and
//!   stream properties kept in `extra` (`bitdepth`, `channels`) are not tags and are
//!   left out, as are extra names that are not `[A-Za-z0-9_ .-]+`.

use std::io;

use bytes::{Bytes, BytesMut};
use fvfs_meta::MusicTrack;

use super::AudioRegion;
use crate::tags::RangedReader;

/// Why an overlay could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// The source failed: says nothing about the file, worth retrying.
    #[error("reading the original failed: {0}")]
    Io(#[source] io::Error),
    /// The original cannot be parsed as `format` (truncated, corrupt header).
    #[error("malformed {format} file: {reason}")]
    Malformed {
        format: &'static str,
        reason: String,
    },
    /// The new tag does not fit the format's size fields.
    #[error("the {format} tag would be {len} bytes, over the format's limit")]
    TooLarge { format: &'static str, len: u64 },
}

/// A served file: `header ++ original[region] ++ trailer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    pub header: Bytes,
    pub region: AudioRegion,
    pub trailer: Bytes,
}

impl Overlay {
    /// The served file's exact size.
    pub fn len(&self) -> u64 {
        self.header.len() as u64 + self.region.len + self.trailer.len() as u64
    }

    /// Whether the served file is empty (never, for a real track).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes `[offset, offset + len)` of the served file, cut at its end.
    /// `read_region(offset in region, len)` serves the audio (from the origin, from the
    /// cache) and must return exactly what it is asked for.
    pub fn read(
        &self,
        offset: u64,
        len: u64,
        mut read_region: impl FnMut(u64, u64) -> io::Result<Bytes>,
    ) -> io::Result<Bytes> {
        let total = self.len();
        let (start, end) = (offset.min(total), offset.saturating_add(len).min(total));
        let h = self.header.len() as u64;
        let t = h + self.region.len;
        let mut parts: Vec<Bytes> = Vec::with_capacity(3);
        if start < h {
            parts.push(self.header.slice(start as usize..end.min(h) as usize));
        }
        let (a, b) = (start.max(h), end.min(t));
        if a < b {
            let got = read_region(a - h, b - a)?;
            if got.len() as u64 != b - a {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the audio region gave {} bytes for [{}, +{})",
                        got.len(),
                        a - h,
                        b - a
                    ),
                ));
            }
            parts.push(got);
        }
        let a = start.max(t);
        if a < end {
            parts.push(self.trailer.slice((a - t) as usize..(end - t) as usize));
        }
        Ok(match parts.len() {
            0 => Bytes::new(),
            1 => parts.swap_remove(0),
            _ => {
                let mut out = BytesMut::with_capacity((end - start) as usize);
                for p in parts {
                    out.extend_from_slice(&p);
                }
                out.freeze()
            }
        })
    }
}

/// The file `track` (of `track.format`) served with the track's tags: `Ok(None)` for
/// formats without an encoder here (anything but `flac` and `mp3`).
///
/// FLAC: `fLaC`, STREAMINFO, the other original metadata blocks as they are but
/// VORBIS_COMMENT and PADDING, then a new VORBIS_COMMENT (the original vendor string)
/// as the last block; the trailer is empty. MP3: a new ID3v2.4 tag (UTF-8 text frames,
/// the original APIC frames copied), the audio frames, and an empty trailer: the
/// original ID3v1 / APE tags are dropped, so stale values cannot show through.
pub fn build_overlay(
    r: &mut RangedReader,
    track: &MusicTrack,
) -> Result<Option<Overlay>, OverlayError> {
    let built = match track.format.as_str() {
        "flac" => super::flac::build(r, track),
        "mp3" => super::id3::build(r, track),
        _ => return Ok(None),
    };
    // The reader decides whether the source failed, whatever the parse made of it.
    if let Some(e) = r.take_source_error() {
        return Err(OverlayError::Io(e));
    }
    built.map(Some)
}

/// A parse error of `format`'s original as an [`OverlayError::Malformed`].
pub(super) fn malformed(format: &'static str) -> impl Fn(io::Error) -> OverlayError {
    move |e| OverlayError::Malformed {
        format,
        reason: e.to_string(),
    }
}

/// A tag to write: the fields the index has columns or beets names for, each encoder
/// mapping them to its own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key<'a> {
    Title,
    Artist,
    Album,
    AlbumArtist,
    Genre,
    /// The year, 4 digits.
    Date,
    Track,
    Disc,
    TrackTotal,
    DiscTotal,
    Label,
    CatalogNumber,
    /// `1` or `0`.
    Compilation,
    MbAlbumId,
    AlbumType,
    Country,
    AlbumDisambig,
    ReleaseGroupDisambig,
    Composer,
    /// Any other beets field, by its name.
    Other(&'a str),
}

/// Names in `extra` that are not tags (stream properties) or that the fixed fields
/// already write.
const NOT_TAGS: &[&str] = &[
    "title",
    "artist",
    "album",
    "albumartist",
    "album_artist",
    "genre",
    "year",
    "track",
    "disc",
    "bitdepth",
    "channels",
    "bitrate",
    "samplerate",
    "length",
    "format",
    "format_upper",
];

fn extra_key(name: &str) -> Option<Key<'_>> {
    Some(match name {
        "tracktotal" => Key::TrackTotal,
        "disctotal" => Key::DiscTotal,
        "label" => Key::Label,
        "catalognum" => Key::CatalogNumber,
        "comp" => Key::Compilation,
        "mb_albumid" => Key::MbAlbumId,
        "albumtype" => Key::AlbumType,
        "country" => Key::Country,
        "albumdisambig" => Key::AlbumDisambig,
        "releasegroupdisambig" => Key::ReleaseGroupDisambig,
        "composer" => Key::Composer,
        n if NOT_TAGS.contains(&n) => return None,
        n if !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" _.-".contains(&b)) =>
        {
            Key::Other(n)
        }
        _ => return None,
    })
}

/// The tags of `t`, in the order they are written (see the module's invariants).
pub(super) fn tag_list(t: &MusicTrack) -> Vec<(Key<'_>, String)> {
    let text = |k, v: &Option<String>| v.clone().filter(|v| !v.is_empty()).map(|v| (k, v));
    let num = |k, v: Option<u32>| v.filter(|n| *n > 0).map(|n| (k, n.to_string()));
    let mut out: Vec<(Key<'_>, String)> = [
        text(Key::Title, &t.title),
        text(Key::Artist, &t.artist),
        text(Key::Album, &t.album),
        text(Key::AlbumArtist, &t.albumartist),
        text(Key::Genre, &t.genre),
        t.year
            .filter(|y| *y > 0)
            .map(|y| (Key::Date, format!("{y:04}"))),
        num(Key::Track, t.track),
        num(Key::Disc, t.disc),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut extra: Vec<&(String, String)> = t.extra.iter().filter(|(_, v)| !v.is_empty()).collect();
    extra.sort();
    extra.dedup_by(|a, b| a.0 == b.0);
    for (name, value) in extra {
        if let Some(k) = extra_key(name) {
            out.push((k, value.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay() -> Overlay {
        Overlay {
            header: Bytes::from_static(b"HEAD"),
            region: AudioRegion { start: 100, len: 6 },
            trailer: Bytes::from_static(b"TR"),
        }
    }

    fn region(offset: u64, len: u64) -> io::Result<Bytes> {
        Ok(Bytes::from_static(b"abcdef").slice(offset as usize..(offset + len) as usize))
    }

    #[test]
    fn reads_cross_the_parts_and_stop_at_the_end() {
        let o = overlay();
        assert_eq!(o.len(), 12);
        let all = b"HEADabcdefTR";
        for start in 0..14u64 {
            for len in 0..14u64 {
                let got = o.read(start, len, region).unwrap();
                let (a, b) = ((start as usize).min(12), ((start + len) as usize).min(12));
                assert_eq!(&got[..], &all[a..b], "{start} +{len}");
            }
        }
        assert_eq!(o.read(u64::MAX, u64::MAX, region).unwrap().len(), 0);
    }

    #[test]
    fn a_short_region_read_is_an_error() {
        let err = overlay()
            .read(0, 12, |_, _| Ok(Bytes::from_static(b"abc")))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn the_tag_list_is_ordered_and_skips_what_is_not_a_tag() {
        let t = MusicTrack {
            title: Some("T".into()),
            artist: Some(String::new()),
            year: Some(800),
            track: Some(0),
            disc: Some(2),
            extra: vec![
                ("zz".into(), "last".into()),
                ("channels".into(), "2".into()),
                ("label".into(), "L".into()),
                ("bad=name".into(), "x".into()),
                ("comp".into(), "1".into()),
                ("label".into(), "second".into()),
                ("mood".into(), String::new()),
            ],
            ..MusicTrack::default()
        };
        assert_eq!(
            tag_list(&t),
            vec![
                (Key::Title, "T".to_string()),
                (Key::Date, "0800".into()),
                (Key::Disc, "2".into()),
                (Key::Compilation, "1".into()),
                (Key::Label, "L".into()),
                (Key::Other("zz"), "last".into()),
            ]
        );
    }
}
