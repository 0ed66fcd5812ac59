//! Consistent snapshots of the embedded database (`AdminStore::snapshot`).
//!
//! Owns one thing: turning the live WAL-mode database into one standalone file with
//! `VACUUM INTO`, run on a read connection outside any transaction.
//!
//! Invariants:
//! - the copy is one consistent point in time (the read snapshot `VACUUM INTO` takes), so
//!   it never holds half of a metadata operation, and writers are not blocked while it
//!   runs (WAL readers do not block the writer);
//! - the copy is a standalone database: no `-wal`/`-shm` files belong to it;
//! - an existing `dest` is never overwritten (the caller chooses a fresh name).

use super::Sqlite;
use crate::error::{MetaError, Result};
use std::path::Path;

/// Writes a consistent copy of the whole database to `dest` (which must not exist).
pub(crate) fn snapshot(store: &Sqlite, dest: &Path) -> Result<()> {
    let io = |source: std::io::Error| MetaError::Io {
        path: dest.display().to_string(),
        source,
    };
    if dest.symlink_metadata().is_ok() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "snapshot destination already exists",
        )));
    }
    let dest_str = dest
        .to_str()
        .ok_or(MetaError::Invalid("snapshot path is not valid UTF-8"))?;
    // A read connection, not the writer: the copy reads one WAL snapshot while commits
    // go on. VACUUM cannot run inside a transaction, so no `read()` wrapper here.
    let start = store.next_reader.load(std::sync::atomic::Ordering::Relaxed);
    let conn = store.readers[start % store.readers.len()].lock();
    if let Err(e) = conn.execute("VACUUM INTO ?1", [dest_str]) {
        // Leave no partial file behind.
        let _ = std::fs::remove_file(dest);
        return Err(e.into());
    }
    drop(conn);
    // VACUUM INTO does not fsync its output by default: make the copy durable before a
    // caller uploads or renames it.
    std::fs::File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use crate::sqlite::SqliteStore;
    use crate::types::NewInode;
    use fvfs_types::{FileKind, Settings, ROOT_INO};

    #[test]
    fn snapshot_is_a_standalone_consistent_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SqliteStore::open(&dir.path().join("meta.db"), true).expect("open");
        let settings: Settings = serde_json::from_value(serde_json::json!({
            "uuid": uuid::Uuid::new_v4(),
            "name": "snap",
            "format_version": fvfs_types::FORMAT_VERSION,
            "cdc": fvfs_types::CdcParams::default(),
            "compression": fvfs_types::Compression::Zstd,
            "storage": ["/tmp/x"],
            "created": 0,
        }))
        .expect("settings");
        s.format(&settings, 0, 0, 1).expect("format");
        let new = NewInode {
            kind: FileKind::File,
            perm: 0o600,
            uid: 0,
            gid: 0,
            rdev: 0,
            target: None,
            now: 2,
            xattrs: &[],
        };
        let a = s.create(ROOT_INO, b"kept", &new).expect("create");

        let dest = dir.path().join("copy.db");
        s.snapshot(&dest).expect("snapshot");
        // A later change is not in the copy.
        s.create(ROOT_INO, b"later", &new).expect("create later");
        assert!(
            s.snapshot(&dest).is_err(),
            "an existing file is not overwritten"
        );
        assert!(!dir.path().join("copy.db-wal").exists());

        let c = SqliteStore::open(&dest, false).expect("open copy");
        assert_eq!(c.settings().expect("settings").uuid, settings.uuid);
        let got = c.lookup(ROOT_INO, b"kept").expect("kept");
        assert_eq!((got.ino, got.perm), (a.ino, 0o600));
        assert!(c.lookup(ROOT_INO, b"later").is_err());
    }
}
