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

/// `fvfsd restore`: installs a metadata backup from a tier at the `--meta` path.
pub async fn restore(args: RestoreArgs) -> Result<()> {
    let r = fvfs_engine::restore::restore(&args)
        .await
        .with_context(|| format!("cannot restore from {}", fvfs_engine::redact(&args.from)))?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "restored filesystem {:?} ({}) from {} backup {} (taken {})",
        r.fs_name, r.fs_uuid, r.tier, r.key, r.taken
    );
    println!(
        "  {} inodes, {} blocks ({} bytes stored); {} stale session(s) ended",
        r.inodes, r.blocks, r.stored_bytes, r.sessions_ended
    );
    println!("  metadata installed at {}", args.meta_url);
    Ok(())
}
