//! Metadata backup now and restore from a tier: the disaster drill behind `fvfsd backup`
//! and `fvfsd restore`.
//!
//! [`backup`] makes one metadata backup into the filesystem's durable tier (the same
//! objects the mount's `meta-backup` worker writes; see `fvfs_vfs::backup`), then prunes.
//! [`restore`] rebuilds a lost host's metadata database from a tier alone: it takes
//! `meta/latest` (or the newest backup, or the one named), decompresses it, checks that it
//! opens as an fvfs database, and installs it at the `--meta` path.
//!
//! Invariants of `restore`:
//! - the database at `--meta` is replaced atomically (temp file + fsync + rename + fsync
//!   of the directory), only with `force` if one exists, and never while a process holds
//!   the filesystem's [`MountLock`];
//! - stale `-wal`/`-shm` files of a replaced database are removed before the rename, so
//!   they can never be applied to the restored file;
//! - nothing is installed unless it opened as an fvfs database with settings; a failed
//!   attempt leaves no temp file behind;
//! - the restored settings are kept as they are (storage locations included); a warning
//!   names them when they do not include the location restored from.

use crate::{paths, EngineError, MountLock, Result};
use fvfs_meta::MetaUrl;
use fvfs_tier::{Tier, TierSpec};
use std::path::{Path, PathBuf};

/// Largest decompressed backup accepted.
const MAX_RESTORED_BYTES: u64 = 4 << 30;

/// What [`backup`] did.
#[derive(Debug)]
pub struct BackedUp {
    /// The object key of the new backup.
    pub key: String,
    /// The tier it went to (credentials redacted).
    pub tier: String,
    /// Pruning old backups failed (the new backup is stored all the same).
    pub prune_error: Option<String>,
}

/// One backup now to the durable tier, then pruning to `META_BACKUP_KEEP`.
pub async fn backup(meta_url: &str) -> Result<BackedUp> {
    let meta = fvfs_meta::open(meta_url, false).map_err(|source| EngineError::OpenMeta {
        url: meta_url.to_string(),
        source,
    })?;
    let settings = meta.settings()?;
    // The durable tier: the one a lost host can always be rebuilt from.
    let durable = settings
        .tier_list()
        .get(settings.durable_tier())
        .map(|t| t.location.clone())
        .ok_or_else(|| EngineError::Invalid("the filesystem has no storage location".into()))?;
    let tier = Tier::open(&TierSpec::parse(&durable)?)?;
    let key = fvfs_vfs::backup_now(meta, tier.clone(), paths::scratch_dir(meta_url)).await?;
    let prune_error = fvfs_vfs::prune_backups(&tier, fvfs_vfs::META_BACKUP_KEEP, &key)
        .await
        .err()
        .map(|e| e.to_string());
    Ok(BackedUp {
        key,
        tier: tier.display(),
        prune_error,
    })
}

/// What to restore, from where, to where.
#[derive(Debug, Clone)]
pub struct RestoreArgs {
    /// The tier location to restore from (any tier that holds `meta/` backups).
    pub from: String,
    /// Where to install the database (`sqlite:///path/meta.db`).
    pub meta_url: String,
    /// A backup name or key; `None` takes `meta/latest`, else the newest listed.
    pub backup: Option<String>,
    /// Replace an existing database.
    pub force: bool,
}

/// What [`restore`] installed.
#[derive(Debug)]
pub struct Restored {
    pub key: String,
    /// When the backup was taken (from its key), `?` if the key carries no stamp.
    pub taken: String,
    /// The tier restored from (credentials redacted).
    pub tier: String,
    pub fs_name: String,
    pub fs_uuid: String,
    pub inodes: u64,
    pub blocks: u64,
    pub stored_bytes: u64,
    /// Sessions of the lost host's processes found in the backup and ended.
    pub sessions_ended: usize,
    /// Things the user should know (a stale `meta/latest`, moved storage locations).
    pub warnings: Vec<String>,
}

