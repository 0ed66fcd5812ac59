//! `fvfsd status`: when a daemon runs (its control socket answers), what the daemon says
//! (`GET /v1/status` over the socket); otherwise, read from the metadata: settings, space,
//! inodes, blocks, dedup ratio and live sessions.
//!
//! Both forms print the SHA-256 of the daemon's TLS certificate (`<state>/tls/cert.pem`) in
//! the form `fvfsc` shows and pins (64 lowercase hex digits), so that a user can compare
//! it before `fvfsc login --replace-pin`.
//!
//! Invariants: the socket is asked with a bounded wait (5 s to connect/read/write), so a
//! hung daemon cannot hang `status`; a socket nobody answers on means "no daemon".

use anyhow::{bail, Context, Result};
use fvfs_engine::redact;
use fvfs_engine::tiers::probe;
use std::path::Path;

/// The fingerprint of the certificate in `state` (None before the first format/serve).
fn fingerprint(state: &Path) -> Result<Option<String>> {
    fvfs_api::tls::stored_fingerprint(state)
        .with_context(|| format!("cannot read the TLS certificate of {}", state.display()))
}

/// The `tls` and `api` lines: the certificate clients pin, and the URL the running daemon
/// wrote (its scheme says whether it serves that certificate).
fn print_tls(state: &Path) -> Result<()> {
    if let Some(fp) = fingerprint(state)? {
        println!("tls          sha256 {fp}");
    }
    if let Ok(url) = std::fs::read_to_string(state.join("fvfsd.url")) {
        println!("api          {}", url.trim());
    }
    Ok(())
}

/// Prints the daemon's status; false if no daemon answers on `socket`. `state` is the
/// daemon's state directory (its certificate).
pub fn from_daemon(socket: &Path, state: &Path, json: bool) -> Result<bool> {
    let Some((code, body)) = fvfs_api::control::ask(socket, "GET", "/v1/status")
        .with_context(|| format!("no answer from the daemon on {}", socket.display()))?
    else {
        return Ok(false);
    };
    if code != 200 {
        bail!(
            "the daemon answered {code}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    if json {
        let mut v: serde_json::Value =
            serde_json::from_slice(&body).context("unexpected status from the daemon")?;
        if let Some(o) = v.as_object_mut() {
            o.insert("tls_fingerprint".into(), fingerprint(state)?.into());
        }
        println!("{v}");
        return Ok(true);
    }
    let st: fvfs_types::api::Status =
        serde_json::from_slice(&body).context("unexpected status from the daemon")?;
    println!("filesystem   {} ({})", st.name, st.uuid);
    println!(
        "daemon       fvfsd {} up {} s, socket {}",
        st.version,
        st.uptime_secs,
        socket.display()
    );
    println!(
        "mount        {}",
        st.mount.as_deref().unwrap_or("none (API only)")
    );
    print_tls(state)?;
    for (i, t) in st.tiers.iter().enumerate() {
        let wm = match (t.high_watermark, t.low_watermark) {
            (Some(h), Some(l)) => format!(", watermarks {} / {}", human(h), human(l)),
            (Some(h), None) => format!(", high watermark {}", human(h)),
            _ => String::new(),
        };
        let health = match (&t.healthy, &t.last_error) {
            (true, _) => "healthy".to_string(),
            (false, Some(e)) => format!("UNHEALTHY ({e})"),
            (false, None) => "UNHEALTHY".to_string(),
        };
        println!(
            "tier {i} {:<6} {}, {}{wm}, {health}: {}",
            t.name,
            if t.durable { "durable" } else { "cache" },
            human(t.bytes),
            t.location
        );
    }
    println!("replication  {} block copies pending", st.wal_pending);
    if let Some(m) = &st.meta_shipping {
        println!("{}", shipping_line(m));
    }
    for (name, state) in &st.workers {
        println!("worker       {name}: {state}");
    }
    println!("files        {} ({})", st.files, human(st.bytes));
    Ok(true)
}

/// The metadata lag next to the block backlog.
fn shipping_line(m: &fvfs_types::api::MetaShipping) -> String {
    let synced = m.synced_at_ms.map_or("never".to_string(), |t| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        format!("{} s ago", now.saturating_sub(t) / 1000)
    });
    let err = m
        .last_error
        .as_ref()
        .map(|e| format!(", FAILING: {e}"))
        .unwrap_or_default();
    format!(
        "shipping     metadata lag {:.0} s, {} waiting, all on the tier as of {synced}, generation {}{err}",
        m.lag_secs,
        human(m.pending_bytes),
        m.generation.as_deref().unwrap_or("(base not uploaded yet)")
    )
}

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

