//! `fvfsd fsck [--repair]`: runs the vfs consistency check with a progress bar and prints
//! what it found and fixed. Exit status 1 when problems remain.

use anyhow::{Context, Result};
use fvfs_engine::{Engine, MountLock};
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

/// The least grace `fvfsd gc` deletes with while a filesystem shared by several hosts is
/// mounted: a mount's blocks are uploaded before their commit, and its in-flight writes
/// are pinned only in its own process. The mounts' own GC workers keep 2 h.
const MIN_GRACE_BESIDE_MOUNTS: std::time::Duration = std::time::Duration::from_secs(3600);

/// `fvfsd gc [--dry-run]`: lists, then deletes, the blocks unreferenced for longer than
/// `grace` (from every tier) and the leaked objects (block objects no row claims, older
/// than `grace`). Embedded (SQLite): deleting needs the filesystem unmounted, since the
/// mount's uncommitted writes may rely on them. Shared (PostgreSQL): it runs beside the
/// mounts of every host, as their own GC workers do, with a grace of at least
/// [`MIN_GRACE_BESIDE_MOUNTS`] while any is mounted. A dry run reads only, beside a mount
/// too. Returns what is left to delete (0 after a real run that deleted everything).
pub async fn gc(meta_url: &str, grace: std::time::Duration, dry_run: bool) -> Result<u64> {
    let holder = std::path::Path::new("(fvfsd gc)");
    let shared = fvfs_engine::is_shared(meta_url);
    let lock = if shared {
        MountLock::acquire_mount(meta_url, holder)
    } else {
        MountLock::acquire(meta_url, holder)
    };
    let _lock = match lock {
        Ok(l) => l,
        Err(_) if dry_run => None,
        Err(e) => return Err(e).context("unmount the filesystem first (a mount runs GC itself)"),
    };
    let engine = Engine::open_direct(meta_url, true).await?;
    let vfs = engine.vfs_for_gc(grace, dry_run)?;
    if shared && !dry_run && grace < MIN_GRACE_BESIDE_MOUNTS {
        let mounted = vfs.sessions()?;
        if let Some(s) = mounted.first() {
            anyhow::bail!(
                "{} mount(s) use this filesystem (one on {} at {}): beside mounts gc deletes \
                 only with --grace-secs {} or more (their writes in flight may use younger \
                 objects); unmount the filesystem first for a shorter grace",
                mounted.len(),
                s.host,
                s.mountpoint,
                MIN_GRACE_BESIDE_MOUNTS.as_secs()
            );
        }
    }
    let names = vfs.settings().tier_names();
    let report = vfs.tiering().gc_scan().await?;
    let human = super::status::human;
    for b in &report.garbage {
        println!(
            "garbage  {}  {} on {}",
            b.id,
            human(u64::from(b.stored_size)),
            tier_list(&names, b.tiers)
        );
    }
    for o in &report.leaked {
        println!("leaked   {}  {} on {}", o.id, human(o.bytes), names[o.tier]);
    }
    for o in &report.stray {
        println!(
            "stray    {}  {} on {} (its row does not name this tier)",
            o.id,
            human(o.bytes),
            names[o.tier]
        );
    }
    println!(
        "{} garbage block(s) ({}), {} leaked object(s) ({}), {} stray cop(ies); {} object(s) without a row younger than the grace left alone",
        report.garbage.len(),
        human(report.garbage_bytes()),
        report.leaked.len(),
        human(report.leaked_bytes()),
        report.stray.len(),
        report.young
    );
    if dry_run {
        println!("dry run: nothing deleted");
        return Ok(0);
    }
    let mut blocks = 0u64;
    loop {
        let n = vfs.tiering().gc_pass(512).await?;
        blocks += n as u64;
        if n < 512 {
            break;
        }
    }
    let freed = vfs.tiering().gc_leaked(&report).await?;
    println!(
        "deleted {blocks} garbage block(s) and {} of leaked objects; {} stray cop(ies) recorded",
        human(freed),
        report.stray.len()
    );
    Ok(0)
}

fn tier_list(names: &[String], mask: u32) -> String {
    let on: Vec<&str> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, n)| n.as_str())
        .collect();
    if on.is_empty() {
        "no tier".into()
    } else {
        on.join(",")
    }
}
