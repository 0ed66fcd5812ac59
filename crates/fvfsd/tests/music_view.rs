//! The music view end to end: `fvfsd music mount` over real audio on three origins (a
//! local directory, an S3 server, sshd over SFTP), judged with the tools a user has
//! (`cp`, `cmp`, mmap, lofty, ffprobe, ffmpeg) and the control socket.

mod common;

use common::music::{audio_md5, ffprobe_tags, flac_metadata_len, names, walk, Library};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_tree_follows_the_template_with_aunique_and_skips_the_truncated_file() {
    let Some(mut lib) = Library::new() else {
        return;
    };
    lib.mount(&[]);
    let mut want: Vec<String> = vec![
        ".collections/".into(),
        ".search/".into(),
        "Björk/".into(),
        "Björk/Homogenic (1997)/".into(),
        "Björk/Homogenic (1997)/01 Hunter.flac".into(),
        "Björk/Homogenic (1997)/02 Jóga.mp3".into(),
        "Björk/Homogenic (1997)/cover.jpg".into(),
        "Queen/".into(),
        "Queen/Greatest Hits [1981] (1981)/".into(),
        "Queen/Greatest Hits [1981] (1981)/01 Bohemian Rhapsody.opus".into(),
        "Queen/Greatest Hits [1991] (1991)/".into(),
        "Queen/Greatest Hits [1991] (1991)/01 A Kind of Magic.m4a".into(),
        "Sigur Rós/".into(),
        "Sigur Rós/Ágætis byrjun (1999)/".into(),
        "Sigur Rós/Ágætis byrjun (1999)/01 Intro.ogg".into(),
        "Sigur Rós/Ágætis byrjun (1999)/02 Svefn-g-englar.flac".into(),
        "_/".into(),
        "_/()/".into(),
        "_/()/untagged.ogg".into(),
    ];
    want.sort();
    assert_eq!(walk(&lib.f.mnt), want);
    // Sizes are exact before any read; nothing is writable.
    for (rel, orig) in lib.files.clone() {
        let rel = rel.replace("_/_ (_)/ untagged.ogg", "_/()/untagged.ogg");
        let m = std::fs::metadata(lib.path(&rel)).unwrap();
        assert_eq!(m.len(), std::fs::metadata(&orig).unwrap().len(), "{rel}");
        assert_eq!(m.mode() & 0o7777, 0o444, "{rel}");
    }
    let track = lib.path("Björk/Homogenic (1997)/01 Hunter.flac");
    let erofs = |r: std::io::Result<()>| r.unwrap_err().raw_os_error();
    let w = std::fs::OpenOptions::new()
        .write(true)
        .open(&track)
        .map(|_| ());
    assert_eq!(erofs(w), Some(libc::EROFS));
    assert_eq!(
        erofs(std::fs::write(lib.path("Björk/new.flac"), b"x")),
        Some(libc::EROFS)
    );
    assert_eq!(
        erofs(std::fs::create_dir(lib.path("Björk/x"))),
        Some(libc::EROFS)
    );
    assert_eq!(erofs(std::fs::remove_file(&track)), Some(libc::EROFS));
    assert_eq!(
        erofs(std::fs::rename(&track, lib.path("Björk/y.flac"))),
        Some(libc::EROFS)
    );
    // The cover is the picture embedded in the FLAC.
    let cover = std::fs::read(lib.path("Björk/Homogenic (1997)/cover.jpg")).unwrap();
    assert_eq!(&cover[..3], &[0xff, 0xd8, 0xff], "a JPEG");
    assert_eq!(
        cover,
        std::fs::read(lib.local.path().join("cover.jpg")).unwrap()
    );
    lib.unmount();
}

