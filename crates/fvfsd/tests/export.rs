//! `fvfsd export --parquet DIR` end to end, read back by DuckDB (the Python package that
//! scripts/test.sh installs): an empty filesystem first (0 catalog rows), then an HSM
//! catalog with an archived and a released file (`fvfsd hsm run` on a loop-mounted ext4
//! image) and a namespace written through a live FUSE mount, exported while that mount
//! runs. Row counts and sampled values (paths, sizes, modes, owners, mtimes, tiers,
//! blocks, states, hashes) must equal what the mount, `fvfsd stat` and `fvfsd hsm
//! ls|status` report. Root only (FUSE, fanotify). Without duckdb the test skips, unless
//! FVFS_REQUIRE_PRIVILEGED=1 or CI=true, where it fails.

mod common;

use common::Fixture;
use fvfs_testkit::Ext4Image;
use serde_json::{json, Value};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `sql` in DuckDB; the rows as JSON arrays.
fn duckdb(sql: &str) -> Vec<Value> {
    const SCRIPT: &str = "import duckdb, json, sys\n\
        print(json.dumps(duckdb.sql(sys.argv[1]).fetchall()))";
    let out = Command::new("python3")
        .args(["-c", SCRIPT, sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "duckdb: {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

/// Whether DuckDB's Python package is here; panics when the test must run.
fn have_duckdb() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import duckdb"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let must = std::env::var("FVFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1")
            || std::env::var("CI").as_deref() == Ok("true");
        assert!(
            !must,
            "the duckdb Python package is missing (python3 -m pip install duckdb; scripts/test.sh installs it)"
        );
        eprintln!("SKIP: needs the duckdb Python package (python3 -m pip install duckdb)");
    }
    ok
}

/// `fvfsd export --parquet DIR`; its stdout.
fn export(f: &Fixture, dir: &Path) -> String {
    f.ok(&["export", "--parquet", dir.to_str().unwrap()])
}

fn count(file: &Path) -> u64 {
    duckdb(&format!("SELECT count(*) FROM '{}'", file.display()))[0][0]
        .as_u64()
        .unwrap()
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn hsm_run(f: &Fixture) -> Daemon {
    let log = f.dir.path().join("hsm.log");
    let child = f
        .fvfsd()
        .args(["hsm", "run", "--meta", &f.meta_url])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon(child);
    f.wait_until(30, "fvfsd hsm run to start", |_| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("fvfs HSM running")
    });
    d
}

/// `fvfsd hsm ARGS` succeeds within a minute (a release waits for durability).
fn hsm_until_ok(f: &Fixture, args: &[&str]) -> String {
    let mut all = vec!["hsm"];
    all.extend(args);
    all.extend(["--meta", &f.meta_url]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = f.run(&all);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "fvfsd {}: {}",
            all.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The names below `dir` (symlinks not followed), as the walk counts them.
fn names_below(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        n += 1;
        if e.file_type().unwrap().is_dir() {
            n += names_below(&e.path());
        }
    }
    n
}

/// The value after `key` in `fvfsd stat` output ("inode    5 (…)" → "5 (…)").
fn field<'a>(stat: &'a str, key: &str) -> &'a str {
    stat.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {stat}"))
        .trim()
}

fn micros(m: &std::fs::Metadata) -> i64 {
    (m.mtime() * 1_000_000_000 + m.mtime_nsec()).div_euclid(1000)
}

