//! `fvfsd tier list|add|set`, `fvfsd wal` and `fvfsd flush`: the tiers of a filesystem
//! and its replication queue.
//!
//! Tier changes rewrite the settings (and, when a tier is inserted, the tier bits of
//! every block) in one transaction; they need the filesystem unmounted, because a mount
//! reads its tiers at start. A tier that must hold every block (durable or keep-copy) is
//! backfilled by the replicator of the next mount.

use super::status::human;
use crate::engine::{check_tier, open_meta, Engine, MountLock};
use anyhow::{bail, Context, Result};
use fvfs_tier::{Tier, TierSpec};
use fvfs_types::TierSettings;
use std::path::Path;
use std::time::Duration;

/// A tier's role as shown to users.
pub fn role(t: &TierSettings) -> &'static str {
    if t.durable {
        "durable"
    } else if t.keep_copy {
        "keep-copy"
    } else {
        "cache"
    }
}

/// Probes each tier (10 s budget each): Ok or the error.
pub async fn probe(tiers: &[TierSettings]) -> Vec<std::result::Result<(), String>> {
    let mut out = Vec::new();
    for t in tiers {
        let r = match TierSpec::parse(&t.location).and_then(|s| Tier::open(&s)) {
            Ok(tier) => check_tier(&tier).await.map_err(|e| format!("{e:#}")),
            Err(e) => Err(e.to_string()),
        };
        out.push(r);
    }
    out
}

pub async fn list(meta_url: &str) -> Result<()> {
    let meta = open_meta(meta_url)?;
    let s = meta.settings()?;
    let tiers = s.tier_list();
    let usage = meta.tier_usage(tiers.len())?;
    let health = probe(&tiers).await;
    println!(
        "{:<3} {:<8} {:<9} {:>12} {:>10} {:>10}  {:<11} location",
        "bit", "name", "role", "used", "high", "low", "health"
    );
    for (i, t) in tiers.iter().enumerate() {
        let role = role(t);
        let wm = |v: Option<u64>| v.map(human).unwrap_or_else(|| "-".into());
        let h = match &health[i] {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("DOWN: {e}"),
        };
        println!(
            "{:<3} {:<8} {:<9} {:>12} {:>10} {:>10}  {:<11} {}",
            format!("0x{:x}", 1u32 << i),
            t.name,
            role,
            human(usage[i].bytes),
            wm(t.high_watermark),
            wm(t.low_watermark),
            h,
            fvfs_tier::redact(&t.location)
        );
    }
    Ok(())
}

/// Adds a tier at `position` (default: hottest, 0).
pub async fn add(meta_url: &str, new: TierSettings, position: Option<usize>) -> Result<()> {
    let _lock = MountLock::acquire(meta_url, Path::new("(fvfsd tier add)"))
        .context("unmount the filesystem before changing its tiers")?;
    let meta = open_meta(meta_url)?;
    let mut s = meta.settings()?;
    let mut tiers = s.tier_list();
    let pos = position.unwrap_or(0).min(tiers.len());
    let spec = TierSpec::parse(&new.location)?;
    check_tier(&Tier::open(&spec)?).await?;
    if new.durable {
        for t in &mut tiers {
            t.durable = false;
        }
    }
    let backfill = new.durable || new.keep_copy;
    tiers.insert(pos, new.clone());
    fvfs_types::validate_tiers(&tiers).map_err(anyhow::Error::msg)?;
    s.storage = tiers.iter().map(|t| t.location.clone()).collect();
    s.tiers = tiers;
    meta.insert_tier(&s, pos as u32)?;
    println!(
        "added tier {:?} at position {pos} (bit 0x{:x})",
        new.name,
        1u32 << pos
    );
    if backfill {
        let n = meta.queue_missing(pos as u32, fvfs_vfs::now_ns())?;
        println!(
            "queued {n} blocks to copy onto it; the next mount replicates them in the background"
        );
    }
    Ok(())
}