#[test]
fn reads_are_byte_identical_through_cp_cmp_and_mmap() {
    let Some(mut lib) = Library::new() else {
        return;
    };
    lib.mount(&[]);
    let out = tempfile::tempdir().unwrap();
    for (i, (rel, orig)) in lib.files.clone().into_iter().enumerate() {
        let rel = rel.replace("_/_ (_)/ untagged.ogg", "_/()/untagged.ogg");
        let src = lib.path(&rel);
        let copy = out.path().join(format!("{i}"));
        let st = Command::new("cp").arg(&src).arg(&copy).status().unwrap();
        assert!(st.success(), "cp {rel}");
        assert_eq!(
            std::fs::read(&copy).unwrap(),
            std::fs::read(&orig).unwrap(),
            "cp {rel}"
        );
        let st = Command::new("cmp").arg(&src).arg(&orig).status().unwrap();
        assert!(st.success(), "cmp {rel}");
        assert_eq!(mmap_read(&src), std::fs::read(&orig).unwrap(), "mmap {rel}");
    }
    lib.unmount();
}

/// The whole file through mmap(2).
fn mmap_read(path: &std::path::Path) -> Vec<u8> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    // SAFETY: a private read-only mapping of a file we hold open, unmapped below.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap {}", path.display());
        let out = std::slice::from_raw_parts(p as *const u8, len).to_vec();
        libc::munmap(p, len);
        out
    }
}

/// Reads `path` in 64 KiB steps, calling `at_half` once halfway.
fn read_in_steps(path: &std::path::Path, mut at_half: impl FnMut()) -> Vec<u8> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let mut out = Vec::with_capacity(len);
    let mut buf = vec![0u8; 64 << 10];
    let mut called = false;
    loop {
        let Ok(n) = f.read(&mut buf) else {
            return out;
        };
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if !called && out.len() >= len / 2 {
            called = true;
            at_half();
        }
    }
    out
}

#[test]
fn playback_fails_over_when_an_origin_stops_mid_track() {
    let Some(mut lib) = Library::new() else {
        return;
    };
    // A copy of Hunter on the S3 origin, preferred (priority 0) over the local one.
    let hunter = lib.local.path().join("bjork/01.flac");
    let copy = lib.s3dir.path().join("music/fast/bjork/01.flac");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&hunter, &copy).unwrap();
    lib.f.ok(&[
        "music",
        "origin",
        "add",
        &format!("fast={}&priority=0", lib.s3_location("fast")),
    ]);
    lib.f.ok(&["music", "origin", "rescan", "fast"]);
    lib.f.ok(&[
        "music",
        "origin",
        "add",
        &format!("local=file://{}?priority=5", lib.local.path().display()),
    ]);
    lib.mount(&["--no-prefetch"]);
    let rel = "Björk/Homogenic (1997)/01 Hunter.flac";
    assert!(lib.path(rel).exists(), "{:?}", walk(&lib.f.mnt));
    let s3 = &lib.s3;
    let rt = &lib.f.rt;
    let got = read_in_steps(&lib.path(rel), || rt.block_on(s3.stop()));
    if got != std::fs::read(&hunter).unwrap() {
        panic!("{}", std::fs::read_to_string(&lib.log).unwrap_or_default());
    }
    let stats = lib.rpc("origin.list", "{}");
    let health: Vec<(String, u64)> = stats
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().to_string(),
                o["health"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(health.contains(&("fast".into(), 0)), "{health:?}");
    assert!(health.contains(&("local".into(), 1)), "{health:?}");
    lib.unmount();
}

