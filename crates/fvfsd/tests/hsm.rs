//! `fvfsd hsm` end to end with the real binary: a directory on a loop-mounted ext4 image
//! put under management, `fvfsd hsm run` as the daemon (S3 test server as the durable
//! tier), files archived and released through the request queue, a stub read back by
//! `cat` byte-identical, `status` and `ls` showing states, requests made while no daemon
//! runs staying queued (exit 2) and carried out once one starts. Root only.

mod common;

use common::Fixture;
use fvfs_testkit::Ext4Image;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon(Child);

impl Daemon {
    /// Waits (bounded) for the daemon to die on its own (a failure point).
    fn wait_abort(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.0.try_wait() {
                assert!(!st.success(), "the daemon should have aborted");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the failure point was not reached");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
        // SAFETY: signalling our own child, not reaped yet.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(f: &Fixture) -> Daemon {
    start_with(f, "")
}

/// `fvfsd hsm run` with `FVFS_FAILPOINTS=failpoints`.
fn start_with(f: &Fixture, failpoints: &str) -> Daemon {
    let log = std::fs::File::create(f.dir.path().join("hsm.log")).unwrap();
    let child = f
        .fvfsd()
        .args(["hsm", "run", "--meta", &f.meta_url])
        .env("FVFS_FAILPOINTS", failpoints)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let d = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(f.dir.path().join("hsm.log")).unwrap_or_default();
        if log.contains("fvfs HSM running") {
            return d;
        }
        assert!(Instant::now() < deadline, "hsm run did not start: {log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hsm(f: &Fixture, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["hsm"];
    all.extend(args);
    all.extend(["--meta", &f.meta_url]);
    let out = f.run(&all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A config file whose `[hsm] keeper_grace_secs` is `secs`.
fn grace_config(f: &Fixture, secs: u64) -> PathBuf {
    let path = f.dir.path().join(format!("grace-{secs}.toml"));
    std::fs::write(&path, format!("[hsm]\nkeeper_grace_secs = {secs}\n")).unwrap();
    path
}

/// Asks for the release of `file` until the payload is durable and it is done.
fn release_until_done(f: &Fixture, file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, _, err) = hsm(f, &["release", "--wait", "10", p(file)]);
        if code == 0 {
            return;
        }
        assert!(
            err.contains("not on the durable tier yet") || code == 2,
            "{err}"
        );
        assert!(Instant::now() < deadline, "never released: {err}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Random bytes (xorshift), several blocks.
fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect()
}

/// The keeper a daemon starts holds the fanotify group beyond the daemon: a daemon
/// killed leaves a reader of a stub waiting (no holes) for the next daemon, which answers
/// it with the bytes, or failing with EIO after the grace; a clean stop with stubs left
/// fails their readers at once; a clean stop with none lets the keeper go.
#[test]
fn a_stopped_or_killed_daemon_leaves_readers_waiting_or_failing_never_reading_holes() {
    let Some(mut f) = Fixture::new() else {
        return;
    };
    let img = Ext4Image::mount(128).unwrap();
    let dir = img.mnt().join("kept");
    std::fs::create_dir(&dir).unwrap();
    assert_eq!(hsm(&f, &["add", p(&dir)]).0, 0);
    let data = random(3 << 20, 7);
    let file = dir.join("a.bin");
    std::fs::write(&file, &data).unwrap();
    assert!(!f.uuid.is_empty());
    // This filesystem's keepers, once their number is `n` (bounded wait: a keeper
    // starts before its daemon says it runs, and exits just after the daemon stops).
    let keepers = |n: usize| {
        let pattern = format!("hsm keep --fs {}", f.uuid);
        let count = || {
            let out = Command::new("pgrep")
                .args(["-f", &pattern])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).lines().count()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while count() != n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        count()
    };
    let read_in_thread = |file: &Path| {
        let file = file.to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(std::fs::read(&file)));
        rx
    };

    // 1. A clean stop with a stub left: its readers fail at once (EIO), long before the
    // grace, and the next daemon takes the group over.
    f.config = Some(grace_config(&f, 120));
    {
        let _d = start(&f);
        assert_eq!(keepers(1), 1, "one keeper per daemon");
        assert_eq!(hsm(&f, &["archive", p(&file)]).0, 0);
        release_until_done(&f, &file);
    }
    assert_eq!(keepers(1), 1, "stubs are left: the keeper holds them");
    let err = read_in_thread(&file)
        .recv_timeout(Duration::from_secs(20))
        .expect("answered at once after a clean stop")
        .expect_err("EIO, not holes");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");

    // 2. Killed: a reader waits across the restart and reads the bytes.
    let mut d = start(&f);
    assert_eq!(keepers(1), 1, "the daemon took the keeper over");
    d.0.kill().unwrap();
    d.0.wait().unwrap();
    assert_eq!(keepers(1), 1, "the keeper outlives a killed daemon");
    let reader = read_in_thread(&file);
    assert!(
        reader.recv_timeout(Duration::from_secs(2)).is_err(),
        "a reader of a stub waits while no daemon runs"
    );
    let d = start(&f);
    let got = reader
        .recv_timeout(Duration::from_secs(60))
        .expect("the next daemon answers the waiting reader")
        .expect("read");
    assert!(got == data, "the waiting reader got the bytes");
    // Read whole: no stub left, so a clean stop lets the keeper go.
    drop(d);
    assert_eq!(keepers(0), 0, "no stub left: the keeper exits");

    // 3. A short grace and no daemon back: EIO, and the stub is intact for later.
    f.config = Some(grace_config(&f, 1));
    let mut d = start(&f);
    release_until_done(&f, &file);
    d.0.kill().unwrap();
    d.0.wait().unwrap();
    let err = read_in_thread(&file)
        .recv_timeout(Duration::from_secs(30))
        .expect("the keeper answers once the grace is over")
        .expect_err("EIO, not holes");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let d = start(&f);
    let cat = Command::new("cat").arg(&file).output().unwrap();
    assert!(cat.status.success());
    assert!(cat.stdout == data, "the stub recalls after the outage");
    drop(d);
    assert_eq!(keepers(0), 0);
}

#[test]
fn fvfsd_hsm_archives_releases_and_recalls_through_the_daemon() {
    let Some(f) = Fixture::new() else {
        return;
    };
    let img = Ext4Image::mount(128).unwrap();
    let dir = img.mnt().join("media");
    std::fs::create_dir(&dir).unwrap();
    let (code, out, err) = hsm(&f, &["add", p(&dir)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("managed "), "{out}");
    let data: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let file = dir.join("movie.mkv");
    std::fs::write(&file, &data).unwrap();

    // No daemon: the request stays queued, and says so.
    let (code, _, err) = hsm(&f, &["archive", "--wait", "1", p(&file)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("still queued"), "{err}");

    // The daemon carries out the queued archive at start, then a release.
    let daemon = start(&f);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !hsm(&f, &["status", p(&file)]).1.contains(": archived") {
        assert!(
            Instant::now() < deadline,
            "the queued archive was not carried out"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Replication to the durable tier happens in the background: release waits for it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, out, err) = hsm(&f, &["release", p(&file)]);
        if code == 0 {
            assert!(out.contains("released (id "), "{out}");
            break;
        }
        assert!(err.contains("not on the durable tier yet"), "{err}");
        assert!(Instant::now() < deadline, "never durable: {err}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let m = std::fs::metadata(&file).unwrap();
    assert_eq!(m.len(), data.len() as u64);
    assert!(
        m.blocks() * 512 <= m.blksize(),
        "a stub: {} blocks",
        m.blocks()
    );
    let (_, out, _) = hsm(&f, &["status", p(&file)]);
    assert!(out.contains(": released id="), "{out}");
    let (_, out, _) = hsm(&f, &["ls"]);
    assert!(
        out.contains("released") && out.contains("movie.mkv"),
        "{out}"
    );

    // Another process reads it: byte-identical.
    let cat = Command::new("cat").arg(&file).output().unwrap();
    assert!(cat.status.success());
    assert!(cat.stdout == data, "cat of a stub");
    let (_, out, _) = hsm(&f, &["status", p(&file)]);
    assert!(out.contains(": archived"), "{out}");

    // Errors reach the requester.
    let plain = dir.join("plain.txt");
    std::fs::write(&plain, b"x").unwrap();
    let (code, _, err) = hsm(&f, &["release", p(&plain)]);
    assert_eq!(code, 1);
    assert!(err.contains("is not archived"), "{err}");
    drop(daemon);
}

/// The host is lost: metadata deleted. `fvfsd restore` from the durable tier alone brings
/// the catalog back, every stub recalls byte-identical, and `fvfsd hsm export` recreates
/// every archived file from the payloads.
#[test]
fn after_a_host_loss_restore_brings_the_catalog_back_and_export_recreates_every_file() {
    let Some(f) = Fixture::new() else {
        return;
    };
    let img = Ext4Image::mount(128).unwrap();
    let dir = img.mnt().join("data");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    assert_eq!(hsm(&f, &["add", p(&dir)]).0, 0);
    let files: Vec<(PathBuf, Vec<u8>)> = [("a.bin", 1u32), ("sub/b.bin", 2)]
        .iter()
        .map(|(name, seed)| {
            let data: Vec<u8> = (0..(2u32 << 20))
                .map(|i| (i.wrapping_mul(2654435761).wrapping_add(*seed) >> 11) as u8)
                .collect();
            let path = dir.join(name);
            std::fs::write(&path, &data).unwrap();
            (path, data)
        })
        .collect();
    {
        let _daemon = start(&f);
        for (path, _) in &files {
            assert_eq!(hsm(&f, &["archive", p(path)]).0, 0);
            let deadline = Instant::now() + Duration::from_secs(60);
            while hsm(&f, &["release", p(path)]).0 != 0 {
                assert!(Instant::now() < deadline, "never released");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    f.ok(&["backup"]);
    let db = f.dir.path().join("meta.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let out = f.run(&["restore", "--from", &f.location(), "--meta", &f.meta_url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Export first (no daemon needed), then recall through a new daemon.
    let dest = f.dir.path().join("export");
    let (code, out, err) = hsm(&f, &["export", p(&dest)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    for (path, data) in &files {
        let rel = path.strip_prefix("/").unwrap();
        assert!(
            std::fs::read(dest.join(rel)).unwrap() == *data,
            "export of {}",
            path.display()
        );
    }
    let _daemon = start(&f);
    for (path, data) in &files {
        let cat = Command::new("cat").arg(path).output().unwrap();
        assert!(cat.status.success());
        assert!(
            cat.stdout == *data,
            "recall of {} after restore",
            path.display()
        );
    }
}

/// `kill -9` (an abort at a named failure point) at each step of archive, release and
/// recall: after a restart every file reads byte-identical, a file whose bytes are not on
/// disk is always a marked stub (never silent zeros), and fsck is clean.
#[test]
fn a_crash_at_each_step_loses_nothing() {
    let Some(f) = Fixture::new() else {
        return;
    };
    // Accesses to stubs wait this long for the next daemon before the keeper fails them.
    let mut f = f;
    f.config = Some(grace_config(&f, 1));
    let img = Ext4Image::mount(128).unwrap();
    let dir = img.mnt().join("crash");
    std::fs::create_dir(&dir).unwrap();
    assert_eq!(hsm(&f, &["add", p(&dir)]).0, 0);
    let points = [
        "hsm.archive.stored",
        "hsm.archive.marked",
        "hsm.release.row",
        "hsm.release.punched",
        "hsm.recall.written",
        "hsm.recall.answered",
    ];
    for (i, point) in points.iter().enumerate() {
        // Random bytes: several blocks, so a reader's first range is a partial recall
        // (the point `hsm.recall.answered` is on that path).
        let data = random(3 << 20, i as u64 + 1);
        let file = dir.join(format!("f{i}.bin"));
        std::fs::write(&file, &data).unwrap();
        if point.starts_with("hsm.recall") {
            {
                let _d = start(&f);
                assert_eq!(hsm(&f, &["archive", p(&file)]).0, 0);
                release_until_done(&f, &file);
            }
            let mut d = start_with(&f, point);
            // The daemon dies with the reader's access read and unanswered: the keeper
            // fails it (EIO), or the bytes were all there. Never other bytes.
            let reader = {
                let file = file.clone();
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || tx.send(Command::new("cat").arg(&file).output()));
                rx
            };
            d.wait_abort();
            let cat = reader
                .recv_timeout(Duration::from_secs(60))
                .expect("the reader is answered")
                .unwrap();
            if cat.status.success() {
                assert!(cat.stdout == data, "{point}: a reader got other bytes");
            } else {
                let err = String::from_utf8_lossy(&cat.stderr);
                assert!(err.contains("Input/output error"), "{point}: {err}");
            }
        } else {
            let mut d = start_with(&f, point);
            let (code, _, err) = hsm(&f, &["archive", "--wait", "10", p(&file)]);
            if point.starts_with("hsm.release") {
                assert_eq!(code, 0, "{point}: {err}");
                // Requests until one reaches the point (the payload must be durable first).
                let deadline = Instant::now() + Duration::from_secs(60);
                while d.0.try_wait().unwrap().is_none() {
                    let _ = hsm(&f, &["release", "--wait", "2", p(&file)]);
                    assert!(Instant::now() < deadline, "{point}: not reached");
                }
            }
            d.wait_abort();
        }
        // While no daemon runs: the bytes, or (a stub) EIO once the keeper's grace is
        // over. Never holes.
        match std::fs::read(&file) {
            Ok(now) => assert!(now == data, "{point}: other bytes while no daemon runs"),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EIO), "{point}: {e}");
                let (_, out, _) = hsm(&f, &["status", p(&file)]);
                assert!(
                    out.contains(": released"),
                    "{point}: EIO and no stub: {out}"
                );
            }
        }
        let _d = start(&f);
        let cat = Command::new("cat").arg(&file).output().unwrap();
        assert!(cat.status.success(), "{point}");
        assert!(
            cat.stdout == data,
            "{point}: the file reads other bytes after a restart"
        );
    }
    f.assert_fsck_clean("after the restarts");
}

/// A write into the middle of a stub, with the daemon killed at each step of the recall
/// it triggers (an abort at the failure point, or `kill -9` just after the write
/// returned): after a restart the file holds the old bytes plus the write when the write
/// succeeded, and the old bytes alone when it failed (EIO). The recall never writes the
/// payload over bytes a writer was told are written.
#[test]
fn a_write_into_a_stub_survives_a_crash_at_each_step_of_its_recall() {
    let Some(f) = Fixture::new() else {
        return;
    };
    let mut f = f;
    f.config = Some(grace_config(&f, 1));
    let img = Ext4Image::mount(128).unwrap();
    let dir = img.mnt().join("writes");
    std::fs::create_dir(&dir).unwrap();
    assert_eq!(hsm(&f, &["add", p(&dir)]).0, 0);
    for (i, point) in ["hsm.recall.written", "hsm.recall.answered"]
        .iter()
        .enumerate()
    {
        let data = random(3 << 20, 40 + i as u64);
        let file = dir.join(format!("w{i}.bin"));
        std::fs::write(&file, &data).unwrap();
        {
            let _d = start(&f);
            assert_eq!(hsm(&f, &["archive", p(&file)]).0, 0);
            release_until_done(&f, &file);
        }
        let mut d = start_with(&f, point);
        let at = (3 << 19) + 100;
        let patch = vec![0xA5u8; 4096];
        let writer = {
            let (file, patch) = (file.clone(), patch.clone());
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                use std::os::unix::fs::FileExt;
                let write = || -> std::io::Result<()> {
                    let w = std::fs::OpenOptions::new().write(true).open(&file)?;
                    w.write_all_at(&patch, at)?;
                    w.sync_all()
                };
                tx.send(write())
            });
            rx
        };
        let wrote = writer
            .recv_timeout(Duration::from_secs(60))
            .expect("the writer is answered");
        // The crash: at the failure point, or (a step the write does not pass) just
        // after the write returned.
        if d.0.try_wait().unwrap().is_none() {
            d.0.kill().unwrap();
        }
        d.0.wait().unwrap();
        let mut want = data.clone();
        match &wrote {
            Ok(()) => want[at as usize..at as usize + patch.len()].copy_from_slice(&patch),
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "{point}: {e}"),
        }
        let _d = start(&f);
        let now = std::fs::read(&file).unwrap();
        assert!(
            now == want,
            "{point}: the write {} but the file reads other bytes after a restart",
            if wrote.is_ok() { "succeeded" } else { "failed" }
        );
    }
}
