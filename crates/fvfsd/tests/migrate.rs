//! `fvfsd migrate` against a real filesystem on S3: dedup of the imported bytes, a re-run
//! that imports nothing, a changed source file rewritten, and the result checked through
//! a mount (content, mode, owner, mtime, symlink target).

mod common;
use common::{data, Fixture};
use std::collections::BTreeMap;
use std::fs::{File, FileTimes};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn at(secs: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, nanos)
}

fn set_times(p: &Path, mtime: SystemTime) {
    let f = File::open(p).unwrap();
    f.set_times(
        FileTimes::new()
            .set_modified(mtime)
            .set_accessed(at(1_500_000_000, 0)),
    )
    .unwrap();
}

fn write_file(p: &Path, content: &[u8], mode: u32, mtime: SystemTime) {
    std::fs::write(p, content).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    set_times(p, mtime);
}

/// The value of a summary line `label   N ...` of migrate's output.
fn field(out: &str, label: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} in output:\n{out}"));
    line[label.len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad line {line:?}"))
}

fn migrate(f: &Fixture, src: &Path) -> (String, bool) {
    let arg = format!("{}:/imp", src.display());
    let out = f.run(&[
        "migrate",
        "--meta",
        &f.meta_url,
        "--src",
        &arg,
        "--jobs",
        "3",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("migrate stdout:\n{stdout}\nmigrate stderr:\n{stderr}");
    (stdout, out.status.success())
}

/// Every non-directory entry under `root`, by relative path.
fn tree(root: &Path) -> BTreeMap<PathBuf, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.insert(p.strip_prefix(root).unwrap().to_path_buf(), p.clone());
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn imports_dedups_resumes_and_keeps_attributes() {
    let Some(mut f) = Fixture::new() else { return };
    let src = f.dir.path().join("src");
    let nested = src.join("a/b/c");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::create_dir_all(src.join("x")).unwrap();

    // 20 distinct contents, then duplicates of some of them under other names.
    let mut distinct = 0u64;
    let dirs = [src.clone(), src.join("a"), src.join("a/b"), nested.clone()];
    for i in 0..20u64 {
        let len = 1000 + i as usize * 7919;
        let content = data(len, i + 1);
        distinct += len as u64;
        let mode = if i % 3 == 0 { 0o755 } else { 0o640 };
        let dir = &dirs[i as usize % dirs.len()];
        write_file(
            &dir.join(format!("f{i}.bin")),
            &content,
            mode,
            at(1_600_000_000 + i * 3600, 123_456_789),
        );
        if i % 3 == 1 {
            write_file(
                &src.join("x").join(format!("dup{i}")),
                &content,
                0o600,
                at(1_650_000_000, 0),
            );
        }
    }
    let big = data(5 << 20, 1000);
    distinct += big.len() as u64;
    write_file(&src.join("big"), &big, 0o644, at(1_700_000_000, 5));
    write_file(&nested.join("big copy"), &big, 0o640, at(1_700_000_001, 0));
    write_file(&src.join("empty"), b"", 0o600, at(1_610_000_000, 0));
    std::os::unix::fs::chown(src.join("f0.bin"), Some(1234), Some(4321)).unwrap();
    std::os::unix::fs::symlink("a/b/f2.bin", src.join("link")).unwrap();
    std::os::unix::fs::symlink("/nowhere/dangling", nested.join("dangling")).unwrap();
    for (d, mode, t) in [
        (nested.clone(), 0o750, 1_620_000_000),
        (src.join("x"), 0o700, 1_630_000_000),
        (src.join("a"), 0o755, 1_640_000_000),
    ] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
        set_times(&d, at(t, 0));
    }
    let files = tree(&src)
        .values()
        .filter(|p| std::fs::symlink_metadata(p).unwrap().is_file())
        .count() as u64;
    assert!(files >= 28, "only {files} files");

    // First run: everything imported, each distinct content stored once.
    let before = f.stats();
    let (out, ok) = migrate(&f, &src);
    assert!(ok, "migrate failed");
    assert_eq!(field(&out, "files imported"), files);
    assert_eq!(field(&out, "files skipped"), 0);
    assert_eq!(field(&out, "symlinks"), 2);
    assert_eq!(field(&out, "errors"), 0);
    let after = f.stats();
    assert_eq!(
        after.unique_bytes - before.unique_bytes,
        distinct,
        "unique bytes are not the distinct contents"
    );
    assert_eq!(field(&out, "unique bytes added"), distinct);

    // Second run: nothing new.
    let (out, ok) = migrate(&f, &src);
    assert!(ok, "second migrate failed");
    assert_eq!(field(&out, "files imported"), 0);
    assert_eq!(field(&out, "files skipped"), files);
    assert_eq!(field(&out, "symlinks"), 0);
    assert_eq!(field(&out, "bytes read"), 0);
    assert_eq!(f.stats().unique_bytes, after.unique_bytes);

    // A source file changed (shorter, new mtime): only it is rewritten.
    let changed = src.join("a/b/f2.bin");
    let new_content = data(777, 5000);
    write_file(&changed, &new_content, 0o640, at(1_690_000_000, 42));
    let (out, ok) = migrate(&f, &src);
    assert!(ok, "third migrate failed");
    assert_eq!(field(&out, "files imported"), 1);
    assert_eq!(field(&out, "files skipped"), files - 1);
    assert_eq!(field(&out, "bytes read"), 777);

    // Through a mount: content, mode, owner, mtime, symlink targets.
    f.mount();
    let imp = f.mnt.join("imp");
    let want = tree(&src);
    let got = tree(&imp);
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "the imported tree differs"
    );
    for (rel, s) in &want {
        let d = &got[rel];
        let sm = std::fs::symlink_metadata(s).unwrap();
        let dm = std::fs::symlink_metadata(d).unwrap();
        assert_eq!(sm.file_type(), dm.file_type(), "{rel:?}: kind");
        assert_eq!((sm.uid(), sm.gid()), (dm.uid(), dm.gid()), "{rel:?}: owner");
        assert_eq!(sm.mtime(), dm.mtime(), "{rel:?}: mtime");
        if sm.is_symlink() {
            assert_eq!(
                std::fs::read_link(s).unwrap(),
                std::fs::read_link(d).unwrap(),
                "{rel:?}: target"
            );
            continue;
        }
        assert_eq!(sm.mode() & 0o7777, dm.mode() & 0o7777, "{rel:?}: mode");
        if sm.is_file() {
            assert!(
                std::fs::read(s).unwrap() == std::fs::read(d).unwrap(),
                "{rel:?}: content differs"
            );
        }
    }
    assert_eq!(std::fs::read(imp.join("a/b/f2.bin")).unwrap(), new_content);
    let top = std::fs::metadata(&imp).unwrap();
    assert_eq!(top.mtime(), std::fs::metadata(&src).unwrap().mtime());

    // While mounted, a migration is refused with a clear message.
    let arg = format!("{}:/imp", src.display());
    let out = f.run(&["migrate", "--meta", &f.meta_url, "--src", &arg]);
    assert!(!out.status.success(), "migrate ran while mounted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mounted"), "unclear error: {err}");
}