/// The status model (`Vfs::status`, the one `/v1/status` serves), read beside any mount,
/// with a fresh probe of every tier.
pub async fn run(meta_url: &str, state: &Path, shipping_on: bool) -> Result<()> {
    let (_engine, vfs) = super::tiers::beside_mount(meta_url).await?;
    let st = vfs.status()?;
    let s = vfs.settings();
    println!("filesystem   {} ({})", st.name, st.uuid);
    println!("format       version {}", st.format_version);
    println!("metadata     {}", st.metadata);
    if let Some(fp) = fingerprint(state)? {
        println!("tls          sha256 {fp}");
    }
    let settings: Vec<_> = st.tiers.iter().map(|t| t.settings.clone()).collect();
    let health = probe(&settings).await;
    for (i, t) in st.tiers.iter().enumerate() {
        let wm = match (t.settings.high_watermark, t.settings.low_watermark) {
            (Some(h), Some(l)) => format!(", watermarks {} / {}", human(h), human(l)),
            (Some(h), None) => format!(", high watermark {}", human(h)),
            _ => String::new(),
        };
        let h = match &health[i] {
            Ok(()) => "reachable".to_string(),
            Err(e) => format!("UNREACHABLE ({e})"),
        };
        println!(
            "tier {i} {:<6} {}, {} in {} blocks{wm}, {h}: {}",
            t.settings.name,
            t.role(),
            human(t.usage.bytes),
            t.usage.blocks,
            redact(&t.settings.location)
        );
    }
    println!(
        "replication  {} block copies pending (fvfsd wal)",
        st.queue_pending
    );
    match fvfs_engine::shipping::status_of_mount(meta_url) {
        Some(m) => println!("{}", shipping_line(&m)),
        None if !shipping_on => {
            println!("shipping     metadata: off ([backup] enabled = false)")
        }
        None if fvfs_engine::shipping::files(meta_url).is_some() => {
            println!("shipping     metadata: no mount runs (a mount ships its metadata)")
        }
        None => {}
    }
    let (records, bytes) = vfs.journal_totals()?;
    if records > 0 {
        println!(
            "journal      {records} records, {} acknowledged and not yet in blocks (the mount stores them)",
            human(bytes)
        );
    }
    for (name, value) in &st.counters {
        println!("counter      {name} = {value}");
    }
    println!(
        "blocks       FastCDC min {} / avg {} / max {}, compression {:?}",
        human(s.cdc.min as u64),
        human(s.cdc.avg as u64),
        human(s.cdc.max as u64),
        s.compression
    );
    let t = &st.stats;
    println!("inodes       {}", t.inodes);
    println!("file bytes   {}", human(t.logical_bytes));
    println!(
        "stored       {} in {} blocks ({} before compression)",
        human(t.stored_bytes),
        t.blocks,
        human(t.unique_bytes)
    );
    println!(
        "dedup ratio  {:.2} (referenced {} / unique {})",
        st.dedup_ratio(),
        human(t.referenced_bytes),
        human(t.unique_bytes)
    );
    println!(
        "garbage      {} blocks awaiting collection",
        t.garbage_blocks
    );
    if st.sessions.is_empty() {
        println!("sessions     none");
    }
    for x in &st.sessions {
        let age = (fvfs_vfs::now_ns() - x.heartbeat) / 1_000_000_000;
        println!(
            "session {:<4} {} pid {} at {} (heartbeat {age} s ago)",
            x.id, x.host, x.pid, x.mountpoint
        );
    }
    Ok(())
}
