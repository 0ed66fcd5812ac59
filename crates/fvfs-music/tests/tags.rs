//! Tag reading against real files: ffmpeg encodes, lofty tags (fvfs-testkit's `audio`),
//! and `fvfs_music::tags` reads back through the ranged reader. ffmpeg must be installed
//! (`apt-get install ffmpeg`); without it these tests fail, they do not skip.
//!
//! What truncated files give is lofty 0.25's behaviour, asserted exactly so a lofty
//! upgrade that changes it is noticed:
//! - cut in the middle of the audio: FLAC and MP3 keep every tag and their duration
//!   (STREAMINFO, the Xing header); Opus keeps its tags but loses its duration (no last
//!   granule position); Ogg Vorbis is malformed (lofty requires the last page); M4A is
//!   malformed (ffmpeg writes `moov` after the audio, so it is cut off).
//! - cut inside the header (200 bytes): malformed in every format when the extension
//!   names it; an MP3 without a hint is unsupported (nothing after the cut ID3v2 tag
//!   looks like audio).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use fvfs_music::source::RangeSource;
use fvfs_music::tags::{
    front_cover, read_tags, read_tags_from, CoverInfo, RangedReader, TagError, TrackTags,
    DEFAULT_BLOCK_SIZE,
};
use fvfs_music::template::Template;
use fvfs_testkit::audio::{
    cover_jpeg, make, make_with, truncated_copy, AudioFormat, FixtureTags, Signal,
};

fn source(path: &Path) -> Arc<dyn RangeSource> {
    Arc::new(Bytes::from(std::fs::read(path).unwrap()))
}

/// Every tag the generator can write, cover included.
fn full_tags(dir: &Path) -> FixtureTags {
    FixtureTags {
        label: Some("Oscillator Records".into()),
        catalog_number: Some("OSC-001".into()),
        compilation: true,
        mb_album_id: Some("0a8e7b8e-2a3b-4c5d-8e9f-0123456789ab".into()),
        front_cover: Some(cover_jpeg(dir).expect("ffmpeg makes a cover")),
        ..FixtureTags::sample()
    }
}

/// The tag part of what reading `written` must give (properties and format left empty).
fn expected(written: &FixtureTags) -> TrackTags {
    TrackTags {
        title: written.title.clone(),
        artist: written.artist.clone(),
        album: written.album.clone(),
        album_artist: written.album_artist.clone(),
        genre: written.genre.clone(),
        year: written.year,
        track: written.track,
        track_total: written.track_total,
        disc: written.disc,
        disc_total: written.disc_total,
        compilation: written.compilation.then_some(true),
        label: written.label.clone(),
        catalog_number: written.catalog_number.clone(),
        mb_album_id: written.mb_album_id.clone(),
        front_cover: written.front_cover.as_ref().map(|jpeg| CoverInfo {
            mime: "image/jpeg".into(),
            len: jpeg.len() as u64,
        }),
        ..TrackTags::default()
    }
}

/// `t` without its stream properties and format, to compare with [`expected`].
fn tags_only(t: &TrackTags) -> TrackTags {
    TrackTags {
        duration_ms: None,
        bitrate_kbps: None,
        sample_rate: None,
        channels: None,
        bit_depth: None,
        format: "",
        ..t.clone()
    }
}

/// Format, sample rate, channels, duration (±100 ms) and a bitrate of `t`.
fn assert_properties(t: &TrackTags, format: AudioFormat, duration_ms: u64) {
    assert_eq!(t.format, format.ext(), "{format:?}");
    // Opus always decodes at 48 kHz whatever the input rate.
    let rate = if format == AudioFormat::Opus {
        48_000
    } else {
        44_100
    };
    assert_eq!(t.sample_rate, Some(rate), "{format:?}");
    assert_eq!(t.channels, Some(1), "{format:?}");
    let d = t
        .duration_ms
        .unwrap_or_else(|| panic!("{format:?}: no duration"));
    assert!(d.abs_diff(duration_ms) <= 100, "{format:?}: {d} ms");
    let kbps = t
        .bitrate_kbps
        .unwrap_or_else(|| panic!("{format:?}: no bitrate"));
    assert!((8..=1500).contains(&kbps), "{format:?}: {kbps} kbit/s");
    // Only FLAC stores samples at a bit depth; the lossy codecs have none.
    let depth = (format == AudioFormat::Flac).then_some(16);
    assert_eq!(t.bit_depth, depth, "{format:?}");
}

#[test]
fn every_format_reads_back_exactly_the_tags_written() {
    let dir = tempfile::tempdir().unwrap();
    let written = full_tags(dir.path());
    for format in AudioFormat::ALL {
        let fx = make(dir.path(), "full", format, &written).expect("ffmpeg");
        let t = read_tags(source(&fx.path), Some(format.ext())).unwrap();
        assert_eq!(tags_only(&t), expected(&written), "{format:?}");
        assert_properties(&t, format, fx.duration_ms);
    }
}

