//! `fvfsd backup` and `fvfsd restore`: the metadata disaster drill from the command line.
//! The work is `fvfs_engine::restore`; this prints what it did.

use anyhow::{Context, Result};
pub use fvfs_engine::restore::RestoreArgs;

/// `fvfsd backup`: one backup now to the durable tier, then pruning.
pub async fn backup(meta_url: &str) -> Result<()> {
    let done = fvfs_engine::restore::backup(meta_url)
        .await
        .context("metadata backup failed")?;
    if let Some(e) = done.prune_error {
        eprintln!("warning: pruning old backups failed: {e}");
    }
    println!("backed up metadata to {} as {}", done.tier, done.key);
    Ok(())
}

/// `fvfsd restore --list`: the restorable points of a tier.
pub async fn list(from: &str) -> Result<()> {
    let points = fvfs_engine::restore::restore_points(from)
        .await
        .with_context(|| format!("cannot list {}", fvfs_engine::redact(from)))?;
    if points.is_empty() {
        println!("nothing to restore on {}", fvfs_engine::redact(from));
    }
    for p in points {
        let gap = p
            .gap
            .map(|(i, off)| format!(" (log {i} stops at byte {off})"))
            .unwrap_or_default();
        if p.kind == "backup" {
            println!("backup      {}  {}", p.from, p.name);
        } else {
            println!(
                "generation  {} .. {}  {} ({} log segments){gap}",
                p.from, p.to, p.name, p.segments
            );
        }
    }
    Ok(())
}

/// `fvfsd restore`: installs the metadata from a tier at the `--meta` path. Returns
/// false when files of the restored metadata have blocks the tier lacks.
pub async fn restore(args: RestoreArgs) -> Result<bool> {
    let r = fvfs_engine::restore::restore(&args)
        .await
        .with_context(|| format!("cannot restore from {}", fvfs_engine::redact(&args.from)))?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "restored filesystem {:?} ({}) from {} {} (as of {})",
        r.fs_name, r.fs_uuid, r.tier, r.key, r.taken
    );
    println!(
        "  {} inodes, {} blocks ({} bytes stored); {} stale session(s) ended",
        r.inodes, r.blocks, r.stored_bytes, r.sessions_ended
    );
    println!("  metadata installed at {}", args.meta_url);
    if r.missing_blocks > 0 {
        eprintln!(
            "error: {} block(s) the restored metadata names are not on {}; these files \
             read wrong until the blocks are found (fvfsd fsck --repair makes them read \
             as zeros):",
            r.missing_blocks, r.tier
        );
        for (path, n) in &r.missing {
            eprintln!("  {path}: {n} block(s) missing");
        }
        return Ok(false);
    }
    println!("  every block it names is on {}", r.tier);
    Ok(true)
}
