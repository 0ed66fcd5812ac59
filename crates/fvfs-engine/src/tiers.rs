//! Changing a filesystem's tiers: adding one at a position (shifting the tier bits of
//! every block) and changing one's location, watermarks or role, with the backfill that
//! a tier which must hold every block needs. Also a fresh reachability probe of every
//! tier, for reports made without a running engine.
//!
//! Invariants: a change is one transaction over the settings (and, for an insert, the
//! tier bits of every block); it needs the filesystem unmounted (a mount reads its tiers
//! at start), so it takes the mount lock; a new or moved location must answer before
//! anything is written; the tier list stays valid (`fvfs_types::validate_tiers`): one
//! durable tier, which takes no watermarks.

use crate::error::{EngineError, Result};
use crate::open::{check_location, open_meta, MountLock};
use fvfs_types::TierSettings;
use std::path::Path;

/// What a tier change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierChanged {
    /// The tier's position (its bit is `1 << position`).
    pub position: usize,
    /// Blocks queued to be copied onto it (a durable or keep-copy tier holds them all).
    pub backfill: u64,
}

/// A change to one tier; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct TierChange {
    pub high: Option<u64>,
    pub low: Option<u64>,
    /// Makes it the durable tier (the previous one becomes a cache).
    pub durable: bool,
    pub keep_copy: Option<bool>,
    pub location: Option<String>,
}

fn lock(meta_url: &str, what: &str) -> Result<Option<MountLock>> {
    MountLock::acquire(meta_url, Path::new(what)).map_err(|e| match e {
        EngineError::Locked(m) => EngineError::Locked(format!(
            "{m}: unmount the filesystem before changing its tiers"
        )),
        e => e,
    })
}

fn validate(tiers: &[TierSettings]) -> Result<()> {
    fvfs_types::validate_tiers(tiers).map_err(EngineError::Invalid)
}

/// Adds `new` at `position` (default: hottest, 0).
pub async fn add_tier(
    meta_url: &str,
    new: TierSettings,
    position: Option<usize>,
) -> Result<TierChanged> {
    let _lock = lock(meta_url, "(fvfsd tier add)")?;
    let meta = open_meta(meta_url)?;
    let mut s = meta.settings()?;
    let mut tiers = s.tier_list();
    let pos = position.unwrap_or(0).min(tiers.len());
    check_location(&new.location).await?;
    if new.durable {
        for t in &mut tiers {
            t.durable = false;
        }
    }
    let fill = new.durable || new.keep_copy;
    tiers.insert(pos, new);
    validate(&tiers)?;
    s.storage = tiers.iter().map(|t| t.location.clone()).collect();
    s.tiers = tiers;
    meta.insert_tier(&s, pos as u32)?;
    let backfill = if fill {
        meta.queue_missing(pos as u32, fvfs_vfs::now_ns())?
    } else {
        0
    };
    Ok(TierChanged {
        position: pos,
        backfill,
    })
}

/// Applies `c` to the tier called `name`.
pub async fn set_tier(meta_url: &str, name: &str, c: TierChange) -> Result<TierChanged> {
    let _lock = lock(meta_url, "(fvfsd tier set)")?;
    let meta = open_meta(meta_url)?;
    let mut s = meta.settings()?;
    let mut tiers = s.tier_list();
    let Some(i) = tiers.iter().position(|t| t.name == name) else {
        return Err(EngineError::Invalid(format!(
            "no tier named {name:?} (see fvfsd tier list)"
        )));
    };
    if let Some(loc) = &c.location {
        check_location(loc).await?;
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
        return Err(EngineError::Invalid(
            "the durable tier is never evicted: it takes no watermarks".into(),
        ));
    }
    validate(&tiers)?;
    let fill = tiers[i].durable || tiers[i].keep_copy;
    s.storage = tiers.iter().map(|t| t.location.clone()).collect();
    s.tiers = tiers;
    meta.set_settings(&s)?;
    let backfill = if fill {
        meta.queue_missing(i as u32, fvfs_vfs::now_ns())?
    } else {
        0
    };
    Ok(TierChanged {
        position: i,
        backfill,
    })
}

/// Probes each tier now (30 s budget each): Ok or the error's text.
pub async fn probe(tiers: &[TierSettings]) -> Vec<std::result::Result<(), String>> {
    let mut out = Vec::with_capacity(tiers.len());
    for t in tiers {
        out.push(check_location(&t.location).await.map_err(|e| e.to_string()));
    }
    out
}
