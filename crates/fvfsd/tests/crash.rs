//! Crash safety and consistency checks: kill -9 after fsync, fsck on injected damage.

mod common;
use common::{data, Fixture};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

#[test]
fn kill_9_after_fsync_loses_no_fsynced_byte() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let a = data(9 << 20, 1);
    let mut file = std::fs::File::create(f.path("synced")).unwrap();
    file.write_all(&a).unwrap();
    file.sync_all().unwrap();
    // An overwrite in the middle, fsynced too.
    file.seek(SeekFrom::Start(1_000_000)).unwrap();
    file.write_all(b"fsynced overwrite").unwrap();
    file.sync_all().unwrap();
    // Unsynced appends may be lost but must not corrupt what was synced.
    file.seek(SeekFrom::End(0)).unwrap();
    file.write_all(&data(1 << 20, 2)).unwrap();
    f.kill9();
    drop(file);
    f.mount();
    assert_eq!(
        f.count("SELECT COUNT(*) FROM sessions"),
        1,
        "the dead session was ended"
    );
    let got = std::fs::read(f.path("synced")).unwrap();
    let mut want = a.clone();
    want[1_000_000..1_000_017].copy_from_slice(b"fsynced overwrite");
    assert!(got.len() >= want.len());
    assert!(
        got[..want.len()] == want[..],
        "fsynced bytes differ after kill -9"
    );
}

