//! Bad input gets a clear error and loses nothing.

mod common;
use common::{data, privileged, Fixture, FVFSD};
use std::process::Command;
use std::time::{Duration, Instant};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn unknown_config_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[daemon]\nmount_path = \"/x\"\nhttp_prot = 1\n").unwrap();
    let o = Command::new(FVFSD)
        .arg("--config")
        .arg(&cfg)
        .arg("status")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("http_prot"), "{}", stderr(&o));
}

#[test]
fn unreachable_s3_at_format_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let o = Command::new(FVFSD)
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .args(["format", "--meta"])
        .arg(format!("sqlite://{}/m.db", dir.path().display()))
        .args([
            "--storage",
            "s3://b/p?endpoint=http://127.0.0.1:9&region=us-east-1&path_style=true",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(t.elapsed() < Duration::from_secs(40));
    let e = stderr(&o);
    assert!(e.contains("127.0.0.1:9") && e.contains("not usable"), "{e}");
    assert!(
        !dir.path().join("m.db").exists(),
        "a failed format left metadata behind"
    );
}

#[test]
fn unreachable_s3_at_mount_is_a_clear_error() {
    let Some(mut f) = Fixture::new() else { return };
    f.rt.block_on(f.s3.stop());
    let err = f.try_mount().expect("mount should fail");
    assert!(
        err.contains("not usable") || err.contains("unreachable"),
        "{err}"
    );
}

#[test]
fn missing_or_non_empty_mountpoint_is_refused() {
    let Some(f) = Fixture::new() else { return };
    let missing = f.dir.path().join("nope");
    let o = f.run(&["mount", "--meta", &f.meta_url, missing.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    std::fs::write(f.mnt.join("precious"), b"x").unwrap();
    let o = f.run(&["mount", "--meta", &f.meta_url, f.mnt.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
    assert_eq!(std::fs::read(f.mnt.join("precious")).unwrap(), b"x");
}

#[test]
fn second_mount_of_an_sqlite_filesystem_is_refused() {
    let Some(mut f) = Fixture::new() else { return };
    f.mount();
    let other = f.dir.path().join("mnt2");
    std::fs::create_dir(&other).unwrap();
    let o = f.run(&[
        "mount",
        "--foreground",
        "--meta",
        &f.meta_url,
        other.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already mounted"), "{}", stderr(&o));
    std::fs::write(f.path("still-works"), b"ok").unwrap();
}

#[test]
fn a_full_cache_disk_does_not_fail_io() {
    let Some(mut f) = Fixture::new() else { return };
    if !privileged() {
        return;
    }
    std::fs::create_dir_all(&f.cache).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&f.cache)
        .status()
        .unwrap();
    assert!(st.success());
    f.mount();
    let content = data(24 << 20, 9);
    std::fs::write(f.path("big"), &content).unwrap();
    f.unmount();
    f.mount();
    assert!(std::fs::read(f.path("big")).unwrap() == content);
    f.unmount();
    let _ = Command::new("umount").arg(&f.cache).status();
}

#[test]
fn a_full_metadata_disk_is_enospc_and_loses_nothing() {
    let Some(mut f) = Fixture::new() else { return };
    let metafs = f.dir.path().join("metafs");
    std::fs::create_dir(&metafs).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=384k", "tmpfs"])
        .arg(&metafs)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::copy(f.dir.path().join("meta.db"), metafs.join("meta.db")).unwrap();
    f.meta_url = format!("sqlite://{}/meta.db", metafs.display());
    f.mount();
    std::fs::write(f.path("first"), b"kept").unwrap();
    let mut failure = None;
    for i in 0..20_000 {
        let name = format!("{i:0>200}");
        if let Err(e) = std::fs::create_dir(f.path(&name)) {
            failure = Some(e);
            break;
        }
    }
    let e = failure.expect("the metadata disk never filled");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    assert_eq!(std::fs::read(f.path("first")).unwrap(), b"kept");
    f.unmount();
    let _ = Command::new("umount").arg(&metafs).status();
}