pub struct TierChange {
    pub high: Option<u64>,
    pub low: Option<u64>,
    pub durable: bool,
    pub keep_copy: Option<bool>,
    pub location: Option<String>,
}

pub async fn set(meta_url: &str, name: &str, c: TierChange) -> Result<()> {
    let _lock = MountLock::acquire(meta_url, Path::new("(fvfsd tier set)"))
        .context("unmount the filesystem before changing its tiers")?;
    let meta = open_meta(meta_url)?;
    let mut s = meta.settings()?;
    let mut tiers = s.tier_list();
    let Some(i) = tiers.iter().position(|t| t.name == name) else {
        bail!("no tier named {name:?} (see fvfsd tier list)");
    };
    if let Some(loc) = &c.location {
        check_tier(&Tier::open(&TierSpec::parse(loc)?)?).await?;
        tiers[i].location = loc.clone();
    }
    if c.high.is_some() {
        tiers[i].high_watermark = c.high;
    }
    if c.low.is_some() {
        tiers[i].low_watermark = c.low;
    }
    if let Some(k) = c.keep_copy {
        tiers[i].keep_copy = k;
    }
    if c.durable {
        for t in &mut tiers {
            t.durable = false;
        }
        tiers[i].durable = true;
    }
    if tiers[i].durable && tiers[i].high_watermark.is_some() {
        bail!("the durable tier is never evicted: it takes no watermarks");
    }
    fvfs_types::validate_tiers(&tiers).map_err(anyhow::Error::msg)?;
    let backfill = tiers[i].durable || tiers[i].keep_copy;
    s.storage = tiers.iter().map(|t| t.location.clone()).collect();
    s.tiers = tiers;
    meta.set_settings(&s)?;
    println!("tier {name:?} updated");
    if backfill {
        let n = meta.queue_missing(i as u32, fvfs_vfs::now_ns())?;
        if n > 0 {
            println!("queued {n} blocks to copy onto it");
        }
    }
    Ok(())
}

pub fn wal(meta_url: &str, limit: usize) -> Result<()> {
    let meta = open_meta(meta_url)?;
    let names = meta.settings()?.tier_names();
    let (entries, total) = meta.queue_list(limit)?;
    println!("{total} pending replication(s)");
    if entries.is_empty() {
        return Ok(());
    }
    let now = fvfs_vfs::now_ns();
    println!(
        "{:<18} {:<8} {:>8} {:>10} {:>9}  last error",
        "block", "to tier", "bytes", "due in", "attempts"
    );
    for e in &entries {
        let due = (e.due - now) as f64 / 1e9;
        let due = if due <= 0.0 {
            "now".to_string()
        } else {
            format!("{due:.1}s")
        };
        println!(
            "{:<18} {:<8} {:>8} {:>10} {:>9}  {}",
            &e.block.to_hex()[..16],
            names
                .get(e.tier as usize)
                .cloned()
                .unwrap_or_else(|| format!("#{}", e.tier)),
            e.row
                .map(|r| r.stored_size.to_string())
                .unwrap_or_else(|| "gone".into()),
            due,
            e.attempts,
            e.last_error.as_deref().unwrap_or("")
        );
    }
    if total as usize > entries.len() {
        println!("… and {} more", total as usize - entries.len());
    }
    Ok(())
}

/// Replicates everything queued now, in this process. Returns entries left.
pub async fn flush(meta_url: &str, timeout: Duration) -> Result<u64> {
    let engine = Engine::open_direct(meta_url, false).await?;
    let vfs = engine.vfs_beside_mount()?;
    let queued = engine.meta.queue_make_due(fvfs_vfs::now_ns())?;
    println!("replicating {queued} queued block copies…");
    let left = vfs.replicate_all(timeout).await?;
    if left == 0 {
        println!("done: nothing left to replicate");
    } else {
        println!("{left} left (see fvfsd wal for their errors); they are retried with backoff");
    }
    Ok(left)
}
