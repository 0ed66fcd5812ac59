//! The music view end to end: `fvfsd music mount` over real audio on three origins (a
//! local directory, an S3 server, sshd over SFTP), judged with the tools a user has
//! (`cp`, `cmp`, mmap, lofty, ffprobe, ffmpeg) and the control socket.

mod common;

use common::music::{walk, Library};
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
        "_/_ ()/".into(),
        "_/_ ()/untagged.ogg".into(),
    ];
    want.sort();
    assert_eq!(walk(&lib.f.mnt), want);
    // Sizes are exact before any read; nothing is writable.
    for (rel, orig) in lib.files.clone() {
        let rel = rel.replace("_/_ (_)/ untagged.ogg", "_/_ ()/untagged.ogg");
        let m = std::fs::metadata(lib.path(&rel)).unwrap();
        assert_eq!(m.len(), std::fs::metadata(&orig).unwrap().len(), "{rel}");
        assert_eq!(m.mode() & 0o7777, 0o444, "{rel}");
    }
    let track = lib.path("Björk/Homogenic (1997)/01 Hunter.flac");
    let erofs = |r: std::io::Result<()>| r.unwrap_err().raw_os_error();
    let w = std::fs::OpenOptions::new().write(true).open(&track).map(|_| ());
    assert_eq!(erofs(w), Some(libc::EROFS));
    assert_eq!(erofs(std::fs::write(lib.path("Björk/new.flac"), b"x")), Some(libc::EROFS));
    assert_eq!(erofs(std::fs::create_dir(lib.path("Björk/x"))), Some(libc::EROFS));
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
        let rel = rel.replace("_/_ (_)/ untagged.ogg", "_/_ ()/untagged.ogg");
        let src = lib.path(&rel);
        let copy = out.path().join(format!("{i}"));
        let st = Command::new("cp").arg(&src).arg(&copy).status().unwrap();
        assert!(st.success(), "cp {rel}");
        assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&orig).unwrap(), "cp {rel}");
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
        let n = f.read(&mut buf).unwrap();
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
        &format!("fast={}?priority=0", lib.s3_location("fast")),
    ]);
    lib.f.ok(&["music", "origin", "rescan", "fast"]);
    lib.f.ok(&["music", "origin", "add", &format!("local={}?priority=5", lib.local.path().display())]);
    lib.mount(&["--no-prefetch"]);
    let rel = "Björk/Homogenic (1997)/01 Hunter.flac";
    let s3 = &lib.s3;
    let rt = &lib.f.rt;
    let got = read_in_steps(&lib.path(rel), || rt.block_on(s3.stop()));
    assert_eq!(got, std::fs::read(&hunter).unwrap());
    let stats = lib.rpc("origin.list", "{}");
    let health: Vec<(String, u64)> = stats["origins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["id"].as_str().unwrap().to_string(), o["health"].as_u64().unwrap()))
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
    lib.f.ok(&["music", "collection", "add", "nineties", "year:1991"]);
    lib.f.ok(&["music", "collection", "add", "icelandic", "artist:björk"]);
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
