//! End-to-end checks of the path template engine through its public API: parse once,
//! render a track, compare exact components.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use fvfs_music::template::{Fields, RenderOptions, Template, TemplateError};

/// A track: its tags, plus a canned `%aunique` answer that records what it was asked.
#[derive(Default)]
struct Track {
    tags: BTreeMap<String, String>,
    aunique: Option<String>,
    asked: RefCell<Vec<(Vec<String>, Vec<String>)>>,
}

impl Track {
    fn new(pairs: &[(&str, &str)]) -> Track {
        Track {
            tags: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Track::default()
        }
    }
}

impl Fields for Track {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        self.tags.get(name).map(|v| Cow::Borrowed(v.as_str()))
    }
    fn aunique(&self, identifiers: &[&str], disambiguators: &[&str]) -> Option<String> {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        self.asked
            .borrow_mut()
            .push((own(identifiers), own(disambiguators)));
        self.aunique.clone()
    }
}

fn render(template: &str, track: &Track) -> Vec<String> {
    Template::parse(template).unwrap().render(track)
}

/// Renders a one-component template.
fn one(template: &str, track: &Track) -> String {
    let mut v = render(template, track);
    assert_eq!(v.len(), 1, "{template}");
    v.pop().unwrap()
}

fn bjork() -> Track {
    Track::new(&[
        ("artist", "Björk"),
        ("albumartist", "Björk"),
        ("album", "Homogenic"),
        ("year", "1997"),
        ("format", "flac"),
        ("format_upper", "FLAC"),
        ("track", "01"),
        ("title", "Hunter"),
        ("genres", "Electronic; Art Pop; Trip Hop"),
        ("empty", ""),
        ("zero", "0"),
    ])
}

