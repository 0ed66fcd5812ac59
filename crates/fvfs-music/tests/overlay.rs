//! The audio region, the audio id and the tag overlay against real files: ffmpeg encodes,
//! lofty tags (fvfs-testkit's `audio`), hand-written tag bytes where lofty writes none
//! (several ID3v2 tags, footers, `TAG+`). ffmpeg and ffprobe must be installed; without
//! them these tests fail, they do not skip.

use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use fvfs_meta::MusicTrack;
use fvfs_music::audio::{
    audio_id, audio_region, build_overlay, AudioRegion, Overlay, OverlayError, AUDIO_ID_SPAN,
};
use fvfs_music::source::RangeSource;
use fvfs_music::tags::{front_cover, read_tags, to_track, RangedReader, DEFAULT_BLOCK_SIZE};
use fvfs_testkit::audio::{
    cover_jpeg, make, make_with, write_tags, AudioFormat, FixtureTags, Signal,
};
use lofty::config::WriteOptions;
use lofty::prelude::*;
use lofty::tag::{Tag, TagType};

fn reader(bytes: &[u8]) -> RangedReader {
    let src: Arc<dyn RangeSource> = Arc::new(Bytes::copy_from_slice(bytes));
    RangedReader::new(src)
}

fn region_of(bytes: &[u8], format: &str) -> io::Result<Option<AudioRegion>> {
    audio_region(&mut reader(bytes), format)
}

fn region(bytes: &[u8], format: &str) -> AudioRegion {
    region_of(bytes, format).unwrap().unwrap()
}

