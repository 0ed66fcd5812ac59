//! Importing a beets library: items under a directory origin become index rows with
//! beets' tags (album-level fields from `albums`), items outside every origin or with
//! their file gone are counted and skipped, and a scan afterwards finds the imported
//! files unchanged, so beets' tags stay.

use fvfs_meta::MetaStore;
use fvfs_music::beets::{import_beets, BeetsStats};
use fvfs_music::origin::{Origin, OriginSpec};
use fvfs_music::scan::scan_origin;
use fvfs_testkit::audio::{make, AudioFormat, FixtureTags};
use std::sync::Arc;

/// A beets `library.db` with the columns the import reads (beets has many more).
fn library(path: &std::path::Path, items: &[(&std::path::Path, &str, i64)]) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(
        "CREATE TABLE albums (id INTEGER PRIMARY KEY, albumartist TEXT, album TEXT, \
         albumtype TEXT, label TEXT, catalognum TEXT, year INTEGER);
         CREATE TABLE items (id INTEGER PRIMARY KEY, path BLOB, album_id INTEGER, \
         title TEXT, artist TEXT, album TEXT, albumartist TEXT, genre TEXT, year INTEGER, \
         track INTEGER, disc INTEGER, tracktotal INTEGER, disctotal INTEGER, comp INTEGER, \
         label TEXT, catalognum TEXT, mb_albumid TEXT, albumtype TEXT, length REAL, \
         bitrate INTEGER, samplerate INTEGER, format TEXT, mtime REAL);
         INSERT INTO albums VALUES (1, 'Boards of Canada', 'Geogaddi', 'album', 'Warp', \
         'WARPCD101', 2002);",
    )
    .unwrap();
    for (i, (p, title, track)) in items.iter().enumerate() {
        db.execute(
            "INSERT INTO items VALUES (?1, ?2, 1, ?3, 'Boards of Canada', 'Geogaddi', \
             'Boards of Canada', 'Electronic', 2002, ?4, 1, 23, 1, 0, '', '', '', '', \
             3.0, 320000, 44100, 'FLAC', 0)",
            rusqlite::params![i as i64 + 1, p.as_os_str().as_encoded_bytes(), title, track],
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_beets_library_is_imported_and_a_scan_keeps_its_tags() {
    let lib = tempfile::tempdir().unwrap();
    let wrong = FixtureTags {
        title: Some("track01".into()),
        ..FixtureTags::default()
    };
    let a = make(lib.path(), "01", AudioFormat::Flac, &wrong)
        .expect("ffmpeg")
        .path;
    let b = make(lib.path(), "02", AudioFormat::Mp3, &wrong)
        .expect("ffmpeg")
        .path;
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = make(elsewhere.path(), "x", AudioFormat::Flac, &wrong)
        .expect("ffmpeg")
        .path;
    let gone = lib.path().join("03.flac");
    let db = lib.path().join("library.db");
    library(
        &db,
        &[
            (&a, "Ready Lets Go", 1),
            (&b, "Music Is Math", 2),
            (&outside, "Beware the Friendly Stranger", 3),
            (&gone, "Gyroscope", 4),
        ],
    );

    let d = tempfile::tempdir().unwrap();
    let meta: Arc<dyn MetaStore> = fvfs_meta::open(
        &format!("sqlite://{}", d.path().join("m.db").display()),
        true,
    )
    .unwrap();
    let roots = vec![("local".to_string(), lib.path().to_path_buf())];
    let stats = import_beets(meta.as_ref(), &db, &roots).unwrap();
    assert_eq!(
        stats,
        BeetsStats {
            items: 4,
            imported: 2,
            outside: 1,
            missing: 1
        }
    );
    let rows = meta.music_tracks(None, 0, 10).unwrap();
    let got: Vec<_> = rows
        .iter()
        .map(|t| {
            (
                t.path.as_str(),
                t.format.as_str(),
                t.title.as_deref(),
                t.track,
                t.duration_ms,
                t.bitrate_kbps,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "01.flac",
                "flac",
                Some("Ready Lets Go"),
                Some(1),
                Some(3000),
                Some(320)
            ),
            (
                "02.mp3",
                "mp3",
                Some("Music Is Math"),
                Some(2),
                Some(3000),
                Some(320)
            ),
        ]
    );
    let extra: Vec<(&str, &str)> = rows[0]
        .extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        extra,
        [
            ("albumtype", "album"),
            ("catalognum", "WARPCD101"),
            ("comp", "0"),
            ("disctotal", "1"),
            ("label", "Warp"),
            ("tracktotal", "23")
        ]
    );

    // The files did not change since: a scan reads nothing and beets' tags stay.
    let origin =
        Origin::open(&OriginSpec::parse(&format!("local={}", lib.path().display())).unwrap())
            .unwrap();
    let rt = tokio::runtime::Handle::current();
    let s = scan_origin(&meta, &origin, &rt).await.unwrap();
    assert_eq!((s.seen, s.unchanged, s.added, s.updated), (2, 2, 0, 0));
    assert_eq!(
        meta.music_track_get(rows[0].id)
            .unwrap()
            .unwrap()
            .title
            .as_deref(),
        Some("Ready Lets Go")
    );
}
