//! A filesystem whose metadata is on PostgreSQL, through the real binary and mount:
//! formatted, mounted and read back like one on SQLite; served by one process at a time
//! (a second mount is refused and says why); a killed mount leaves no lock behind, so
//! the next mount serves the same bytes.

mod common;

use common::{data, Fixture};
use std::process::Stdio;

/// A fixture on its own PostgreSQL schema, whatever FVFS_TEST_META says.
fn on_postgres() -> Option<Fixture> {
    let server = fvfs_meta::testing::pg_server()?;
    std::env::set_var("FVFS_TEST_META", "postgres");
    std::env::set_var("FVFS_TEST_PG", &server);
    let f = Fixture::new()?;
    assert!(f.meta_url.starts_with("postgres://"), "{}", f.meta_url);
    Some(f)
}

#[test]
fn one_process_serves_a_postgres_filesystem_and_a_killed_one_frees_it() {
    let Some(mut f) = on_postgres() else {
        return;
    };
    f.mount();
    let body = data(3 << 20, 7);
    std::fs::write(f.path("big"), &body).unwrap();
    std::fs::create_dir(f.path("dir")).unwrap();
    std::fs::write(f.path("dir/small"), b"small").unwrap();

    // A second mount of the same filesystem, elsewhere, is refused with the reason.
    let other = f.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let log = f.dir.path().join("second.log");
    let mut second = f
        .fvfsd()
        .args([
            "mount",
            "--foreground",
            "--meta",
            &f.meta_url,
            "--cache-dir",
        ])
        .arg(f.dir.path().join("cache2"))
        .arg(&other)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Bounded: a second mount that (wrongly) comes up is stopped, then fails the test.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&other)
                .status();
            panic!("a second mount of the filesystem came up");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let said = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("already served by another process"), "{said}");
    assert!(!common::is_mounted(&other));

    // kill -9: the server ends the dead process's connection and with it its lock.
    f.kill9();
    f.mount();
    assert!(std::fs::read(f.path("big")).unwrap() == body, "big differs");
    assert_eq!(std::fs::read(f.path("dir/small")).unwrap(), b"small");
    f.unmount();
    f.assert_fsck_clean("after the killed mount");
}
