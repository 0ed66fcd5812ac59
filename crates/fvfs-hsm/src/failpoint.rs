//! Named failure points for crash tests: `FVFS_FAILPOINTS=name[,name…]` makes the process
//! abort (no unwinding, no cleanup: what `kill -9` at that instant leaves) when it reaches
//! one of them. Unset, a point costs one read of a value computed once.
//!
//! The points, in the order an archived file goes through them:
//! `hsm.archive.stored` (payload held, no marker), `hsm.archive.marked` (marker set, row
//! still archiving), `hsm.release.row` (row released, file whole, marker archived),
//! `hsm.release.punched` (holes punched, times not restored), `hsm.recall.written`
//! (blocks written and synced, not yet recorded; the reader answered already when its
//! pages went first, see recall.rs),
//! `hsm.recall.answered` (a partial recall's reader answered, its blocks not yet
//! recorded).

use std::sync::OnceLock;

fn armed() -> &'static [String] {
    static POINTS: OnceLock<Vec<String>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var("FVFS_FAILPOINTS")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Aborts the process if `name` is armed.
pub fn hit(name: &str) {
    if armed().iter().any(|p| p == name) {
        eprintln!("fvfs: failure point {name} reached: aborting");
        std::process::abort();
    }
}
