//! `fvfsd format`: validates the settings, checks that every storage location is
//! reachable and writable, then writes the settings and the root directory.

use crate::engine::check_tier;
use anyhow::{bail, Context, Result};
use fvfs_tier::{Tier, TierSpec};
use fvfs_types::{CdcParams, Compression, Settings, TierSettings, FORMAT_VERSION};

pub struct FormatArgs {
    pub meta_url: String,
    /// Tiers, hottest first.
    pub tiers: Vec<TierSettings>,
    pub compression: Compression,
    pub cdc: CdcParams,
    pub name: String,
}

pub async fn run(a: FormatArgs) -> Result<Settings> {
    if a.tiers.is_empty() {
        bail!("no storage location: pass --storage DIR or --storage s3://bucket/prefix?endpoint=…, --tier NAME=LOCATION, or [tiers.*] in the config");
    }
    a.cdc.validate().map_err(anyhow::Error::msg)?;
    fvfs_types::validate_tiers(&a.tiers).map_err(anyhow::Error::msg)?;
    for t in &a.tiers {
        let spec = TierSpec::parse(&t.location).with_context(|| {
            format!(
                "tier {:?} location {:?}",
                t.name,
                fvfs_tier::redact(&t.location)
            )
        })?;
        let tier = Tier::open(&spec)?;
        check_tier(&tier).await?;
    }
    let meta = fvfs_meta::open(&a.meta_url, true)
        .with_context(|| format!("cannot create the metadata at {}", a.meta_url))?;
    let settings = Settings {
        uuid: uuid::Uuid::new_v4(),
        name: a.name,
        format_version: FORMAT_VERSION,
        cdc: a.cdc,
        compression: a.compression,
        storage: a.tiers.iter().map(|t| t.location.clone()).collect(),
        created: fvfs_vfs::now_ns() / 1_000_000_000,
        tiers: a.tiers,
    };
    // The root directory belongs to whoever formats, as mkfs gives it to root.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    meta.format(&settings, uid, gid, fvfs_vfs::now_ns())?;
    Ok(settings)
}

/// Tiers from plain storage locations: named tier0, tier1, …; the last is durable.
pub fn tiers_from_locations(locs: &[String]) -> Vec<TierSettings> {
    let n = locs.len();
    locs.iter()
        .enumerate()
        .map(|(i, l)| TierSettings {
            name: format!("tier{i}"),
            location: l.clone(),
            high_watermark: None,
            low_watermark: None,
            durable: i + 1 == n,
            keep_copy: false,
        })
        .collect()
}

/// Parses `NAME=LOCATION[,durable][,keep-copy][,high=SIZE][,low=SIZE]`. A location that
/// contains commas cannot be written this way: use the config file.
pub fn parse_tier_spec(s: &str) -> Result<TierSettings> {
    let (name, rest) = s.split_once('=').with_context(|| {
        format!("--tier {s:?}: expected NAME=LOCATION[,durable][,keep-copy][,high=SIZE][,low=SIZE]")
    })?;
    let mut parts = rest.split(',');
    let location = parts.next().unwrap_or_default().to_string();
    let mut t = TierSettings {
        name: name.to_string(),
        location,
        high_watermark: None,
        low_watermark: None,
        durable: false,
        keep_copy: false,
    };
    for p in parts {
        match p.split_once('=') {
            None if p == "durable" => t.durable = true,
            None if p == "keep-copy" => t.keep_copy = true,
            Some(("high", v)) => t.high_watermark = Some(crate::config::parse_size(v)?),
            Some(("low", v)) => t.low_watermark = Some(crate::config::parse_size(v)?),
            _ => bail!("--tier {s:?}: unknown option {p:?}"),
        }
    }
    Ok(t)
}
