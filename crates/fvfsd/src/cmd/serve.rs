//! `fvfsd serve`: the main job. With no configuration it uses the embedded default: an
//! SQLite database and a block directory under the data dir, formatted on first run, and
//! a mount at `~/fvfs`; it prints where everything is and serves in the foreground.

use super::format::{self, FormatArgs};
use super::mount::{self, MountArgs};
use crate::config::Config;
use crate::engine::{data_dir, home, DEFAULT_CACHE_SIZE};
use anyhow::{Context, Result};
use fvfs_meta::MetaUrl;
use fvfs_types::{CdcParams, Compression};

pub fn run(cfg: &Config, meta_override: Option<String>, threads: usize) -> Result<()> {
    let dir = data_dir();
    let meta_url = meta_override
        .or_else(|| cfg.meta_url())
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("meta.db").display()));
    let mountpoint = cfg
        .daemon
        .mount_path
        .clone()
        .unwrap_or_else(|| home().join("fvfs"));
    let fresh = match MetaUrl::parse(&meta_url)? {
        MetaUrl::Sqlite(p) => !p.exists(),
        MetaUrl::Postgres(_) => false,
    };
    if fresh {
        let mut tiers = cfg.tier_settings()?;
        if tiers.is_empty() {
            tiers = format::tiers_from_locations(&[dir.join("blocks").display().to_string()]);
        }
        let rt = tokio::runtime::Runtime::new()?;
        let s = rt.block_on(format::run(FormatArgs {
            meta_url: meta_url.clone(),
            tiers,
            compression: Compression::Zstd,
            cdc: CdcParams::default(),
            name: "fvfs".into(),
        }))?;
        println!("formatted a new filesystem {} ({})", s.name, s.uuid);
    }
    std::fs::create_dir_all(&mountpoint)
        .with_context(|| format!("cannot create the mountpoint {}", mountpoint.display()))?;
    let meta = crate::engine::open_meta(&meta_url)?;
    let settings = meta.settings()?;
    drop(meta);
    let cache_dir = cfg
        .daemon
        .cache_dir
        .clone()
        .unwrap_or_else(|| crate::engine::default_cache_dir(&settings));
    println!("metadata   {meta_url}");
    for loc in &settings.storage {
        println!("storage    {}", fvfs_tier::redact(loc));
    }
    println!("cache      {}", cache_dir.display());
    println!("mount      {}", mountpoint.display());
    println!(
        "stop with Ctrl-C (or SIGTERM, or `umount {}`)",
        mountpoint.display()
    );
    mount::foreground(MountArgs {
        meta_url,
        mountpoint,
        cache_dir: Some(cache_dir),
        cache_size: cfg
            .daemon
            .cache_size
            .map(|b| b.0)
            .unwrap_or(DEFAULT_CACHE_SIZE),
        threads,
        allow_non_empty: false,
        policy: crate::engine::policy(cfg),
        config: None,
    })
}
