//! Test support: the metadata URL a test should format, so that one test suite runs on
//! both engines (the matrix is an environment switch, not copied tests).
//!
//! - `FVFS_TEST_META` unset or `sqlite`: `sqlite://DIR/meta.db`.
//! - `FVFS_TEST_META=postgres`: a new, empty schema of its own in the server that
//!   `FVFS_TEST_PG` names (`scripts/pg.sh start` prints one), so tests run in parallel
//!   without seeing each other. Without `FVFS_TEST_PG` the test fails: it never quietly
//!   runs on SQLite instead.

use std::path::Path;

/// Which engine the tests run on.
pub fn engine() -> &'static str {
    match std::env::var("FVFS_TEST_META").as_deref() {
        Ok("postgres") => "postgres",
        Ok("sqlite") | Err(_) => "sqlite",
        Ok(other) => panic!("FVFS_TEST_META={other}: expected sqlite or postgres"),
    }
}

/// A metadata URL for a new filesystem of this test (`dir` holds SQLite's file).
pub fn meta_url(dir: &Path) -> String {
    if engine() == "sqlite" {
        return format!("sqlite://{}/meta.db", dir.display());
    }
    let server = std::env::var("FVFS_TEST_PG")
        .expect("FVFS_TEST_META=postgres needs FVFS_TEST_PG (scripts/pg.sh start prints it)");
    crate::postgres::fresh_schema(&server).expect("a fresh PostgreSQL schema for this test")
}

/// The PostgreSQL server of the tests (`FVFS_TEST_PG`), for a test that moves metadata
/// across engines whatever `FVFS_TEST_META` says. `None` outside CI when no server is
/// set (the caller says it skipped); in CI (`FVFS_REQUIRE_PRIVILEGED=1`, where
/// scripts/test.sh starts one) a missing server fails the test.
pub fn pg_server() -> Option<String> {
    match std::env::var("FVFS_TEST_PG") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("FVFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") => {
            panic!("FVFS_REQUIRE_PRIVILEGED=1: this test needs FVFS_TEST_PG (scripts/pg.sh start)")
        }
        _ => {
            eprintln!(
                "skipped: no PostgreSQL server (set FVFS_TEST_PG; scripts/pg.sh start prints it)"
            );
            None
        }
    }
}
