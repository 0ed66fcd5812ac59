//! `fvfsd format`: validates the settings, checks that every storage location is
//! reachable and writable, then writes the settings and the root directory.

use crate::engine::check_tier;
use anyhow::{bail, Context, Result};
use fvfs_tier::{Tier, TierSpec};
use fvfs_types::{CdcParams, Compression, Settings, FORMAT_VERSION};

pub struct FormatArgs {
    pub meta_url: String,
    pub storage: Vec<String>,
    pub compression: Compression,
    pub cdc: CdcParams,
    pub name: String,
}

pub async fn run(a: FormatArgs) -> Result<Settings> {
    if a.storage.is_empty() {
        bail!("no storage location: pass --storage DIR or --storage s3://bucket/prefix?endpoint=…, or [tiers.*] in the config");
    }
    a.cdc.validate().map_err(anyhow::Error::msg)?;
    for loc in &a.storage {
        let spec = TierSpec::parse(loc).with_context(|| format!("storage location {loc:?}"))?;
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
        storage: a.storage,
        created: fvfs_vfs::now_ns() / 1_000_000_000,
    };
    // The root directory belongs to whoever formats, as mkfs gives it to root.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    meta.format(&settings, uid, gid, fvfs_vfs::now_ns())?;
    Ok(settings)
}
