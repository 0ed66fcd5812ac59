//! `fvfsd tier list|add|set`, `fvfsd wal` and `fvfsd flush`: printing around the engine's
//! tier administration (`fvfs_engine::tiers`) and replication queue.

use super::status::human;
use anyhow::Result;
use fvfs_engine::shipping::{self, MetaFlush};
use fvfs_engine::tiers::{add_tier, probe, set_tier, TierChange, TierChanged};
use fvfs_engine::{redact, Engine, Vfs};
use fvfs_types::TierSettings;
use fvfs_vfs::ShipConfig;
use std::sync::Arc;
use std::time::Duration;

/// The engine of a command that runs beside a live mount, if any.
pub async fn beside_mount(meta_url: &str) -> Result<(Engine, Arc<Vfs>)> {
    let engine = Engine::open_direct(meta_url, false).await?;
    let vfs = engine.vfs_beside_mount()?;
    Ok((engine, vfs))
}

pub async fn list(meta_url: &str) -> Result<()> {
    let (_engine, vfs) = beside_mount(meta_url).await?;
    let status = vfs.status()?;
    let settings: Vec<TierSettings> = status.tiers.iter().map(|t| t.settings.clone()).collect();
    let health = probe(&settings).await;
    println!(
        "{:<3} {:<8} {:<9} {:>12} {:>10} {:>10}  {:<11} location",
        "bit", "name", "role", "used", "high", "low", "health"
    );
    for (i, t) in status.tiers.iter().enumerate() {
        let wm = |v: Option<u64>| v.map(human).unwrap_or_else(|| "-".into());
        let h = match &health[i] {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("DOWN: {e}"),
        };
        println!(
            "{:<3} {:<8} {:<9} {:>12} {:>10} {:>10}  {:<11} {}",
            format!("0x{:x}", 1u32 << i),
            t.settings.name,
            t.role(),
            human(t.usage.bytes),
            wm(t.settings.high_watermark),
            wm(t.settings.low_watermark),
            h,
            redact(&t.settings.location)
        );
    }
    Ok(())
}

/// Adds a tier at `position` (default: hottest, 0).
pub async fn add(meta_url: &str, new: TierSettings, position: Option<usize>) -> Result<()> {
    let name = new.name.clone();
    let TierChanged { position, backfill } = add_tier(meta_url, new, position).await?;
    println!(
        "added tier {name:?} at position {position} (bit 0x{:x})",
        1u32 << position
    );
    if backfill > 0 {
        println!(
            "queued {backfill} blocks to copy onto it; the next mount replicates them in the background"
        );
    }
    Ok(())
}

pub async fn set(meta_url: &str, name: &str, c: TierChange) -> Result<()> {
    let changed = set_tier(meta_url, name, c).await?;
    println!("tier {name:?} updated");
    if changed.backfill > 0 {
        println!("queued {} blocks to copy onto it", changed.backfill);
    }
    Ok(())
}

pub async fn wal(meta_url: &str, limit: usize) -> Result<()> {
    let (_engine, vfs) = beside_mount(meta_url).await?;
    let names = vfs.settings().tier_names();
    let (entries, total) = vfs.queue(limit)?;
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
pub async fn flush(meta_url: &str, ship: ShipConfig, timeout: Duration) -> Result<u64> {
    let (engine, vfs) = beside_mount(meta_url).await?;
    let started = std::time::Instant::now();
    let queued = vfs.queue_due_now()?;
    println!("replicating {queued} queued block copies…");
    let left = vfs.tiering().replicate_all(timeout).await?;
    if left == 0 {
        println!("blocks: nothing left to replicate");
    } else {
        println!("{left} left (see fvfsd wal for their errors); they are retried with backoff");
    }
    let (records, bytes) = vfs.journal_totals()?;
    if records > 0 {
        println!(
            "{} of recent writes are still in the write journal: the running mount stores \
             them as blocks within seconds (a mount that is not running stores them when it \
             starts); run flush again then",
            super::status::human(bytes)
        );
    }
    let rest = timeout
        .saturating_sub(started.elapsed())
        .max(Duration::from_secs(10));
    let tier = redact(&engine.durable_display());
    let meta_left = match shipping::flush(&engine, meta_url, ship, rest).await? {
        MetaFlush::Done { by_mount: true } => {
            println!("metadata: every commit is on {tier} (shipped by the running mount)");
            0
        }
        MetaFlush::Done { by_mount: false } => {
            println!("metadata: every commit is on {tier} (no mount runs: a new generation)");
            0
        }
        MetaFlush::Unsupported => {
            println!("metadata: this store ships no log (back it up with its own tools)");
            0
        }
        MetaFlush::Off => {
            println!(
                "metadata: shipping is off ([backup] enabled = false); only the blocks were flushed"
            );
            0
        }
        MetaFlush::Late(st) => {
            match st {
                Some(st) => println!(
                    "metadata: {} of log still waits for {tier} (lag {:.0} s{})",
                    super::status::human(st.pending_bytes),
                    st.lag_secs,
                    st.last_error
                        .map(|e| format!(", last error: {e}"))
                        .unwrap_or_default()
                ),
                None => println!("metadata: the running mount did not answer the flush request"),
            }
            1
        }
    };
    Ok(left + meta_left)
}

/// `fvfsd tier …`.
#[derive(clap::Subcommand)]
pub enum TierCmd {
    /// The tiers, their usage, watermarks and health.
    List,
    /// Add a tier (the filesystem must be unmounted).
    Add {
        name: String,
        location: String,
        /// Position, 0 = hottest (default).
        #[arg(long)]
        position: Option<usize>,
        #[arg(long, value_parser = crate::config::parse_size)]
        high: Option<u64>,
        #[arg(long, value_parser = crate::config::parse_size)]
        low: Option<u64>,
        /// Make it the durable tier.
        #[arg(long)]
        durable: bool,
        /// Keep a copy of every block on it.
        #[arg(long)]
        keep_copy: bool,
    },
    /// Change a tier (the filesystem must be unmounted).
    Set {
        name: String,
        #[arg(long, value_parser = crate::config::parse_size)]
        high: Option<u64>,
        #[arg(long, value_parser = crate::config::parse_size)]
        low: Option<u64>,
        #[arg(long)]
        durable: bool,
        #[arg(long)]
        keep_copy: Option<bool>,
        #[arg(long)]
        location: Option<String>,
    },
}