#[test]
fn fsck_finds_and_repairs_a_dangling_block_reference() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    std::fs::write(f.path("good"), data(2 << 20, 3)).unwrap();
    f.unmount();
    let out = f.run(&["fsck", "--meta", &f.meta_url]);
    assert!(
        out.status.success(),
        "clean fs: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A slice pointing at a block that has no row and no object.
    let ino: i64 = f
        .db()
        .query_row("SELECT ino FROM inodes WHERE kind = 1 LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut blob = vec![0xabu8; 32];
    blob.extend_from_slice(&10u32.to_le_bytes());
    f.db()
        .execute(
            "INSERT INTO slices (ino, chunk, pos, len, zero, blocks) VALUES (?1, 0, 0, 10, 0, ?2)",
            rusqlite::params![ino, blob],
        )
        .unwrap();
    let out = f.run(&["fsck", "--meta", &f.meta_url]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("DANGLING"), "{text}");

    let out = f.run(&["fsck", "--meta", &f.meta_url, "--repair"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = f.run(&["fsck", "--meta", &f.meta_url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn fsck_finds_a_missing_block_object() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    std::fs::write(f.path("x"), data(1 << 20, 4)).unwrap();
    f.unmount();
    for o in f.s3_objects() {
        std::fs::remove_file(o).unwrap();
    }
    let out = f.run(&["fsck", "--meta", &f.meta_url]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("MISSING"), "{text}");
}

/// The write shapes of docs/SEMANTICS.md ("Two write shapes").
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// S3 is the only tier: fsync stores blocks on S3.
    S3Only,
    /// A local hottest tier in front of S3: fsync is acknowledged from the write journal.
    LocalHot,
    /// S3 only with `[upload] writeback = true`: acknowledged from the journal too.
    S3Writeback,
}

fn shaped(shape: Shape) -> Option<Fixture> {
    match shape {
        Shape::S3Only => Fixture::new(),
        Shape::LocalHot => {
            let hot = tempfile::Builder::new()
                .prefix("fvfs-hot-")
                .tempdir_in("/var/tmp")
                .unwrap();
            let tier = format!("hot={}", hot.path().display());
            let mut f = Fixture::with_format_args(&["--tier", &tier])?;
            f.extra_dirs.push(hot);
            Some(f)
        }
        Shape::S3Writeback => {
            let mut f = Fixture::new()?;
            let cfg = f.dir.path().join("fvfs.toml");
            std::fs::write(&cfg, "[upload]\nwriteback = true\n").unwrap();
            f.config = Some(cfg);
            Some(f)
        }
    }
}

/// What one writer of the storm saw acknowledged before the kill.
enum Acked {
    /// An appended file: its first `len` bytes of `data(MAX, seed)` were fsynced.
    Appended { name: String, seed: u64, len: usize },
    /// A small file created, written, fsynced and closed whole.
    Small { name: String, seed: u64, len: usize },
}

/// Bytes an appender may write: more than a storm of 1.5 s can reach in any shape.
const STORM_FILE_MAX: usize = 192 << 20;

/// Three appenders (appends of 1 B to 256 KiB, each followed by fsync) and a creator of
/// small fsynced files run until the daemon is killed; each records what an fsync
/// acknowledged. Bounded: at most 5,000 steps per writer and 20 s.
fn storm_until_killed(f: &mut Fixture) -> Vec<Acked> {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    // Writers name files through a descriptor of the mount's root: after the kill (and
    // the lazy unmount) their calls fail instead of landing in the bare mountpoint.
    let root = std::fs::File::open(&f.mnt).unwrap();
    let at = |name: &str| PathBuf::from(format!("/proc/self/fd/{}/{name}", root.as_raw_fd()));
    let mut threads = Vec::new();
    for w in 0..3u64 {
        let (stop, acks) = (stop.clone(), acks.clone());
        let (name, path) = (format!("append{w}"), at(&format!("append{w}")));
        threads.push(std::thread::spawn(move || {
            let seed = 100 + w;
            let all = data(STORM_FILE_MAX, seed);
            let mut acked = 0;
            let Ok(mut file) = std::fs::File::create(&path) else {
                return vec![];
            };
            let mut x = seed;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            for _ in 0..5000 {
                if stop.load(Ordering::SeqCst) || std::time::Instant::now() > deadline {
                    break;
                }
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let n = ((x >> 33) as usize % (256 << 10)).max(1);
                let end = (acked + n).min(STORM_FILE_MAX);
                if end == acked
                    || file.write_all(&all[acked..end]).is_err()
                    || file.sync_all().is_err()
                {
                    break;
                }
                acked = end;
                acks.fetch_add(1, Ordering::SeqCst);
            }
            if acked == 0 {
                return vec![];
            }
            vec![Acked::Appended {
                name,
                seed,
                len: acked,
            }]
        }));
    }
    {
        let (stop, acks, dir) = (stop.clone(), acks.clone(), at(""));
        threads.push(std::thread::spawn(move || {
            let mut out = Vec::new();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            for i in 0..5000u64 {
                if stop.load(Ordering::SeqCst) || std::time::Instant::now() > deadline {
                    break;
                }
                let name = format!("small{i}");
                let len = 1 + (i as usize * 997) % (16 << 10);
                let bytes = data(len, 1000 + i);
                let stored = std::fs::File::create(dir.join(&name)).and_then(|mut file| {
                    file.write_all(&bytes[..len])?;
                    file.sync_all()
                });
                if stored.is_err() {
                    break;
                }
                acks.fetch_add(1, Ordering::SeqCst);
                out.push(Acked::Small {
                    name,
                    seed: 1000 + i,
                    len,
                });
            }
            out
        }));
    }
    // The kill comes 1.5 s into the storm, once it is acknowledging (bounded: 30 s).
    let t0 = std::time::Instant::now();
    while acks.load(Ordering::SeqCst) < 8 && t0.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    f.kill9();
    stop.store(true, Ordering::SeqCst);
    let acked = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    drop(root);
    acked
}

/// kill -9 under a write storm: after the remount every byte an fsync acknowledged reads
/// back, in each write shape.
fn storm_loses_no_acknowledged_byte(shape: Shape) {
    let Some(mut f) = shaped(shape) else { return };
    f.mount();
    let acked = storm_until_killed(&mut f);
    f.mount();
    let (mut appended, mut small) = (0, 0);
    for a in &acked {
        match a {
            Acked::Appended { name, seed, len } => {
                let got = std::fs::read(f.path(name)).unwrap();
                let want = data(STORM_FILE_MAX, *seed);
                assert!(got.len() >= *len, "{shape:?} {name}: {} < {len}", got.len());
                assert!(
                    got[..*len] == want[..*len],
                    "{shape:?} {name}: fsynced bytes differ"
                );
                assert!(
                    got[..] == want[..got.len()],
                    "{shape:?} {name}: bytes past the fsync are not what was written"
                );
                appended += len;
            }
            Acked::Small { name, seed, len } => {
                let got = std::fs::read(f.path(name)).unwrap();
                assert!(
                    got[..] == data(*len, *seed)[..*len],
                    "{shape:?} {name} differs"
                );
                small += 1;
            }
        }
    }
    eprintln!("{shape:?}: {appended} appended bytes and {small} small files acknowledged");
    assert!(
        appended > 0 && small > 0,
        "the storm acknowledged something"
    );
    f.unmount();
    let out = f.run(&["fsck", "--meta", &f.meta_url]);
    assert!(
        out.status.success(),
        "fsck after the storm: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kill_9_under_a_write_storm_on_s3_only() {
    storm_loses_no_acknowledged_byte(Shape::S3Only);
}

#[test]
fn kill_9_under_a_write_storm_with_a_local_hot_tier() {
    storm_loses_no_acknowledged_byte(Shape::LocalHot);
}

#[test]
fn kill_9_under_a_write_storm_in_write_back_mode() {
    storm_loses_no_acknowledged_byte(Shape::S3Writeback);
}
