//! Real audio files for tests: a sine encoded by Debian's `ffmpeg` into FLAC, MP3, Ogg
//! Vorbis, Opus or M4A, then tagged with lofty, plus a truncated copy of any file.
//!
//! Invariants:
//! - ffmpeg writes no tags of its own (`-map_metadata -1`, bit-exact flags), so after
//!   [`encode`] the only tags a file carries are the ones [`write_tags`] puts there (a
//!   Vorbis comment block still holds its vendor string, which is not a tag).
//! - A missing `ffmpeg` is an error ([`AudioError::FfmpegMissing`], naming the package),
//!   never a silent skip: tests that need audio fail on a machine without it.
//! - [`Fixture::tags`] is exactly what was written; a test compares what it reads back
//!   against it.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use lofty::config::WriteOptions;
use lofty::picture::{MimeType, Picture, PictureType};
use lofty::prelude::*;
use lofty::probe::Probe;
use lofty::tag::{ItemKey, Tag};

/// A failure making an audio fixture.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("ffmpeg is not installed: `apt-get install ffmpeg` (Debian) to run the audio tests")]
    FfmpegMissing,
    #[error("ffmpeg {args}: {stderr}")]
    Ffmpeg { args: String, stderr: String },
    #[error("writing tags to {path}: {reason}")]
    Tagging { path: PathBuf, reason: String },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The formats the generator makes, each with the encoder Debian's ffmpeg ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    Flac,
    Mp3,
    /// Ogg Vorbis.
    Vorbis,
    Opus,
    /// AAC in an MP4 container.
    M4a,
}

impl AudioFormat {
    pub const ALL: [AudioFormat; 5] = [
        AudioFormat::Flac,
        AudioFormat::Mp3,
        AudioFormat::Vorbis,
        AudioFormat::Opus,
        AudioFormat::M4a,
    ];

    /// The usual file extension.
    pub fn ext(self) -> &'static str {
        match self {
            AudioFormat::Flac => "flac",
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Vorbis => "ogg",
            AudioFormat::Opus => "opus",
            AudioFormat::M4a => "m4a",
        }
    }

    /// ffmpeg's codec arguments. Fixed bitrates keep file sizes predictable.
    fn codec_args(self) -> &'static [&'static str] {
        match self {
            // 16-bit whatever the source (noise is generated as floats).
            AudioFormat::Flac => &["-c:a", "flac", "-sample_fmt", "s16"],
            AudioFormat::Mp3 => &["-c:a", "libmp3lame", "-b:a", "128k"],
            AudioFormat::Vorbis => &["-c:a", "libvorbis", "-q:a", "3"],
            AudioFormat::Opus => &["-c:a", "libopus", "-b:a", "64k"],
            AudioFormat::M4a => &["-c:a", "aac", "-b:a", "96k"],
        }
    }
}

/// The tags [`write_tags`] writes. `None` / `false` fields are not written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixtureTags {
    pub title: Option<String>,
    pub artist: Option<String>,
    pub album: Option<String>,
    pub album_artist: Option<String>,
    pub genre: Option<String>,
    pub year: Option<u32>,
    pub track: Option<u32>,
    pub track_total: Option<u32>,
    pub disc: Option<u32>,
    pub disc_total: Option<u32>,
    pub label: Option<String>,
    pub catalog_number: Option<String>,
    pub compilation: bool,
    pub mb_album_id: Option<String>,
    /// A JPEG stored as the front cover.
    pub front_cover: Option<Vec<u8>>,
}

impl FixtureTags {
    /// A full set of ASCII tags (no label, catalog number, MusicBrainz id or cover).
    pub fn sample() -> FixtureTags {
        FixtureTags {
            title: Some("Sine Wave".into()),
            artist: Some("The Oscillators".into()),
            album: Some("Pure Tones".into()),
            album_artist: Some("Various Oscillators".into()),
            genre: Some("Electronic".into()),
            year: Some(1997),
            track: Some(3),
            track_total: Some(12),
            disc: Some(1),
            disc_total: Some(2),
            ..FixtureTags::default()
        }
    }
}

/// One generated file.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub path: PathBuf,
    pub format: AudioFormat,
    /// Length of the encoded sine in milliseconds.
    pub duration_ms: u64,
    /// Exactly what was written (all `None` for an untagged file).
    pub tags: FixtureTags,
}

fn ffmpeg(args: &[&str]) -> Result<(), AudioError> {
    let out = match Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(AudioError::FfmpegMissing),
        Err(e) => return Err(e.into()),
    };
    if !out.status.success() {
        return Err(AudioError::Ffmpeg {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// What the encoded audio is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A 440 Hz sine: compresses to a small file.
    Sine,
    /// White noise: barely compresses, so a minute makes a file of realistic size (for
    /// checking that tag reading does not download whole files).
    Noise,
}

/// Encodes `duration_ms` of `signal` (mono, 44.1 kHz; FLAC 16-bit) into `path`, untagged.
pub fn encode(
    path: &Path,
    format: AudioFormat,
    signal: Signal,
    duration_ms: u64,
) -> Result<(), AudioError> {
    let seconds = format!("{}.{:03}", duration_ms / 1000, duration_ms % 1000);
    let source = match signal {
        Signal::Sine => format!("sine=frequency=440:sample_rate=44100:duration={seconds}"),
        Signal::Noise => format!("anoisesrc=sample_rate=44100:seed=1:duration={seconds}"),
    };
    let path_str = path.to_str().ok_or_else(|| {
        AudioError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "non-UTF-8 fixture path",
        ))
    })?;
    let mut args = vec!["-f", "lavfi", "-i", &source, "-map_metadata", "-1"];
    // No encoder-version tag: ffmpeg adds one unless told to be bit-exact.
    args.extend(["-fflags", "+bitexact", "-flags:a", "+bitexact"]);
    args.extend(format.codec_args());
    args.push(path_str);
    ffmpeg(&args)
}

