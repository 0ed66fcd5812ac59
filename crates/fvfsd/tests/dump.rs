//! `fvfsd dump` and `fvfsd load` through the real binary and mount: a tree written
//! through the mount, dumped, loaded into a new database and mounted from it reads back
//! byte for byte with its names, modes, owners, mtimes, xattrs, symlinks and hard links;
//! dumping the loaded database gives the same file; a load refuses a formatted store and
//! a damaged dump leaves nothing behind.

mod common;

use common::{data, Fixture};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

#[derive(Debug, PartialEq, Eq)]
struct Seen {
    kind: u32,
    len: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    mtime: (i64, i64),
    content: Vec<u8>,
    xattr: Option<Vec<u8>>,
}

fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let path = std::ffi::CString::new(p.as_os_str().as_bytes()).expect("path");
    let name = std::ffi::CString::new(name).expect("name");
    let mut buf = vec![0u8; 4096];
    // SAFETY: both strings are NUL-terminated and buf is writable for its length.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let path = std::ffi::CString::new(p.as_os_str().as_bytes()).expect("path");
    let name = std::ffi::CString::new(name).expect("name");
    // SAFETY: both strings are NUL-terminated and value is readable for its length.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "setxattr {}", p.display());
}

/// Every entry under `root`, by relative path (raw bytes), with what it holds.
fn snapshot(root: &Path) -> Vec<(Vec<u8>, Seen)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("readdir") {
            let p = e.expect("entry").path();
            let is_dir = std::fs::symlink_metadata(&p).expect("lstat").is_dir();
            out.push(p.clone());
            if is_dir {
                walk(&p, out);
            }
        }
    }
    let mut paths = Vec::new();
    walk(root, &mut paths);
    let mut out: Vec<_> = paths
        .into_iter()
        .map(|p| {
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            let content = if m.file_type().is_symlink() {
                std::fs::read_link(&p)
                    .expect("readlink")
                    .as_os_str()
                    .as_bytes()
                    .to_vec()
            } else if m.is_file() {
                std::fs::read(&p).expect("read")
            } else {
                Vec::new()
            };
            let rel = p.strip_prefix(root).expect("under root");
            (
                rel.as_os_str().as_bytes().to_vec(),
                Seen {
                    kind: m.mode() & libc::S_IFMT,
                    len: if m.is_dir() { 0 } else { m.len() },
                    mode: m.mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                    nlink: m.nlink(),
                    mtime: (m.mtime(), m.mtime_nsec()),
                    content,
                    xattr: get_xattr(&p, "user.note"),
                },
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn write_tree(f: &Fixture) {
    let odd = OsStr::from_bytes(b"caf\xe9 \"quoted\"\n");
    let dir = f.path("tree");
    std::fs::create_dir_all(dir.join("a/b")).expect("mkdir");
    for i in 0..12u64 {
        let len = [0, 1, 4095, 70_000, 3 << 20][i as usize % 5] + i as usize;
        let p = dir.join(format!("a/f{i}"));
        std::fs::write(&p, data(len, 40 + i)).expect("write");
        if i % 3 == 0 {
            std::os::unix::fs::chown(&p, Some(1000 + i as u32), Some(2000)).expect("chown");
        }
        if i % 4 == 1 {
            let perm = std::os::unix::fs::PermissionsExt::from_mode(0o640);
            std::fs::set_permissions(&p, perm).expect("chmod");
        }
    }
    let odd_path = dir.join("a/b").join(odd);
    std::fs::write(&odd_path, b"a name that is not UTF-8").expect("write odd");
    set_xattr(&odd_path, "user.note", &[0, 1, 2, 255]);
    std::fs::hard_link(dir.join("a/f1"), dir.join("a/b/hard")).expect("link");
    std::os::unix::fs::symlink("../f2", dir.join("a/b/sym")).expect("symlink");
    let t = UNIX_EPOCH + Duration::new(1_600_000_000, 987_654_321);
    std::fs::File::options()
        .write(true)
        .open(dir.join("a/f3"))
        .expect("open")
        .set_modified(t)
        .expect("mtime");
}

fn read_file(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn dump_load_mount_reads_the_same_tree_and_dumps_the_same_file() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    write_tree(&f);
    let before = snapshot(&f.path("tree"));
    assert_eq!(
        before.len(),
        17,
        "{:?}",
        before.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    // A dump runs beside the mount.
    let live = f.dir.path().join("live.json");
    f.ok(&["dump", live.to_str().expect("utf-8")]);
    let text = std::fs::read_to_string(&live).expect("live dump");
    let v: serde_json::Value = serde_json::from_str(&text).expect("a dump is JSON");
    assert_eq!(v["format"], "fvfs-dump");
    f.unmount();

    let d1 = f.dir.path().join("d1.json");
    let d2 = f.dir.path().join("d2.json");
    let old = f.meta_url.clone();
    let new_db = f.dir.path().join("second/meta.db");
    let new = format!("sqlite://{}", new_db.display());
    f.ok_raw(&["dump", d1.to_str().expect("utf-8"), "--meta", &old]);
    let out = f.ok_raw(&["load", d1.to_str().expect("utf-8"), "--meta", &new]);
    assert!(out.starts_with("loaded "), "{out}");
    f.ok_raw(&["dump", d2.to_str().expect("utf-8"), "--meta", &new]);
    assert!(read_file(&d1) == read_file(&d2), "the second dump differs");

    // A formatted store refuses a load and keeps what it had.
    let again = f.run(&["load", d1.to_str().expect("utf-8"), "--meta", &new]);
    assert_eq!(again.status.code(), Some(1));
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("already formatted"), "{said}");
    // A damaged dump: nothing is left behind, so a retry starts clean.
    let cut = f.dir.path().join("cut.json");
    let whole = read_file(&d1);
    std::fs::write(&cut, &whole[..whole.len() / 2]).expect("cut");
    let third: PathBuf = f.dir.path().join("third/meta.db");
    let bad = f.run(&[
        "load",
        cut.to_str().expect("utf-8"),
        "--meta",
        &format!("sqlite://{}", third.display()),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("not a readable dump"), "{said}");
    assert!(!third.exists(), "a failed load left {}", third.display());

    // The loaded database mounts over the same tiers and reads the same tree.
    f.meta_url = new;
    f.mount();
    let after = snapshot(&f.path("tree"));
    assert_eq!(after, before);
    f.unmount();
    f.assert_fsck_clean("of the loaded database");

    // Across engines: SQLite → PostgreSQL → SQLite gives the same dump each way, and the
    // filesystem mounted from PostgreSQL reads the same tree.
    let Some(server) = fvfs_meta::testing::pg_server() else {
        return;
    };
    let pg = fvfs_meta::postgres::fresh_schema(&server).expect("a schema");
    let (d3, d4) = (f.dir.path().join("d3.json"), f.dir.path().join("d4.json"));
    let back = format!("sqlite://{}", f.dir.path().join("back/meta.db").display());
    f.ok_raw(&["load", d1.to_str().expect("utf-8"), "--meta", &pg]);
    f.ok_raw(&["dump", d3.to_str().expect("utf-8"), "--meta", &pg]);
    assert!(
        read_file(&d1) == read_file(&d3),
        "the dump of PostgreSQL differs"
    );
    f.ok_raw(&["load", d3.to_str().expect("utf-8"), "--meta", &back]);
    f.ok_raw(&["dump", d4.to_str().expect("utf-8"), "--meta", &back]);
    assert!(
        read_file(&d1) == read_file(&d4),
        "the dump back on SQLite differs"
    );
    f.meta_url = pg;
    f.mount();
    assert_eq!(snapshot(&f.path("tree")), before);
    f.unmount();
    f.assert_fsck_clean("of the database loaded into PostgreSQL");
}