#[test]
fn non_ascii_values_round_trip_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let written = FixtureTags {
        title: Some("Jóga — ヨーガ".into()),
        artist: Some("Björk".into()),
        album: Some("東京事変".into()),
        album_artist: Some("Sigur Rós".into()),
        genre: Some("Post-rock/Ελληνικά".into()),
        ..FixtureTags::sample()
    };
    for format in AudioFormat::ALL {
        let fx = make(dir.path(), "utf8", format, &written).expect("ffmpeg");
        let t = read_tags(source(&fx.path), None).unwrap();
        assert_eq!(tags_only(&t), expected(&written), "{format:?}");
    }
}

#[test]
fn an_untagged_file_has_no_tags_but_its_format_and_properties() {
    let dir = tempfile::tempdir().unwrap();
    for format in AudioFormat::ALL {
        let fx = make(dir.path(), "bare", format, &FixtureTags::default()).expect("ffmpeg");
        let t = read_tags(source(&fx.path), None).unwrap();
        assert_eq!(tags_only(&t), TrackTags::default(), "{format:?}");
        assert_properties(&t, format, fx.duration_ms);
    }
}

#[test]
fn the_front_cover_is_the_embedded_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let written = full_tags(dir.path());
    let jpeg = written.front_cover.clone().unwrap();
    for format in AudioFormat::ALL {
        let fx = make(dir.path(), "cover", format, &written).expect("ffmpeg");
        let (mime, bytes) = front_cover(source(&fx.path), None).unwrap().unwrap();
        assert_eq!(
            (mime.as_str(), &bytes[..]),
            ("image/jpeg", &jpeg[..]),
            "{format:?}"
        );
        let bare = make(dir.path(), "bare", format, &FixtureTags::sample()).expect("ffmpeg");
        assert_eq!(
            front_cover(source(&bare.path), None).unwrap(),
            None,
            "{format:?}"
        );
    }
}

#[test]
fn the_seeds_default_template_renders_a_real_file() {
    let dir = tempfile::tempdir().unwrap();
    let tpl =
        Template::parse("$artist/$album ($year) [$format_upper]/$track - $title.$format").unwrap();
    let written = FixtureTags {
        artist: Some("Sigur Rós".into()),
        album: Some("Ágætis byrjun".into()),
        title: Some("Svefn-g-englar".into()),
        year: Some(1999),
        track: Some(2),
        ..FixtureTags::default()
    };
    for (format, upper) in [
        (AudioFormat::Flac, "FLAC"),
        (AudioFormat::Mp3, "MP3"),
        (AudioFormat::Vorbis, "OGG"),
        (AudioFormat::Opus, "OPUS"),
        (AudioFormat::M4a, "M4A"),
    ] {
        let fx = make(dir.path(), "tpl", format, &written).expect("ffmpeg");
        let t = read_tags(source(&fx.path), None).unwrap();
        assert_eq!(
            tpl.render(&Row(fvfs_music::tags::to_track(&t))),
            [
                "Sigur Rós".to_string(),
                format!("Ágætis byrjun (1999) [{upper}]"),
                format!("02 - Svefn-g-englar.{}", format.ext()),
            ]
        );
    }
}

/// What reading a truncated copy gave: the tags it kept and its duration, or the error.
#[derive(Debug, PartialEq)]
enum Cut {
    Read {
        tags: Box<TrackTags>,
        duration_ms: Option<u64>,
    },
    Malformed(Option<&'static str>),
    Unsupported,
}

fn read_cut(path: &Path, hint: Option<&str>) -> Cut {
    match read_tags(source(path), hint) {
        Ok(t) => Cut::Read {
            tags: Box::new(tags_only(&t)),
            duration_ms: t.duration_ms,
        },
        Err(TagError::Malformed { format, .. }) => Cut::Malformed(format),
        Err(TagError::Unsupported) => Cut::Unsupported,
        Err(e @ TagError::Io(_)) => panic!("an in-memory source cannot fail: {e}"),
    }
}

#[test]
fn a_file_cut_in_the_middle_of_its_audio() {
    let dir = tempfile::tempdir().unwrap();
    let written = full_tags(dir.path());
    let all = expected(&written);
    let read = |duration_ms| Cut::Read {
        tags: Box::new(all.clone()),
        duration_ms,
    };
    for (format, want) in [
        (AudioFormat::Flac, read(Some(3000))),
        (AudioFormat::Mp3, read(Some(3030))),
        (AudioFormat::Vorbis, Cut::Malformed(Some("ogg"))),
        (AudioFormat::Opus, read(None)),
        (AudioFormat::M4a, Cut::Malformed(Some("m4a"))),
    ] {
        let fx = make(dir.path(), "whole", format, &written).expect("ffmpeg");
        let len = std::fs::metadata(&fx.path).unwrap().len();
        let cut = dir.path().join(format!("cut.{}", format.ext()));
        truncated_copy(&fx.path, &cut, len / 2).unwrap();
        assert_eq!(std::fs::metadata(&cut).unwrap().len(), len / 2);
        assert_eq!(read_cut(&cut, Some(format.ext())), want, "{format:?}");
    }
}

#[test]
fn a_file_cut_inside_its_header_is_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let written = full_tags(dir.path());
    for format in AudioFormat::ALL {
        let fx = make(dir.path(), "whole", format, &written).expect("ffmpeg");
        let cut = dir.path().join(format!("cut.{}", format.ext()));
        truncated_copy(&fx.path, &cut, 200).unwrap();
        let name = format.ext();
        assert_eq!(
            read_cut(&cut, Some(format.ext())),
            Cut::Malformed(Some(name)),
            "{format:?}"
        );
        let unhinted = match format {
            AudioFormat::Mp3 => Cut::Unsupported,
            _ => Cut::Malformed(Some(name)),
        };
        assert_eq!(read_cut(&cut, None), unhinted, "{format:?} without a hint");
    }
}

