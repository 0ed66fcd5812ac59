//! Reading a track with lofty: detection, parsing, and turning lofty's generic `Tag`s
//! into [`TrackTags`]; reading the front cover on demand.
//!
//! Invariants:
//! - The format is detected from the content first (lofty's probe reads the first bytes,
//!   skipping an ID3v2 tag); the extension hint is used only when the content says
//!   nothing, so a mislabelled file is still read as what it is.
//! - Lofty runs in best-attempt mode (recoverable damage yields partial tags) behind
//!   `catch_unwind`: a parser panic on hostile input is a [`TagError::Malformed`], never
//!   a crashed scanner thread.
//! - Whether an error is the source's or the file's is decided by the reader, not by the
//!   error lofty returns: lofty reports both as `io::Error`, but only the reader knows
//!   that a request failed ([`RangedReader::take_source_error`]). A failed request makes
//!   the whole read [`TagError::Io`], even when lofty recovered: its result may lack
//!   what the failed read held, and must not be cached as the file's tags.
//! - When a file holds several tags (ID3v2 + ID3v1 + APE on an MP3), each field comes
//!   from the primary tag when it has it, else from the others in file order.

use std::io::{Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use bytes::Bytes;
use lofty::config::{ParseOptions, ParsingMode};
use lofty::file::{FileType, TaggedFile};
use lofty::picture::{Picture, PictureType};
use lofty::prelude::*;
use lofty::probe::Probe;
use lofty::tag::Tag;

use super::{CoverInfo, RangedReader, TagError, TrackTags};
use crate::source::RangeSource;

/// Reads the tags and audio properties of `src`. `hint` is the file's extension (without
/// the dot), used only when the content does not reveal the format.
pub fn read_tags(src: Arc<dyn RangeSource>, hint: Option<&str>) -> Result<TrackTags, TagError> {
    read_tags_from(&mut RangedReader::new(src), hint)
}

/// [`read_tags`] through a caller's reader, whose counters then tell what the read cost
/// (and whose cache a following [`front_cover_from`] reuses).
pub fn read_tags_from(
    reader: &mut RangedReader,
    hint: Option<&str>,
) -> Result<TrackTags, TagError> {
    let options = ParseOptions::new().parsing_mode(ParsingMode::BestAttempt);
    let (file_type, file) = parse(reader, hint, options)?;
    Ok(convert(file_type, &file))
}

/// The front cover's MIME type and bytes (the first picture when none is marked front),
/// `None` when the file has no picture.
pub fn front_cover(
    src: Arc<dyn RangeSource>,
    hint: Option<&str>,
) -> Result<Option<(String, Bytes)>, TagError> {
    front_cover_from(&mut RangedReader::new(src), hint)
}

/// [`front_cover`] through a caller's reader.
pub fn front_cover_from(
    reader: &mut RangedReader,
    hint: Option<&str>,
) -> Result<Option<(String, Bytes)>, TagError> {
    // Properties are not needed here; skipping them spares the reads at the end of
    // the file (Ogg granule positions, MP3 last frame).
    let options = ParseOptions::new()
        .parsing_mode(ParsingMode::BestAttempt)
        .read_properties(false);
    let (_, file) = parse(reader, hint, options)?;
    Ok(cover(&ordered_tags(&file)).map(|pic| {
        let mime = mime_of(pic);
        (mime, Bytes::copy_from_slice(pic.data()))
    }))
}

/// Lowercase format name, usable as an extension. `None` for formats lofty only knows
/// through custom resolvers (none are registered).
fn format_name(t: FileType) -> Option<&'static str> {
    Some(match t {
        FileType::Flac => "flac",
        FileType::Mpeg => "mp3",
        FileType::Vorbis => "ogg",
        FileType::Opus => "opus",
        FileType::Mp4 => "m4a",
        FileType::Wav => "wav",
        FileType::Aiff => "aiff",
        FileType::Aac => "aac",
        FileType::Ape => "ape",
        FileType::Mpc => "mpc",
        FileType::Speex => "spx",
        FileType::WavPack => "wv",
        _ => return None,
    })
}

