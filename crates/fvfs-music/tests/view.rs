//! Building a view's tree from the index (a real SQLite metadata store): the template's
//! layout, `%aunique`, copies on several origins shown once, deterministic names for
//! collisions, unreadable files left out, and directory ids kept across rebuilds.

use fvfs_meta::{MetaStore, MusicNode, MusicOrigin, MusicTrack, MusicView, MUSIC_ROOT};
use fvfs_music::template::RenderOptions;
use fvfs_music::view::build_view;
use std::sync::Arc;

fn store() -> (tempfile::TempDir, Arc<dyn MetaStore>) {
    let d = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", d.path().join("meta.db").display());
    let s = fvfs_meta::open(&url, true).unwrap();
    (d, s)
}

/// A track at `origin:path` with quick id `[quick; 32]` and (artist, album, year, track
/// number, title).
fn track(origin: &str, path: &str, quick: u8, tags: (&str, &str, u32, u32, &str)) -> MusicTrack {
    let (artist, album, year, n, title) = tags;
    MusicTrack {
        origin: origin.into(),
        path: path.into(),
        quick_id: [quick; 32],
        format: "flac".into(),
        artist: Some(artist.into()),
        album: Some(album.into()),
        year: Some(year),
        track: Some(n),
        title: Some(title.into()),
        ..MusicTrack::default()
    }
}

/// The tree as sorted "path -> node" lines.
fn tree(s: &dyn MetaStore, view: u64) -> Vec<String> {
    fn walk(s: &dyn MetaStore, view: u64, dir: u64, prefix: &str, out: &mut Vec<String>) {
        for e in s.music_readdir(view, dir, None, 1000).unwrap() {
            let path = format!("{prefix}/{}", e.name);
            match e.node {
                MusicNode::Dir(id) => walk(s, view, id, &path, out),
                MusicNode::Track(t) => out.push(format!("{path} -> {t}")),
            }
        }
    }
    let mut out = Vec::new();
    walk(s, view, MUSIC_ROOT, "", &mut out);
    out
}

fn view(s: &dyn MetaStore, name: &str, template: &str) -> MusicView {
    let id = s.music_view_put(name, template).unwrap();
    s.music_views()
        .unwrap()
        .into_iter()
        .find(|v| v.id == id)
        .unwrap()
}

#[test]
fn the_tree_follows_the_template_with_aunique_copies_once_and_numbered_collisions() {
    let (_d, s) = store();
    for (id, priority) in [("local", 1), ("s3", 2)] {
        s.music_origin_put(&MusicOrigin {
            id: id.into(),
            spec: String::new(),
            priority,
            added: 0,
        })
        .unwrap();
    }
    // Two releases of one album title by one artist, in two directories.
    let a1 = s
        .music_track_put(&track(
            "local",
            "gh1999/01.flac",
            1,
            ("Björk", "Greatest Hits", 1999, 1, "Hyperballad"),
        ))
        .unwrap();
    let a2 = s
        .music_track_put(&track(
            "local",
            "gh2005/01.flac",
            2,
            ("Björk", "Greatest Hits", 2005, 1, "Hyperballad"),
        ))
        .unwrap();
    // A copy of the first file on S3 (same quick id): shown once, from the local origin.
    s.music_track_put(&track(
        "s3",
        "music/gh1999/01.flac",
        1,
        ("Björk", "Greatest Hits", 1999, 1, "Hyperballad"),
    ))
    .unwrap();
    // Two different files that render the same name.
    let c1 = s
        .music_track_put(&track(
            "local",
            "x/a.flac",
            3,
            ("Sigur Rós", "( )", 2002, 1, "Untitled"),
        ))
        .unwrap();
    let c2 = s
        .music_track_put(&track(
            "local",
            "x/b.flac",
            4,
            ("Sigur Rós", "( )", 2002, 1, "Untitled"),
        ))
        .unwrap();
    // Missing tags (the title falls back to the file's name), and an unreadable file.
    let mut bare = track("local", "misc/noise.flac", 5, ("", "", 0, 0, ""));
    (bare.artist, bare.album, bare.year, bare.track, bare.title) = (None, None, None, None, None);
    let b = s.music_track_put(&bare).unwrap();
    let mut broken = track("local", "misc/cut.flac", 6, ("X", "Y", 2000, 1, "Z"));
    broken.error = Some("truncated".into());
    s.music_track_put(&broken).unwrap();

    let v = view(
        s.as_ref(),
        "artists",
        "$albumartist/$album%aunique{}/$track - $title.$format",
    );
    let opts = RenderOptions {
        unknown: "Unknown",
        ..RenderOptions::default()
    };
    let stats = build_view(s.as_ref(), &v, &opts).unwrap();
    assert_eq!(
        tree(s.as_ref(), v.id),
        [
            format!("/Björk/Greatest Hits [1999]/01 - Hyperballad.flac -> {a1}"),
            format!("/Björk/Greatest Hits [2005]/01 - Hyperballad.flac -> {a2}"),
            format!("/Sigur Rós/( )/01 - Untitled (2).flac -> {c2}"),
            format!("/Sigur Rós/( )/01 - Untitled.flac -> {c1}"),
            format!("/Unknown/Unknown/- noise.flac -> {b}"),
        ]
    );
    assert_eq!(
        (stats.tracks, stats.dirs, stats.renamed, stats.skipped),
        (5, 7, 1, 2)
    );
}

#[test]
fn a_rebuild_keeps_directory_ids_and_serves_the_old_tree_until_its_swap() {
    let (_d, s) = store();
    s.music_track_put(&track(
        "local",
        "a/1.flac",
        1,
        ("Air", "Moon Safari", 1998, 1, "La femme d'argent"),
    ))
    .unwrap();
    let v = view(s.as_ref(), "by-artist", "$artist/$album/$title");
    build_view(s.as_ref(), &v, &RenderOptions::default()).unwrap();
    let air = s.music_lookup(v.id, MUSIC_ROOT, "Air").unwrap().unwrap();
    let moon = match air.node {
        MusicNode::Dir(id) => s.music_lookup(v.id, id, "Moon Safari").unwrap().unwrap(),
        other => panic!("{other:?}"),
    };
    let t2 = s
        .music_track_put(&track(
            "local",
            "a/2.flac",
            2,
            ("Air", "Moon Safari", 1998, 2, "Sexy Boy"),
        ))
        .unwrap();
    s.music_track_put(&track(
        "local",
        "b/1.flac",
        3,
        ("Daft Punk", "Homework", 1997, 1, "Daftendirekt"),
    ))
    .unwrap();
    // The new track is not served before the rebuild.
    let MusicNode::Dir(moon_id) = moon.node else {
        panic!()
    };
    assert_eq!(s.music_lookup(v.id, moon_id, "Sexy Boy").unwrap(), None);
    let v = s.music_views().unwrap().pop().unwrap();
    let stats = build_view(s.as_ref(), &v, &RenderOptions::default()).unwrap();
    assert_eq!(stats.generation, 2);
    assert_eq!(
        s.music_lookup(v.id, MUSIC_ROOT, "Air").unwrap(),
        Some(air),
        "same directory id"
    );
    assert_eq!(s.music_lookup(v.id, moon_id, "Moon Safari").unwrap(), None);
    assert_eq!(
        s.music_lookup(v.id, moon_id, "Sexy Boy")
            .unwrap()
            .map(|e| e.node),
        Some(MusicNode::Track(t2))
    );
    assert_eq!(tree(s.as_ref(), v.id).len(), 3);
}
