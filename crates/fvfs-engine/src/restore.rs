//! Metadata backup now and restore from a tier: the disaster drill behind `fvfsd backup`
//! and `fvfsd restore`.
//!
//! [`backup`] makes one explicit metadata backup into the filesystem's durable tier
//! (`meta/backup-*`, see `fvfs_vfs::backup`), then prunes.
//! [`restore`] rebuilds a lost host's metadata database from a tier alone: by default
//! from the shipped metadata (`meta/gen/`, see `fvfs_vfs::ship`): the newest generation's
//! base with its log replayed (up to `--at`), else from a backup (`meta/latest`, the
//! newest, or the one named); it checks that the result opens as an fvfs database,
//! installs it at the `--meta` path, and reports the files whose blocks the tier lacks.
//! [`restore_points`] lists what can be restored.
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
    /// A backup name or key; `None` takes the shipped metadata, else `meta/latest`, else
    /// the newest backup listed.
    pub backup: Option<String>,
    /// Restore the newest point not after this UTC stamp (`yyyymmddTHHMMSSZ`).
    pub at: Option<String>,
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
    /// Files (paths, or `inode N` when unnamed) whose blocks the tier restored from
    /// lacks, with the number of missing blocks; empty when every block is there.
    pub missing: Vec<(String, usize)>,
    /// Blocks of the restored database missing from the tier.
    pub missing_blocks: usize,
}

/// One restorable point on a tier (`fvfsd restore --list`).
#[derive(Debug)]
pub struct RestorePoint {
    /// `generation` (a base plus its log) or `backup`.
    pub kind: &'static str,
    /// The generation id or the backup key.
    pub name: String,
    /// The oldest and newest restorable UTC stamps.
    pub from: String,
    pub to: String,
    /// Log segments (generations), and a gap if the log stops short.
    pub segments: usize,
    pub gap: Option<(u32, u64)>,
}

/// Every restorable point on the tier at `from`, oldest first.
pub async fn restore_points(from: &str) -> Result<Vec<RestorePoint>> {
    let tier = Tier::open(&TierSpec::parse(from)?)?;
    let mut out = Vec::new();
    for key in fvfs_vfs::list_backups(&tier).await? {
        let stamp = fvfs_vfs::backup_stamp(&key).unwrap_or("?").to_string();
        out.push(RestorePoint {
            kind: "backup",
            name: key,
            from: stamp.clone(),
            to: stamp,
            segments: 0,
            gap: None,
        });
    }
    for g in fvfs_vfs::ship::list_generations(&tier).await? {
        if g.base.is_none() {
            continue;
        }
        let (segs, gap) = g.restorable(None);
        out.push(RestorePoint {
            kind: "generation",
            to: segs.last().map_or(g.stamp.clone(), |s| s.stamp.clone()),
            from: g.stamp.clone(),
            name: g.id.clone(),
            segments: segs.len(),
            gap,
        });
    }
    out.sort_by(|a, b| (&a.from, &a.name).cmp(&(&b.from, &b.name)));
    Ok(out)
}

/// A `--at` time as a UTC stamp: `yyyymmddTHHMMSSZ`, `yyyy-mm-ddThh:mm:ssZ`, or `@<unix
/// seconds>`.
pub fn parse_at(at: &str) -> Result<String> {
    if let Some(secs) = at.strip_prefix('@') {
        let s: i64 = secs
            .parse()
            .map_err(|_| EngineError::Invalid(format!("--at {at:?}: not @<unix seconds>")))?;
        return Ok(fvfs_vfs::utc_stamp(s));
    }
    let compact: String = at.chars().filter(|c| *c != '-' && *c != ':').collect();
    let ok = compact.len() == 16
        && compact.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    if ok {
        Ok(compact)
    } else {
        Err(EngineError::Invalid(format!(
            "--at {at:?}: expected a UTC time such as 2026-12-01T10:00:00Z or @<unix seconds>"
        )))
    }
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
    let at = args.at.as_deref().map(parse_at).transpose()?;
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "meta.db".into());
    let tmp = dir.join(format!(".{name}.restore-{}", std::process::id()));
    remove_db_files(&tmp);
    let built = build(&tier, args, at.as_deref(), &tmp, &mut warnings).await;
    let installed = built.and_then(|(key, taken)| {
        let r = install(&tmp, &db, &key)?;
        Ok((key, taken, r))
    });
    if installed.is_err() {
        remove_db_files(&tmp);
    }
    let (key, taken, (settings, stats, sessions_ended)) = installed?;
    let (missing, missing_blocks) = missing_blocks(&args.meta_url, &tier).await?;

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
        taken,
        key,
        missing,
        missing_blocks,
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
            "no shipped metadata ({}) and no backup under {}{} (was a filesystem ever \
             mounted with this location as its durable tier?)",
            fvfs_vfs::ship::GEN_PREFIX,
            tier.display(),
            fvfs_vfs::META_PREFIX
        ))
    })
}

