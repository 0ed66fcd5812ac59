//! Other local users cannot read the filesystem through the daemon's own files: after
//! `format` to explicit paths and a `serve` that stores data, every directory fvfs made is
//! 0700 and every file 0600 (state, database, blocks, cache, metadata backups), and the
//! control socket is 0600, whatever the umask of whoever started the daemon.

mod common;

use common::Fixture;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Every entry under `dir` (not `dir` itself), depth first, not following symlinks.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, std::fs::Metadata)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        let is_dir = m.is_dir();
        out.push((e.path(), m));
        if is_dir {
            walk(&e.path(), out);
        }
    }
}

#[test]
fn state_blocks_cache_and_backups_are_owner_only() {
    let Some(mut f) = Fixture::new() else { return };
    // The usual umask of a shell: the daemon must not inherit it.
    // SAFETY: umask only sets this process's creation mask (inherited by the children).
    unsafe { libc::umask(0o022) };
    let root = f.dir.path().join("explicit");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = root.join("var/lib/fvfs");
    let blocks = root.join("srv/fvfs/blocks");
    let cache = root.join("cache");
    f.meta_url = format!("sqlite://{}/meta.db", state.display());
    f.ok(&["format", "--storage", blocks.to_str().unwrap()]);
    let cfg = f.dir.path().join("modes.toml");
    std::fs::write(
        &cfg,
        format!(
            "[daemon]\nmdns = false\nmount_path = \"{}\"\ncache_dir = \"{}\"\n",
            f.mnt.display(),
            cache.display()
        ),
    )
    .unwrap();
    f.config = Some(cfg);
    let mut d = f.serve(&["--port", "0"]);
    let sock = state.join("fvfsd.sock");
    let m = std::fs::symlink_metadata(&sock).unwrap();
    assert!(m.file_type().is_socket());
    assert_eq!(m.permissions().mode() & 0o7777, 0o600, "control socket");
    let data: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut file = std::fs::File::create(f.mnt.join("secret.bin")).unwrap();
    file.write_all(&data).unwrap();
    file.sync_all().unwrap();
    drop(file);
    // Read it back through the block cache, and back the metadata up (to the one tier).
    assert!(std::fs::read(f.mnt.join("secret.bin")).unwrap() == data);
    f.ok(&["backup"]);
    assert!(d.stop(60).success());

    let mut all = Vec::new();
    walk(&root, &mut all);
    let mut bad = Vec::new();
    let (mut files, mut dirs) = (0, 0);
    for (p, m) in &all {
        let mode = m.permissions().mode() & 0o7777;
        let want = if m.is_dir() {
            dirs += 1;
            0o700
        } else {
            files += 1;
            0o600
        };
        if mode != want {
            bad.push(format!("{} {mode:o}", p.display()));
        }
    }
    assert!(bad.is_empty(), "not owner-only: {bad:#?}");
    // What was checked: the database, the token file and admin token, the TLS key, block
    // objects, cached blocks and a metadata backup.
    let names: Vec<String> = all.iter().map(|(p, _)| p.display().to_string()).collect();
    let has = |pred: &dyn Fn(&str) -> bool, what: &str| {
        assert!(names.iter().any(|n| pred(n)), "no {what} in {names:#?}");
    };
    has(&|n| n.ends_with("var/lib/fvfs/meta.db"), "database");
    has(&|n| n.ends_with("var/lib/fvfs/tokens.json"), "token file");
    has(&|n| n.ends_with("var/lib/fvfs/admin.token"), "admin token");
    has(&|n| n.ends_with("tls/key.pem"), "TLS key");
    has(
        &|n| n.contains("srv/fvfs/blocks/meta/backup-"),
        "metadata backup",
    );
    has(
        &|n| n.contains("srv/fvfs/blocks/") && !n.contains("/meta/"),
        "block object",
    );
    has(&|n| n.starts_with(cache.to_str().unwrap()), "cache entry");
    assert!(files >= 8 && dirs >= 6, "{files} files, {dirs} dirs");
}
