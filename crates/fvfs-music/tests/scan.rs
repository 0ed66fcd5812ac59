//! Scanning origins into the index with real audio files (ffmpeg-encoded, lofty-tagged):
//! every format's tags land in the index, a truncated file is indexed as unreadable and
//! the rest goes on, a rescan reads nothing unchanged, a tag edit and a removal are
//! picked up, and a copy of a file on a second origin (the S3 test server) shares its
//! quick id and is shown once by a view.

use fvfs_meta::{MetaStore, MusicNode, MUSIC_ROOT};
use fvfs_music::origin::{Origin, OriginSpec};
use fvfs_music::scan::scan_origin;
use fvfs_music::template::RenderOptions;
use fvfs_music::view::build_view;
use fvfs_testkit::audio::{make, truncated_copy, write_tags, AudioFormat, FixtureTags};
use fvfs_testkit::S3Server;
use std::sync::Arc;

mod origin_env;

/// (path, format, title, track number, "error" when unreadable) of a row.
type Indexed = (String, String, Option<String>, Option<u32>, Option<String>);

fn tags(artist: &str, album: &str, title: &str, track: u32) -> FixtureTags {
    FixtureTags {
        artist: Some(artist.into()),
        album: Some(album.into()),
        title: Some(title.into()),
        year: Some(2001),
        track: Some(track),
        ..FixtureTags::default()
    }
}

/// A fresh metadata store (SQLite in a temporary directory).
fn store() -> (tempfile::TempDir, Arc<dyn MetaStore>) {
    let d = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", d.path().join("m.db").display());
    let meta = fvfs_meta::open(&url, true).unwrap();
    (d, meta)
}

