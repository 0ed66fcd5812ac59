//! Where a filesystem's local state lives by default: the data directory, the daemon's
//! state directory, the block cache and the writeback spool. Every default follows the
//! XDG base directories, and `$FVFS_HOME` moves them all at once.

use fvfs_meta::MetaUrl;
use fvfs_types::Settings;
use std::path::{Path, PathBuf};

pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => home().join(fallback),
    }
}

/// `$FVFS_HOME`, else `$XDG_DATA_HOME/fvfs` (`~/.local/share/fvfs`).
pub fn data_dir() -> PathBuf {
    match std::env::var_os("FVFS_HOME") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => xdg("XDG_DATA_HOME", ".local/share").join("fvfs"),
    }
}

/// The metadata URL of the embedded default: `sqlite://<data dir>/meta.db`.
pub fn default_meta_url() -> String {
    format!("sqlite://{}", data_dir().join("meta.db").display())
}

/// The daemon's state directory (tokens, certificate, control socket, URL file): the
/// configured one, else the directory of the SQLite database, else the data dir.
pub fn state_dir(configured: Option<&Path>, meta_url: &str) -> PathBuf {
    if let Some(d) = configured {
        return d.to_path_buf();
    }
    match MetaUrl::parse(meta_url) {
        Ok(MetaUrl::Sqlite(db)) => match db.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => data_dir(),
        },
        _ => data_dir(),
    }
}

/// `$XDG_CACHE_HOME/fvfs/<uuid>` (`~/.cache/fvfs/<uuid>`), or under `$FVFS_HOME/cache`.
pub fn default_cache_dir(settings: &Settings) -> PathBuf {
    let base = match std::env::var_os("FVFS_HOME") {
        Some(v) if !v.is_empty() => PathBuf::from(v).join("cache"),
        _ => xdg("XDG_CACHE_HOME", ".cache").join("fvfs"),
    };
    base.join(settings.uuid.to_string())
}

/// The writeback spool of a filesystem (writes not yet stored when a run stopped):
/// `<meta.db>.spool/` beside an SQLite database, else `spool/<uuid>` under the data dir.
pub fn spool_dir(meta_url: &str, settings: &Settings) -> PathBuf {
    match MetaUrl::parse(meta_url) {
        Ok(MetaUrl::Sqlite(db)) => PathBuf::from(format!("{}.spool", db.display())),
        _ => data_dir().join("spool").join(settings.uuid.to_string()),
    }
}

/// Where backups stage their snapshot: the directory of an SQLite database (same disk,
/// known to be writable), else the system temporary directory.
pub fn scratch_dir(meta_url: &str) -> PathBuf {
    match MetaUrl::parse(meta_url) {
        Ok(MetaUrl::Sqlite(db)) => match db.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        },
        _ => std::env::temp_dir(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_state_lives_beside_the_database() {
        let url = "sqlite:///srv/fs/meta.db";
        assert_eq!(state_dir(None, url), PathBuf::from("/srv/fs"));
        assert_eq!(
            state_dir(Some(Path::new("/etc/fvfs")), url),
            PathBuf::from("/etc/fvfs")
        );
        assert_eq!(scratch_dir(url), PathBuf::from("/srv/fs"));
    }
}
