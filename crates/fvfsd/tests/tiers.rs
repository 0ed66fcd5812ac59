//! Tiering end to end: a local hot tier, a second directory standing for the NAS (keeps a
//! copy of everything) and the durable S3 tier on loopback, behind a real mount.

mod common;
use common::{data, walk, Fixture};
use std::io::Write;
use std::time::Duration;

const ALL: i64 = 0b111;
const S3: i64 = 0b100;

fn pending(f: &Fixture) -> i64 {
    f.count("SELECT COUNT(*) FROM wal_pending")
}

fn write_files(f: &Fixture, prefix: &str, n: usize, size: usize, seed: u64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let content = data(size, seed + i as u64);
            let mut file = std::fs::File::create(f.path(&format!("{prefix}{i}"))).unwrap();
            file.write_all(&content).unwrap();
            file.sync_all().unwrap();
            content
        })
        .collect()
}

fn check_files(f: &Fixture, prefix: &str, want: &[Vec<u8>]) {
    for (i, w) in want.iter().enumerate() {
        let got = std::fs::read(f.path(&format!("{prefix}{i}"))).unwrap();
        assert!(got == *w, "{prefix}{i} differs");
    }
}

#[test]
fn a_write_is_readable_at_once_and_reaches_every_tier() {
    let Some(mut f) = Fixture::three_tiers("1GiB", "512MiB") else {
        return;
    };
    f.mount();
    let files = write_files(&f, "f", 5, 3 << 20, 1);
    check_files(&f, "f", &files);
    f.wait_until(60, "replication to nas and s3", |f| pending(f) == 0);
    let live = f.count("SELECT COUNT(*) FROM blocks WHERE refcount > 0");
    assert!(live > 0);
    assert_eq!(
        f.count(&format!(
            "SELECT COUNT(*) FROM blocks WHERE refcount > 0 AND tiers != {ALL}"
        )),
        0
    );
    assert_s3_holds_the_live_blocks(&f);
    let stat = f.ok(&["stat", f.path("f0").to_str().unwrap()]);
    assert!(stat.contains("0x7"), "{stat}");
    let x = xattr(&f.path("f0"), "user.fvfs.tiers");
    assert_eq!(x, "0x7");
}

fn xattr(path: &std::path::Path, name: &str) -> String {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(len >= 0, "getxattr: {}", std::io::Error::last_os_error());
    String::from_utf8_lossy(&buf[..len as usize]).into_owned()
}

#[test]
fn an_s3_outage_does_not_stop_writes_and_the_backlog_drains() {
    let Some(mut f) = Fixture::three_tiers("1GiB", "512MiB") else {
        return;
    };
    f.mount();
    let before = write_files(&f, "pre", 2, 1 << 20, 10);
    f.wait_until(60, "initial replication", |f| pending(f) == 0);
    f.rt.block_on(f.s3.stop());
    let start = std::time::Instant::now();
    let during = write_files(&f, "down", 4, 2 << 20, 20);
    check_files(&f, "down", &during);
    check_files(&f, "pre", &before);
    assert!(pending(&f) > 0, "copies to S3 wait in the queue");
    // Keep S3 down for 30 s in all.
    std::thread::sleep(Duration::from_secs(30).saturating_sub(start.elapsed()));
    // `fvfsd wal` shows the backlog with its attempts and last error.
    let text = f.ok(&["wal"]);
    assert!(
        text.contains("pending") && !text.starts_with("0 pending"),
        "{text}"
    );
    f.rt.block_on(f.s3.restart()).unwrap();
    f.wait_until(120, "the backlog to drain after S3 returns", |f| {
        pending(f) == 0
    });
    assert_eq!(
        f.count(&format!(
            "SELECT COUNT(*) FROM blocks WHERE refcount > 0 AND (tiers & {S3}) = 0"
        )),
        0
    );
    assert_s3_holds_the_live_blocks(&f);
}

/// Every live block is an object on S3, and every object on S3 is a known block. Garbage
/// (refcount 0) may be there too: a flush in the middle of a write (a process forked
/// meanwhile closes its copy of the descriptor at exec) stores a provisional block that
/// the next commit supersedes, and garbage stays until collection.
fn assert_s3_holds_the_live_blocks(f: &Fixture) {
    let objects: std::collections::HashSet<String> = f
        .s3_objects()
        .iter()
        .map(|o| o.file_name().unwrap().to_str().unwrap().to_uppercase())
        .collect();
    let db = f.db();
    let ids = |sql: &str| -> Vec<String> {
        let mut st = db.prepare(sql).unwrap();
        let rows = st.query_map([], |r| r.get::<_, String>(0)).unwrap();
        rows.map(|r| r.unwrap()).collect()
    };
    let live = ids("SELECT hex(id) FROM blocks WHERE refcount > 0");
    assert!(!live.is_empty());
    for id in &live {
        assert!(objects.contains(id), "live block {id} is not on S3");
    }
    let known: std::collections::HashSet<String> =
        ids("SELECT hex(id) FROM blocks").into_iter().collect();
    for o in &objects {
        assert!(known.contains(o), "object {o} on S3 is no known block");
    }
}

