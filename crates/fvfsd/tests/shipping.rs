//! Continuous metadata shipping: a host lost with no explicit backup costs at most
//! `[backup] max_lag_secs` of metadata. Each test writes through a real mount over three
//! tiers (a local hot tier, a NAS tier, S3), loses the host (metadata database, cache, the
//! hot and warm tiers), restores from S3 alone with `fvfsd restore`, and checks every
//! file byte for byte with its mode, owner and mtime in nanoseconds.

mod common;

use common::{data, Fixture};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The shipping lag the tests configure.
const LAG: u64 = 2;

/// A three-tier fixture whose mounts ship metadata within `LAG` seconds.
fn fixture() -> Option<Fixture> {
    let f = Fixture::three_tiers("1GiB", "512MiB")?;
    let cfg = f.config.clone().expect("config");
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str(&format!("[backup]\nmax_lag_secs = {LAG}\n"));
    std::fs::write(&cfg, text).expect("config");
    Some(f)
}

#[derive(Debug, PartialEq, Eq)]
struct Seen {
    len: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
}

fn seen(p: &std::path::Path) -> Seen {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    Seen {
        len: m.len(),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime: (m.mtime(), m.mtime_nsec()),
    }
}

/// Writes `n` files under `dir` (sizes from empty to several blocks, some chmod, chown
/// and explicit mtimes); returns (relative path, seed, attributes).
fn write_tree(f: &Fixture, dir: &str, n: u64) -> Vec<(String, u64, Seen)> {
    let mut out = Vec::new();
    for i in 0..n {
        let rel = format!("{dir}/s{}/f{i:03}", i % 7);
        let p = f.path(&rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        let len = match i % 10 {
            0 => 0,
            7 => (2 << 20) + i as usize * 977,
            _ => (i as usize * 1031) % 20_000,
        };
        std::fs::write(&p, data(len, 900 + i)).expect("write");
        if i % 5 == 1 {
            std::os::unix::fs::chown(&p, Some(1000 + i as u32), Some(2000 + i as u32))
                .expect("chown");
        }
        if i % 4 == 2 {
            let perm = std::os::unix::fs::PermissionsExt::from_mode(0o600 + (i as u32 % 3));
            std::fs::set_permissions(&p, perm).expect("chmod");
        }
        if i % 6 == 3 {
            let t = UNIX_EPOCH + Duration::new(1_500_000_000 + i, 123_456_789 - i as u32);
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .expect("open");
            file.set_modified(t).expect("set mtime");
        }
        out.push((rel.clone(), 900 + i, seen(&p)));
    }
    out
}

/// Loses the host: the metadata database, the block cache, the hot and warm tiers.
fn lose_host(f: &Fixture) {
    let db = f.dir.path().join("meta.db");
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        let _ = std::fs::remove_file(&p);
    }
    let _ = std::fs::remove_dir_all(f.dir.path().join("meta.db.spool"));
    let _ = std::fs::remove_dir_all(&f.cache);
    std::fs::remove_dir_all(f.tier_dir("local")).expect("delete the hot tier");
    std::fs::remove_dir_all(f.tier_dir("nas")).expect("delete the warm tier");
    assert!(!db.exists());
}

/// `fvfsd restore --from <S3>` with `extra` arguments; returns stdout.
fn restore(f: &Fixture, extra: &[&str]) -> String {
    let loc = f.location();
    let mut args = vec!["restore", "--from", &loc, "--meta", &f.meta_url];
    args.extend(extra);
    let out = f.run(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "restore failed: {stdout}{stderr}");
    assert!(!stderr.contains("warning"), "unexpected warning: {stderr}");
    assert!(
        stdout.contains("every block it names is on"),
        "block check: {stdout}"
    );
    stdout
}

/// Every file reads back byte-identical with the same attributes.
fn check_tree(f: &Fixture, files: &[(String, u64, Seen)]) {
    for (rel, seed, want) in files {
        let p = f.path(rel);
        let got = std::fs::read(&p).unwrap_or_else(|e| panic!("read {rel}: {e}"));
        assert!(
            got.len() as u64 == want.len && got == data(want.len as usize, *seed),
            "{rel} differs after the restore"
        );
        assert_eq!(&seen(&p), want, "attributes of {rel}");
    }
}

fn replicated(f: &Fixture) -> bool {
    f.count("SELECT COUNT(*) FROM wal_pending") == 0
}

#[test]
fn a_host_lost_after_the_lag_loses_nothing() {
    let Some(mut f) = fixture() else { return };
    f.mount();
    let files = write_tree(&f, "t", 120);
    // Replication, then the shipping lag (and a second of slack for the take).
    f.wait_until(120, "every block replicated to S3", replicated);
    std::thread::sleep(Duration::from_secs(LAG + 2));
    f.kill9();
    lose_host(&f);

    let listed = f.ok(&["restore", "--list", "--from", &f.location()]);
    assert!(listed.contains("generation"), "{listed}");
    restore(&f, &[]);
    f.mount();
    check_tree(&f, &files);
    // The restored filesystem takes writes.
    std::fs::write(f.path("after"), b"new").expect("write after restore");
    f.unmount();
    let fsck = f.run(&["fsck", "--meta", &f.meta_url]);
    assert!(
        fsck.status.success(),
        "fsck after restore: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
}

#[test]
fn a_clean_unmount_leaves_the_durable_tier_complete() {
    let Some(mut f) = fixture() else { return };
    f.mount();
    let files = write_tree(&f, "u", 80);
    // No wait: the unmount itself replicates and ships.
    f.unmount();
    lose_host(&f);
    restore(&f, &[]);
    f.mount();
    check_tree(&f, &files);
    f.unmount();
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[test]
fn point_in_time_restore() {
    let Some(mut f) = fixture() else { return };
    f.mount();
    std::fs::write(f.path("kept"), data(5000, 1)).expect("write");
    std::fs::write(f.path("deleted-later"), data(7000, 2)).expect("write");
    f.wait_until(120, "every block replicated to S3", replicated);
    std::thread::sleep(Duration::from_secs(LAG + 2));
    // T: every change above is shipped with a stamp not after T; every change below
    // happens after T (a second later, so its segment's stamp is after T).
    let t = now_secs() + 1;
    while now_secs() <= t + 1 {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_file(f.path("deleted-later")).expect("unlink");
    std::fs::write(f.path("created-later"), data(3000, 3)).expect("write");
    f.unmount();
    lose_host(&f);

    // The newest point has both changes (restored before the mount below, which ships a
    // newer generation: the state it was restored to).
    let other = format!("sqlite://{}/latest/meta.db", f.dir.path().display());
    let loc = f.location();
    let out = f.run(&["restore", "--from", &loc, "--meta", &other]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = rusqlite::Connection::open(format!("{}/latest/meta.db", f.dir.path().display()))
        .expect("open");
    let names: Vec<Vec<u8>> = c
        .prepare("SELECT name FROM dentries WHERE parent = 1 ORDER BY name")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("names");
    assert_eq!(names, vec![b"created-later".to_vec(), b"kept".to_vec()]);

    let at = format!("@{t}");
    restore(&f, &["--at", &at]);
    f.mount();
    assert_eq!(std::fs::read(f.path("kept")).expect("kept"), data(5000, 1));
    assert_eq!(
        std::fs::read(f.path("deleted-later")).expect("deleted after T is back"),
        data(7000, 2)
    );
    assert!(
        !f.path("created-later").exists(),
        "created after T must be absent"
    );
    f.unmount();
}