/// A tiny valid JPEG (16×16, one colour) made by ffmpeg, for cover art.
pub fn cover_jpeg(dir: &Path) -> Result<Vec<u8>, AudioError> {
    let path = dir.join("cover.jpg");
    let path_str = path.to_str().ok_or_else(|| {
        AudioError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "non-UTF-8 fixture path",
        ))
    })?;
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=red:s=16x16:d=1",
        "-frames:v",
        "1",
        "-fflags",
        "+bitexact",
        "-flags:v",
        "+bitexact",
        "-c:v",
        "mjpeg",
        "-f",
        "image2",
        path_str,
    ])?;
    Ok(std::fs::read(&path)?)
}

/// Writes `tags` into the file's primary tag (ID3v2 for MP3, Vorbis comments for FLAC,
/// Ogg and Opus, an MP4 `ilst` for M4A), replacing that tag if it exists.
pub fn write_tags(path: &Path, tags: &FixtureTags) -> Result<(), AudioError> {
    let failed = |reason: String| AudioError::Tagging {
        path: path.to_path_buf(),
        reason,
    };
    let file = Probe::open(path)
        .and_then(|p| p.read())
        .map_err(|e| failed(e.to_string()))?;
    let mut tag = Tag::new(file.primary_tag_type());
    let text = |tag: &mut Tag, key: ItemKey, v: &Option<String>| {
        if let Some(v) = v {
            tag.insert_text(key, v.clone());
        }
    };
    text(&mut tag, ItemKey::TrackTitle, &tags.title);
    text(&mut tag, ItemKey::TrackArtist, &tags.artist);
    text(&mut tag, ItemKey::AlbumTitle, &tags.album);
    text(&mut tag, ItemKey::AlbumArtist, &tags.album_artist);
    text(&mut tag, ItemKey::Genre, &tags.genre);
    text(&mut tag, ItemKey::Label, &tags.label);
    text(&mut tag, ItemKey::CatalogNumber, &tags.catalog_number);
    text(&mut tag, ItemKey::MusicBrainzReleaseId, &tags.mb_album_id);
    if let Some(year) = tags.year {
        let year = u16::try_from(year).map_err(|_| failed(format!("year {year}")))?;
        tag.set_date(lofty::tag::items::Timestamp {
            year,
            ..Default::default()
        });
    }
    let number = |tag: &mut Tag, key: ItemKey, v: Option<u32>| {
        if let Some(v) = v {
            tag.insert_text(key, v.to_string());
        }
    };
    number(&mut tag, ItemKey::TrackNumber, tags.track);
    number(&mut tag, ItemKey::TrackTotal, tags.track_total);
    number(&mut tag, ItemKey::DiscNumber, tags.disc);
    number(&mut tag, ItemKey::DiscTotal, tags.disc_total);
    if tags.compilation {
        tag.insert_text(ItemKey::FlagCompilation, "1".into());
    }
    if let Some(jpeg) = &tags.front_cover {
        tag.push_picture(
            Picture::unchecked(jpeg.clone())
                .pic_type(PictureType::CoverFront)
                .mime_type(MimeType::Jpeg)
                .build(),
        );
    }
    tag.save_to_path(path, WriteOptions::default())
        .map_err(|e| failed(e.to_string()))
}

/// Encodes three seconds of sine into `dir/<name>.<ext>` and writes `tags` (nothing
/// when `tags` is all empty).
pub fn make(
    dir: &Path,
    name: &str,
    format: AudioFormat,
    tags: &FixtureTags,
) -> Result<Fixture, AudioError> {
    make_with(dir, name, format, Signal::Sine, 3000, tags)
}

/// [`make`] with a chosen signal and length.
pub fn make_with(
    dir: &Path,
    name: &str,
    format: AudioFormat,
    signal: Signal,
    duration_ms: u64,
    tags: &FixtureTags,
) -> Result<Fixture, AudioError> {
    let path = dir.join(format!("{name}.{}", format.ext()));
    encode(&path, format, signal, duration_ms)?;
    if *tags != FixtureTags::default() {
        write_tags(&path, tags)?;
    }
    Ok(Fixture {
        path,
        format,
        duration_ms,
        tags: tags.clone(),
    })
}

/// Copies the first `len` bytes of `src` to `dst` (a file cut short, as by an
/// interrupted download).
pub fn truncated_copy(src: &Path, dst: &Path, len: u64) -> io::Result<()> {
    let mut input = std::fs::File::open(src)?.take(len);
    let mut out = std::fs::File::create(dst)?;
    io::copy(&mut input, &mut out)?;
    out.flush()
}