/// Installs a metadata backup from a tier at the `meta_url` path.
pub async fn restore(args: &RestoreArgs) -> Result<Restored> {
    let db = match MetaUrl::parse(&args.meta_url)? {
        MetaUrl::Sqlite(p) => p,
        _ => {
            return Err(EngineError::Invalid(
                "restore installs an SQLite database: pass --meta sqlite:///path/meta.db".into(),
            ))
        }
    };
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .map_err(EngineError::io(format!("cannot create {}", dir.display())))?;
    // No live mount may hold the database being replaced.
    let _lock = MountLock::acquire(&args.meta_url, Path::new("(restore)"))?;
    if db.exists() && !args.force {
        return Err(EngineError::Invalid(format!(
            "{} exists; refusing to overwrite a metadata database (pass --force to replace it)",
            db.display()
        )));
    }

    let tier = Tier::open(&TierSpec::parse(&args.from)?)?;
    let mut warnings = Vec::new();
    let key = choose_backup(&tier, args.backup.as_deref(), &mut warnings).await?;
    let stored = tier.get_object(&key).await?;
    let plain = fvfs_chunk::decompress_bytes(&stored, MAX_RESTORED_BYTES)
        .map_err(|e| EngineError::Invalid(format!("backup {key} is corrupt: {e}")))?;
    drop(stored);

    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "meta.db".into());
    let tmp = dir.join(format!(".{name}.restore-{}", std::process::id()));
    remove_db_files(&tmp);
    let installed = install(&tmp, &db, &plain, &key);
    if installed.is_err() {
        remove_db_files(&tmp);
    }
    let (settings, stats, sessions_ended) = installed?;

    let from = TierSpec::parse(&args.from).ok();
    let locations: Vec<String> = settings
        .tier_list()
        .into_iter()
        .map(|t| t.location)
        .collect();
    let names_source = locations
        .iter()
        .any(|loc| *loc == args.from || (from.is_some() && TierSpec::parse(loc).ok() == from));
    if !names_source {
        let shown: Vec<String> = locations.iter().map(|l| fvfs_tier::redact(l)).collect();
        warnings.push(format!(
            "the restored filesystem's storage locations are [{}], which do not include {}; \
             the mount will use those locations (fix them before mounting if they moved)",
            shown.join(", "),
            tier.display()
        ));
    }
    Ok(Restored {
        taken: fvfs_vfs::backup_stamp(&key).unwrap_or("?").to_string(),
        key,
        tier: tier.display(),
        fs_name: settings.name.clone(),
        fs_uuid: settings.uuid.to_string(),
        inodes: stats.inodes,
        blocks: stats.blocks,
        stored_bytes: stats.stored_bytes,
        sessions_ended,
        warnings,
    })
}

/// Picks the backup to restore: the one named, `meta/latest`, or the newest listed.
async fn choose_backup(
    tier: &Tier,
    named: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<String> {
    if let Some(name) = named {
        let key = if name.starts_with(fvfs_vfs::META_PREFIX) {
            name.to_string()
        } else {
            format!("{}{name}", fvfs_vfs::META_PREFIX)
        };
        if !fvfs_vfs::is_backup_key(&key) {
            return Err(EngineError::Invalid(format!(
                "{name:?} is not a backup name (meta/backup-<yyyymmddTHHMMSSZ>-<id>.db.zst)"
            )));
        }
        return Ok(key);
    }
    match tier.get_object(fvfs_vfs::LATEST_KEY).await {
        Ok(b) => {
            let key = String::from_utf8_lossy(&b).trim().to_string();
            if fvfs_vfs::is_backup_key(&key) && tier.object_exists(&key).await? {
                return Ok(key);
            }
            warnings.push(format!(
                "{} names {key:?}, which is not a present backup; using the newest listed",
                fvfs_vfs::LATEST_KEY
            ));
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let keys = fvfs_vfs::list_backups(tier).await?;
    keys.last().cloned().ok_or_else(|| {
        EngineError::Invalid(format!(
            "no metadata backup under {}{} (was the filesystem ever backed up?)",
            tier.display(),
            fvfs_vfs::META_PREFIX
        ))
    })
}

/// Writes, verifies and renames the restored database into place. Returns its settings,
/// statistics and the number of stale sessions ended.
fn install(
    tmp: &Path,
    db: &Path,
    plain: &[u8],
    key: &str,
) -> Result<(fvfs_types::Settings, fvfs_meta::Stats, usize)> {
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
            .map_err(EngineError::io(format!("cannot create {}", tmp.display())))?;
        f.write_all(plain)
            .and_then(|()| f.sync_all())
            .map_err(EngineError::io(format!("cannot write {}", tmp.display())))?;
    }
    // Verify: it must open as an fvfs database (schema migrated if older) with settings.
    let tmp_url = format!("sqlite://{}", tmp.display());
    let not_fvfs =
        |e: fvfs_meta::MetaError| EngineError::Invalid(format!("backup {key} is not usable: {e}"));
    let (settings, stats, sessions) = {
        let meta = fvfs_meta::open(&tmp_url, false).map_err(not_fvfs)?;
        let settings = meta.settings().map_err(not_fvfs)?;
        let stats = meta.stats()?;
        // The sessions recorded in the backup belong to the lost host's processes.
        let sessions = meta.sessions()?;
        for s in &sessions {
            meta.end_session(s.id)?;
        }
        meta.sync()?;
        (settings, stats, sessions.len())
        // `meta` drops here: the last connection checkpoints and removes the WAL.
    };
    let wal = with_suffix(tmp, "-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Err(EngineError::Invalid(format!(
            "the restored database still has a write-ahead log at {}; not installing it",
            wal.display()
        )));
    }
    remove_if_present(&wal)?;
    remove_if_present(&with_suffix(tmp, "-shm"))?;
    // A replaced database's WAL must not be applied to the restored file.
    remove_if_present(&with_suffix(db, "-wal"))?;
    remove_if_present(&with_suffix(db, "-shm"))?;
    std::fs::rename(tmp, db).map_err(EngineError::io(format!(
        "cannot move the restored database to {}",
        db.display()
    )))?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(EngineError::io(format!("cannot sync {}", dir.display())))?;
    }
    Ok((settings, stats, sessions))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(EngineError::Io {
            what: format!("cannot remove {}", path.display()),
            source: e,
        }),
    }
}

/// Removes a candidate database and its WAL files (on failure paths).
fn remove_db_files(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(db, suffix));
    }
}
