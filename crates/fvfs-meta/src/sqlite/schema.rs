//! The SQLite schema and its versioned migrations. `PRAGMA user_version` holds the schema
//! version; each migration moves it by one inside one transaction. A database whose version
//! is newer than [`SCHEMA_VERSION`] is refused (an older binary must not write a newer format).
//! docs/FORMAT.md describes every table; change both together.

use crate::error::{MetaError, Result};
use rusqlite::Connection;

pub use crate::sql::SCHEMA_VERSION;

const V1: &str = r#"
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE inodes (
  ino INTEGER PRIMARY KEY AUTOINCREMENT,
  kind INTEGER NOT NULL,
  perm INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL,
  size INTEGER NOT NULL DEFAULT 0,
  nlink INTEGER NOT NULL,
  atime INTEGER NOT NULL,
  mtime INTEGER NOT NULL,
  ctime INTEGER NOT NULL,
  rdev INTEGER NOT NULL DEFAULT 0,
  parent INTEGER NOT NULL DEFAULT 0,
  target BLOB
);
CREATE TABLE dentries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  parent INTEGER NOT NULL,
  name BLOB NOT NULL,
  ino INTEGER NOT NULL,
  kind INTEGER NOT NULL
);
CREATE UNIQUE INDEX dentries_name ON dentries(parent, name);
CREATE INDEX dentries_ino ON dentries(ino);
CREATE TABLE xattrs (
  ino INTEGER NOT NULL,
  name BLOB NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY (ino, name)
) WITHOUT ROWID;
CREATE TABLE chunks (
  ino INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  slices INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (ino, idx)
) WITHOUT ROWID;
CREATE TABLE slices (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  ino INTEGER NOT NULL,
  chunk INTEGER NOT NULL,
  pos INTEGER NOT NULL,
  len INTEGER NOT NULL,
  zero INTEGER NOT NULL DEFAULT 0,
  blocks BLOB NOT NULL
);
CREATE INDEX slices_chunk ON slices(ino, chunk, id);
CREATE TABLE blocks (
  id BLOB PRIMARY KEY,
  size INTEGER NOT NULL,
  stored_size INTEGER NOT NULL,
  codec INTEGER NOT NULL,
  refcount INTEGER NOT NULL,
  tiers INTEGER NOT NULL DEFAULT 0,
  created INTEGER NOT NULL,
  last_access INTEGER NOT NULL DEFAULT 0,
  accesses INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX blocks_garbage ON blocks(refcount) WHERE refcount = 0;
CREATE TABLE wal_pending (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  block BLOB NOT NULL,
  tier INTEGER NOT NULL,
  due INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT
);
CREATE INDEX wal_pending_due ON wal_pending(due);
CREATE TABLE sessions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  mountpoint TEXT NOT NULL,
  started INTEGER NOT NULL,
  heartbeat INTEGER NOT NULL
);
CREATE TABLE orphans (ino INTEGER PRIMARY KEY);
"#;

/// Tiering: one replication row per (block, tier), pins, durable counters; the time a
/// block's refcount reached 0 (garbage is kept for a grace period).
const V2: &str = r#"
CREATE UNIQUE INDEX wal_pending_block_tier ON wal_pending(block, tier);
ALTER TABLE blocks ADD COLUMN pins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE blocks ADD COLUMN freed_at INTEGER NOT NULL DEFAULT 0;
CREATE TABLE pinned (ino INTEGER PRIMARY KEY);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"#;

/// `st_blocks`: bytes of stored data per chunk and per inode (alloc.rs), filled for the
/// files of an existing filesystem by [`crate::sql::refresh_all`].
const V3: &str = r#"
ALTER TABLE inodes ADD COLUMN alloc_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chunks ADD COLUMN alloc_bytes INTEGER NOT NULL DEFAULT 0;
"#;

/// Holders: block references held by something other than a file (an archived payload,
/// a cache entry of another face), one row per (kind, key, block), each counted once in
/// `blocks.refcount` (holders.rs). No fill: no holder exists before.
const V4: &str = r#"
CREATE TABLE holders (
  kind TEXT NOT NULL,
  key BLOB NOT NULL,
  block BLOB NOT NULL,
  PRIMARY KEY (kind, key, block)
) WITHOUT ROWID;
CREATE INDEX holders_block ON holders(block);
"#;

/// The HSM catalog (sqlite/hsm.rs): managed directories and archived files, keyed by
/// the catalog id a file carries in its xattr (AUTOINCREMENT: an id is never reused, so
/// a stale marker can never name another file's payload). No fill.
const V5: &str = r#"
CREATE TABLE hsm_dirs (
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL UNIQUE,
  added INTEGER NOT NULL
);
CREATE TABLE hsm_files (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  dir INTEGER NOT NULL,
  path BLOB NOT NULL,
  handle BLOB NOT NULL,
  state INTEGER NOT NULL,
  pinned INTEGER NOT NULL DEFAULT 0,
  size INTEGER NOT NULL,
  mtime INTEGER NOT NULL,
  ctime INTEGER NOT NULL,
  hash BLOB NOT NULL,
  blocks BLOB NOT NULL,
  resident BLOB NOT NULL,
  archived_at INTEGER NOT NULL,
  last_recall INTEGER
);
CREATE INDEX hsm_files_state ON hsm_files(state);
CREATE TABLE hsm_requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  op TEXT NOT NULL,
  path BLOB NOT NULL,
  due INTEGER NOT NULL,
  done INTEGER,
  ok INTEGER,
  message TEXT
);
CREATE INDEX hsm_requests_due ON hsm_requests(due) WHERE done IS NULL;
"#;