/// Detects and parses the file from its start.
fn parse(
    reader: &mut RangedReader,
    hint: Option<&str>,
    options: ParseOptions,
) -> Result<(&'static str, TaggedFile), TagError> {
    // A reader may be reused (tags, then the cover); lofty expects to start at 0.
    reader.seek(SeekFrom::Start(0)).map_err(TagError::Io)?;
    // The last line of defence: lofty is meant to return errors on bad input, but a
    // scanner walking a whole library must survive a parser bug on one hostile file.
    // The default panic hook still prints the panic, which is what we want to see.
    // Set as soon as the format is known, so a panic after detection still names it.
    let mut detected = None;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        Probe::new(&mut *reader)
            .options(options)
            .guess_file_type()
            .map_err(lofty::error::FileParseError::from)
            .and_then(|probe| {
                let probe = match (probe.file_type(), hint.and_then(FileType::from_ext)) {
                    (None, Some(t)) => probe.set_file_type(t),
                    _ => probe,
                };
                detected = probe.file_type();
                probe.read()
            })
    }));
    // A failed request decides, whatever lofty made of it: even a success may be
    // missing what the failed read would have given (best-attempt mode skips damage).
    if let Some(e) = reader.take_source_error() {
        return Err(TagError::Io(e));
    }
    let name = detected.and_then(format_name);
    let result = match outcome {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            return Err(TagError::Malformed {
                format: name,
                reason: format!("the tag parser panicked: {what}"),
            });
        }
    };
    match (name, result) {
        (Some(name), Ok(file)) => Ok((name, file)),
        // Not detected (or a format we cannot name): not audio.
        (None, _) => Err(TagError::Unsupported),
        (Some(_), Err(e)) if e.is_unknown_format() => Err(TagError::Unsupported),
        (Some(name), Err(e)) => Err(TagError::Malformed {
            format: Some(name),
            reason: error_chain(&e),
        }),
    }
}

/// An error and its sources, `: `-separated (lofty's own message is only "failed to
/// parse X file"; the reason is in the sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The primary tag first, then the others in file order.
fn ordered_tags(file: &TaggedFile) -> Vec<&Tag> {
    let primary = file.primary_tag_type();
    let mut tags: Vec<&Tag> = file.tags().iter().collect();
    tags.sort_by_key(|t| t.tag_type() != primary);
    tags
}

fn convert(format: &'static str, file: &TaggedFile) -> TrackTags {
    let tags = ordered_tags(file);
    let text = |key: ItemKey| {
        tags.iter()
            .find_map(|t| t.get_string(key).filter(|s| !s.trim().is_empty()))
            .map(str::to_string)
    };
    // `n` or `n/total`; 0 is unset.
    let number = |key: ItemKey| -> (Option<u32>, Option<u32>) {
        tags.iter()
            .filter_map(|t| t.get_string(key))
            .map(split_number)
            .find(|(n, _)| n.is_some())
            .unwrap_or((None, None))
    };
    let (track, track_in_number) = number(ItemKey::TrackNumber);
    let (disc, disc_in_number) = number(ItemKey::DiscNumber);
    let year = [
        ItemKey::RecordingDate,
        ItemKey::Year,
        ItemKey::OriginalReleaseDate,
        ItemKey::ReleaseDate,
    ]
    .into_iter()
    .find_map(|key| {
        tags.iter()
            .find_map(|t| t.get_string(key).and_then(year_of))
    });
    let compilation = tags
        .iter()
        .find_map(|t| t.get_string(ItemKey::FlagCompilation).and_then(flag));
    let props = file.properties();
    let positive = |v: Option<u32>| v.filter(|v| *v > 0);
    TrackTags {
        title: text(ItemKey::TrackTitle),
        artist: text(ItemKey::TrackArtist),
        album: text(ItemKey::AlbumTitle),
        album_artist: text(ItemKey::AlbumArtist),
        genre: text(ItemKey::Genre),
        year,
        track,
        track_total: number(ItemKey::TrackTotal).0.or(track_in_number),
        disc,
        disc_total: number(ItemKey::DiscTotal).0.or(disc_in_number),
        compilation,
        // ID3v2 keeps the label in TPUB, which lofty reads back as the publisher.
        label: text(ItemKey::Label).or_else(|| text(ItemKey::Publisher)),
        catalog_number: text(ItemKey::CatalogNumber),
        mb_album_id: text(ItemKey::MusicBrainzReleaseId),
        album_type: text(ItemKey::MusicBrainzReleaseType),
        duration_ms: Some(props.duration().as_millis() as u64).filter(|d| *d > 0),
        bitrate_kbps: positive(props.audio_bitrate()).or(positive(props.overall_bitrate())),
        sample_rate: positive(props.sample_rate()),
        channels: props.channels().filter(|c| *c > 0),
        bit_depth: props.bit_depth().filter(|b| *b > 0),
        format,
        front_cover: cover(&tags).map(|pic| CoverInfo {
            mime: mime_of(pic),
            len: pic.data().len() as u64,
        }),
    }
}

/// `"3"` → (3, None), `"3/12"` → (3, 12), `" 0 "` → (None, None); junk is None.
fn split_number(s: &str) -> (Option<u32>, Option<u32>) {
    let mut parts = s.splitn(2, '/');
    let parse = |p: Option<&str>| {
        p.and_then(|p| p.trim().parse::<u32>().ok())
            .filter(|n| *n > 0)
    };
    (parse(parts.next()), parse(parts.next()))
}

/// The year of a date: its leading four digits (`1997`, `1997-05-01`, `1997/05`).
fn year_of(s: &str) -> Option<u32> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits != 4 {
        return None;
    }
    s[..4].parse().ok().filter(|y| *y > 0)
}

/// Compilation flags as taggers write them: `1`/`0`, `true`/`false`, `yes`/`no`.
fn flag(s: &str) -> Option<bool> {
    let s = s.trim();
    if s == "1" || s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("yes") {
        Some(true)
    } else if s == "0" || s.eq_ignore_ascii_case("false") || s.eq_ignore_ascii_case("no") {
        Some(false)
    } else {
        None
    }
}

