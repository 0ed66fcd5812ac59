//! `fvfsd backup` and `fvfsd restore`: the metadata disaster drill from the command line.
//!
//! `backup` makes one metadata backup now into the filesystem's durable tier (the same
//! objects the mount's `meta-backup` worker writes; see `fvfs_vfs::backup`).
//! `restore` rebuilds a lost host's metadata database from a tier alone: it takes
//! `meta/latest` (or the newest backup, or the one named), decompresses it, checks that it
//! opens as an fvfs database, and installs it at the `--meta` path.
//!
//! Invariants of `restore`:
//! - the database at `--meta` is replaced atomically (temp file + fsync + rename + fsync
//!   of the directory), and only with `--force` if one exists;
//! - stale `-wal`/`-shm` files of a replaced database are removed before the rename, so
//!   they can never be applied to the restored file;
//! - nothing is installed unless it opened as an fvfs database with settings;
//! - the restored settings are kept as they are (storage locations included); a warning
//!   names them when they do not include the location restored from.

use anyhow::{bail, Context, Result};
use fvfs_engine::MountLock;
use fvfs_meta::MetaUrl;
use fvfs_tier::{Tier, TierSpec};
use std::path::{Path, PathBuf};

/// Largest decompressed backup accepted.
const MAX_RESTORED_BYTES: u64 = 4 << 30;

/// `fvfsd backup`: one backup now to the durable tier, then pruning. Returns the key.
pub async fn backup(meta_url: &str) -> Result<String> {
    let meta = fvfs_meta::open(meta_url, false)
        .with_context(|| format!("cannot open the metadata at {meta_url}"))?;
    let settings = meta.settings()?;
    // The durable tier: the one a lost host can always be rebuilt from.
    let durable = settings
        .tier_list()
        .get(settings.durable_tier())
        .map(|t| t.location.clone())
        .context("the filesystem has no storage location")?;
    let tier = Tier::open(&TierSpec::parse(&durable)?)?;
    let key = fvfs_vfs::backup_now(
        meta,
        tier.clone(),
        fvfs_engine::paths::scratch_dir(meta_url),
    )
    .await
    .with_context(|| format!("metadata backup to {} failed", tier.display()))?;
    if let Err(e) = fvfs_vfs::prune_backups(&tier, fvfs_vfs::META_BACKUP_KEEP, &key).await {
        eprintln!("warning: pruning old backups failed: {e}");
    }
    println!("backed up metadata to {} as {key}", tier.display());
    Ok(key)
}

pub struct RestoreArgs {
    pub from: String,
    pub meta_url: String,
    pub backup: Option<String>,
    pub force: bool,
}

/// Picks the backup to restore: the one named, `meta/latest`, or the newest listed.
async fn choose_backup(tier: &Tier, named: Option<&str>) -> Result<String> {
    if let Some(name) = named {
        let key = if name.starts_with(fvfs_vfs::META_PREFIX) {
            name.to_string()
        } else {
            format!("{}{name}", fvfs_vfs::META_PREFIX)
        };
        if !fvfs_vfs::is_backup_key(&key) {
            bail!("{name:?} is not a backup name (meta/backup-<yyyymmddTHHMMSSZ>-<id>.db.zst)");
        }
        return Ok(key);
    }
    match tier.get_object(fvfs_vfs::LATEST_KEY).await {
        Ok(b) => {
            let key = String::from_utf8_lossy(&b).trim().to_string();
            if fvfs_vfs::is_backup_key(&key) && tier.object_exists(&key).await? {
                return Ok(key);
            }
            eprintln!(
                "warning: {} names {key:?}, which is not a present backup; using the newest listed",
                fvfs_vfs::LATEST_KEY
            );
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e).context("cannot read the latest-backup pointer"),
    }
    let keys = fvfs_vfs::list_backups(tier).await?;
    keys.last().cloned().with_context(|| {
        format!(
            "no metadata backup under {}{} (was the filesystem ever backed up?)",
            tier.display(),
            fvfs_vfs::META_PREFIX
        )
    })
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
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Removes a candidate database and its WAL files (on failure paths).
fn remove_db_files(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(db, suffix));
    }
}

/// `fvfsd restore`: installs a metadata backup from a tier at the `--meta` path.
pub async fn restore(args: RestoreArgs) -> Result<()> {
    let db = match MetaUrl::parse(&args.meta_url)? {
        MetaUrl::Sqlite(p) => p,
        _ => bail!("restore installs an SQLite database: pass --meta sqlite:///path/meta.db"),
    };
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // No live mount may hold the database being replaced.
    let _lock = MountLock::acquire(&args.meta_url, Path::new("(restore)"))?;
    if db.exists() && !args.force {
        bail!(
            "{} exists; refusing to overwrite a metadata database (pass --force to replace it)",
            db.display()
        );
    }

    let spec = TierSpec::parse(&args.from)?;
    let tier = Tier::open(&spec)?;
    let key = choose_backup(&tier, args.backup.as_deref()).await?;
    let stored = tier
        .get_object(&key)
        .await
        .with_context(|| format!("cannot download {key} from {}", tier.display()))?;
    let plain = fvfs_chunk::decompress_bytes(&stored, MAX_RESTORED_BYTES)
        .with_context(|| format!("backup {key} is corrupt"))?;
    drop(stored);

    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "meta.db".into());
    let tmp = dir.join(format!(".{name}.restore-{}", std::process::id()));
    remove_db_files(&tmp);
    let installed = install(&tmp, &db, &plain, &key, &tier, &args);
    if installed.is_err() {
        remove_db_files(&tmp);
    }
    installed
}

/// Writes, verifies and renames the restored database into place.
fn install(
    tmp: &Path,
    db: &Path,
    plain: &[u8],
    key: &str,
    tier: &Tier,
    args: &RestoreArgs,
) -> Result<()> {
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(plain)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
    }
    // Verify: it must open as an fvfs database (schema migrated if older) with settings.
    let tmp_url = format!("sqlite://{}", tmp.display());
    let (settings, stats, sessions) = {
        let meta = fvfs_meta::open(&tmp_url, false)
            .with_context(|| format!("backup {key} is not an fvfs metadata database"))?;
        let settings = meta
            .settings()
            .with_context(|| format!("backup {key} holds no filesystem settings"))?;
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
        bail!(
            "the restored database still has a write-ahead log at {}; not installing it",
            wal.display()
        );
    }
    remove_if_present(&wal)?;
    remove_if_present(&with_suffix(tmp, "-shm"))?;
    // A replaced database's WAL must not be applied to the restored file.
    remove_if_present(&with_suffix(db, "-wal"))?;
    remove_if_present(&with_suffix(db, "-shm"))?;
    std::fs::rename(tmp, db)
        .with_context(|| format!("cannot move the restored database to {}", db.display()))?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))?;
    }

    let when = fvfs_vfs::backup_stamp(key).unwrap_or("?");
    println!(
        "restored filesystem {:?} ({}) from {} backup {key} (taken {when})",
        settings.name,
        settings.uuid,
        tier.display()
    );
    println!(
        "  {} inodes, {} blocks ({} bytes stored); {} stale session(s) ended",
        stats.inodes, stats.blocks, stats.stored_bytes, sessions
    );
    println!("  metadata installed at {}", args.meta_url);
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
        eprintln!(
            "warning: the restored filesystem's storage locations are [{}], which do not include {}; \
             the mount will use those locations (fix them before mounting if they moved)",
            shown.join(", "),
            tier.display()
        );
    }
    Ok(())
}
