//! A track as templates and the index see it: [`to_track`] turns what was read from a
//! file ([`TrackTags`]) into an index row ([`MusicTrack`], whose origin, path and stamp
//! the scanner fills), and [`field`] reads a row through beets' field names with beets'
//! formatting. Views render rows of the index, so this is the one mapping of names.
//!
//! Invariants:
//! - A field the track does not have is `None` (it renders empty and fails `%ifdef`),
//!   except `albumartist`, which falls back to `artist` as beets' does for paths, and
//!   `title`, which falls back to the file's name on its origin without its extension
//!   (beets' `fromfilename`): an untagged file keeps a recognisable name.
//! - Numbers are formatted as beets formats them: `year` padded to 4 digits, `track`,
//!   `tracktotal`, `disc`, `disctotal` to 2; `bitrate` as `128kbps`, `samplerate` as
//!   `44kHz` (integer division, as beets' `ScaledInt`), `length` as `M:SS`, `comp` as
//!   `True`/`False`.
//! - Names are beets' (`albumartist`, `catalognum`, `mb_albumid`); the seed schema's
//!   `album_artist` is accepted too. Tags without a column of their own are kept in the
//!   row's `extra` under these names, numbers unpadded.

use std::borrow::Cow;

use super::TrackTags;
use fvfs_meta::MusicTrack;