/// The music face's index (sqlite/music.rs): origins, tracks keyed by (origin, path),
/// collections, and the views' trees by generation (a rescan writes the next generation
/// beside the served one, then swaps). No fill.
const V6: &str = r#"
CREATE TABLE music_origins (
  id TEXT PRIMARY KEY,
  spec TEXT NOT NULL,
  priority INTEGER NOT NULL,
  added INTEGER NOT NULL
);
CREATE TABLE music_tracks (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  origin TEXT NOT NULL,
  path TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime INTEGER NOT NULL,
  etag TEXT,
  quick_id BLOB NOT NULL,
  content_hash BLOB,
  format TEXT NOT NULL,
  title TEXT,
  artist TEXT,
  album TEXT,
  albumartist TEXT,
  genre TEXT,
  year INTEGER,
  track INTEGER,
  disc INTEGER,
  duration_ms INTEGER,
  bitrate INTEGER,
  sample_rate INTEGER,
  extra TEXT NOT NULL,
  has_cover INTEGER NOT NULL,
  error TEXT,
  scanned INTEGER NOT NULL,
  UNIQUE (origin, path)
);
CREATE INDEX music_tracks_quick ON music_tracks(quick_id);
CREATE INDEX music_tracks_album ON music_tracks(albumartist, album);
CREATE TABLE music_collections (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  query TEXT NOT NULL,
  created INTEGER NOT NULL
);
CREATE TABLE music_views (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  template TEXT NOT NULL,
  generation INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE music_entries (
  view INTEGER NOT NULL,
  gen INTEGER NOT NULL,
  parent INTEGER NOT NULL,
  name TEXT NOT NULL,
  dir INTEGER,
  track INTEGER,
  PRIMARY KEY (view, gen, parent, name)
) WITHOUT ROWID;
CREATE INDEX music_entries_dir ON music_entries(view, gen, dir) WHERE dir IS NOT NULL;
"#;

/// The music face's content cache (sqlite/music_cache.rs) and where each track's
/// tag-free audio lies (`audio_*`, null for formats without a split and for rows
/// scanned before: their next rescan fills them). No fill.
const V7: &str = r#"
ALTER TABLE music_tracks ADD COLUMN audio_start INTEGER;
ALTER TABLE music_tracks ADD COLUMN audio_len INTEGER;
ALTER TABLE music_tracks ADD COLUMN audio_id BLOB;
CREATE TABLE music_cache (
  key BLOB PRIMARY KEY,
  refs BLOB NOT NULL,
  bytes INTEGER NOT NULL,
  last_access INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX music_cache_lru ON music_cache(last_access);
CREATE INDEX music_entries_track ON music_entries(view, gen, track) WHERE track IS NOT NULL;
"#;

/// The write journal: bytes acknowledged by an fsync (or a close) and not yet cut into
/// blocks, replayed in `seq` order at the next start (docs/FORMAT.md, "Write journal").
const V8: &str = r#"
CREATE TABLE write_journal (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  ino INTEGER NOT NULL,
  off INTEGER NOT NULL,
  size INTEGER NOT NULL,
  mtime INTEGER NOT NULL,
  data BLOB NOT NULL
);
CREATE INDEX write_journal_ino ON write_journal(ino, seq);
"#;

/// Garbage collection asks for zero-refcount blocks freed before the grace horizon: the
/// index is ordered by `freed_at`, so a pass reads only the eligible rows, not every
/// block still inside its grace period.
pub(crate) const V9: &str = r#"
DROP INDEX blocks_garbage;
CREATE INDEX blocks_garbage ON blocks(freed_at) WHERE refcount = 0;
"#;

/// Several hosts: an orphan belongs to the session whose unlink left it (0: none; purged
/// by anyone once that session has no row), and file locks (flock and fcntl) live here so
/// that every host sees them, keyed by the session and the kernel's lock owner. A range
/// is inclusive (`range_end` i64::MAX: to the end of the file); kind 0 read, 1 write.
pub(crate) const V10: &str = r#"
ALTER TABLE orphans ADD COLUMN session INTEGER NOT NULL DEFAULT 0;
CREATE TABLE locks (
  ino INTEGER NOT NULL,
  session INTEGER NOT NULL,
  owner INTEGER NOT NULL,
  range_start INTEGER NOT NULL,
  range_end INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  PRIMARY KEY (ino, session, owner, range_start)
);
CREATE INDEX locks_session ON locks(session);
"#;

/// One schema step: SQL, then an optional fill of the new columns from existing rows, in
/// the same transaction.
struct Migration {
    sql: &'static str,
    fill: Option<fn(&dyn crate::sql::Tx) -> Result<()>>,
}

/// Migrations in order; entry i moves the schema from version i to i+1.
const MIGRATIONS: &[Migration] = &[
    Migration {
        sql: V1,
        fill: None,
    },
    Migration {
        sql: V2,
        fill: None,
    },
    Migration {
        sql: V3,
        fill: Some(crate::sql::refresh_all),
    },
    Migration {
        sql: V4,
        fill: None,
    },
    Migration {
        sql: V5,
        fill: None,
    },
    Migration {
        sql: V6,
        fill: None,
    },
    Migration {
        sql: V7,
        fill: None,
    },
    Migration {
        sql: V8,
        fill: None,
    },
    Migration {
        sql: V9,
        fill: None,
    },
    Migration {
        sql: V10,
        fill: None,
    },
];

/// Brings the schema up to [`SCHEMA_VERSION`], or refuses a newer one.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(MetaError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
        tx.execute_batch(m.sql)?;
        if let Some(fill) = m.fill {
            fill(&super::tx::SqliteTx(&tx))?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
        tracing::info!(version = i + 1, "metadata schema migrated");
    }
    Ok(())
}
