//! Creating a filesystem: validated settings (CDC parameters, the tier list with one
//! durable tier), every storage location checked reachable and writable, then the
//! settings and the root directory written to a new metadata store.
//!
//! Invariant: nothing is written to the metadata unless every check passed; the root
//! directory belongs to whoever formats, as mkfs gives it to root.

use crate::error::{EngineError, Result};
use crate::open::check_location;
use fvfs_types::{CdcParams, Compression, Settings, TierSettings, FORMAT_VERSION};

/// What a new filesystem is made of.
#[derive(Clone, Debug)]
pub struct FormatSpec {
    pub name: String,
    /// Tiers, hottest first.
    pub tiers: Vec<TierSettings>,
    pub compression: Compression,
    pub cdc: CdcParams,
}

impl FormatSpec {
    /// One durable directory tier, default blocks, zstd: the embedded default.
    pub fn local(name: &str, dir: &std::path::Path) -> FormatSpec {
        FormatSpec {
            name: name.to_string(),
            tiers: tiers_from_locations(&[dir.display().to_string()]),
            compression: Compression::Zstd,
            cdc: CdcParams::default(),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.tiers.is_empty() {
            return Err(EngineError::Invalid("no storage location: pass --storage DIR or --storage s3://bucket/prefix?endpoint=…, --tier NAME=LOCATION, or [tiers.*] in the config".into()));
        }
        self.cdc.validate().map_err(EngineError::Invalid)?;
        fvfs_types::validate_tiers(&self.tiers).map_err(EngineError::Invalid)
    }
}

/// Tiers from plain storage locations: named tier0, tier1, …; the last is durable.
pub fn tiers_from_locations(locs: &[String]) -> Vec<TierSettings> {
    let n = locs.len();
    locs.iter()
        .enumerate()
        .map(|(i, l)| TierSettings {
            durable: i + 1 == n,
            ..TierSettings::new(format!("tier{i}"), l.clone())
        })
        .collect()
}

/// Checks every location, then creates the filesystem at `meta_url`.
pub async fn format(meta_url: &str, spec: FormatSpec) -> Result<Settings> {
    spec.validate()?;
    for t in &spec.tiers {
        check_location(&t.location)
            .await
            .map_err(|e| EngineError::Invalid(format!("tier {:?}: {e}", t.name)))?;
    }
    format_unchecked(meta_url, spec)
}

/// [`format`] without the reachability check of the locations (for tests and harnesses
/// on local directories).
pub fn format_unchecked(meta_url: &str, spec: FormatSpec) -> Result<Settings> {
    spec.validate()?;
    let meta = fvfs_meta::open(meta_url, true).map_err(|source| EngineError::OpenMeta {
        url: meta_url.to_string(),
        source,
    })?;
    let now = fvfs_vfs::now_ns();
    let settings = Settings {
        uuid: uuid::Uuid::new_v4(),
        name: spec.name,
        format_version: FORMAT_VERSION,
        cdc: spec.cdc,
        compression: spec.compression,
        storage: spec.tiers.iter().map(|t| t.location.clone()).collect(),
        created: now / 1_000_000_000,
        tiers: spec.tiers,
    };
    // SAFETY: geteuid/getegid read the process's credentials and cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    meta.format(&settings, uid, gid, now)?;
    Ok(settings)
}
