//! `fvfsd gc [--dry-run]` on a real filesystem over the S3 test server: after deletes,
//! the dry run lists exactly the unreferenced blocks and the leaked objects (block
//! objects no row claims, older than the grace), deletes nothing, and runs beside a
//! mount; `gc` then reclaims exactly their bytes on the tier, leaves young objects and
//! every live file alone.

mod common;

use common::{data, Fixture};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Bytes of every block object in the bucket.
fn tier_bytes(f: &Fixture) -> u64 {
    f.s3_objects()
        .iter()
        .map(|p| std::fs::metadata(p).expect("stat object").len())
        .sum()
}

/// Puts a block object no row claims straight into the S3 server's directory, last
/// written `age` ago.
fn plant(f: &Fixture, seed: u8, len: usize, age: Duration) -> (String, PathBuf) {
    let hex: String = (0..32)
        .map(|i| format!("{:02x}", seed ^ (i * 7) as u8))
        .collect();
    let dir: PathBuf =
        f.s3.root()
            .join(&f.s3.bucket)
            .join(&f.prefix)
            .join("blocks")
            .join(&hex[0..2])
            .join(&hex[2..4]);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let p = dir.join(&hex);
    std::fs::write(&p, vec![seed; len]).expect("plant");
    let file = std::fs::File::options().write(true).open(&p).expect("open");
    file.set_modified(SystemTime::now() - age).expect("mtime");
    (hex, p)
}

/// The ids of lines `<kind>  <id>  …` in gc output.
fn listed(out: &str, kind: &str) -> BTreeSet<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix(kind))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn gc(f: &Fixture, args: &[&str]) -> String {
    let mut all = vec!["gc"];
    all.extend_from_slice(args);
    f.ok(&all)
}

#[test]
fn gc_lists_exactly_the_garbage_and_leaks_then_reclaims_their_bytes() {
    let Some(mut f) = Fixture::new() else { return };
    f.trash_off();
    f.mount();
    let keep = data(3 << 20, 1);
    std::fs::write(f.path("keep"), &keep).expect("write keep");
    std::fs::write(f.path("gone1"), data(2 << 20, 2)).expect("write gone1");
    std::fs::write(f.path("gone2"), data(700_000, 3)).expect("write gone2");
    f.unmount();
    f.mount();
    std::fs::remove_file(f.path("gone1")).expect("rm");
    std::fs::remove_file(f.path("gone2")).expect("rm");
    f.unmount();

    // What the metadata says is garbage now, with its stored bytes.
    let (garbage, garbage_bytes) = {
        // Through the store, so the test runs on either engine (FVFS_TEST_META).
        let rows = fvfs_meta::open(&f.meta_url, false)
            .expect("open the metadata")
            .garbage_blocks(usize::MAX, i64::MAX)
            .expect("garbage rows");
        let bytes = rows.iter().map(|r| r.stored_size as u64).sum::<u64>();
        (
            rows.into_iter()
                .map(|r| r.id.to_hex())
                .collect::<BTreeSet<_>>(),
            bytes,
        )
    };
    assert!(garbage.len() >= 2, "the deletes freed blocks: {garbage:?}");
    let (old_leak, old_path) = plant(&f, 0xa5, 5000, Duration::from_secs(7200));
    let (_, young_path) = plant(&f, 0x3c, 7000, Duration::ZERO);
    let before = tier_bytes(&f);

    // A dry run beside a mount lists and deletes nothing. With the default grace (2 h)
    // the just-freed blocks and the new object are too young; the 2 h old one is not.
    f.mount();
    let out = gc(&f, &["--dry-run"]);
    assert!(listed(&out, "garbage").is_empty(), "{out}");
    assert_eq!(
        listed(&out, "leaked"),
        BTreeSet::from([old_leak.clone()]),
        "{out}"
    );
    assert!(
        out.contains("1 object(s) without a row younger than the grace"),
        "{out}"
    );
    assert!(out.contains("dry run: nothing deleted"), "{out}");
    f.unmount();
    assert_eq!(tier_bytes(&f), before);

    // With no grace: every freed block and both objects; with 10 min: the old one only.
    let young = young_path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let out = gc(&f, &["--dry-run", "--grace-secs", "0"]);
    assert_eq!(listed(&out, "garbage"), garbage, "{out}");
    assert_eq!(
        listed(&out, "leaked"),
        BTreeSet::from([old_leak.clone(), young.clone()]),
        "{out}"
    );
    let out = gc(&f, &["--dry-run", "--grace-secs", "600"]);
    assert!(listed(&out, "garbage").is_empty(), "{out}");
    assert_eq!(listed(&out, "leaked"), BTreeSet::from([old_leak]), "{out}");
    assert_eq!(tier_bytes(&f), before);

    // The real run reclaims exactly those bytes on the tier.
    let out = gc(&f, &["--grace-secs", "0"]);
    assert!(
        out.contains(&format!("deleted {} garbage block(s)", garbage.len())),
        "{out}"
    );
    assert!(!old_path.exists() && !young_path.exists(), "{out}");
    assert_eq!(tier_bytes(&f), before - garbage_bytes - 5000 - 7000);
    let out = gc(&f, &["--dry-run", "--grace-secs", "0"]);
    assert!(
        listed(&out, "garbage").is_empty() && listed(&out, "leaked").is_empty(),
        "{out}"
    );

    f.mount();
    assert!(std::fs::read(f.path("keep")).expect("read keep") == keep);
    f.unmount();
    f.assert_fsck_clean("after gc");
}

/// Embedded: deleting needs the filesystem unmounted (a mount's uncommitted writes may
/// rely on what looks like garbage); the refusal says so. Shared (PostgreSQL): gc runs
/// beside the mounts, as their own GC workers do, with a grace of at least an hour.
#[test]
fn gc_refuses_to_delete_beside_a_mount() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let out = f.run(&["gc", "--meta", &f.meta_url]);
    let said = String::from_utf8_lossy(&out.stderr);
    if f.meta_url.starts_with("postgres://") {
        assert_eq!(out.status.code(), Some(0), "{said}");
        let out = f.run(&["gc", "--meta", &f.meta_url, "--grace-secs", "60"]);
        assert_eq!(out.status.code(), Some(1));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("--grace-secs 3600 or more"), "{said}");
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(said.contains("unmount the filesystem first"), "{said}");
    }
    f.unmount();
}