/// Writes `plain` to `tmp`, a new file, durably.
fn write_new(tmp: &Path, plain: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(EngineError::io(format!("cannot create {}", tmp.display())))?;
    f.write_all(plain)
        .and_then(|()| f.sync_all())
        .map_err(EngineError::io(format!("cannot write {}", tmp.display())))
}

/// Builds the database to restore at `tmp`: the generation's base with its log up to
/// `at`, or a backup. Returns what was restored (a key or generation) and its time.
async fn build(
    tier: &Tier,
    args: &RestoreArgs,
    at: Option<&str>,
    tmp: &Path,
    warnings: &mut Vec<String>,
) -> Result<(String, String)> {
    if args.backup.is_none() {
        // The newest point at or before `at`: a generation's last restorable segment, or a
        // backup taken later than that (`fvfsd backup` right before a migration).
        let gens = fvfs_vfs::ship::list_generations(tier).await?;
        let chosen = gens
            .iter()
            .rev()
            .filter(|g| g.base.is_some())
            .find(|g| at.is_none_or(|t| g.stamp.as_str() <= t));
        let backups = fvfs_vfs::list_backups(tier).await?;
        let backup = backups
            .iter()
            .rev()
            .find(|k| at.is_none_or(|t| fvfs_vfs::backup_stamp(k).is_some_and(|s| s <= t)));
        let backup_stamp = backup.and_then(|k| fvfs_vfs::backup_stamp(k));
        match (chosen, backup) {
            (Some(g), _) => {
                let point = g
                    .restorable(at)
                    .0
                    .last()
                    .map_or(g.stamp.as_str(), |s| s.stamp.as_str());
                if backup_stamp.is_none_or(|b| b <= point) {
                    return replay(tier, g, at, tmp, warnings).await;
                }
            }
            (None, None) if at.is_some() => {
                return Err(EngineError::Invalid(format!(
                    "no shipped metadata and no backup on {} is as old as {}",
                    tier.display(),
                    at.unwrap_or_default()
                )));
            }
            _ => {}
        }
        if let Some(key) = backup {
            return restore_backup(tier, key.clone(), tmp).await;
        }
    }
    let key = choose_backup(tier, args.backup.as_deref(), warnings).await?;
    restore_backup(tier, key, tmp).await
}

/// A backup snapshot written to `tmp`.
async fn restore_backup(tier: &Tier, key: String, tmp: &Path) -> Result<(String, String)> {
    let stored = tier.get_object(&key).await?;
    let plain = fvfs_chunk::decompress_bytes(&stored, MAX_RESTORED_BYTES)
        .map_err(|e| EngineError::Invalid(format!("backup {key} is corrupt: {e}")))?;
    drop(stored);
    write_new(tmp, &plain)?;
    let taken = fvfs_vfs::backup_stamp(&key).unwrap_or("?").to_string();
    Ok((key, taken))
}

