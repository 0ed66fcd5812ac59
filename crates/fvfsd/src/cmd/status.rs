//! `fvfsd status`: settings, space, inodes, blocks, dedup ratio and live sessions.

use crate::engine::open_meta;
use anyhow::Result;

pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub async fn run(meta_url: &str) -> Result<()> {
    let meta = open_meta(meta_url)?;
    let s = meta.settings()?;
    let st = meta.stats()?;
    let sessions = meta.sessions()?;
    println!("filesystem   {} ({})", s.name, s.uuid);
    println!("format       version {}", s.format_version);
    println!("metadata     {}", meta.describe());
    let tiers = s.tier_list();
    let usage = meta.tier_usage(tiers.len())?;
    let health = super::tiers::probe(&tiers).await;
    for (i, t) in tiers.iter().enumerate() {
        let role = super::tiers::role(t);
        let wm = match (t.high_watermark, t.low_watermark) {
            (Some(h), Some(l)) => format!(", watermarks {} / {}", human(h), human(l)),
            (Some(h), None) => format!(", high watermark {}", human(h)),
            _ => String::new(),
        };
        let h = match &health[i] {
            Ok(()) => "reachable".to_string(),
            Err(e) => format!("UNREACHABLE ({e})"),
        };
        println!(
            "tier {i} {:<6} {role}, {} in {} blocks{wm}, {h}: {}",
            t.name,
            human(usage[i].bytes),
            usage[i].blocks,
            fvfs_tier::redact(&t.location)
        );
    }
    let (_, pending) = meta.wal_list(0)?;
    println!("replication  {pending} block copies pending (fvfsd wal)");
    for (name, value) in meta.counters()? {
        println!("counter      {name} = {value}");
    }
    println!(
        "blocks       FastCDC min {} / avg {} / max {}, compression {:?}",
        human(s.cdc.min as u64),
        human(s.cdc.avg as u64),
        human(s.cdc.max as u64),
        s.compression
    );
    println!("inodes       {}", st.inodes);
    println!("file bytes   {}", human(st.logical_bytes));
    println!(
        "stored       {} in {} blocks ({} before compression)",
        human(st.stored_bytes),
        st.blocks,
        human(st.unique_bytes)
    );
    let ratio = if st.unique_bytes > 0 {
        st.referenced_bytes as f64 / st.unique_bytes as f64
    } else {
        1.0
    };
    println!(
        "dedup ratio  {ratio:.2} (referenced {} / unique {})",
        human(st.referenced_bytes),
        human(st.unique_bytes)
    );
    println!(
        "garbage      {} blocks awaiting collection",
        st.garbage_blocks
    );
    if sessions.is_empty() {
        println!("sessions     none");
    }
    for x in sessions {
        let age = (fvfs_vfs::now_ns() - x.heartbeat) / 1_000_000_000;
        println!(
            "session {:<4} {} pid {} at {} (heartbeat {age} s ago)",
            x.id, x.host, x.pid, x.mountpoint
        );
    }
    Ok(())
}