#[test]
fn seed_default_template() {
    let t =
        Template::parse("$artist/$album ($year) [$format_upper]/$track - $title.$format").unwrap();
    assert_eq!(t.depth(), 3);
    assert_eq!(
        t.render(&bjork()),
        ["Björk", "Homogenic (1997) [FLAC]", "01 - Hunter.flac"]
    );
    let want: BTreeSet<String> = [
        "album",
        "artist",
        "format",
        "format_upper",
        "title",
        "track",
        "year",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(t.fields(), want);
}

#[test]
fn beets_default_template_with_aunique() {
    let t = Template::parse("$albumartist/$album%aunique{}/$track $title").unwrap();
    let mut track = Track::new(&[
        ("albumartist", "Crystal Castles"),
        ("album", "Crystal Castles"),
        ("track", "01"),
        ("title", "Untrust Us"),
    ]);
    assert_eq!(
        t.render(&track),
        ["Crystal Castles", "Crystal Castles", "01 Untrust Us"]
    );
    track.aunique = Some("2008".into());
    assert_eq!(
        t.render(&track),
        ["Crystal Castles", "Crystal Castles [2008]", "01 Untrust Us"]
    );
    let (ids, dis) = track.asked.borrow()[0].clone();
    assert_eq!(ids, ["albumartist", "album"]);
    assert_eq!(
        dis,
        [
            "albumtype",
            "year",
            "label",
            "catalognum",
            "albumdisambig",
            "releasegroupdisambig"
        ]
    );
    // The index learns the album fields aunique reads.
    for f in [
        "albumartist",
        "album",
        "albumtype",
        "year",
        "releasegroupdisambig",
        "title",
    ] {
        assert!(t.fields().contains(f), "{f}");
    }
}

#[test]
fn aunique_arguments_and_brackets() {
    let mut track = Track::new(&[("x", "label")]);
    track.aunique = Some("XL".into());
    assert_eq!(one("A%aunique{artist album,$x year,()}", &track), "A (XL)");
    assert_eq!(track.asked.borrow()[0].0, ["artist", "album"]);
    assert_eq!(track.asked.borrow()[0].1, ["label", "year"]);
    assert_eq!(one("A%aunique{,,}", &track), "A XL");
    assert_eq!(one("A%aunique{,,«»}", &track), "A «XL»");
    assert_eq!(one("A%aunique{,,[[]}", &track), "A XL");
    assert_eq!(track.asked.borrow()[1].0, ["albumartist", "album"]);
    // An empty disambiguation renders nothing, not empty brackets.
    track.aunique = Some(String::new());
    assert_eq!(one("A%aunique{}", &track), "A");
    let t = Template::parse("%aunique{artist,,[]}").unwrap();
    assert!(t.fields().contains("artist") && t.fields().contains("catalognum"));
    assert!(!t.fields().contains("albumartist"));
}

#[test]
fn case_functions() {
    let t = bjork();
    assert_eq!(
        one("%lower{$artist AND Sigur Rós}", &t),
        "björk and sigur rós"
    );
    assert_eq!(one("%upper{$artist}", &t), "BJÖRK");
    assert_eq!(one("%upper{straße}", &t), "STRASSE");
    assert_eq!(one("%lower{ΟΔΟΣ}", &t), "οδος");
    assert_eq!(one("%capitalize{hELLO wORLD}", &t), "Hello world");
    assert_eq!(
        one("%title{the  dark SIDE of the moon}", &t),
        "The Dark Side Of The Moon"
    );
    assert_eq!(one("%title{ élan vital's}", &t), "Élan Vital's");
}

#[test]
fn left_and_right() {
    let t = bjork();
    assert_eq!(one("%left{$artist,3}", &t), "Bjö");
    assert_eq!(one("%right{$artist,3}", &t), "örk");
    assert_eq!(one("%left{$artist,0}x", &t), "x");
    assert_eq!(one("%right{$artist,0}x", &t), "x");
    assert_eq!(one("%left{$artist,99}", &t), "Björk");
    assert_eq!(one("%right{$artist,99}", &t), "Björk");
    assert_eq!(one("%left{$artist,-2}", &t), "Bjö");
    assert_eq!(one("%right{$artist,-2}", &t), "örk");
    assert_eq!(one("%left{$artist, 2 }", &t), "Bj");
    // A computed count: the year's last two digits.
    assert_eq!(one("%right{$year,%left{2,1}}", &t), "97");
    // A computed count that is not an integer leaves the text whole.
    assert_eq!(one("%left{$artist,$title}", &t), "Björk");
    // Nested: the first letter of the artist, upper-cased, as a directory.
    assert_eq!(
        render("%upper{%left{$artist,1}}/$artist", &t),
        ["B", "Björk"]
    );
}

#[test]
fn if_conditions() {
    let t = bjork();
    assert_eq!(one("%if{$year,has year}", &t), "has year");
    assert_eq!(one("x%if{$missing,yes}", &t), "x");
    assert_eq!(one("%if{$missing,yes,no}", &t), "no");
    assert_eq!(one("%if{$empty,yes,no}", &t), "no");
    assert_eq!(one("%if{$zero,yes,no}", &t), "no");
    assert_eq!(one("%if{ 00 ,yes,no}", &t), "no");
    assert_eq!(one("%if{FaLsE,yes,no}", &t), "no");
    assert_eq!(one("%if{0.0,yes,no}", &t), "yes");
    assert_eq!(one("%if{-3,yes,no}", &t), "yes");
    assert_eq!(one("%if{%lower{$artist},[$artist],none}", &t), "[Björk]");
    assert_eq!(
        one("%if{$format,%upper{$format},%lower{$title}}", &t),
        "FLAC"
    );
}

#[test]
fn asciify_transliterates() {
    let t = Track::new(&[
        ("a", "Björk"),
        ("b", "Sigur Rós"),
        ("c", "東京事変"),
        ("d", "ポルノグラフィティ"),
        ("e", "Motörhead ½"),
    ]);
    assert_eq!(one("%asciify{$a}", &t), "Bjork");
    assert_eq!(one("%asciify{$b}", &t), "Sigur Ros");
    assert_eq!(one("%asciify{$c}", &t), "Dong Jing Shi Bian");
    assert_eq!(one("%asciify{$d}", &t), "porunogurahuitei");
    assert_eq!(one("%lower{%asciify{$b}}", &t), "sigur ros");
    assert_eq!(one("%asciify{%lower{$a}}", &t), "bjork");
    // A transliteration that yields `/` stays inside the component.
    assert_eq!(render("%asciify{$e}/x", &t), ["Motorhead 1_2", "x"]);
    // Non-ASCII text passes through %lower untouched otherwise.
    assert_eq!(one("%lower{$c $d}", &t), "東京事変 ポルノグラフィティ");
}

#[test]
fn first_items() {
    let t = bjork();
    assert_eq!(one("%first{$genres}", &t), "Electronic");
    assert_eq!(one("%first{$genres,2}", &t), "Electronic; Art Pop");
    assert_eq!(one("%first{$genres,2,1}", &t), "Art Pop; Trip Hop");
    assert_eq!(one("%first{$genres,9,2}", &t), "Trip Hop");
    assert_eq!(one("%first{$genres,1,5}x", &t), "x");
    assert_eq!(
        one("%first{$genres,3,0,; , + }", &t),
        "Electronic + Art Pop + Trip Hop"
    );
    assert_eq!(one("%first{a b c,2,0, ,-}", &t), "a-b");
    // Python slicing: `[-1:0]` is empty, `[-2:3]` the last two.
    assert_eq!(one("%first{a b c,1,-1, }x", &t), "x");
    assert_eq!(one("%first{a b c,5,-2, }", &t), "b; c");
    assert_eq!(one("%first{$title}", &t), "Hunter");
}

#[test]
fn ifdef_variants() {
    let t = bjork();
    assert_eq!(one("%ifdef{year}", &t), "1997");
    assert_eq!(one("%ifdef{year,dated}", &t), "dated");
    assert_eq!(one("%ifdef{year,,undated}", &t), "1997");
    assert_eq!(one("%ifdef{missing,dated,undated}", &t), "undated");
    assert_eq!(one("x%ifdef{missing}", &t), "x");
    // Defined but empty is still defined.
    assert_eq!(one("%ifdef{empty,yes,no}", &t), "yes");
    let tpl = Template::parse("%ifdef{mood,$mood}").unwrap();
    assert!(tpl.fields().contains("mood"));
}

#[test]
fn escapes_render_literally() {
    let t = bjork();
    assert_eq!(
        one("$$$year $%$,$}$($) {$artist}", &t),
        "$1997 %,}() {Björk}"
    );
    assert_eq!(one("%if{1,a$,b$}c}", &t), "a,b}c");
    assert_eq!(one("${year}th, {x}", &t), "1997th, {x}");
}

#[test]
fn missing_fields_render_empty() {
    let t = bjork();
    assert_eq!(render("$missing-$year/x$nothing", &t), ["-1997", "x"]);
}

#[test]
fn value_slashes_and_controls_stay_in_their_component() {
    let t = Track::new(&[
        ("artist", "AC/DC"),
        ("album", "Back\0in/Black\n"),
        ("title", "a/b/c"),
    ]);
    let tpl = Template::parse("$artist/$album/$title.mp3").unwrap();
    assert_eq!(tpl.render(&t), ["AC_DC", "Back_in_Black_", "a_b_c.mp3"]);
    // Functions see the raw value; only the result is sanitised.
    assert_eq!(one("%first{$title,1,1,$/}", &t), "b");
    // `$/` is a literal slash, sanitised like a value's.
    assert_eq!(render("a$/b/c", &t), ["a_b", "c"]);
}

#[test]
fn long_title_is_cut_keeping_the_extension() {
    // 'ö' is two bytes: 200 of them make a 400-byte title.
    let title = "ö".repeat(200);
    let t = Track::new(&[("track", "07"), ("title", &title), ("format", "flac")]);
    let out = render("$track/$track - $title.$format", &t);
    // "07 - " is 5 bytes, ".flac" 5: 245 bytes remain, 122 whole 'ö' (244 bytes).
    assert_eq!(out[1], format!("07 - {}.flac", "ö".repeat(122)));
    assert_eq!(out[1].len(), 254);
    // A directory level is cut too, with no extension kept.
    let out = render("$title.x/y", &t);
    assert_eq!(out[0], "ö".repeat(127));
}

#[test]
fn empty_components_get_the_placeholder() {
    let t = Track::new(&[
        ("artist", "  "),
        ("title", "Song"),
        ("dot", "."),
        ("dots", ".."),
    ]);
    let tpl = Template::parse("$artist/$album/$title").unwrap();
    assert_eq!(tpl.render(&t), ["_", "_", "Song"]);
    let opts = RenderOptions {
        unknown: "Unknown",
        ..RenderOptions::default()
    };
    assert_eq!(tpl.render_with(&t, &opts), ["Unknown", "Unknown", "Song"]);
    assert_eq!(
        render("$dot/$dots/.$dots/$dots.", &t),
        ["_", "_", "_..", "_.."]
    );
    let opts = RenderOptions {
        replace_leading_dot: false,
        ..RenderOptions::default()
    };
    let tpl = Template::parse("$dot/$dots/.$dots").unwrap();
    assert_eq!(tpl.render_with(&t, &opts), ["_", "_", "..."]);
    // Empty literal components (`a//b`) are placeholders too; depth stays fixed.
    assert_eq!(render("a//b", &t), ["a", "_", "b"]);
}

#[test]
fn render_component_renders_one_level() {
    let tpl = Template::parse("$artist/$album ($year)/$title.$format").unwrap();
    let t = bjork();
    let opts = RenderOptions::default();
    assert_eq!(
        tpl.render_component(1, &t, &opts).as_deref(),
        Some("Homogenic (1997)")
    );
    assert_eq!(
        tpl.render_component(2, &t, &opts).as_deref(),
        Some("Hunter.flac")
    );
    assert_eq!(tpl.render_component(3, &t, &opts), None);
}

#[test]
fn malformed_templates_report_positions() {
    let err = |s: &str| Template::parse(s).unwrap_err();
    assert_eq!(
        err("$artist/%lower{$album"),
        TemplateError::Unclosed { pos: 14 }
    );
    assert_eq!(
        err("$artist/%lowr{x}"),
        TemplateError::UnknownFunction {
            pos: 8,
            name: "lowr".into()
        }
    );
    assert_eq!(
        err("%if{a}"),
        TemplateError::ArgCount {
            pos: 0,
            name: "if",
            expected: "2 or 3",
            got: 1
        }
    );
    assert_eq!(
        err("cost: $ 5"),
        TemplateError::DollarWithoutName { pos: 6 }
    );
    assert_eq!(
        err("%if{$a,$b/c}"),
        TemplateError::SeparatorInArgument { pos: 9 }
    );
    assert_eq!(
        err("$a/%left{$b,x}").to_string(),
        "template byte 12: argument 2 of `%left` must be an integer, got `x`"
    );
    assert!("$a/$b".parse::<Template>().is_ok());
}

#[test]
fn plain_maps_are_fields() {
    let mut m = std::collections::HashMap::new();
    m.insert("artist".to_string(), "Sigur Rós".to_string());
    assert_eq!(
        Template::parse("%lower{$artist}").unwrap().render(&m),
        ["sigur rós"]
    );
}
