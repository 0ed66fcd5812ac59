//! `fvfsd fsck [--repair]`: runs the vfs consistency check with a progress bar and prints
//! what it found and fixed. Exit status 1 when problems remain.

use anyhow::{Context, Result};
use fvfs_engine::{Engine, MountLock, VfsConfig};
use indicatif::{ProgressBar, ProgressStyle};

pub async fn run(meta_url: &str, repair: bool) -> Result<bool> {
    let engine = Engine::open_direct(meta_url, false).await?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("checking blocks {bar:40} {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let r = engine.fsck(repair, &progress).await?;
    bar.finish_and_clear();
    println!("checked {} blocks", r.blocks_checked);
    for line in r.findings() {
        println!("{line}");
    }
    for fix in &r.repaired {
        println!("repaired: {fix}");
    }
    let problems = r.problems();
    if problems == 0 {
        println!("no problems found");
    } else if repair {
        let left = r.missing.len() + r.corrupt.len();
        println!("{problems} problem(s) found; {} repair(s) made; {left} cannot be repaired here (data lost from storage)", r.repaired.len());
        return Ok(left == 0);
    } else {
        println!("{problems} problem(s) found; run with --repair to fix what can be fixed safely");
    }
    Ok(problems == 0)
}

/// `fvfsd gc`: deletes garbage blocks (refcount 0 for longer than `grace`) from every
/// tier. Needs the filesystem unmounted: a mount's uncommitted writes may rely on them.
pub async fn gc(meta_url: &str, grace: std::time::Duration) -> Result<u64> {
    let _lock = MountLock::acquire(meta_url, std::path::Path::new("(fvfsd gc)"))
        .context("unmount the filesystem first (a mount runs GC itself)")?;
    let engine = Engine::open_direct(meta_url, true).await?;
    let vfs = engine.vfs_with(VfsConfig {
        gc_grace: grace,
        ..Default::default()
    })?;
    let mut total = 0u64;
    loop {
        let n = vfs.tiering().gc_pass(512).await?;
        total += n as u64;
        if n < 512 {
            break;
        }
    }
    println!("deleted {total} garbage block(s)");
    Ok(total)
}