/// The index row of `t` (origin, path, stamp and ids left empty for the scanner).
pub fn to_track(t: &TrackTags) -> MusicTrack {
    let mut extra: Vec<(String, String)> = [
        ("albumtype", t.album_type.clone()),
        ("bitdepth", t.bit_depth.map(|v| v.to_string())),
        ("catalognum", t.catalog_number.clone()),
        ("channels", t.channels.map(|v| v.to_string())),
        (
            "comp",
            t.compilation.map(|c| if c { "1" } else { "0" }.to_string()),
        ),
        ("disctotal", t.disc_total.map(|v| v.to_string())),
        ("label", t.label.clone()),
        ("mb_albumid", t.mb_album_id.clone()),
        ("tracktotal", t.track_total.map(|v| v.to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
    .collect();
    extra.sort();
    MusicTrack {
        format: t.format.to_string(),
        title: t.title.clone(),
        artist: t.artist.clone(),
        album: t.album.clone(),
        albumartist: t.album_artist.clone(),
        genre: t.genre.clone(),
        year: t.year,
        track: t.track,
        disc: t.disc,
        duration_ms: t.duration_ms,
        bitrate_kbps: t.bitrate_kbps,
        sample_rate: t.sample_rate,
        extra,
        has_cover: t.front_cover.is_some(),
        ..MusicTrack::default()
    }
}

fn text(v: &Option<String>) -> Option<Cow<'_, str>> {
    v.as_deref().filter(|s| !s.is_empty()).map(Cow::Borrowed)
}

fn extra<'a>(t: &'a MusicTrack, name: &str) -> Option<&'a str> {
    t.extra
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// The value of beets field `name` of `t` (`%aunique` is the view's).
pub fn field<'a>(t: &'a MusicTrack, name: &str) -> Option<Cow<'a, str>> {
    let padded = |v: Option<u32>, width: usize| v.map(|n| Cow::Owned(format!("{n:0width$}")));
    let padded_extra = |name: &str| {
        extra(t, name)
            .and_then(|v| v.parse::<u32>().ok())
            .map(|n| Cow::Owned(format!("{n:02}")))
    };
    match name {
        "title" => text(&t.title).or_else(|| {
            let name = t.path.rsplit('/').next().unwrap_or_default();
            let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
            (!stem.is_empty()).then_some(Cow::Borrowed(stem))
        }),
        "artist" => text(&t.artist),
        "album" => text(&t.album),
        "albumartist" | "album_artist" => text(&t.albumartist).or(text(&t.artist)),
        "genre" => text(&t.genre),
        "year" => padded(t.year, 4),
        "track" => padded(t.track, 2),
        "tracktotal" => padded_extra("tracktotal"),
        "disc" => padded(t.disc, 2),
        "disctotal" => padded_extra("disctotal"),
        "comp" => extra(t, "comp").map(|c| Cow::Borrowed(if c == "1" { "True" } else { "False" })),
        "format" => Some(Cow::Borrowed(t.format.as_str())).filter(|f| !f.is_empty()),
        "format_upper" => (!t.format.is_empty()).then(|| Cow::Owned(t.format.to_ascii_uppercase())),
        "bitrate" => t.bitrate_kbps.map(|b| Cow::Owned(format!("{b}kbps"))),
        "samplerate" => t
            .sample_rate
            .map(|r| Cow::Owned(format!("{}kHz", r / 1000))),
        "length" => t.duration_ms.map(|ms| {
            let s = ms / 1000;
            Cow::Owned(format!("{}:{:02}", s / 60, s % 60))
        }),
        _ => extra(t, name).map(Cow::Borrowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::CoverInfo;
    use crate::template::{Fields, Template};

    fn homogenic() -> TrackTags {
        TrackTags {
            title: Some("Jóga".into()),
            artist: Some("Björk".into()),
            album: Some("Homogenic".into()),
            genre: Some("Electronic".into()),
            year: Some(1997),
            track: Some(3),
            track_total: Some(10),
            disc: Some(1),
            compilation: Some(false),
            label: Some("One Little Indian".into()),
            catalog_number: Some("TPLP71CD".into()),
            duration_ms: Some(305_400),
            bitrate_kbps: Some(912),
            sample_rate: Some(44_100),
            channels: Some(2),
            bit_depth: Some(16),
            format: "flac",
            front_cover: Some(CoverInfo {
                mime: "image/jpeg".into(),
                len: 1234,
            }),
            ..TrackTags::default()
        }
    }

    fn f(t: &TrackTags, name: &str) -> Option<String> {
        field(&to_track(t), name).map(Cow::into_owned)
    }

    struct Row(MusicTrack);
    impl Fields for Row {
        fn field(&self, name: &str) -> Option<Cow<'_, str>> {
            field(&self.0, name)
        }
    }

    #[test]
    fn fields_are_formatted_as_beets_formats_them() {
        let t = homogenic();
        let want = [
            ("title", Some("Jóga")),
            ("artist", Some("Björk")),
            ("albumartist", Some("Björk")),
            ("album_artist", Some("Björk")),
            ("album", Some("Homogenic")),
            ("genre", Some("Electronic")),
            ("year", Some("1997")),
            ("track", Some("03")),
            ("tracktotal", Some("10")),
            ("disc", Some("01")),
            ("disctotal", None),
            ("comp", Some("False")),
            ("label", Some("One Little Indian")),
            ("catalognum", Some("TPLP71CD")),
            ("mb_albumid", None),
            ("albumtype", None),
            ("format", Some("flac")),
            ("format_upper", Some("FLAC")),
            ("bitrate", Some("912kbps")),
            ("samplerate", Some("44kHz")),
            ("channels", Some("2")),
            ("bitdepth", Some("16")),
            ("length", Some("5:05")),
            ("no_such_field", None),
        ];
        for (name, value) in want {
            assert_eq!(f(&t, name).as_deref(), value, "{name}");
        }
    }

    #[test]
    fn album_artist_wins_over_artist_and_small_years_are_padded() {
        let t = TrackTags {
            artist: Some("Sigur Rós".into()),
            album_artist: Some("Various Artists".into()),
            year: Some(800),
            track: Some(123),
            compilation: Some(true),
            ..TrackTags::default()
        };
        assert_eq!(f(&t, "albumartist").as_deref(), Some("Various Artists"));
        assert_eq!(f(&t, "year").as_deref(), Some("0800"));
        assert_eq!(f(&t, "track").as_deref(), Some("123"));
        assert_eq!(f(&t, "comp").as_deref(), Some("True"));
    }

    #[test]
    fn an_empty_track_has_no_fields() {
        let t = TrackTags::default();
        for name in [
            "title",
            "albumartist",
            "year",
            "track",
            "format",
            "format_upper",
        ] {
            assert_eq!(f(&t, name), None, "{name}");
        }
    }

    #[test]
    fn the_seeds_default_template_renders_exactly() {
        let tpl = Template::parse("$artist/$album ($year) [$format_upper]/$track - $title.$format")
            .unwrap();
        assert_eq!(
            tpl.render(&Row(to_track(&homogenic()))),
            ["Björk", "Homogenic (1997) [FLAC]", "03 - Jóga.flac"]
        );
    }
}