#[test]
fn the_parquet_export_reads_back_in_duckdb_equal_to_the_catalog() {
    if !have_duckdb() {
        return;
    }
    let Some(mut f) = Fixture::new() else {
        return;
    };
    let out = f.dir.path().join("export");
    let ns = out.join("namespace.parquet");
    let hsm = out.join("hsm.parquet");

    // A new filesystem: the root alone, an empty catalog (a valid file with 0 rows).
    let printed = export(&f, &out);
    assert!(printed.contains("namespace.parquet 1 rows"), "{printed}");
    assert!(printed.contains("hsm.parquet 0 rows"), "{printed}");
    assert_eq!(count(&ns), 1);
    assert_eq!(count(&hsm), 0);
    let cols = duckdb(&format!(
        "SELECT column_name FROM (DESCRIBE SELECT * FROM '{}')",
        hsm.display()
    ));
    assert_eq!(cols.len(), 12, "{cols:?}");

    // The HSM catalog: one file archived, one released.
    let img = Ext4Image::mount(64).unwrap();
    let media = img.mnt().join("media");
    std::fs::create_dir(&media).unwrap();
    let media = media.canonicalize().unwrap();
    hsm_until_ok(&f, &["add", media.to_str().unwrap()]);
    let kept = media.join("kept.bin");
    let gone = media.join("stub.bin");
    let kept_data = common::data(3 << 20, 1);
    let gone_data = common::data(1 << 20, 2);
    std::fs::write(&kept, &kept_data).unwrap();
    std::fs::write(&gone, &gone_data).unwrap();
    {
        let _daemon = hsm_run(&f);
        hsm_until_ok(&f, &["archive", kept.to_str().unwrap()]);
        hsm_until_ok(&f, &["archive", gone.to_str().unwrap()]);
        hsm_until_ok(&f, &["release", gone.to_str().unwrap()]);
    }
    let ls = hsm_until_ok(&f, &["ls"]);
    let catalog: Vec<Vec<&str>> = ls.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(catalog.len(), 2, "{ls}");

    // The namespace, written through a live mount.
    f.mount();
    std::fs::create_dir_all(f.path("docs/deep")).unwrap();
    let big = common::data(1 << 20, 3);
    std::fs::write(f.path("docs/a.bin"), &big).unwrap();
    std::fs::set_permissions(f.path("docs/a.bin"), PermissionsExt::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(f.path("docs/a.bin"), Some(1234), Some(5678)).unwrap();
    let small = b"a small file: one block";
    std::fs::write(f.path("docs/deep/b.txt"), small).unwrap();
    std::fs::write(f.path("empty"), b"").unwrap();
    std::os::unix::fs::symlink("docs/a.bin", f.path("link")).unwrap();
    let names = names_below(&f.mnt);

    // Exported beside the running mount.
    let printed = export(&f, &out);
    assert!(
        printed.contains(&format!("namespace.parquet {} rows", names + 1)),
        "{printed}"
    );
    let mut left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["hsm.parquet", "namespace.parquet"],
        "no temporary file"
    );

    // Namespace: one row per name, plus the root.
    assert_eq!(count(&ns), names as u64 + 1);
    assert_eq!(
        names, 6,
        "docs, docs/a.bin, docs/deep, docs/deep/b.txt, empty, link"
    );
    let q = |path: &str| {
        let rows = duckdb(&format!(
            "SELECT ino, kind, size, mode, uid, gid, nlink, epoch_us(mtime), tier_mask, \
             array_to_string(tiers, '+'), pinned, blocks FROM '{}' WHERE path = '{path}'",
            ns.display()
        ));
        assert_eq!(rows.len(), 1, "{path}: {rows:?}");
        rows[0].clone()
    };
    let a = q("/docs/a.bin");
    let stat = f.ok(&["stat", "/docs/a.bin"]);
    let m = std::fs::symlink_metadata(f.path("docs/a.bin")).unwrap();
    assert_eq!(a[0], json!(m.ino()), "ino");
    assert_eq!(
        field(&stat, "inode"),
        format!("{} (File, mode 640, uid 1234, gid 5678)", m.ino())
    );
    assert_eq!(a[1], json!("file"));
    assert_eq!(a[2], json!(big.len()));
    assert_eq!(a[3], json!(0o640));
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    assert_eq!(a[4], json!(m.uid()));
    assert_eq!(a[5], json!(m.gid()));
    assert_eq!(a[6], json!(1));
    assert_eq!(a[7], json!(micros(&m)), "mtime");
    // "tiers    0x1 (NAME: every block), …"
    let tiers = field(&stat, "tiers");
    let (mask, rest) = tiers.split_once(" (").unwrap();
    assert_eq!(a[8], json!(u32::from_str_radix(&mask[2..], 16).unwrap()));
    assert_eq!(a[9], json!(rest.split_once(':').unwrap().0));
    assert_eq!(a[10], json!(false));
    let n_blocks: usize = field(&stat, "blocks")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let listed = a[11].as_array().unwrap();
    assert_eq!(listed.len(), n_blocks, "{stat}");
    assert!(listed.iter().all(|h| h.as_str().unwrap().len() == 64
        && h.as_str().unwrap().bytes().all(|c| c.is_ascii_hexdigit())));

    // A file smaller than a block is one block: the BLAKE3 of its bytes.
    let b = q("/docs/deep/b.txt");
    assert_eq!(b[2], json!(small.len()));
    assert_eq!(b[11], json!([blake3::hash(small).to_hex().to_string()]));
    let e = q("/empty");
    assert_eq!((&e[2], &e[8], &e[11]), (&json!(0), &json!(0), &json!([])));
    let l = q("/link");
    assert_eq!(
        (&l[1], &l[2]),
        (&json!("symlink"), &json!("docs/a.bin".len()))
    );
    assert_eq!(q("/docs/deep")[1], json!("dir"));
    assert_eq!(q("/")[1], json!("dir"));

    // HSM: one row per catalog entry, the values `hsm ls` and `hsm status` show.
    assert_eq!(count(&hsm), 2);
    for (file, data) in [(&kept, &kept_data), (&gone, &gone_data)] {
        let line = catalog
            .iter()
            .find(|l| l[3] == file.to_str().unwrap())
            .unwrap_or_else(|| panic!("{} not in {ls}", file.display()));
        let rows = duckdb(&format!(
            "SELECT id, state, size, path, dir, recorded_path, hash, block_count, pinned, \
             epoch_us(mtime), archived_at IS NOT NULL, last_recall IS NULL \
             FROM '{}' WHERE id = {}",
            hsm.display(),
            line[0]
        ));
        assert_eq!(rows.len(), 1, "{rows:?}");
        let r = &rows[0];
        assert_eq!(r[0], json!(line[0].parse::<u64>().unwrap()));
        assert_eq!(r[1], json!(line[1]), "state");
        assert_eq!(r[2], json!(line[2].parse::<u64>().unwrap()));
        assert_eq!(r[2], json!(data.len()));
        assert_eq!(r[3], json!(line[3]), "current path");
        assert_eq!(r[4], json!(media.to_str().unwrap()));
        assert_eq!(r[5], json!(file.file_name().unwrap().to_str().unwrap()));
        assert_eq!(r[6], json!(blake3::hash(data).to_hex().to_string()), "hash");
        let status = hsm_until_ok(&f, &["status", file.to_str().unwrap()]);
        assert!(
            status.contains(&format!(" blocks={}", r[7])),
            "{status} vs {r:?}"
        );
        assert_eq!(
            (&r[8], &r[10], &r[11]),
            (&json!(false), &json!(true), &json!(true))
        );
        if file == &kept {
            assert_eq!(r[1], json!("archived"));
            assert_eq!(
                r[9],
                json!(micros(&std::fs::metadata(file).unwrap())),
                "mtime"
            );
        } else {
            assert_eq!(r[1], json!("released"));
        }
    }
    f.unmount();
}