#[test]
fn cached_tracks_play_with_every_origin_offline_and_uncached_ones_fail_fast() {
    let Some(mut lib) = Library::new() else {
        return;
    };
    lib.mount(&[]);
    let played = "Björk/Homogenic (1997)/01 Hunter.flac";
    let sigur = "Sigur Rós/Ágætis byrjun (1999)/02 Svefn-g-englar.flac";
    let want = lib.original(played);
    let want_sigur = lib.original(sigur);
    assert_eq!(std::fs::read(lib.path(played)).unwrap(), want);
    assert_eq!(std::fs::read(lib.path(sigur)).unwrap(), want_sigur);
    lib.all_origins_down();
    // The page cache must not answer for the cache: drop it.
    std::fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    assert_eq!(std::fs::read(lib.path(played)).unwrap(), want);
    assert_eq!(std::fs::read(lib.path(sigur)).unwrap(), want_sigur);
    let uncached = lib.path("Queen/Greatest Hits [1991] (1991)/01 A Kind of Magic.m4a");
    for attempt in 0..2 {
        let t = Instant::now();
        let err = std::fs::read(&uncached).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "attempt {attempt}");
        // No hang: the first attempt pays the retries (100 ms, 500 ms, 2 s), the next
        // one knows the origin is down.
        let bound = if attempt == 0 { 10 } else { 3 };
        assert!(
            t.elapsed() < Duration::from_secs(bound),
            "attempt {attempt} took {:?}",
            t.elapsed()
        );
    }
    lib.unmount();
}

