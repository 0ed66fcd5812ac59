//! `fvfsd music` end to end with the real binary: an origin over a directory of real
//! audio files (ffmpeg-encoded, lofty-tagged) registered, a view added, a rescan that
//! indexes the files (a truncated one recorded as unreadable), `ls` showing the view's
//! tree, a bad origin spec refused with a clear error, and a removed origin leaving an
//! empty view.

mod common;

use common::Fixture;
use fvfs_testkit::audio::{make, truncated_copy, AudioFormat, FixtureTags};

fn tags(title: &str, track: u32) -> FixtureTags {
    FixtureTags {
        artist: Some("Björk".into()),
        album: Some("Homogenic".into()),
        title: Some(title.into()),
        year: Some(1997),
        track: Some(track),
        ..FixtureTags::default()
    }
}

#[test]
fn music_origins_rescans_and_views_from_the_command_line() {
    let Some(f) = Fixture::new() else {
        return;
    };
    let lib = tempfile::tempdir().unwrap();
    let album = lib.path().join("bjork/homogenic");
    std::fs::create_dir_all(&album).unwrap();
    make(&album, "01", AudioFormat::Flac, &tags("Hunter", 1)).expect("ffmpeg");
    make(&album, "02", AudioFormat::Mp3, &tags("Jóga", 2)).expect("ffmpeg");
    truncated_copy(&album.join("01.flac"), &album.join("broken.flac"), 100).unwrap();

    let spec = format!("local={}", lib.path().display());
    let out = f.ok(&["music", "origin", "add", &spec]);
    assert!(out.starts_with("origin local added: local="), "{out}");
    let out = f.ok(&[
        "music",
        "view",
        "add",
        "artists",
        "$artist/$album ($year)/$track $title.$format",
    ]);
    assert_eq!(out, "view artists: 0 files in 0 directories\n");
    let out = f.ok(&["music", "origin", "rescan"]);
    assert!(
        out.starts_with("local: 3 audio files: 3 added, 0 updated, 0 unchanged, 0 removed, 1 unreadable, 0 failed ("),
        "{out}"
    );
    assert!(
        out.contains("\nview artists: 2 files in 2 directories\n"),
        "{out}"
    );
    assert_eq!(f.ok(&["music", "ls", "artists"]), "Björk/\n");
    assert_eq!(
        f.ok(&["music", "ls", "artists", "Björk/Homogenic (1997)"]),
        "01 Hunter.flac\tlocal:bjork/homogenic/01.flac\n02 Jóga.mp3\tlocal:bjork/homogenic/02.mp3\n"
    );
    assert_eq!(
        f.ok(&["music", "status"]),
        "1 origins, 3 files indexed, 1 views\n"
    );
    // A rescan with nothing changed reads nothing.
    let out = f.ok(&["music", "origin", "rescan", "local"]);
    assert!(out.starts_with("local: 3 audio files: 0 added, 0 updated, 3 unchanged, 0 removed, 0 unreadable, 0 failed (0 bytes read)\n"), "{out}");

    let bad = f.run(&["music", "origin", "add", "Bad Id=/x", "--meta", &f.meta_url]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("Bad Id"), "{err}");
    let missing = f.run(&["music", "origin", "rescan", "nas", "--meta", &f.meta_url]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no music origin \"nas\""));

    assert_eq!(
        f.ok(&["music", "origin", "remove", "local"]),
        "origin local removed\n"
    );
    assert_eq!(f.ok(&["music", "ls", "artists"]), "");
}

/// `fvfsd music import-beets`: refused (with the way out) while no directory origin
/// exists; then beets' tags for the files under it, and the views rebuilt with them.
#[test]
fn a_beets_library_is_imported_from_the_command_line() {
    let Some(f) = Fixture::new() else {
        return;
    };
    let lib = tempfile::tempdir().unwrap();
    let file = make(lib.path(), "01", AudioFormat::Flac, &tags("untitled", 1))
        .expect("ffmpeg")
        .path;
    let db = lib.path().join("library.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "CREATE TABLE albums (id INTEGER PRIMARY KEY, album TEXT);
         CREATE TABLE items (id INTEGER PRIMARY KEY, path BLOB, album_id INTEGER, title TEXT, \
         artist TEXT, album TEXT, year INTEGER, track INTEGER);",
    )
    .unwrap();
    c.execute(
        "INSERT INTO items VALUES (1, ?1, NULL, 'Hunter', 'Björk', 'Homogenic', 1997, 1)",
        [file.as_os_str().as_encoded_bytes()],
    )
    .unwrap();
    drop(c);
    let db = db.to_str().unwrap();

    let refused = f.run(&["music", "import-beets", db, "--meta", &f.meta_url]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("no directory origin"), "{err}");

    f.ok(&[
        "music",
        "origin",
        "add",
        &format!("local={}", lib.path().display()),
    ]);
    f.ok(&[
        "music",
        "view",
        "add",
        "artists",
        "$artist/$album/$track $title.$format",
    ]);
    assert_eq!(
        f.ok(&["music", "import-beets", db]),
        "1 items: 1 imported, 0 outside every directory origin, 0 with their file missing\n\
         view artists: 1 files in 2 directories\n"
    );
    assert_eq!(
        f.ok(&["music", "ls", "artists", "Björk/Homogenic"]),
        "01 Hunter.flac\tlocal:01.flac\n"
    );
}
