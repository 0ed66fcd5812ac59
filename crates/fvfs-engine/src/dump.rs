//! `fvfsd dump` and `fvfsd load`: the whole metadata as the engine-neutral JSON dump
//! (fvfs-meta `dump`, docs/FORMAT.md "Metadata dump"), to move a filesystem between
//! metadata engines or keep a copy that any JSON reader can open.
//!
//! Invariants: a dump file appears under its name only complete and flushed (written
//! to a temporary beside it, then renamed); a load goes into an empty store in one
//! transaction, holding the mount lock, and a failed load of a new SQLite database
//! removes the files it created, so a retry starts clean.

use crate::open::MountLock;
use crate::{EngineError, Result};
use fvfs_meta::dump::DumpTotals;
use fvfs_meta::MetaUrl;
use std::path::{Path, PathBuf};

/// Writes the dump of `meta_url` to `dest` ("-": standard output). Runs beside a mount.
pub fn dump(meta_url: &str, dest: &Path) -> Result<DumpTotals> {
    let store = fvfs_meta::open(meta_url, false).map_err(|source| EngineError::OpenMeta {
        url: fvfs_meta::MetaUrl::parse(meta_url)
            .map(|u| u.display())
            .unwrap_or_else(|_| meta_url.to_string()),
        source,
    })?;
    // A mount may be shipping this database's log: never checkpoint under it.
    store.leave_checkpoints()?;
    if dest == Path::new("-") {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        return Ok(store.dump(&mut out)?);
    }
    let tmp = PathBuf::from(format!("{}.tmp-{}", dest.display(), std::process::id()));
    let written = (|| {
        let file = std::fs::File::create(&tmp)
            .map_err(EngineError::io(format!("cannot create {}", tmp.display())))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let totals = store.dump(&mut out)?;
        let file = out.into_inner().map_err(|e| EngineError::Io {
            what: format!("cannot write {}", tmp.display()),
            source: e.into_error(),
        })?;
        file.sync_all()
            .map_err(EngineError::io(format!("cannot flush {}", tmp.display())))?;
        std::fs::rename(&tmp, dest).map_err(EngineError::io(format!(
            "cannot rename to {}",
            dest.display()
        )))?;
        Ok(totals)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Loads the dump `src` into `meta_url`, which must be empty (a new SQLite path is
/// created). Refused while the filesystem is mounted.
pub fn load(meta_url: &str, src: &Path) -> Result<DumpTotals> {
    let file = std::fs::File::open(src)
        .map_err(EngineError::io(format!("cannot open {}", src.display())))?;
    let mut input = std::io::BufReader::with_capacity(1 << 20, file);
    let created: Option<PathBuf> = match MetaUrl::parse(meta_url)? {
        MetaUrl::Sqlite(db) if !db.exists() => {
            if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(EngineError::io(format!("cannot create {}", dir.display())))?;
            }
            Some(db)
        }
        _ => None,
    };
    let loaded = (|| {
        let _lock = MountLock::acquire(meta_url, Path::new("fvfsd load"))?;
        let store = fvfs_meta::open(meta_url, true)?;
        let totals = store.load(&mut input)?;
        store.sync()?;
        Ok(totals)
    })();
    if let (Err(_), Some(db)) = (&loaded, &created) {
        for suffix in ["", "-wal", "-shm", ".mount.lock"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    }
    loaded
}
