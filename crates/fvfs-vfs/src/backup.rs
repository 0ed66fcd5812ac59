//! Metadata is data too: explicit snapshots of the metadata database on a tier
//! (`fvfsd backup`); the continuous copy is the shipped log of `ship.rs`.
//!
//! Owns the backup object layout in a tier:
//! - a backup is `meta/backup-<UTC yyyymmddTHHMMSSZ>-<8 hex>.db.zst`: one zstd frame of a
//!   consistent, standalone copy of the database ([`MetaStore::snapshot`]);
//! - `meta/latest` holds the key of the newest backup (one line, no trailing data).
//!
//! Invariants:
//! - a backup object is complete or absent (tier puts are atomic), and `meta/latest` is
//!   written only after the backup it names is stored;
//! - pruning keeps the newest `keep` backups (by the UTC stamp in the key) and never
//!   deletes the backup just written, so `meta/latest` always names a present object
//!   unless someone else deletes it;
//! - the scratch copy on local disk is removed whether the backup succeeds or not.

use crate::{Result, VfsError};
use bytes::Bytes;
use fvfs_chunk::ChunkError;
use fvfs_meta::MetaStore;
use fvfs_tier::Tier;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Prefix of every metadata backup object.
pub const META_PREFIX: &str = "meta/";
/// The object naming the newest backup.
pub const LATEST_KEY: &str = "meta/latest";
/// Number of explicit backups kept in the tier.
pub const META_BACKUP_KEEP: usize = 7;
/// Prefix of scratch files in the scratch directory.
const SCRATCH_PREFIX: &str = ".fvfs-meta-backup-";
/// Scratch files older than this were left by a crashed process and are removed.
const SCRATCH_STALE: Duration = Duration::from_secs(6 * 3600);

const BACKUP_PREFIX: &str = "meta/backup-";
const BACKUP_SUFFIX: &str = ".db.zst";

/// Whether `key` names a backup object (`meta/backup-<stamp>-<id>.db.zst`).
pub fn is_backup_key(key: &str) -> bool {
    backup_stamp(key).is_some()
}

/// The UTC stamp (`yyyymmddTHHMMSSZ`) of a backup key.
pub fn backup_stamp(key: &str) -> Option<&str> {
    let rest = key
        .strip_prefix(BACKUP_PREFIX)?
        .strip_suffix(BACKUP_SUFFIX)?;
    let (stamp, id) = rest.split_once('-')?;
    let ok_stamp = stamp.len() == 16
        && stamp.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    let ok_id = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric());
    (ok_stamp && ok_id).then_some(stamp)
}

/// `yyyymmddTHHMMSSZ` of a Unix time (UTC, proleptic Gregorian).
pub fn utc_stamp(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        tod / 3600,
        (tod / 60) % 60,
        tod % 60
    )
}

/// Eight random hex digits (std's randomly keyed hasher: no extra dependency).
pub(crate) fn random8() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

fn io_err(context: String, e: std::io::Error) -> VfsError {
    VfsError::Chunk(ChunkError::Io {
        context,
        source: Arc::new(e),
    })
}

fn tier_err(e: fvfs_tier::TierError) -> VfsError {
    VfsError::Chunk(ChunkError::from(e))
}

/// Removes the scratch file when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Removes scratch files of crashed processes (best effort).
fn remove_stale_scratch(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with(SCRATCH_PREFIX) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > SCRATCH_STALE);
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Makes one backup now: snapshot into `scratch`, compress, upload, point `meta/latest`
/// at it. Returns the key of the new backup. Does not prune (see [`prune_backups`]).
pub async fn backup_now(meta: Arc<dyn MetaStore>, tier: Tier, scratch: PathBuf) -> Result<String> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let id = random8();
    let key = format!("{BACKUP_PREFIX}{}-{id}{BACKUP_SUFFIX}", utc_stamp(now));
    // Snapshot, then compress file to file, then upload by parts: memory stays small
    // whatever the size of the database.
    let (zpath, size) = tokio::task::spawn_blocking(move || -> Result<(Scratch, u64)> {
        std::fs::create_dir_all(&scratch)
            .map_err(|e| io_err(format!("creating {}", scratch.display()), e))?;
        remove_stale_scratch(&scratch);
        let base = format!("{SCRATCH_PREFIX}{}-{id}", std::process::id());
        let plain = Scratch(scratch.join(format!("{base}.db")));
        meta.snapshot(&plain.0)?;
        let z = Scratch(scratch.join(format!("{base}.db.zst")));
        let size = fvfs_chunk::compress_file(&plain.0, &z.0)?;
        // The copy (VACUUM INTO sorts every index) leaves tens of MB freed but kept by
        // the allocator: give them back, a long-lived daemon may run this again and again.
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free heap memory; no pointer is touched.
        unsafe {
            libc::malloc_trim(0);
        }
        Ok((z, size))
    })
    .await
    .map_err(|e| VfsError::Internal(format!("metadata snapshot task: {e}")))??;
    tier.put_object_from_file(&key, &zpath.0)
        .await
        .map_err(tier_err)?;
    drop(zpath);
    tier.put_object(LATEST_KEY, Bytes::from(key.clone()))
        .await
        .map_err(tier_err)?;
    tracing::info!(key = %key, bytes = size, tier = %tier.display(), "metadata backed up");
    Ok(key)
}