#[test]
fn search_finds_by_prefix_accent_and_typo() {
    let Some(mut lib) = Library::new() else {
        return;
    };
    lib.mount(&[]);
    let ls = |q: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(lib.path(&format!(".search/{q}")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ls("bjork"), vec!["Björk - Hunter.flac", "Björk - Jóga.mp3"]);
    assert_eq!(ls("hunt"), vec!["Björk - Hunter.flac"]);
    assert_eq!(ls("rhapsodie"), vec!["Queen - Bohemian Rhapsody.opus"]);
    assert_eq!(ls("queen magic"), vec!["Queen - A Kind of Magic.m4a"]);
    assert_eq!(ls("zzzzqqqq"), Vec::<String>::new());
    // A search result reads as the track.
    assert_eq!(
        std::fs::read(lib.path(".search/hunt/Björk - Hunter.flac")).unwrap(),
        lib.original("Björk/Homogenic (1997)/01 Hunter.flac")
    );
    lib.unmount();
}

#[test]
fn a_smart_collection_lists_its_query() {
    let Some(mut lib) = Library::new() else {
        return;
    };
    lib.f
        .ok(&["music", "collection", "add", "nineties", "year:1991"]);
    lib.f
        .ok(&["music", "collection", "add", "icelandic", "artist:björk"]);
    assert_eq!(
        lib.f.ok(&["music", "collection", "list"]),
        "icelandic\tartist:björk\nnineties\tyear:1991\n"
    );
    lib.mount(&[]);
    let mut names: Vec<String> = std::fs::read_dir(lib.path(".collections"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["icelandic", "nineties"]);
    let mut got: Vec<String> = std::fs::read_dir(lib.path(".collections/icelandic"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    assert_eq!(got, vec!["Björk - Hunter.flac", "Björk - Jóga.mp3"]);
    let got: Vec<String> = std::fs::read_dir(lib.path(".collections/nineties"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(got, vec!["Queen - A Kind of Magic.m4a"]);
    lib.unmount();
}

#[test]
fn the_tag_overlay_serves_the_index_tags_over_unchanged_audio() {
    let Some(mut lib) = Library::new() else {
        return;
    };
    // beets knows better: corrected tags for the FLAC and the MP3.
    let db = lib.f.dir.path().join("library.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "CREATE TABLE albums (id INTEGER PRIMARY KEY, album TEXT);
         CREATE TABLE items (id INTEGER PRIMARY KEY, path BLOB, album_id INTEGER, title TEXT, \
         artist TEXT, albumartist TEXT, album TEXT, genre TEXT, year INTEGER, track INTEGER);",
    )
    .unwrap();
    for (i, (file, title)) in [
        ("bjork/01.flac", "Hunter (Remastered)"),
        ("bjork/02.mp3", "Jóga (Remastered)"),
    ]
    .iter()
    .enumerate()
    {
        let p = lib.local.path().join(file);
        c.execute(
            "INSERT INTO items VALUES (?1, ?2, NULL, ?3, 'Björk Guðmundsdóttir', \
             'Björk Guðmundsdóttir', 'Homogenic', 'Art Pop', 1997, ?4)",
            rusqlite::params![
                i as i64 + 1,
                p.as_os_str().as_encoded_bytes(),
                title,
                i as i64 + 1
            ],
        )
        .unwrap();
    }
    drop(c);
    lib.f.ok(&["music", "import-beets", db.to_str().unwrap()]);
    lib.mount(&["--overlay"]);
    let dir = "Björk Guðmundsdóttir/Homogenic (1997)";
    for (name, orig) in [
        ("01 Hunter (Remastered).flac", "bjork/01.flac"),
        ("02 Jóga (Remastered).mp3", "bjork/02.mp3"),
    ] {
        let served = lib.path(&format!("{dir}/{name}"));
        let orig = lib.local.path().join(orig);
        let bytes = std::fs::read(&served).unwrap();
        assert_eq!(
            bytes.len() as u64,
            std::fs::metadata(&served).unwrap().len(),
            "{name}: size is exact"
        );
        let copy = lib.f.dir.path().join(name);
        std::fs::write(&copy, &bytes).unwrap();
        // lofty reads the library's tags.
        use lofty::prelude::*;
        let tagged = lofty::read_from_path(&copy).unwrap();
        let tag = tagged.primary_tag().expect("a tag");
        let title = name[3..name.rfind('.').unwrap()].to_string();
        assert_eq!(tag.title().as_deref(), Some(title.as_str()), "{name}");
        assert_eq!(
            tag.artist().as_deref(),
            Some("Björk Guðmundsdóttir"),
            "{name}"
        );
        assert_eq!(tag.genre().as_deref(), Some("Art Pop"), "{name}");
        // ffprobe too.
        let t = ffprobe_tags(&copy);
        assert_eq!(
            t.get("title").map(String::as_str),
            Some(title.as_str()),
            "{name}: {t:?}"
        );
        assert_eq!(
            t.get("album").map(String::as_str),
            Some("Homogenic"),
            "{name}: {t:?}"
        );
        // And the audio frames are the original's.
        assert_eq!(audio_md5(&copy), audio_md5(&orig), "{name}");
    }
    lib.unmount();
}

#[test]
fn an_album_without_embedded_art_shows_its_folder_image() {
    use fvfs_testkit::audio::{make_with, AudioFormat, Signal};
    let Some(mut lib) = Library::new() else {
        return;
    };
    let dir = lib.local.path().join("olafur");
    std::fs::create_dir_all(&dir).unwrap();
    let t = common::music::tags("Ólafur Arnalds", "Found Songs", 2009, 1, "Ljósið");
    make_with(&dir, "01", AudioFormat::Flac, Signal::Noise, 2_000, &t).unwrap();
    let image = fvfs_testkit::audio::cover_jpeg(&dir).unwrap();
    std::fs::rename(dir.join("cover.jpg"), dir.join("folder.jpg")).unwrap();
    lib.f.ok(&["music", "origin", "rescan", "local"]);
    lib.mount(&[]);
    let album = lib.path("Ólafur Arnalds/Found Songs (2009)");
    assert_eq!(names(&album), vec!["01 Ljósið.flac", "cover.jpg"]);
    let cover = album.join("cover.jpg");
    assert_eq!(std::fs::metadata(&cover).unwrap().len(), image.len() as u64);
    assert_eq!(std::fs::read(&cover).unwrap(), image);
    lib.unmount();
}

#[test]
fn a_tag_edit_on_the_origin_re_transfers_under_a_tenth_of_the_file() {
    use fvfs_testkit::audio::{make_with, write_tags, AudioFormat, Signal};
    let Some(mut lib) = Library::new() else {
        return;
    };
    let dir = lib.local.path().join("long");
    std::fs::create_dir_all(&dir).unwrap();
    let t = common::music::tags("Ólafur Arnalds", "Re:member", 2018, 1, "Re:member");
    let file = make_with(&dir, "01", AudioFormat::Flac, Signal::Noise, 60_000, &t)
        .unwrap()
        .path;
    lib.f.ok(&["music", "origin", "rescan", "local"]);
    lib.mount(&["--no-prefetch"]);
    let old = lib.path("Ólafur Arnalds/Re:member (2018)/01 Re:member.flac");
    assert_eq!(std::fs::read(&old).unwrap(), std::fs::read(&file).unwrap());
    // Listed once: the kernel keeps this listing (FOPEN_CACHE_DIR) until the directory's
    // mtime moves with the view's next generation.
    let album = lib.path("Ólafur Arnalds/Re:member (2018)");
    assert_eq!(names(&album), vec!["01 Re:member.flac"]);
    let before = lib.rpc("cache.stats", "{}")["origin_bytes"]
        .as_u64()
        .unwrap();

    // The tags change on the origin (longer ones: the audio moves), the audio does not.
    let mut t2 = t;
    t2.title = Some("Re:member (Live at the Harpa Concert Hall, Reykjavík)".into());
    t2.genre = Some("Modern Classical".into());
    write_tags(&file, &t2).unwrap();
    let scan = lib.rpc("origin.rescan", r#"{"id":"local"}"#);
    let scanned = scan["origins"][0]["fetched_bytes"].as_u64().unwrap();
    assert_eq!(scan["origins"][0]["updated"], 1, "{scan}");
    let new = lib.path("Ólafur Arnalds/Re:member (2018)/01 Re:member (Live at the Harpa Concert Hall, Reykjavík).flac");
    let want = std::fs::read(&file).unwrap();
    assert_eq!(std::fs::read(&new).unwrap(), want);
    // The kept listing gives way to the new tree once the directory's attributes expire
    // (10 s): bounded wait.
    let renamed = vec!["01 Re:member (Live at the Harpa Concert Hall, Reykjavík).flac"];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(25);
    while names(&album) != renamed {
        assert!(
            std::time::Instant::now() < deadline,
            "the album still lists {:?} after the rebuild",
            names(&album)
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let read = lib.rpc("cache.stats", "{}")["origin_bytes"]
        .as_u64()
        .unwrap()
        - before;
    let size = want.len() as u64;
    eprintln!("file {size} bytes: the rescan read {scanned}, the next read fetched {read}");
    assert!(
        read * 10 < size,
        "the read after the edit fetched {read} of {size} bytes"
    );
    assert!(
        (read + scanned) * 10 < size,
        "rescan and read fetched {} of {size} bytes",
        read + scanned
    );
    lib.unmount();
}

#[test]
fn the_control_socket_answers_json_rpc() {
    let Some(mut lib) = Library::new() else {
        return;
    };
    lib.mount(&["--no-prefetch"]);
    let hunter = "Björk/Homogenic (1997)/01 Hunter.flac";
    let size = std::fs::read(lib.path(hunter)).unwrap().len() as u64;

    let stats = lib.rpc("cache.stats", "{}");
    assert_eq!(stats["size_bytes"].as_u64(), Some(size), "{stats}");
    // One miss per 256 KiB window: the tags (`fLaC` and the metadata blocks) are one
    // piece, the audio after them another.
    let head = flac_metadata_len(&lib.original(hunter));
    let windows = head.div_ceil(256 << 10) + (size - head).div_ceil(256 << 10);
    assert_eq!(stats["misses"].as_u64(), Some(windows), "{stats}");
    let hits = stats["hits"].as_u64().unwrap();
    std::fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    std::fs::read(lib.path(hunter)).unwrap();
    let again = lib.rpc("cache.stats", "{}");
    assert_eq!(again["misses"], stats["misses"], "{again}");
    assert!(again["hits"].as_u64().unwrap() > hits, "{again}");

    let found = lib.rpc("search", r#"{"query":"bjork hunter"}"#);
    let results = found.as_array().unwrap();
    assert_eq!(results.len(), 1, "{found}");
    assert_eq!(results[0]["title"], "Hunter");
    assert_eq!(results[0]["path"], format!("/{hunter}"));
    assert_eq!(results[0]["origin"], "local");
    assert_eq!(results[0]["origin_path"], "bjork/01.flac");

    let origins = lib.rpc("origin.list", "{}");
    let ids: Vec<&str> = origins
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    // By priority (cloud 2, the others the default 100), then id.
    assert_eq!(ids, vec!["cloud", "box", "local"], "{origins}");
    assert!(origins.as_array().unwrap().iter().all(|o| o["health"] == 1));

    let scan = lib.rpc("origin.rescan", r#"{"id":"box"}"#);
    assert_eq!(scan["origins"][0]["id"], "box", "{scan}");
    assert_eq!(scan["origins"][0]["unchanged"], 2, "{scan}");

    let status = lib.rpc("status", "{}");
    // Eight files, the truncated one included (indexed as unreadable).
    assert_eq!(status["tracks"], 8, "{status}");
    assert_eq!(status["views"], serde_json::json!(["artists"]), "{status}");
    // `fvfsd music status` asks the running mount.
    let out = lib.f.ok(&[
        "music",
        "status",
        "--control",
        lib.socket().to_str().unwrap(),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("mounted at "), "{out}");
    assert!(lines[0].ends_with(": 8 tracks, views artists"), "{out}");
    let origin_lines: Vec<&str> = lines[1..4].to_vec();
    assert!(
        origin_lines[0].starts_with("origin cloud [s3] up, priority 2, "),
        "{out}"
    );
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[4].starts_with("cache "), "{out}");

    let cleared = lib.rpc("cache.clear", r#"{"origin":"local"}"#);
    assert_eq!(cleared["bytes"].as_u64(), Some(size), "{cleared}");
    assert_eq!(cleared["tracks"], 4, "{cleared}");
    assert_eq!(lib.rpc("cache.stats", "{}")["size_bytes"], 0);
    // The command line says the same.
    let out = lib.f.ok(&[
        "music",
        "search",
        "queen",
        "--control",
        lib.socket().to_str().unwrap(),
    ]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "/Queen/Greatest Hits [1981] (1981)/01 Bohemian Rhapsody.opus",
            "/Queen/Greatest Hits [1991] (1991)/01 A Kind of Magic.m4a"
        ]
    );
    // statfs counts the tracks (the truncated one included), and follows a rescan.
    let files = || nix::sys::statvfs::statvfs(&lib.f.mnt).unwrap().files();
    assert_eq!(files(), 8);
    let t = common::music::tags("Sigur Rós", "( )", 2002, 1, "Vaka");
    let dir = lib.local.path().join("sigur-ros-2");
    std::fs::create_dir_all(&dir).unwrap();
    fvfs_testkit::audio::make_with(
        &dir,
        "01",
        fvfs_testkit::audio::AudioFormat::Flac,
        fvfs_testkit::audio::Signal::Noise,
        1_000,
        &t,
    )
    .unwrap();
    let scan = lib.rpc("origin.rescan", r#"{"id":"local"}"#);
    assert_eq!(scan["origins"][0]["added"], 1, "{scan}");
    assert_eq!(files(), 9);
    lib.unmount();
}

/// Counts refetches exactly: the kernel's readahead reads a window from several threads
/// at once, and still each corrupt window is fetched once.
#[test]
fn a_corrupt_cached_block_is_fetched_again_from_the_origin() {
    let Some(mut lib) = Library::new() else {
        return;
    };
    let cache = lib.f.dir.path().join("blockcache");
    let cache_arg = cache.to_str().unwrap().to_string();
    lib.mount(&["--no-prefetch", "--cache-dir", &cache_arg]);
    let rel = "Björk/Homogenic (1997)/01 Hunter.flac";
    let want = lib.original(rel);
    assert_eq!(std::fs::read(lib.path(rel)).unwrap(), want);
    lib.unmount();
    // Every stored block of the cache is damaged (one byte flipped mid-object), and the
    // local block cache is gone: the next read finds only bad copies.
    let objects = lib.f.s3_objects();
    assert!(!objects.is_empty());
    for o in &objects {
        let mut b = std::fs::read(o).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x55;
        std::fs::write(o, b).unwrap();
    }
    std::fs::remove_dir_all(&cache).unwrap();
    lib.mount(&["--no-prefetch", "--cache-dir", &cache_arg]);
    assert_eq!(std::fs::read(lib.path(rel)).unwrap(), want);
    let stats = lib.rpc("cache.stats", "{}");
    let head = flac_metadata_len(&want);
    let windows = head.div_ceil(256 << 10) + (want.len() as u64 - head).div_ceil(256 << 10);
    if stats["refetched"].as_u64() != Some(windows) {
        let log = std::fs::read_to_string(&lib.log).unwrap_or_default();
        let warn: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .take(12)
            .collect();
        panic!("{stats}\n{}", warn.join("\n"));
    }
    assert_eq!(stats["misses"].as_u64(), Some(windows), "{stats}");
    // The objects were rewritten: a third mount reads them without the origin.
    lib.unmount();
    std::fs::remove_dir_all(&cache).unwrap();
    lib.all_origins_down();
    lib.mount(&["--no-prefetch", "--cache-dir", &cache_arg]);
    let third = std::fs::read(lib.path(rel));
    if third.as_ref().ok() != Some(&want) {
        let log = std::fs::read_to_string(&lib.log).unwrap_or_default();
        let warn: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        panic!("{third:?}\n{}", warn.join("\n"));
    }
    assert_eq!(lib.rpc("cache.stats", "{}")["refetched"], 0);
    lib.unmount();
}

#[test]
fn sequential_playback_prefetches_the_next_track_of_the_album() {
    let Some(mut lib) = Library::new() else {
        return;
    };
    lib.mount(&[]);
    let hunter = "Björk/Homogenic (1997)/01 Hunter.flac";
    let joga = "Björk/Homogenic (1997)/02 Jóga.mp3";
    let h = lib.original(hunter);
    let j = lib.original(joga);
    let windows = |b: &[u8]| {
        let head = if b.starts_with(b"fLaC") {
            flac_metadata_len(b)
        } else {
            // ID3v2: 10-byte header + syncsafe size.
            10 + b[6..10]
                .iter()
                .fold(0u64, |a, x| a << 7 | u64::from(*x & 0x7f))
        };
        head.div_ceil(256 << 10) + (b.len() as u64 - head).div_ceil(256 << 10)
    };
    assert_eq!(std::fs::read(lib.path(hunter)).unwrap(), h);
    // Playing Hunter to its end fetched its windows and, in the background, Jóga's.
    let want = windows(&h) + windows(&j);
    // A miss is counted when its fetch starts and the size when its window is stored:
    // wait for both.
    let size = (h.len() + j.len()) as u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stats = lib.rpc("cache.stats", "{}");
    while (stats["misses"].as_u64() != Some(want) || stats["size_bytes"].as_u64() != Some(size))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
        stats = lib.rpc("cache.stats", "{}");
    }
    assert_eq!(stats["misses"].as_u64(), Some(want), "{stats}");
    assert_eq!(
        stats["size_bytes"].as_u64(),
        Some((h.len() + j.len()) as u64),
        "{stats}"
    );
    // Jóga then plays from the cache alone.
    assert_eq!(std::fs::read(lib.path(joga)).unwrap(), j);
    assert_eq!(lib.rpc("cache.stats", "{}")["misses"].as_u64(), Some(want));
    lib.unmount();
}