#[test]
fn kill_9_with_a_pending_queue_replays_it() {
    let Some(mut f) = Fixture::three_tiers("1GiB", "512MiB") else {
        return;
    };
    f.mount();
    f.rt.block_on(f.s3.stop());
    let files = write_files(&f, "k", 3, 2 << 20, 30);
    assert!(pending(&f) > 0);
    f.kill9();
    f.rt.block_on(f.s3.restart()).unwrap();
    f.mount();
    f.wait_until(60, "the queue replayed after restart", |f| pending(f) == 0);
    check_files(&f, "k", &files);
    assert_eq!(
        f.count(&format!(
            "SELECT COUNT(*) FROM blocks WHERE refcount > 0 AND tiers != {ALL}"
        )),
        0
    );
}

fn evicted(f: &Fixture) -> i64 {
    f.count("SELECT COALESCE(MAX(value), 0) FROM counters WHERE name = 'blocks_evicted'")
}

/// The hot-tier usage the evictor logged at the end of each of its passes, oldest first.
fn pass_ends(f: &Fixture) -> Vec<i64> {
    let log = std::fs::read_to_string(f.dir.path().join("mount.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("evicted blocks") && l.contains("tier=local"))
        .filter_map(|l| {
            l.split("used=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Writes 2 MiB files until the hot tier crossed its high watermark and the evictor ran
/// (bounded), then waits for its pass to end under the low watermark. A pass may run while
/// a file is still being written: blocks sealed after it lift usage above the low watermark
/// again, and rightly start no new pass while usage stays under the high one.
fn fill_past_high(f: &Fixture, prefix: &str, high: i64, low: i64) -> Vec<Vec<u8>> {
    let before = evicted(f);
    let passes_before = pass_ends(f).len();
    let mut written = Vec::new();
    for i in 0..40u64 {
        written.extend(write_files(
            f,
            &format!("{prefix}{i}-"),
            1,
            2 << 20,
            1000 + i,
        ));
        f.wait_until(60, "replication", |f| pending(f) == 0);
        if evicted(f) > before {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        evicted(f) > before,
        "the hot tier never passed its high watermark"
    );
    f.wait_until(60, "eviction under the low watermark", |f| {
        local_bytes(f) <= low
            || pass_ends(f)[passes_before..]
                .last()
                .is_some_and(|&u| u <= low)
    });
    assert!(
        local_bytes(f) < high,
        "the hot tier stayed over its high watermark"
    );
    written
}

fn local_bytes(f: &Fixture) -> i64 {
    f.count(
        "SELECT COALESCE(SUM(stored_size), 0) FROM blocks WHERE refcount > 0 AND (tiers & 1) != 0",
    )
}

#[test]
fn eviction_brings_the_hot_tier_under_its_low_watermark() {
    let Some(mut f) = Fixture::three_tiers("12MiB", "6MiB") else {
        return;
    };
    f.mount();
    let files = write_files(&f, "e", 8, 3 << 20, 40);
    f.wait_until(60, "replication", |f| pending(f) == 0);
    let more = fill_past_high(&f, "m", 12 << 20, 6 << 20);
    // Nothing left the hot tier without a durable copy.
    assert_eq!(
        f.count(&format!(
            "SELECT COUNT(*) FROM blocks WHERE refcount > 0 AND (tiers & {S3}) = 0"
        )),
        0
    );
    assert!(f.count("SELECT COUNT(*) FROM blocks WHERE refcount > 0 AND (tiers & 1) = 0") > 0);
    f.remount_cold();
    check_files(&f, "e", &files);
    for (i, w) in more.iter().enumerate() {
        assert!(std::fs::read(f.path(&format!("m{i}-0"))).unwrap() == *w);
    }
    assert!(f.ok(&["status"]).contains("blocks_evicted"));
}

#[test]
fn a_corrupt_hot_copy_is_read_from_a_colder_tier_and_repaired() {
    let Some(mut f) = Fixture::three_tiers("1GiB", "512MiB") else {
        return;
    };
    f.mount();
    let files = write_files(&f, "c", 1, 2 << 20, 50);
    f.wait_until(60, "replication", |f| pending(f) == 0);
    f.unmount();
    let mut corrupted = Vec::new();
    walk(&f.tier_dir("local").join("blocks"), &mut corrupted);
    assert!(!corrupted.is_empty());
    for o in &corrupted {
        let mut b = std::fs::read(o).unwrap();
        b[0] ^= 0xff;
        std::fs::write(o, b).unwrap();
    }
    let _ = std::fs::remove_dir_all(&f.cache);
    f.mount();
    check_files(&f, "c", &files);
    f.wait_until(30, "repair of the hot copies", |f| {
        f.count("SELECT COALESCE(MAX(value), 0) FROM counters WHERE name = 'corruptions_repaired'")
            >= corrupted.len() as i64
    });
    // The repaired objects equal the NAS copies.
    for o in &corrupted {
        let rel = o.strip_prefix(f.tier_dir("local")).unwrap();
        assert_eq!(
            std::fs::read(o).unwrap(),
            std::fs::read(f.tier_dir("nas").join(rel)).unwrap()
        );
    }
}

#[test]
fn a_pinned_file_stays_on_the_hot_tier() {
    let Some(mut f) = Fixture::three_tiers("10MiB", "5MiB") else {
        return;
    };
    f.mount();
    write_files(&f, "keep", 1, 3 << 20, 60);
    f.ok(&["pin", f.path("keep0").to_str().unwrap()]);
    fill_past_high(&f, "fill", 10 << 20, 5 << 20);
    assert_eq!(
        xattr(&f.path("keep0"), "user.fvfs.tiers"),
        "0x7",
        "the pinned file left the hot tier"
    );
    f.ok(&["unpin", f.path("keep0").to_str().unwrap()]);
    for round in 0..3 {
        fill_past_high(&f, &format!("more{round}-"), 10 << 20, 5 << 20);
        if xattr(&f.path("keep0"), "user.fvfs.tiers") != "0x7" {
            break;
        }
    }
    assert_ne!(
        xattr(&f.path("keep0"), "user.fvfs.tiers"),
        "0x7",
        "the unpinned file was never evicted"
    );
}

#[test]
fn the_scrubber_repairs_a_corrupt_warm_copy() {
    let Some(mut f) = Fixture::three_tiers("1GiB", "512MiB") else {
        return;
    };
    let cfg = f.config.clone().unwrap();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text = text.replace("[eviction]\n", "[eviction]\nscrub_blocks_per_sec = 500\n");
    std::fs::write(&cfg, &text).unwrap();
    f.mount();
    write_files(&f, "s", 1, 2 << 20, 90);
    f.wait_until(60, "replication", |f| pending(f) == 0);
    let mut objects = Vec::new();
    walk(&f.tier_dir("nas").join("blocks"), &mut objects);
    assert!(!objects.is_empty());
    let good: Vec<Vec<u8>> = objects.iter().map(|o| std::fs::read(o).unwrap()).collect();
    for o in &objects {
        let mut b = std::fs::read(o).unwrap();
        let last = b.len() - 1;
        b[last] ^= 0x55;
        std::fs::write(o, b).unwrap();
    }
    f.wait_until(60, "the scrubber to repair the warm copies", |f| {
        f.count("SELECT COALESCE(MAX(value), 0) FROM counters WHERE name = 'corruptions_repaired'")
            >= objects.len() as i64
    });
    for (o, g) in objects.iter().zip(&good) {
        assert!(
            std::fs::read(o).unwrap() == *g,
            "{} not repaired",
            o.display()
        );
    }
}

#[test]
fn adding_tiers_backfills_and_warmup_fills_the_hot_tier() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let files = write_files(&f, "w", 2, 3 << 20, 95);
    f.unmount();
    let local = f.dir.path().join("t-local");
    let nas = f.dir.path().join("t-nas");
    f.ok(&["tier", "add", "local", local.to_str().unwrap()]);
    // The old tier moved from bit 0 to bit 1.
    assert_eq!(
        f.count("SELECT COUNT(*) FROM blocks WHERE refcount > 0 AND tiers != 2"),
        0
    );
    let nas_arg = nas.to_str().unwrap();
    f.ok(&[
        "tier",
        "add",
        "nas",
        nas_arg,
        "--position",
        "1",
        "--keep-copy",
    ]);
    assert!(pending(&f) > 0, "the keep-copy tier is queued for backfill");
    let text = f.ok(&["tier", "list"]);
    assert!(
        text.contains("keep-copy") && text.contains("durable"),
        "{text}"
    );
    f.mount();
    f.wait_until(60, "backfill of the new tier", |f| pending(f) == 0);
    assert_eq!(
        f.count("SELECT COUNT(*) FROM blocks WHERE refcount > 0 AND (tiers & 2) = 0"),
        0
    );
    f.ok(&["warmup", f.path("w0").to_str().unwrap()]);
    assert_eq!(xattr(&f.path("w0"), "user.fvfs.tiers"), "0x7");
    check_files(&f, "w", &files);
}

#[test]
fn a_full_hot_tier_sends_writes_to_the_next_tier() {
    let Some(mut f) = Fixture::three_tiers("1GiB", "512MiB") else {
        return;
    };
    let local = f.tier_dir("local");
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&local)
        .status()
        .unwrap();
    assert!(st.success());
    f.mount();
    let files = write_files(&f, "full", 2, 3 << 20, 99);
    check_files(&f, "full", &files);
    f.wait_until(60, "replication", |f| pending(f) == 0);
    assert_eq!(
        f.count("SELECT COUNT(*) FROM blocks WHERE refcount > 0 AND (tiers & 1) != 0"),
        0,
        "nothing fits on the full hot tier"
    );
    f.remount_cold();
    check_files(&f, "full", &files);
    f.unmount();
    let _ = std::process::Command::new("umount").arg(&local).status();
}
