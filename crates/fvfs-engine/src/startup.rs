//! Start-up timing: each serving command marks the steps of its start (engine opened,
//! spool replayed, workers started, mounted), and every mark is logged at debug level
//! under the `fvfs::startup` target with the milliseconds since the process started
//! (`FVFS_LOG=fvfs::startup=debug`). This is how mount time is broken down; marks
//! cost nothing when the target is off.

use std::sync::OnceLock;
use std::time::Instant;

static FIRST: OnceLock<Instant> = OnceLock::new();

/// Milliseconds from the process's start (its first mark, or its exec time when
/// `/proc` says) to now.
fn since_start_ms() -> f64 {
    let exec_ms = process_age_at_first_mark_ms();
    let first = *FIRST.get_or_init(Instant::now);
    exec_ms + first.elapsed().as_secs_f64() * 1000.0
}

/// How long the process had run when it made its first mark (0 when unknown).
fn process_age_at_first_mark_ms() -> f64 {
    static AGE: OnceLock<f64> = OnceLock::new();
    *AGE.get_or_init(|| process_age_ms().unwrap_or(0.0))
}

/// The process's age from `/proc/self/stat` (start time in clock ticks since boot)
/// and `/proc/uptime`; tick resolution (10 ms) bounds its precision.
fn process_age_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let start_ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (hz > 0.0).then(|| ((uptime - start_ticks / hz) * 1000.0).max(0.0))
}

/// Logs that the start-up step `step` is done.
pub fn mark(step: &str) {
    if tracing::enabled!(target: "fvfs::startup", tracing::Level::DEBUG) {
        let ms = since_start_ms();
        tracing::debug!(target: "fvfs::startup", step, ms = format!("{ms:.1}"), "start-up");
    }
}
