//! The metadata disaster drill: a host loses its metadata database and its local cache;
//! `fvfsd restore` rebuilds it from the S3 tier alone (the backup `fvfsd backup` made),
//! and every file comes back byte-identical with its mode, mtime and POSIX ACLs.

mod common;

use common::{data, Fixture};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// What one file of the tree must look like after the restore.
struct Expect {
    rel: PathBuf,
    len: usize,
    seed: u64,
    mode: u32,
    mtime: (i64, i64),
}

fn stat_of(p: &Path) -> (u32, (i64, i64)) {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (m.mode() & 0o7777, (m.mtime(), m.mtime_nsec()))
}

/// `getfacl -Rnc acl` run in `mnt`.
fn acls(mnt: &Path) -> String {
    let out = std::process::Command::new("getfacl")
        .args(["-Rnc", "acl"])
        .current_dir(mnt)
        .output()
        .expect("getfacl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn count_entries(dir: &Path) -> (usize, usize) {
    let (mut files, mut dirs) = (0, 0);
    for e in std::fs::read_dir(dir).expect("readdir") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_dir() {
            dirs += 1;
            let (f, d) = count_entries(&e.path());
            files += f;
            dirs += d;
        } else {
            files += 1;
        }
    }
    (files, dirs)
}

#[test]
fn restore_from_tier_after_losing_metadata_and_cache() {
    // Three tiers: the drill loses the hot and warm tiers too and rebuilds from S3 alone.
    let Some(mut f) = Fixture::three_tiers("1GiB", "512MiB") else {
        return;
    };
    f.mount();

    // ---- a tree of 520 files in 40 nested directories ----
    let explicit_mtime = UNIX_EPOCH + Duration::new(1_234_567_890, 123_456_789);
    let mut files = Vec::new();
    for i in 0..520u64 {
        let dir = PathBuf::from(format!("d{}/s{}", i % 8, (i / 8) % 5));
        let rel = dir.join(format!("f{i:03}.bin"));
        let (len, seed) = match i {
            // Big files, cut into several blocks.
            _ if i % 100 == 7 => ((1 << 20) + (i as usize * 7919) % (4 << 20), 1000 + i),
            // Duplicates of earlier content (dedup across files and directories).
            _ if i % 13 == 0 && i > 0 => (3000 + (i as usize % 5) * 1000, 42),
            _ if i % 97 == 1 => ((1 << 20) + 12_345, 7),
            _ => ((i as usize * 131) % 9000, 5000 + i),
        };
        let abs = f.path(&rel.display().to_string());
        std::fs::create_dir_all(abs.parent().expect("parent")).expect("mkdir");
        std::fs::write(&abs, data(len, seed)).expect("write");
        if i % 50 == 3 {
            std::fs::set_permissions(&abs, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        if i % 40 == 9 {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&abs)
                .expect("open");
            file.set_modified(explicit_mtime).expect("set mtime");
        }
        files.push((i, rel, len, seed));
    }
    std::fs::set_permissions(f.path("d3"), std::fs::Permissions::from_mode(0o700))
        .expect("chmod dir");
    // POSIX ACLs: a default ACL, an inherited one and one set on a file.
    let st = std::process::Command::new("bash")
        .args([
            "-euc",
            "mkdir acl; setfacl -d -m u:1000:rwx acl; printf x > acl/f
             setfacl -m u:1001:r,g:100:rw acl/f; touch acl/inherited",
        ])
        .current_dir(&f.mnt)
        .status()
        .expect("bash");
    assert!(st.success(), "setting ACLs failed");
    let acls_before = acls(&f.mnt);
    for entry in ["user:1001:r--", "group:100:rw-", "default:user:1000:rwx"] {
        assert!(
            acls_before.lines().any(|l| l == entry),
            "{entry}: {acls_before}"
        );
    }
    // What the filesystem says before the disaster is what it must say after.
    let expected: Vec<Expect> = files
        .into_iter()
        .map(|(i, rel, len, seed)| {
            let (mode, mtime) = stat_of(&f.path(&rel.display().to_string()));
            if i % 50 == 3 {
                assert_eq!(mode, 0o600, "{}", rel.display());
            }
            if i % 40 == 9 {
                assert_eq!(mtime, (1_234_567_890, 123_456_789), "{}", rel.display());
            }
            Expect {
                rel,
                len,
                seed,
                mode,
                mtime,
            }
        })
        .collect();
    let dirs_before: Vec<(String, u32, (i64, i64))> = (0..8)
        .map(|d| {
            let name = format!("d{d}");
            let (mode, mtime) = stat_of(&f.path(&name));
            (name, mode, mtime)
        })
        .collect();
    let counts_before = count_entries(&f.mnt);
    assert_eq!(counts_before, (522, 49));
    f.wait_until(120, "every block replicated to S3", |f| {
        f.count("SELECT COUNT(*) FROM wal_pending") == 0
    });
    f.unmount();

    // ---- back up, then lose the host's metadata and cache ----
    // Two seconds after the unmount's last shipped segment, so that the backup is the
    // newest restore point and `restore` without `--backup` picks it over the shipped log.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let out = f.run(&["backup", "--meta", &f.meta_url]);
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let key = stdout
        .split_whitespace()
        .find(|w| w.starts_with("meta/backup-"))
        .unwrap_or_else(|| panic!("no backup key in {stdout:?}"))
        .to_string();
    let db = f.dir.path().join("meta.db");
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            std::fs::remove_file(&p).expect("delete metadata");
        }
    }
    std::fs::remove_dir_all(&f.cache).expect("delete cache");
    std::fs::remove_dir_all(f.tier_dir("local")).expect("delete the hot tier");
    std::fs::remove_dir_all(f.tier_dir("nas")).expect("delete the warm tier");
    assert!(!db.exists());

    // ---- restore from the tier alone ----
    let loc = f.location();
    let out = f.run(&["restore", "--from", &loc, "--meta", &f.meta_url]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "restore failed: {stderr}");
    assert!(
        stdout.contains(&key),
        "restored the latest backup: {stdout}"
    );
    assert!(stdout.contains("inodes"), "{stdout}");
    assert!(!stderr.contains("warning"), "unexpected warning: {stderr}");
    assert!(db.exists());
    // A second restore does not overwrite the database without --force.
    let out = f.run(&["restore", "--from", &loc, "--meta", &f.meta_url]);
    assert!(
        !out.status.success(),
        "restore over an existing db must need --force"
    );
    // A named backup restores elsewhere too.
    let other = format!("sqlite://{}/other/meta.db", f.dir.path().display());
    let out = f.run(&[
        "restore", "--from", &loc, "--meta", &other, "--backup", &key,
    ]);
    assert!(
        out.status.success(),
        "named restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // ---- every file is back, read from S3 (the cache is gone) ----
    f.mount();
    assert_eq!(count_entries(&f.mnt), counts_before);
    for e in &expected {
        let p = f.path(&e.rel.display().to_string());
        let got = std::fs::read(&p).unwrap_or_else(|err| panic!("read {}: {err}", p.display()));
        assert!(
            got.len() == e.len && got == data(e.len, e.seed),
            "{} differs after restore",
            e.rel.display()
        );
        let (mode, mtime) = stat_of(&p);
        assert_eq!(mode, e.mode, "mode of {}", e.rel.display());
        assert_eq!(mtime, e.mtime, "mtime of {}", e.rel.display());
    }
    for (name, mode, mtime) in &dirs_before {
        assert_eq!(stat_of(&f.path(name)), (*mode, *mtime), "dir {name}");
    }
    assert_eq!(acls(&f.mnt), acls_before, "ACLs after restore");
    assert_eq!(std::fs::read(f.path("acl/f")).expect("read acl/f"), b"x");
    // The restored filesystem is writable.
    std::fs::write(f.path("after-restore"), b"new").expect("write after restore");
    f.unmount();
    let fsck = f.run(&["fsck", "--meta", &f.meta_url]);
    assert!(
        fsck.status.success(),
        "fsck after restore: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
}