/// Every backup key in the tier, oldest first.
pub async fn list_backups(tier: &Tier) -> Result<Vec<String>> {
    let mut keys: Vec<String> = tier
        .list(META_PREFIX)
        .await
        .map_err(tier_err)?
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| is_backup_key(k))
        .collect();
    // Stamp first, then the random id: chronological to the second.
    keys.sort_by(|a, b| (backup_stamp(a), a).cmp(&(backup_stamp(b), b)));
    Ok(keys)
}

/// Keeps `current` (the backup just written) and the newest `keep - 1` others, deleting
/// the rest; `keep` is at least 1. Returns how many were deleted. (Keys of one second
/// are ordered by their random id, so `current` is kept explicitly, not by order.)
pub async fn prune_backups(tier: &Tier, keep: usize, current: &str) -> Result<usize> {
    let mut keys = list_backups(tier).await?;
    let before = keys.len();
    keys.retain(|k| k != current);
    let others = keep.max(1) - usize::from(before != keys.len());
    let doomed = keys.len().saturating_sub(others);
    let mut deleted = 0;
    for k in keys.iter().take(doomed) {
        tier.delete_object(k).await.map_err(tier_err)?;
        deleted += 1;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_keys() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_700_000_000), "20231114T221320Z");
        let k = "meta/backup-20231114T221320Z-0badf00d.db.zst";
        assert_eq!(backup_stamp(k), Some("20231114T221320Z"));
        assert!(!is_backup_key("meta/latest"));
        assert!(!is_backup_key("meta/backup-2023-x.db.zst"));
        assert!(!is_backup_key("meta/backup-20231114T221320Z-.db.zst"));
    }

    #[tokio::test]
    async fn backup_writes_latest_and_prunes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("meta.db");
        // An unformatted (schema only) database is enough to exercise the object layout.
        let meta = fvfs_meta::open(&format!("sqlite://{}", db.display()), true).expect("open");
        let root = dir.path().join("tier");
        std::fs::create_dir_all(&root).expect("tier dir");
        let tier = Tier::open_location(&root.display().to_string()).expect("tier");
        let scratch = dir.path().join("scratch");

        let mut keys = Vec::new();
        for _ in 0..3 {
            let k = backup_now(meta.clone(), tier.clone(), scratch.clone())
                .await
                .expect("backup");
            let latest = tier.get_object(LATEST_KEY).await.expect("latest");
            assert_eq!(&latest[..], k.as_bytes());
            keys.push(k);
        }
        assert_eq!(list_backups(&tier).await.expect("list").len(), 3);
        let last = keys.last().expect("a key").clone();
        prune_backups(&tier, 1, &last).await.expect("prune");
        assert_eq!(list_backups(&tier).await.expect("list"), vec![last.clone()]);
        // The scratch directory is left clean.
        let left: Vec<_> = std::fs::read_dir(&scratch).expect("scratch").collect();
        assert!(left.is_empty());

        let z = tier.get_object(&last).await.expect("get");
        let plain = fvfs_chunk::decompress_bytes(&z, 1 << 30).expect("zstd");
        let copy = dir.path().join("copy.db");
        std::fs::write(&copy, plain).expect("write");
        let c = fvfs_meta::open(&format!("sqlite://{}", copy.display()), false).expect("copy");
        assert_eq!(c.stats().expect("stats").inodes, 0);
    }
}
