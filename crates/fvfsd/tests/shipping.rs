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
    fixture_lag(LAG)
}

fn fixture_lag(lag: u64) -> Option<Fixture> {
    let f = Fixture::three_tiers("1GiB", "512MiB")?;
    let cfg = f.config.clone().expect("config");
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str(&format!("[backup]\nmax_lag_secs = {lag}\n"));
    std::fs::write(&cfg, text).expect("config");
    Some(f)
}

/// `fvfsd status` (beside the mount) and its shipping line.
fn shipping_line(f: &Fixture) -> String {
    let out = f.ok(&["status"]);
    out.lines()
        .find(|l| l.starts_with("shipping"))
        .unwrap_or_else(|| panic!("no shipping line in {out}"))
        .to_string()
}

/// The lag in seconds a shipping line reports.
fn lag_of(line: &str) -> u64 {
    let rest = line
        .split("metadata lag ")
        .nth(1)
        .unwrap_or_else(|| panic!("no lag in {line}"));
    rest.split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no lag in {line}"))
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

/// The drill's end: lose the host, restore from S3 alone, mount and find every file as
/// it was written.
fn lose_host_restore_and_check(f: &mut Fixture, files: &[(String, u64, Seen)]) {
    lose_host(f);
    restore(f, &[]);
    f.mount();
    check_tree(f, files);
    f.unmount();
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
    f.assert_fsck_clean("after restore");
}

#[test]
fn a_clean_unmount_leaves_the_durable_tier_complete() {
    let Some(mut f) = fixture() else { return };
    f.mount();
    let files = write_tree(&f, "u", 80);
    // No wait: the unmount itself replicates and ships.
    f.unmount();
    lose_host_restore_and_check(&mut f, &files);
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
    // The deleted file is in the trash, which is shipped like the rest.
    assert_eq!(
        names,
        vec![
            b".trash".to_vec(),
            b"created-later".to_vec(),
            b"kept".to_vec()
        ]
    );

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

/// `fvfsd flush` puts the metadata on the durable tier without waiting for the lag: a
/// lag of a minute, a flush, and a kill -9 right after lose nothing.
#[test]
fn flush_ships_the_metadata_through_the_running_mount() {
    let Some(mut f) = fixture_lag(60) else { return };
    f.mount();
    let files = write_tree(&f, "fl", 60);
    let line = shipping_line(&f);
    assert!(line.contains("metadata lag"), "{line}");
    let out = f.run(&["flush", "--meta", &f.meta_url, "--timeout", "120"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "flush: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("blocks: nothing left to replicate"),
        "{stdout}"
    );
    assert!(
        stdout.contains("every commit is on") && stdout.contains("by the running mount"),
        "{stdout}"
    );
    let line = shipping_line(&f);
    assert!(line.contains("0 B waiting"), "{line}");
    f.kill9();
    lose_host_restore_and_check(&mut f, &files);
    // With no mount running, flush ships a new generation itself.
    let out = f.ok(&["flush", "--timeout", "60"]);
    assert!(out.contains("no mount runs: a new generation"), "{out}");
}

/// A durable tier down for 60 s while files are written: the lag grows past
/// `max_lag_secs` and the status says shipping fails; once the tier is back the lag
/// drains, and a host lost afterwards loses nothing.
#[test]
fn an_outage_of_the_durable_tier_only_grows_the_lag() {
    let Some(mut f) = fixture() else { return };
    f.mount();
    let mut files = write_tree(&f, "before", 30);
    f.wait_until(120, "every block replicated to S3", replicated);
    f.rt.block_on(f.s3.stop());
    let down = std::time::Instant::now();
    files.extend(write_tree(&f, "during", 40));
    let mut worst = 0;
    while down.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(5));
        let line = shipping_line(&f);
        worst = worst.max(lag_of(&line));
        if down.elapsed() > Duration::from_secs(20) {
            assert!(line.contains("FAILING"), "during the outage: {line}");
        }
    }
    assert!(
        worst >= 30,
        "the lag grew only to {worst} s in a 60 s outage"
    );
    f.rt.block_on(f.s3.restart()).expect("restart S3");
    // The shipper retries within max_lag; the replicator within its backoff (5 min max).
    f.wait_until(30, "the metadata lag drained", |f| {
        let line = shipping_line(f);
        lag_of(&line) == 0 && line.contains("0 B waiting") && !line.contains("FAILING")
    });
    f.wait_until(330, "every block replicated to S3", replicated);
    std::thread::sleep(Duration::from_secs(LAG + 2));
    f.kill9();
    lose_host_restore_and_check(&mut f, &files);
}

/// kill -9 of the mount at random moments while it writes and ships, 20 times: every
/// restore opens a database that passes `PRAGMA integrity_check` and `fvfsd fsck`.
#[test]
fn kill9_while_shipping_always_restores_a_consistent_database() {
    let Some(mut f) = fixture_lag(1) else { return };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for cycle in 0..20u64 {
        f.mount();
        let dir = f.path(&format!("c{cycle}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        // Writes, renames and deletes for 0.2–1.7 s (at most 250 files, so fsck of the
        // growing tree stays quick), then kill -9 mid-stream.
        let stop_at = std::time::Instant::now() + Duration::from_millis(200 + rand(1500));
        let mut i = 0u64;
        while std::time::Instant::now() < stop_at && i < 250 {
            let p = dir.join(format!("f{i}"));
            std::fs::write(
                &p,
                data(500 + (i as usize * 211) % 9000, cycle * 10_000 + i),
            )
            .expect("write");
            if i % 3 == 1 {
                std::fs::rename(&p, dir.join(format!("r{i}"))).expect("rename");
            }
            if i % 5 == 4 {
                let j = i - 2;
                let name = if j % 3 == 1 { "r" } else { "f" };
                std::fs::remove_file(dir.join(format!("{name}{j}"))).expect("unlink");
            }
            i += 1;
        }
        f.kill9();
        let into = f.dir.path().join(format!("restored{cycle}"));
        let url = format!("sqlite://{}/meta.db", into.display());
        let out = f.run(&["restore", "--from", &f.location(), "--meta", &url]);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Blocks of the last second may not be on S3 yet (restore says which files):
        // the database itself is whole either way.
        assert!(
            out.status.success() || said.contains("block(s) missing"),
            "cycle {cycle}: restore failed: {said}"
        );
        let c = rusqlite::Connection::open(into.join("meta.db")).expect("open restored");
        let check: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(check, "ok", "cycle {cycle}");
        drop(c);
        // The restored metadata names blocks on the surviving local tiers too: fsck
        // checks every one of them against its objects.
        let fsck = f.run(&["fsck", "--meta", &url]);
        assert!(
            fsck.status.success(),
            "cycle {cycle}: fsck of the restored database: {}{}",
            String::from_utf8_lossy(&fsck.stdout),
            String::from_utf8_lossy(&fsck.stderr)
        );
        std::fs::remove_dir_all(&into).expect("remove the restored copy");
    }
}

/// `[backup] enabled = false`: the mount ships nothing, and status and flush say so
/// instead of pretending the metadata is on the durable tier.
#[test]
fn shipping_off_ships_nothing_and_says_so() {
    let Some(mut f) = Fixture::three_tiers("1GiB", "512MiB") else {
        return;
    };
    let cfg = f.config.clone().expect("config");
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str("[backup]\nenabled = false\n");
    std::fs::write(&cfg, text).expect("config");
    f.mount();
    write_tree(&f, "off", 10);
    assert_eq!(
        shipping_line(&f),
        "shipping     metadata: off ([backup] enabled = false)"
    );
    let out = f.ok(&["flush", "--timeout", "60"]);
    assert!(
        out.contains("metadata: shipping is off ([backup] enabled = false)"),
        "{out}"
    );
    f.unmount();
    let listed = f.run(&["restore", "--list", "--from", &f.location()]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&listed.stdout),
        String::from_utf8_lossy(&listed.stderr)
    );
    assert_eq!(
        said.trim(),
        format!("nothing to restore on {}", f.location())
    );
}
