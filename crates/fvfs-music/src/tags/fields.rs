//! [`TrackTags`] as a path template sees it: beets' field names and beets' formatting
//! of each value.
//!
//! Invariants:
//! - A field the track does not have is `None` (it renders empty and fails `%ifdef`),
//!   except `albumartist`, which falls back to `artist` as beets' does for paths.
//! - Numbers are formatted as beets formats them: `year` padded to 4 digits, `track`,
//!   `tracktotal`, `disc`, `disctotal` to 2; `bitrate` as `128kbps`, `samplerate` as
//!   `44kHz` (integer division, as beets' `ScaledInt`), `length` as `M:SS`, `comp` as
//!   `True`/`False`.
//! - Names are beets' (`albumartist`, `catalognum`, `mb_albumid`); the seed schema's
//!   `album_artist` is accepted too. `%aunique` needs the whole library, so the default
//!   ("every album is unique") stands here; the index wraps tracks to answer it.

use std::borrow::Cow;

use super::TrackTags;
use crate::template::Fields;

fn text(v: &Option<String>) -> Option<Cow<'_, str>> {
    v.as_deref().map(Cow::Borrowed)
}

impl Fields for TrackTags {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        let padded = |v: Option<u32>, width: usize| v.map(|n| Cow::Owned(format!("{n:0width$}")));
        match name {
            "title" => text(&self.title),
            "artist" => text(&self.artist),
            "album" => text(&self.album),
            "albumartist" | "album_artist" => text(&self.album_artist).or(text(&self.artist)),
            "genre" => text(&self.genre),
            "label" => text(&self.label),
            "catalognum" => text(&self.catalog_number),
            "mb_albumid" => text(&self.mb_album_id),
            "albumtype" => text(&self.album_type),
            "year" => padded(self.year, 4),
            "track" => padded(self.track, 2),
            "tracktotal" => padded(self.track_total, 2),
            "disc" => padded(self.disc, 2),
            "disctotal" => padded(self.disc_total, 2),
            "comp" => self
                .compilation
                .map(|c| Cow::Borrowed(if c { "True" } else { "False" })),
            "format" => Some(Cow::Borrowed(self.format)).filter(|f| !f.is_empty()),
            "format_upper" => {
                (!self.format.is_empty()).then(|| Cow::Owned(self.format.to_ascii_uppercase()))
            }
            "bitrate" => self.bitrate_kbps.map(|b| Cow::Owned(format!("{b}kbps"))),
            "samplerate" => self
                .sample_rate
                .map(|r| Cow::Owned(format!("{}kHz", r / 1000))),
            "channels" => self.channels.map(|c| Cow::Owned(c.to_string())),
            "bitdepth" => self.bit_depth.map(|b| Cow::Owned(b.to_string())),
            "length" => self.duration_ms.map(|ms| {
                let s = ms / 1000;
                Cow::Owned(format!("{}:{:02}", s / 60, s % 60))
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::CoverInfo;
    use crate::template::Template;

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
        t.field(name).map(Cow::into_owned)
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
            tpl.render(&homogenic()),
            ["Björk", "Homogenic (1997) [FLAC]", "03 - Jóga.flac"]
        );
    }
}
