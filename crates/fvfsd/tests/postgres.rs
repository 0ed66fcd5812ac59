//! A filesystem whose metadata is on PostgreSQL, through the real binary and mount:
//! formatted, mounted and read back like one on SQLite; a killed mount leaves nothing
//! behind that stops the next one (its lease ends with its connection, its session with
//! the next start on its host), so the next mount serves the same bytes. Several hosts
//! at once: hosts.rs.

mod common;

use common::data;
use common::hosts::on_postgres;

#[test]
fn a_killed_mount_of_a_postgres_filesystem_leaves_nothing_behind() {
    let Some(mut f) = on_postgres() else {
        return;
    };
    f.mount();
    let body = data(3 << 20, 7);
    std::fs::write(f.path("big"), &body).unwrap();
    std::fs::create_dir(f.path("dir")).unwrap();
    std::fs::write(f.path("dir/small"), b"small").unwrap();

    // kill -9: the server ends the dead process's connection and with it its lock.
    f.kill9();
    f.mount();
    let sessions = fvfs_meta::open(&f.meta_url, false)
        .unwrap()
        .sessions()
        .unwrap();
    assert_eq!(
        sessions.len(),
        1,
        "the killed mount's session ended: {sessions:?}"
    );
    assert!(std::fs::read(f.path("big")).unwrap() == body, "big differs");
    assert_eq!(std::fs::read(f.path("dir/small")).unwrap(), b"small");
    f.unmount();
    f.assert_fsck_clean("after the killed mount");
}