fn slice(bytes: &[u8], r: AudioRegion) -> &[u8] {
    &bytes[r.start as usize..r.end() as usize]
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A copy of `src` at `dst` with `tags` written by lofty.
fn tagged_copy(src: &Path, dst: &Path, tags: &FixtureTags) -> Vec<u8> {
    std::fs::copy(src, dst).unwrap();
    write_tags(dst, tags).unwrap();
    read(dst)
}

/// Adds a tag of `kind` with a title to the file at `path` (lofty), returning how many
/// bytes it added.
fn add_lofty_tag(path: &Path, kind: TagType, title: &str) -> u64 {
    let before = std::fs::metadata(path).unwrap().len();
    let mut t = Tag::new(kind);
    t.insert_text(ItemKey::TrackTitle, title.into());
    t.insert_text(ItemKey::TrackArtist, "Stale Artist".into());
    t.save_to_path(path, WriteOptions::default()).unwrap();
    std::fs::metadata(path).unwrap().len() - before
}

/// The byte offset of the first audio packet, as ffprobe sees it.
fn first_packet_pos(path: &Path) -> u64 {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a", "-show_entries"])
        .args(["packet=pos", "-read_intervals", "%+#1", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().next().unwrap().trim().parse().unwrap()
}

fn syncsafe(n: usize) -> [u8; 4] {
    [
        (n >> 21) as u8 & 0x7F,
        (n >> 14) as u8 & 0x7F,
        (n >> 7) as u8 & 0x7F,
        n as u8 & 0x7F,
    ]
}

/// An ID3v2 tag of `major` holding one TXXX frame (`body_len` bytes of frame data and
/// padding), with a footer when `footer` (v2.4 only).
fn id3v2(major: u8, body_len: usize, footer: bool) -> Vec<u8> {
    let mut body = b"TXXX".to_vec();
    body.extend_from_slice(&syncsafe(6));
    body.extend_from_slice(&[0, 0, 3, b'a', 0, b'b', b'c', b'd']);
    body.resize(body_len, 0);
    let flags = if footer { 0x10 } else { 0 };
    let mut tag = vec![b'I', b'D', b'3', major, 0, flags];
    tag.extend_from_slice(&syncsafe(body_len));
    tag.extend_from_slice(&body);
    if footer {
        tag.extend_from_slice(&[b'3', b'D', b'I', major, 0, flags]);
        tag.extend_from_slice(&syncsafe(body_len));
    }
    tag
}

/// An APEv2 tag with one item, with or without its header.
fn ape(with_header: bool) -> Vec<u8> {
    let mut items = Vec::new();
    items.extend_from_slice(&5u32.to_le_bytes());
    items.extend_from_slice(&0u32.to_le_bytes());
    items.extend_from_slice(b"Title\0Stale");
    let size = (items.len() + 32) as u32;
    let head = |is_header: bool| {
        let mut f = b"APETAGEX".to_vec();
        f.extend_from_slice(&2000u32.to_le_bytes());
        f.extend_from_slice(&size.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        let flags = (u32::from(with_header) << 31) | (u32::from(is_header) << 29);
        f.extend_from_slice(&flags.to_le_bytes());
        f.extend_from_slice(&[0; 8]);
        f
    };
    let mut tag = if with_header { head(true) } else { Vec::new() };
    tag.extend_from_slice(&items);
    tag.extend_from_slice(&head(false));
    tag
}

/// An ID3v1 tag, with the 227-byte `TAG+` block before it when `extended`.
fn id3v1(extended: bool) -> Vec<u8> {
    let mut tag = Vec::new();
    if extended {
        tag.extend_from_slice(b"TAG+");
        tag.resize(227, b'x');
    }
    tag.extend_from_slice(b"TAG");
    tag.extend_from_slice(b"Stale title");
    tag.resize(tag.len() + 128 - 3 - 11, 0);
    tag
}

/// Bytes a fresh [`RangedReader`] with default blocks fetches to serve `ranges` of a
/// `len`-byte file (every block any range touches, once).
fn blocks_fetched(len: u64, ranges: &[(u64, u64)]) -> u64 {
    let b = DEFAULT_BLOCK_SIZE;
    let mut blocks: Vec<u64> = ranges
        .iter()
        .flat_map(|&(s, e)| s / b..=(e - 1) / b)
        .collect();
    blocks.sort();
    blocks.dedup();
    blocks.iter().map(|k| b.min(len - k * b)).sum()
}

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

#[test]
fn a_flac_region_is_the_frames_after_the_metadata_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let bare = make(
        dir.path(),
        "bare",
        AudioFormat::Flac,
        &FixtureTags::default(),
    )
    .unwrap();
    let bare_bytes = read(&bare.path);
    let rb = region(&bare_bytes, "flac");
    assert_eq!(rb.start, first_packet_pos(&bare.path));
    assert_eq!(rb.end(), bare_bytes.len() as u64);
    // A frame header: sync code 0b11111111_111110, fixed block size.
    assert_eq!(slice(&bare_bytes, rb)[..2], [0xFF, 0xF8]);

    let tagged_path = dir.path().join("tagged.flac");
    let tagged = tagged_copy(&bare.path, &tagged_path, &full_tags(dir.path()));
    let rt = region(&tagged, "flac");
    assert_eq!(rt.start, first_packet_pos(&tagged_path));
    assert_eq!(rt.end(), tagged.len() as u64);
    assert_eq!(slice(&tagged, rt), slice(&bare_bytes, rb));

    // An ID3v2 tag before `fLaC` (not FLAC, but taggers write it) is skipped too.
    let mut prefixed = id3v2(3, 300, false);
    prefixed.extend_from_slice(&tagged);
    let rp = region(&prefixed, "flac");
    assert_eq!(
        rp,
        AudioRegion {
            start: rt.start + 310,
            len: rt.len
        }
    );
}

#[test]
fn an_mp3_region_is_the_frames_between_the_tags() {
    let dir = tempfile::tempdir().unwrap();
    let bare = make(
        dir.path(),
        "bare",
        AudioFormat::Mp3,
        &FixtureTags::default(),
    )
    .unwrap();
    let bare_bytes = read(&bare.path);
    let rb = region(&bare_bytes, "mp3");
    assert_eq!(rb.end(), bare_bytes.len() as u64);
    // An MPEG-1 Layer III frame header (the Xing/Info frame): kept as audio.
    assert_eq!(slice(&bare_bytes, rb)[..2], [0xFF, 0xFB]);

    // lofty's ID3v2 at the start, then an APE and an ID3v1 tag at the end.
    let path = dir.path().join("tagged.mp3");
    let tagged = tagged_copy(&bare.path, &path, &full_tags(dir.path()));
    let rt = region(&tagged, "mp3");
    assert_eq!(rt.end(), tagged.len() as u64);
    assert_eq!(slice(&tagged, rt), slice(&bare_bytes, rb));
    let id3v1_len = add_lofty_tag(&path, TagType::Id3v1, "Stale");
    let ape_len = add_lofty_tag(&path, TagType::Ape, "Stale");
    assert_eq!(id3v1_len, 128);
    let trailed = read(&path);
    assert_eq!(
        trailed.len() as u64,
        tagged.len() as u64 + id3v1_len + ape_len
    );
    assert_eq!(region(&trailed, "mp3"), rt);

    // Hand-written: two ID3v2 tags in a row (the first with a footer) before lofty's,
    // and at the end an APE tag with its header, an extended ID3v1, an APE tag without
    // a header and an appended ID3v2 tag with a footer.
    let mut head = id3v2(4, 500, true);
    head.extend_from_slice(&id3v2(3, 64, false));
    assert_eq!(head.len(), 520 + 74);
    let tails: [Vec<u8>; 4] = [ape(true), id3v1(true), ape(false), id3v2(4, 40, true)];
    let mut file = head.clone();
    file.extend_from_slice(&tagged);
    for t in &tails {
        file.extend_from_slice(t);
    }
    assert_eq!(
        region(&file, "mp3"),
        AudioRegion {
            start: head.len() as u64 + rt.start,
            len: rt.len
        }
    );
    // Each tail alone.
    for t in &tails {
        let mut one = tagged.clone();
        one.extend_from_slice(t);
        assert_eq!(region(&one, "mp3"), rt, "{:?}", &t[..8]);
    }
}

#[test]
fn other_formats_have_no_region() {
    let dir = tempfile::tempdir().unwrap();
    for format in [AudioFormat::Vorbis, AudioFormat::Opus, AudioFormat::M4a] {
        let fx = make(dir.path(), "x", format, &FixtureTags::sample()).unwrap();
        let mut r = reader(&read(&fx.path));
        assert_eq!(audio_region(&mut r, format.ext()).unwrap(), None);
        assert_eq!(r.requests(), 0);
    }
}

#[test]
fn truncated_and_damaged_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let tags = full_tags(dir.path());
    for format in [AudioFormat::Flac, AudioFormat::Mp3] {
        let fx = make(dir.path(), "t", format, &tags).unwrap();
        let bytes = read(&fx.path);
        let whole = region(&bytes, format.ext());
        let mut cuts: Vec<usize> = (0..=whole.start as usize + 64).collect();
        cuts.extend([bytes.len() / 2, bytes.len() - 1]);
        for cut in cuts {
            let got = region_of(&bytes[..cut], format.ext());
            if format == AudioFormat::Mp3 && cut < 10 {
                // Less than an ID3v2 header: no tag, all audio (what there is of it).
                let want = AudioRegion {
                    start: 0,
                    len: cut as u64,
                };
                assert_eq!(got.unwrap(), Some(want), "{format:?} cut at {cut}");
            } else if (cut as u64) < whole.start {
                // FLAC cut inside `fLaC`: no marker; else a header or block runs past
                // the end.
                let want = if format == AudioFormat::Flac && cut < 4 {
                    io::ErrorKind::InvalidData
                } else {
                    io::ErrorKind::UnexpectedEof
                };
                assert_eq!(got.unwrap_err().kind(), want, "{format:?} cut at {cut}");
            } else {
                let want = AudioRegion {
                    start: whole.start,
                    len: cut as u64 - whole.start,
                };
                assert_eq!(got.unwrap(), Some(want), "{format:?} cut at {cut}");
            }
        }
        // Garbage in the header and the last bytes: any answer but a panic.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..3000 {
            let mut b = bytes.clone();
            for _ in 0..4 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let pos = (seed >> 33) as usize % 600;
                let at = if seed & 1 == 0 {
                    pos
                } else {
                    b.len() - 1 - pos
                };
                b[at] = (seed >> 20) as u8;
            }
            let mut r = reader(&b);
            if let Ok(Some(reg)) = audio_region(&mut r, format.ext()) {
                assert!(reg.end() <= b.len() as u64);
                audio_id(&mut r, &reg).unwrap();
            }
        }
    }
    // Not the format named.
    assert_eq!(
        region_of(b"ID3", "flac").unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
    assert_eq!(
        region_of(b"OggS....", "flac").unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
    assert_eq!(
        region_of(b"", "mp3").unwrap(),
        Some(AudioRegion { start: 0, len: 0 })
    );
    // A block type 127, a first block that is not STREAMINFO.
    assert_eq!(
        region_of(b"fLaC\x7F\0\0\0", "flac").unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
    assert_eq!(
        region_of(b"fLaC\x84\0\0\0", "flac").unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
    // A non-syncsafe ID3v2 size; an APE tag claiming more than the file.
    assert_eq!(
        region_of(b"ID3\x04\0\0\0\0\x80\0", "mp3")
            .unwrap_err()
            .kind(),
        io::ErrorKind::InvalidData
    );
    let mut big_ape = vec![0xFFu8; 100];
    big_ape.extend_from_slice(b"APETAGEX\xD0\x07\0\0\0\x10\0\0\x01\0\0\0\0\0\0\0");
    big_ape.extend_from_slice(&[0; 8]);
    assert_eq!(
        region_of(&big_ape, "mp3").unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
}

#[test]
fn finding_the_region_and_the_id_fetches_a_few_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let tags = full_tags(dir.path());
    for format in [AudioFormat::Flac, AudioFormat::Mp3] {
        let fx = make_with(dir.path(), "long", format, Signal::Noise, 60_000, &tags).unwrap();
        let bytes = read(&fx.path);
        let len = bytes.len() as u64;
        assert!(len > 6 * DEFAULT_BLOCK_SIZE, "{format:?}: {len}");
        let mut r = reader(&bytes);
        let reg = audio_region(&mut r, format.ext()).unwrap().unwrap();
        // FLAC: the metadata blocks, all in the first block. MP3: the ID3v2 header, and
        // the last 128 bytes (ID3v1, APE footer, ID3v2 footer).
        let mut ranges = vec![(0, 10)];
        if format == AudioFormat::Mp3 {
            ranges.push((len - 128, len));
        }
        assert!(reg.start < DEFAULT_BLOCK_SIZE);
        assert_eq!(
            r.fetched_bytes(),
            blocks_fetched(len, &ranges),
            "{format:?}"
        );
        audio_id(&mut r, &reg).unwrap();
        ranges.push((reg.start, reg.start + AUDIO_ID_SPAN));
        ranges.push((reg.end() - AUDIO_ID_SPAN, reg.end()));
        assert_eq!(
            r.fetched_bytes(),
            blocks_fetched(len, &ranges),
            "{format:?}"
        );
        assert!(r.fetched_bytes() <= 4 * DEFAULT_BLOCK_SIZE, "{format:?}");
    }
}

/// The id as documented: BLAKE3 of the length, the first and the last 64 KiB.
fn expected_id(bytes: &[u8], r: AudioRegion) -> [u8; 32] {
    let audio = slice(bytes, r);
    let span = audio.len().min(AUDIO_ID_SPAN as usize);
    let mut h = blake3::Hasher::new();
    h.update(&r.len.to_le_bytes());
    h.update(&audio[..span]);
    h.update(&audio[audio.len() - span..]);
    *h.finalize().as_bytes()
}

fn id_of(bytes: &[u8], format: &str) -> [u8; 32] {
    let mut r = reader(bytes);
    let reg = audio_region(&mut r, format).unwrap().unwrap();
    audio_id(&mut r, &reg).unwrap()
}

#[test]
fn the_audio_id_survives_a_retag_and_sees_an_audio_byte_change() {
    let dir = tempfile::tempdir().unwrap();
    for format in [AudioFormat::Flac, AudioFormat::Mp3] {
        let fx = make_with(
            dir.path(),
            "id",
            format,
            Signal::Noise,
            20_000,
            &FixtureTags::sample(),
        )
        .unwrap();
        let before = read(&fx.path);
        let r1 = region(&before, format.ext());
        assert!(r1.len > 4 * AUDIO_ID_SPAN, "{format:?}");
        let id = id_of(&before, format.ext());
        assert_eq!(id, expected_id(&before, r1), "{format:?}");

        // Longer tags than any padding holds: the audio moves, its id does not.
        let longer = FixtureTags {
            title: Some("A much longer title ".repeat(1000)),
            front_cover: Some(cover_jpeg(dir.path()).unwrap()),
            ..full_tags(dir.path())
        };
        write_tags(&fx.path, &longer).unwrap();
        let after = read(&fx.path);
        let r2 = region(&after, format.ext());
        assert!(r2.start > r1.start + 20_000, "{format:?}: {r1:?} {r2:?}");
        assert_eq!(r2.len, r1.len);
        assert_eq!(id_of(&after, format.ext()), id, "{format:?}");

        // A byte in the middle of the first 64 KiB of audio changes it.
        let mut changed = after.clone();
        changed[(r2.start + AUDIO_ID_SPAN / 2) as usize] ^= 0x01;
        assert_ne!(id_of(&changed, format.ext()), id, "{format:?}");
        // So does one in the last 64 KiB.
        let mut changed = after.clone();
        changed[(r2.end() - AUDIO_ID_SPAN / 2) as usize] ^= 0x01;
        assert_ne!(id_of(&changed, format.ext()), id, "{format:?}");
        // One between the two spans is not seen (documented: not a content hash).
        let mut changed = after.clone();
        changed[(r2.start + r2.len / 2) as usize] ^= 0x01;
        assert_eq!(id_of(&changed, format.ext()), id, "{format:?}");
    }
}

#[test]
fn the_id_of_a_short_region_hashes_it_twice_and_a_region_past_the_end_fails() {
    let bytes: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let r = AudioRegion {
        start: 100,
        len: 900,
    };
    assert_eq!(
        audio_id(&mut reader(&bytes), &r).unwrap(),
        expected_id(&bytes, r)
    );
    let past = AudioRegion {
        start: 100,
        len: 901,
    };
    assert_eq!(
        audio_id(&mut reader(&bytes), &past).unwrap_err().kind(),
        io::ErrorKind::UnexpectedEof
    );
    let overflow = AudioRegion {
        start: u64::MAX,
        len: 2,
    };
    assert!(audio_id(&mut reader(&bytes), &overflow).is_err());
}

// ---- The tag overlay ----

/// The index row an overlay is built from: new values for every field a file can hold,
/// plus a stream property (`channels`), which is no tag, and tags lofty's generic view
/// does not carry (`country`, `mood`).
fn new_row(format: AudioFormat) -> MusicTrack {
    let extra = [
        ("albumtype", "album"),
        ("catalognum", "NEW-007"),
        ("channels", "1"),
        ("comp", "1"),
        ("country", "IS"),
        ("disctotal", "3"),
        ("label", "Neue Platten"),
        ("mb_albumid", "11111111-2222-3333-4444-555555555555"),
        ("mood", "ruhig"),
        ("tracktotal", "9"),
    ];
    MusicTrack {
        format: format.ext().into(),
        title: Some("Überschrift — 新しい".into()),
        artist: Some("Die Oszillatoren".into()),
        album: Some("Reine Töne".into()),
        albumartist: Some("Verschiedene Oszillatoren".into()),
        genre: Some("Ambient".into()),
        year: Some(2003),
        track: Some(7),
        disc: Some(2),
        extra: extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..MusicTrack::default()
    }
}

/// The tag part of a row: what a tag read gives back (`to_track` keeps these extras).
fn tag_part(t: &MusicTrack) -> MusicTrack {
    const READ_BACK: [&str; 7] = [
        "albumtype",
        "catalognum",
        "comp",
        "disctotal",
        "label",
        "mb_albumid",
        "tracktotal",
    ];
    MusicTrack {
        title: t.title.clone(),
        artist: t.artist.clone(),
        album: t.album.clone(),
        albumartist: t.albumartist.clone(),
        genre: t.genre.clone(),
        year: t.year,
        track: t.track,
        disc: t.disc,
        extra: t
            .extra
            .iter()
            .filter(|(k, _)| READ_BACK.contains(&k.as_str()))
            .cloned()
            .collect(),
        ..MusicTrack::default()
    }
}

fn overlay_of(bytes: &[u8], row: &MusicTrack) -> Result<Option<Overlay>, OverlayError> {
    build_overlay(&mut reader(bytes), row)
}

/// `header ++ original[region] ++ trailer`.
fn assemble(o: &Overlay, original: &[u8]) -> Vec<u8> {
    let mut out = o.header.to_vec();
    out.extend_from_slice(slice(original, o.region));
    out.extend_from_slice(&o.trailer);
    out
}

/// ffmpeg's MD5 of the audio packets, stream-copied (no decoding).
fn packets_md5(path: &Path) -> String {
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-c", "copy", "-f", "md5", "-"])
        .output()
        .expect("ffmpeg is installed");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The container tags ffprobe shows, keys lower-cased.
fn ffprobe_tags(path: &Path) -> Vec<(String, String)> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_format", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let tags = text
        .split("\"tags\": {")
        .nth(1)
        .expect("ffprobe shows tags");
    let tags = tags.split('}').next().unwrap();
    let mut out: Vec<(String, String)> = tags
        .lines()
        .filter_map(|l| {
            let (k, v) = l.trim().trim_end_matches(',').split_once("\": \"")?;
            Some((
                k.trim_start_matches('"').to_lowercase(),
                v.trim_end_matches('"').to_string(),
            ))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn an_overlaid_file_has_exactly_the_rows_tags_and_the_same_audio() {
    let dir = tempfile::tempdir().unwrap();
    let written = full_tags(dir.path());
    let jpeg = written.front_cover.clone().unwrap();
    for format in [AudioFormat::Flac, AudioFormat::Mp3] {
        let fx = make(dir.path(), "orig", format, &written).unwrap();
        if format == AudioFormat::Mp3 {
            // Stale tags at the end, which the overlay must not let through.
            add_lofty_tag(&fx.path, TagType::Id3v1, "Stale");
            add_lofty_tag(&fx.path, TagType::Ape, "Stale");
        }
        let original = read(&fx.path);
        let row = new_row(format);
        let o = overlay_of(&original, &row).unwrap().unwrap();
        assert_eq!(o.region, region(&original, format.ext()));
        assert_eq!(o.trailer.len(), 0);
        let served = assemble(&o, &original);
        assert_eq!(o.len(), served.len() as u64);
        let path = dir.path().join(format!("served.{}", format.ext()));
        std::fs::write(&path, &served).unwrap();

        // Tags: what the index reads back is the row's, exactly; the cover is kept.
        let back = read_tags(Arc::new(Bytes::from(served.clone())), None).unwrap();
        assert_eq!(tag_part(&to_track(&back)), tag_part(&row), "{format:?}");
        let (mime, cover) = front_cover(Arc::new(Bytes::from(served.clone())), None)
            .unwrap()
            .unwrap();
        assert_eq!((mime.as_str(), &cover[..]), ("image/jpeg", &jpeg[..]));
        // The tags lofty's generic view leaves out, through the format's own tag.
        let mut file = std::fs::File::open(&path).unwrap();
        let opts = lofty::config::ParseOptions::new();
        match format {
            AudioFormat::Flac => {
                let f = lofty::flac::FlacFile::read_from(&mut file, opts).unwrap();
                let vc = f.vorbis_comments().unwrap();
                assert_eq!(vc.get("RELEASECOUNTRY"), Some("IS"));
                assert_eq!(vc.get("MOOD"), Some("ruhig"));
                assert_eq!(vc.get("CHANNELS"), None);
                // ffmpeg's vendor string, kept.
                let orig = lofty::flac::FlacFile::read_from(
                    &mut std::fs::File::open(&fx.path).unwrap(),
                    opts,
                )
                .unwrap();
                assert_eq!(vc.vendor(), orig.vorbis_comments().unwrap().vendor());
                assert_eq!(vc.items().count(), 17);
            }
            _ => {
                let f = lofty::mpeg::MpegFile::read_from(&mut file, opts).unwrap();
                let id3 = f.id3v2().unwrap();
                assert_eq!(
                    id3.get_user_text("MusicBrainz Album Release Country"),
                    Some("IS")
                );
                assert_eq!(id3.get_user_text("MOOD"), Some("ruhig"));
                assert_eq!(id3.get_user_text("CHANNELS"), None);
                assert!(f.id3v1().is_none() && f.ape().is_none());
            }
        }
        // ffprobe sees the tags too.
        let probed = ffprobe_tags(&path);
        let get = |k: &str| {
            probed
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("title"), Some("Überschrift — 新しい"), "{probed:?}");
        assert_eq!(get("artist"), Some("Die Oszillatoren"), "{probed:?}");
        assert_eq!(get("album"), Some("Reine Töne"), "{probed:?}");
        assert_eq!(get("genre"), Some("Ambient"), "{probed:?}");
        assert_eq!(get("date"), Some("2003"), "{probed:?}");
        // The audio packets are the original's, bit for bit.
        assert_eq!(packets_md5(&path), packets_md5(&fx.path), "{format:?}");

        // Any range reads as the assembled file's slice.
        let mut seed = 42u64;
        let total = served.len() as u64;
        for i in 0..500 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let offset = match i % 3 {
                0 => (seed >> 33) % (o.header.len() as u64 + 64),
                1 => (seed >> 33) % (total + 16),
                _ => total.saturating_sub((seed >> 33) % 4096),
            };
            let len = (seed >> 7) % 200_000;
            let got = o
                .read(offset, len, |at, n| {
                    Ok(Bytes::copy_from_slice(
                        &original
                            [(o.region.start + at) as usize..(o.region.start + at + n) as usize],
                    ))
                })
                .unwrap();
            let (a, b) = (
                offset.min(total) as usize,
                (offset + len).min(total) as usize,
            );
            assert_eq!(&got[..], &served[a..b], "{format:?} {offset} +{len}");
        }

        // Deterministic: a second build from a fresh reader is the same overlay.
        assert_eq!(overlay_of(&original, &row).unwrap().unwrap(), o);
    }
}

#[test]
fn an_empty_row_gives_a_file_without_tags() {
    let dir = tempfile::tempdir().unwrap();
    let written = full_tags(dir.path());
    for format in [AudioFormat::Flac, AudioFormat::Mp3] {
        let fx = make(dir.path(), "orig", format, &written).unwrap();
        let original = read(&fx.path);
        let row = MusicTrack {
            format: format.ext().into(),
            ..MusicTrack::default()
        };
        let o = overlay_of(&original, &row).unwrap().unwrap();
        let served = assemble(&o, &original);
        let back = read_tags(Arc::new(Bytes::from(served)), None).unwrap();
        assert_eq!(
            tag_part(&to_track(&back)),
            MusicTrack::default(),
            "{format:?}"
        );
        assert!(back.front_cover.is_some());
    }
}

#[test]
fn the_header_layout_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    // Untagged, no cover: the header is only what the overlay writes.
    let row = MusicTrack {
        format: "mp3".into(),
        title: Some("T".into()),
        track: Some(3),
        extra: vec![("tracktotal".into(), "12".into())],
        ..MusicTrack::default()
    };
    let fx = make(
        dir.path(),
        "bare",
        AudioFormat::Mp3,
        &FixtureTags::default(),
    )
    .unwrap();
    let original = read(&fx.path);
    let o = overlay_of(&original, &row).unwrap().unwrap();
    let mut want = b"ID3\x04\0\0\0\0\0\x1b".to_vec();
    want.extend_from_slice(b"TIT2\0\0\0\x02\0\0\x03T");
    want.extend_from_slice(b"TRCK\0\0\0\x05\0\0\x033/12");
    assert_eq!(&o.header[..], &want[..]);

    let fx = make(
        dir.path(),
        "bare",
        AudioFormat::Flac,
        &FixtureTags::default(),
    )
    .unwrap();
    let original = read(&fx.path);
    let row = MusicTrack {
        format: "flac".into(),
        title: Some("T".into()),
        ..row
    };
    let o = overlay_of(&original, &row).unwrap().unwrap();
    let h = &o.header[..];
    // fLaC, STREAMINFO (34 bytes, not last), then the comment, last.
    assert_eq!(&h[..8], b"fLaC\x00\x00\x00\x22");
    assert_eq!(&h[8..42], &original[8..42]);
    let vendor_len = u32::from_le_bytes(original[46..50].try_into().unwrap()) as usize;
    let vendor = &original[50..50 + vendor_len];
    let mut comment = (vendor_len as u32).to_le_bytes().to_vec();
    comment.extend_from_slice(vendor);
    comment.extend_from_slice(&3u32.to_le_bytes());
    for field in ["TITLE=T", "TRACKNUMBER=3", "TRACKTOTAL=12"] {
        comment.extend_from_slice(&(field.len() as u32).to_le_bytes());
        comment.extend_from_slice(field.as_bytes());
    }
    let mut block = vec![0x84, 0, 0, comment.len() as u8];
    block.extend_from_slice(&comment);
    assert_eq!(&h[42..], &block[..], "{}", String::from_utf8_lossy(h));
}

#[test]
fn other_formats_have_no_overlay_and_bad_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for format in [AudioFormat::Vorbis, AudioFormat::Opus, AudioFormat::M4a] {
        let fx = make(dir.path(), "x", format, &FixtureTags::sample()).unwrap();
        let row = MusicTrack {
            format: format.ext().into(),
            ..new_row(format)
        };
        assert_eq!(overlay_of(&read(&fx.path), &row).unwrap(), None);
    }
    let written = full_tags(dir.path());
    for format in [AudioFormat::Flac, AudioFormat::Mp3] {
        let fx = make(dir.path(), "x", format, &written).unwrap();
        let bytes = read(&fx.path);
        let row = new_row(format);
        let start = region(&bytes, format.ext()).start as usize;
        for cut in [12, start / 2, start - 1] {
            match overlay_of(&bytes[..cut], &row) {
                Err(OverlayError::Malformed { format: f, .. }) => assert_eq!(f, format.ext()),
                other => panic!("{format:?} cut at {cut}: {other:?}"),
            }
        }
        // Garbage in the header and the last bytes: any answer but a panic.
        let mut seed = 7u64;
        for _ in 0..2000 {
            let mut b = bytes.clone();
            for _ in 0..4 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let pos = (seed >> 33) as usize % start.max(1);
                let at = if seed & 1 == 0 {
                    pos
                } else {
                    b.len() - 1 - pos % 400
                };
                b[at] = (seed >> 20) as u8;
            }
            if let Ok(Some(o)) = overlay_of(&b, &row) {
                assert!(o.region.end() <= b.len() as u64);
            }
        }
    }
}

/// Serves its first block, then fails, like an origin going away mid-read.
struct FailsAfterFirstBlock(Bytes);

impl RangeSource for FailsAfterFirstBlock {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_range(&self, offset: u64, len: u64) -> io::Result<Bytes> {
        if offset == 0 {
            return self.0.read_range(offset, len);
        }
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "origin went away",
        ))
    }
}

#[test]
fn a_failing_source_is_an_io_error_not_a_malformed_file() {
    let dir = tempfile::tempdir().unwrap();
    // An MP3's overlay reads its end (ID3v1, APE), beyond the first block.
    let fx = make_with(
        dir.path(),
        "long",
        AudioFormat::Mp3,
        Signal::Noise,
        10_000,
        &FixtureTags::sample(),
    )
    .unwrap();
    let bytes = Bytes::from(read(&fx.path));
    assert!(bytes.len() as u64 > 2 * DEFAULT_BLOCK_SIZE);
    let mut r = RangedReader::new(Arc::new(FailsAfterFirstBlock(bytes)));
    match build_overlay(&mut r, &new_row(AudioFormat::Mp3)) {
        Err(OverlayError::Io(e)) => {
            assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
            assert_eq!(e.to_string(), "origin went away");
        }
        other => panic!("{other:?}"),
    }
}