/// A generation's base at `tmp`, then its log (the gap-free prefix up to `at`), one
/// write-ahead log at a time through SQLite's own recovery.
async fn replay(
    tier: &Tier,
    g: &fvfs_vfs::ship::Generation,
    at: Option<&str>,
    tmp: &Path,
    warnings: &mut Vec<String>,
) -> Result<(String, String)> {
    let (base, _) = g.base.as_ref().expect("chosen with a base");
    let stored = tier.get_object(base).await?;
    let plain = fvfs_chunk::decompress_bytes(&stored, MAX_RESTORED_BYTES)
        .map_err(|e| EngineError::Invalid(format!("{base} is corrupt: {e}")))?;
    drop(stored);
    write_new(tmp, &plain)?;
    drop(plain);
    let (segs, gap) = g.restorable(at);
    if let Some((index, offset)) = gap {
        warnings.push(format!(
            "the log of generation {} stops at byte {offset} of its log {index}: restored \
             up to {}, later changes are not on the tier",
            g.id,
            segs.last().map_or(g.stamp.as_str(), |s| s.stamp.as_str())
        ));
    }
    let mut i = 0;
    while i < segs.len() {
        let index = segs[i].index;
        let mut log = Vec::new();
        while i < segs.len() && segs[i].index == index {
            let z = tier.get_object(&segs[i].key).await?;
            let part = fvfs_chunk::decompress_bytes(&z, MAX_RESTORED_BYTES)
                .map_err(|e| EngineError::Invalid(format!("{} is corrupt: {e}", segs[i].key)))?;
            if part.len() as u64 != segs[i].end - segs[i].start {
                return Err(EngineError::Invalid(format!(
                    "{} holds {} bytes, its name says {}",
                    segs[i].key,
                    part.len(),
                    segs[i].end - segs[i].start
                )));
            }
            log.extend_from_slice(&part);
            i += 1;
        }
        let want = fvfs_meta::sqlite::ship::log_frames(&log);
        let tmp = tmp.to_path_buf();
        let applied =
            tokio::task::spawn_blocking(move || fvfs_meta::sqlite::ship::apply_log(&tmp, &log))
                .await
                .map_err(|e| EngineError::Invalid(format!("log replay task: {e}")))?
                .map_err(|e| {
                    EngineError::Invalid(format!("log {index} of generation {}: {e}", g.id))
                })?;
        if Some(applied) != want {
            return Err(EngineError::Invalid(format!(
                "log {index} of generation {} did not apply whole ({applied} of {want:?} frames)",
                g.id
            )));
        }
    }
    let taken = segs.last().map_or(g.stamp.clone(), |s| s.stamp.clone());
    Ok((format!("{}{}", fvfs_vfs::ship::GEN_PREFIX, g.id), taken))
}

/// Verifies and renames the restored database at `tmp` into place. Returns its
/// settings, statistics and the number of stale sessions ended.
fn install(
    tmp: &Path,
    db: &Path,
    key: &str,
) -> Result<(fvfs_types::Settings, fvfs_meta::Stats, usize)> {
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

/// The files whose blocks the restored database names but the tier lacks (at most 100
/// files listed), and the number of such blocks.
async fn missing_blocks(meta_url: &str, tier: &Tier) -> Result<(Vec<(String, usize)>, usize)> {
    let mut present = std::collections::HashSet::new();
    for (key, _) in tier.list(fvfs_tier::BLOCKS_PREFIX).await? {
        if let Some(id) = key
            .rsplit('/')
            .next()
            .and_then(fvfs_types::BlockId::from_hex)
        {
            present.insert(id);
        }
    }
    let meta = crate::open::open_meta(meta_url)?;
    let mut missing = std::collections::HashSet::new();
    let mut after = None;
    loop {
        let page = meta.blocks_page(after, 10_000)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        missing.extend(
            page.iter()
                .filter(|b| b.refcount > 0 && !present.contains(&b.id))
                .map(|b| b.id),
        );
    }
    if missing.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let files = meta
        .inodes_referencing_any(&missing)?
        .into_iter()
        .take(100)
        .map(|(ino, n)| {
            let name = meta
                .path_of(ino)
                .ok()
                .flatten()
                .map(|p| String::from_utf8_lossy(&p).into_owned())
                .unwrap_or_else(|| format!("inode {ino}"));
            (name, n)
        })
        .collect::<Vec<_>>();
    Ok((files, missing.len()))
}