fn fs_origin(id: &str, dir: &std::path::Path) -> Origin {
    Origin::open(&OriginSpec::parse(&format!("{id}={}", dir.display())).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_indexes_every_format_skips_a_truncated_file_and_rescans_incrementally() {
    let lib = tempfile::tempdir().unwrap();
    let album = lib.path().join("Sigur Rós/Ágætis byrjun");
    std::fs::create_dir_all(&album).unwrap();
    let formats = [
        AudioFormat::Flac,
        AudioFormat::Mp3,
        AudioFormat::Vorbis,
        AudioFormat::Opus,
        AudioFormat::M4a,
    ];
    for (i, f) in formats.iter().enumerate() {
        let n = i as u32 + 1;
        make(
            &album,
            &format!("{n:02} Spor {n}"),
            *f,
            &tags("Sigur Rós", "Ágætis byrjun", &format!("Spor {n}"), n),
        )
        .expect("ffmpeg (apt-get install ffmpeg)");
    }
    truncated_copy(&album.join("01 Spor 1.flac"), &album.join("cut.flac"), 200).unwrap();
    std::fs::write(album.join("notes.txt"), "not audio").unwrap();

    let (_d, meta) = store();
    let rt = tokio::runtime::Handle::current();
    let local = fs_origin("local", lib.path());

    let s = scan_origin(&meta, &local, &rt).await.unwrap();
    assert_eq!(
        (s.seen, s.added, s.unreadable, s.failed, s.removed),
        (6, 6, 1, 0, 0)
    );
    let rows = meta.music_tracks(None, 0, 100).unwrap();
    let mut got: Vec<Indexed> = rows
        .iter()
        .map(|t| {
            (
                t.path.clone(),
                t.format.clone(),
                t.title.clone(),
                t.track,
                t.error.clone().map(|_| "error".into()),
            )
        })
        .collect();
    got.sort();
    let dir = "Sigur Rós/Ágætis byrjun";
    assert_eq!(
        got,
        [
            (
                format!("{dir}/01 Spor 1.flac"),
                "flac".into(),
                Some("Spor 1".into()),
                Some(1),
                None
            ),
            (
                format!("{dir}/02 Spor 2.mp3"),
                "mp3".into(),
                Some("Spor 2".into()),
                Some(2),
                None
            ),
            (
                format!("{dir}/03 Spor 3.ogg"),
                "ogg".into(),
                Some("Spor 3".into()),
                Some(3),
                None
            ),
            (
                format!("{dir}/04 Spor 4.opus"),
                "opus".into(),
                Some("Spor 4".into()),
                Some(4),
                None
            ),
            (
                format!("{dir}/05 Spor 5.m4a"),
                "m4a".into(),
                Some("Spor 5".into()),
                Some(5),
                None
            ),
            (
                format!("{dir}/cut.flac"),
                "flac".into(),
                None,
                None,
                Some("error".into())
            ),
        ]
    );
    // (Tag reading fetches ranges, not whole files: tests/tags.rs measures it on
    // minute-long files; these are smaller than one block.)

    // Nothing changed: nothing read.
    let s = scan_origin(&meta, &local, &rt).await.unwrap();
    assert_eq!(
        (s.seen, s.unchanged, s.added, s.updated, s.fetched_bytes),
        (6, 6, 0, 0, 0)
    );

    // A tag edit and a removal.
    let flac = album.join("01 Spor 1.flac");
    let before = meta
        .music_tracks(None, 0, 100)
        .unwrap()
        .into_iter()
        .find(|t| t.path.ends_with("01 Spor 1.flac"))
        .unwrap();
    write_tags(&flac, &tags("Sigur Rós", "Ágætis byrjun", "Intro", 1)).unwrap();
    std::fs::remove_file(album.join("cut.flac")).unwrap();
    let s = scan_origin(&meta, &local, &rt).await.unwrap();
    assert_eq!(
        (s.seen, s.unchanged, s.updated, s.removed, s.unreadable),
        (5, 4, 1, 1, 0)
    );
    let after = meta.music_track_get(before.id).unwrap().unwrap();
    assert_eq!(after.title.as_deref(), Some("Intro"));
    assert_ne!(after.quick_id, before.quick_id, "the tag block changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_on_a_second_origin_shares_its_quick_id_and_shows_once() {
    let lib = tempfile::tempdir().unwrap();
    make(
        lib.path(),
        "song",
        AudioFormat::Flac,
        &tags("Múm", "Finally We Are No One", "Green Grass of Tunnel", 2),
    )
    .expect("ffmpeg");
    let s3dir = tempfile::tempdir().unwrap();
    let srv = S3Server::start(s3dir.path(), "music").await.unwrap();
    let copy = s3dir.path().join("music/library/mum/song.flac");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(lib.path().join("song.flac"), &copy).unwrap();
    let s3 = Origin::open(&origin_env::s3_spec("s3", &srv, "library", 2)).unwrap();
    let (_d, meta) = store();
    let rt = tokio::runtime::Handle::current();
    for (id, prio) in [("local", 1), ("s3", 2)] {
        meta.music_origin_put(&fvfs_meta::MusicOrigin {
            id: id.into(),
            spec: String::new(),
            priority: prio,
            added: 0,
        })
        .unwrap();
    }
    assert_eq!(
        scan_origin(&meta, &fs_origin("local", lib.path()), &rt)
            .await
            .unwrap()
            .added,
        1
    );
    assert_eq!(scan_origin(&meta, &s3, &rt).await.unwrap().added, 1);
    let rows = meta.music_tracks(None, 0, 10).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].quick_id, rows[1].quick_id);
    assert_eq!(meta.music_copies(&rows[0].quick_id).unwrap().len(), 2);

    let v = meta
        .music_view_put("by-artist", "$artist/$album/$track $title.$format")
        .unwrap();
    let view = meta.music_views().unwrap().pop().unwrap();
    assert_eq!(view.id, v);
    build_view(meta.as_ref(), &view, &RenderOptions::default()).unwrap();
    let artist = meta.music_lookup(v, MUSIC_ROOT, "Múm").unwrap().unwrap();
    let MusicNode::Dir(a) = artist.node else {
        panic!("{artist:?}")
    };
    let album = meta
        .music_lookup(v, a, "Finally We Are No One")
        .unwrap()
        .unwrap();
    let MusicNode::Dir(al) = album.node else {
        panic!("{album:?}")
    };
    let files = meta.music_readdir(v, al, None, 10).unwrap();
    let local_row = rows.iter().find(|t| t.origin == "local").unwrap();
    assert_eq!(files.len(), 1, "one entry for both copies");
    assert_eq!(
        (files[0].name.as_str(), files[0].node),
        (
            "02 Green Grass of Tunnel.flac",
            MusicNode::Track(local_row.id)
        )
    );
}