/// The front cover of the first tag that has one, else the first picture at all.
fn cover<'a>(tags: &[&'a Tag]) -> Option<&'a Picture> {
    let front = tags.iter().find_map(|t| {
        t.pictures()
            .iter()
            .find(|p| p.pic_type() == PictureType::CoverFront)
    });
    front.or_else(|| tags.iter().find_map(|t| t.pictures().first()))
}

/// The picture's declared MIME type, else one sniffed from its magic bytes.
fn mime_of(pic: &Picture) -> String {
    if let Some(m) = pic
        .mime_type()
        .map(|m| m.as_str())
        .filter(|m| !m.is_empty())
    {
        return m.to_string();
    }
    let d = pic.data();
    let sniffed = if d.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if d.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if d.starts_with(b"GIF8") {
        "image/gif"
    } else if d.starts_with(b"BM") {
        "image/bmp"
    } else {
        "application/octet-stream"
    };
    sniffed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_split_on_a_slash_and_zero_is_unset() {
        assert_eq!(split_number("3"), (Some(3), None));
        assert_eq!(split_number("03/12"), (Some(3), Some(12)));
        assert_eq!(split_number(" 7 / 9 "), (Some(7), Some(9)));
        assert_eq!(split_number("0"), (None, None));
        assert_eq!(split_number("0/0"), (None, None));
        assert_eq!(split_number("A1"), (None, None));
        assert_eq!(split_number(""), (None, None));
    }

    #[test]
    fn a_year_is_the_leading_four_digits() {
        assert_eq!(year_of("1997"), Some(1997));
        assert_eq!(year_of(" 1997-05-01T10:00"), Some(1997));
        assert_eq!(year_of("2001/05"), Some(2001));
        assert_eq!(year_of("97"), None);
        assert_eq!(year_of("19970"), None);
        assert_eq!(year_of("0000"), None);
        assert_eq!(year_of("circa 1997"), None);
    }

    #[test]
    fn flags_accept_the_spellings_taggers_use() {
        for (s, want) in [
            ("1", Some(true)),
            ("TRUE", Some(true)),
            ("yes", Some(true)),
            ("0", Some(false)),
            ("False", Some(false)),
            ("no", Some(false)),
            ("2", None),
            ("", None),
        ] {
            assert_eq!(flag(s), want, "{s:?}");
        }
    }

    #[test]
    fn bytes_that_are_no_audio_format_are_unsupported() {
        let src: Arc<dyn RangeSource> = Arc::new(Bytes::from_static(b"just some text\n"));
        assert!(matches!(
            read_tags(src.clone(), None),
            Err(TagError::Unsupported)
        ));
        assert!(matches!(
            read_tags(src.clone(), Some("txt")),
            Err(TagError::Unsupported)
        ));
        // The hint names a format, but the bytes are no such file.
        assert!(matches!(
            read_tags(src, Some("flac")),
            Err(TagError::Malformed {
                format: Some("flac"),
                ..
            })
        ));
    }

    #[test]
    fn an_empty_file_is_unsupported_without_a_hint() {
        let src: Arc<dyn RangeSource> = Arc::new(Bytes::new());
        assert!(matches!(read_tags(src, None), Err(TagError::Unsupported)));
    }

    /// Stands in for a parser bug: lofty cannot be made to panic on demand, but a panic
    /// raised under it (here in the source it reads from) unwinds through the same
    /// `catch_unwind`. Serves its first block, panics past it.
    struct PanicsPastTheStart(Bytes);

    impl RangeSource for PanicsPastTheStart {
        fn len(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_range(&self, offset: u64, len: u64) -> std::io::Result<Bytes> {
            assert!(offset == 0, "boom at {offset}");
            self.0.read_range(offset, len)
        }
    }

    #[test]
    fn a_panic_while_parsing_is_a_malformed_file() {
        // An MP3 frame header at the start of 1 MiB of zeros; lofty reads on into the
        // second block looking for the next frame, which panics.
        let mut head = vec![0u8; 1 << 20];
        head[..4].copy_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
        let src = Arc::new(PanicsPastTheStart(Bytes::from(head)));
        match read_tags(src, None) {
            Err(TagError::Malformed { format, reason }) => {
                assert_eq!(format, Some("mp3"));
                assert_eq!(reason, "the tag parser panicked: boom at 65536");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_pictures_mime_type_is_sniffed_when_missing() {
        let jpeg = Picture::unchecked(vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 0]).build();
        assert_eq!(mime_of(&jpeg), "image/jpeg");
        let png = Picture::unchecked(b"\x89PNG\r\n\x1a\n....".to_vec()).build();
        assert_eq!(mime_of(&png), "image/png");
        let other = Picture::unchecked(vec![1, 2, 3]).build();
        assert_eq!(mime_of(&other), "application/octet-stream");
    }
}
