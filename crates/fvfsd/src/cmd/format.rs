//! `fvfsd format` arguments: the tier list from `--tier` specifications. The work is
//! `fvfs_engine::format`.

use anyhow::{bail, Context, Result};
use fvfs_types::TierSettings;

/// Parses `NAME=LOCATION[,durable][,keep-copy][,high=SIZE][,low=SIZE]`. A location that
/// contains commas cannot be written this way: use the config file.
pub fn parse_tier_spec(s: &str) -> Result<TierSettings> {
    let (name, rest) = s.split_once('=').with_context(|| {
        format!("--tier {s:?}: expected NAME=LOCATION[,durable][,keep-copy][,high=SIZE][,low=SIZE]")
    })?;
    let mut parts = rest.split(',');
    let location = parts.next().unwrap_or_default().to_string();
    let mut t = TierSettings::new(name, location);
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