/// A minute of noise makes files of realistic size (0.4 to 8 MB). What lofty reads, and
/// so the bound in blocks:
/// - FLAC: the metadata blocks at the start (STREAMINFO gives the duration): 1 block.
/// - MP3: the ID3v2 tag and the Xing frame at the start, the ID3v1/APE footer check at
///   the end: 2 blocks.
/// - Ogg Vorbis, Opus: the header pages at the start, and a read back of up to one
///   maximal Ogg page (65,307 bytes) from the end for the last granule position, which
///   may straddle two blocks: 3 blocks.
/// - M4A: `ftyp` and the `mdat` header at the start, `moov` (under 64 KiB here) at the
///   end, which may straddle two blocks: 3 blocks.
#[test]
fn tag_reading_fetches_a_few_blocks_not_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let written = full_tags(dir.path());
    for (format, max_blocks) in [
        (AudioFormat::Flac, 1),
        (AudioFormat::Mp3, 2),
        (AudioFormat::Vorbis, 3),
        (AudioFormat::Opus, 3),
        (AudioFormat::M4a, 3),
    ] {
        let fx =
            make_with(dir.path(), "long", format, Signal::Noise, 60_000, &written).expect("ffmpeg");
        let src = source(&fx.path);
        let len = src.len();
        let mut reader = RangedReader::new(src);
        let t = read_tags_from(&mut reader, None).unwrap();
        assert_eq!(tags_only(&t), expected(&written), "{format:?}");
        assert_properties(&t, format, 60_000);
        let fetched = reader.fetched_bytes();
        println!(
            "{format:?}: {fetched} of {len} bytes in {} requests",
            reader.requests()
        );
        assert!(len > 6 * DEFAULT_BLOCK_SIZE, "{format:?}: only {len} bytes");
        assert!(
            fetched <= max_blocks * DEFAULT_BLOCK_SIZE,
            "{format:?}: {fetched} bytes fetched of {len}"
        );
        assert!(reader.requests() <= max_blocks, "{format:?}");
    }
}

/// A source that serves its first block and then fails, like an origin going away
/// mid-read.
struct FailsAfterFirstBlock(Bytes);

impl RangeSource for FailsAfterFirstBlock {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_range(&self, offset: u64, len: u64) -> std::io::Result<Bytes> {
        if offset == 0 {
            return self.0.read_range(offset, len);
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "origin went away",
        ))
    }
}

#[test]
fn a_failing_source_is_an_io_error_not_a_malformed_file() {
    let dir = tempfile::tempdir().unwrap();
    // MP3 needs the end of the file (ID3v1/APE check), so a long one fails there.
    let fx = make_with(
        dir.path(),
        "long",
        AudioFormat::Mp3,
        Signal::Noise,
        10_000,
        &FixtureTags::sample(),
    )
    .expect("ffmpeg");
    let bytes = Bytes::from(std::fs::read(&fx.path).unwrap());
    assert!(bytes.len() as u64 > 2 * DEFAULT_BLOCK_SIZE);
    let src = Arc::new(FailsAfterFirstBlock(bytes));
    match read_tags(src, Some("mp3")) {
        Err(TagError::Io(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
            assert_eq!(e.to_string(), "origin went away");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_content_decides_the_format_not_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let fx = make(
        dir.path(),
        "flac",
        AudioFormat::Flac,
        &FixtureTags::sample(),
    )
    .expect("ffmpeg");
    let t = read_tags(source(&fx.path), Some("mp3")).unwrap();
    assert_eq!(t.format, "flac");
    assert_eq!(t.title.as_deref(), Some("Sine Wave"));
}

/// A row of the index as a template sees it.
struct Row(fvfs_meta::MusicTrack);

impl fvfs_music::template::Fields for Row {
    fn field(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        fvfs_music::tags::field(&self.0, name)
    }
}
