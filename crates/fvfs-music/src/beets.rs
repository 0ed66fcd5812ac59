//! Importing a beets library (`library.db`, SQLite): its `items` become index rows with
//! the tags beets holds (often corrected by hand or from MusicBrainz), its `albums` fill
//! the album-level fields an item lacks. An item's file must lie under the root of a
//! directory origin (`fs`): the row is keyed by that origin and the path below its root.
//!
//! Invariants:
//! - The import never writes to the beets database (opened read-only) nor to the files.
//! - A row gets the file's current size and mtime and its quick id, read from the file
//!   (its two ends): a later scan sees the file unchanged and keeps beets' tags; a file
//!   changed since is read again by that scan.
//! - Items whose file is outside every directory origin, missing, or not valid UTF-8 are
//!   counted and skipped, never half-imported.
//! - Rows are written in transactions of [`BATCH`] items: an import that fails part way
//!   leaves whole batches (a later import or scan completes them).

use crate::scan::quick_id;
use crate::source::RangeSource;
use crate::tags::RangedReader;
use bytes::Bytes;
use fvfs_meta::{MetaError, MetaStore, MusicTrack};
use rusqlite::{Connection, OpenFlags, Row};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum BeetsError {
    #[error("the beets library {path}: {source}")]
    Library {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BeetsStats {
    /// Items in the library.
    pub items: u64,
    pub imported: u64,
    /// Items under no directory origin (or with a path that is not UTF-8).
    pub outside: u64,
    /// Items whose file is gone.
    pub missing: u64,
}

/// A local file as a [`RangeSource`] (positional reads).
struct LocalFile {
    file: std::fs::File,
    len: u64,
}

impl RangeSource for LocalFile {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_range(&self, offset: u64, len: u64) -> std::io::Result<Bytes> {
        let want = len.min(self.len.saturating_sub(offset)) as usize;
        let mut buf = vec![0u8; want];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(Bytes::from(buf))
    }
}

/// Rows written to the index per transaction.
const BATCH: usize = 2000;

/// Album-level fields of beets' `albums`, by album id.
struct Album {
    fields: Vec<(&'static str, String)>,
}

/// Text columns copied to a row's extra tags (beets' names), item first, album second.
const EXTRA: &[&str] = &[
    "albumtype",
    "label",
    "catalognum",
    "albumdisambig",
    "releasegroupdisambig",
    "mb_albumid",
    "country",
];

fn text(r: &Row<'_>, col: &str) -> rusqlite::Result<Option<String>> {
    // beets stores empty strings for missing text tags.
    Ok(r.get::<_, Option<String>>(col)?.filter(|s| !s.is_empty()))
}

fn num(r: &Row<'_>, col: &str) -> rusqlite::Result<Option<u32>> {
    // Integers (0 = missing in beets) or, in old libraries, reals.
    let v: rusqlite::types::Value = r.get(col)?;
    Ok(match v {
        rusqlite::types::Value::Integer(i) if i > 0 => u32::try_from(i).ok(),
        rusqlite::types::Value::Real(f) if f >= 1.0 => Some(f as u32),
        _ => None,
    })
}

fn albums(db: &Connection) -> rusqlite::Result<HashMap<i64, Album>> {
    let cols: Vec<String> = db
        .prepare("SELECT name FROM pragma_table_info('albums')")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let have: Vec<&'static str> = EXTRA
        .iter()
        .copied()
        .filter(|c| cols.iter().any(|x| x == c))
        .collect();
    let mut out = HashMap::new();
    if have.is_empty() {
        return Ok(out);
    }
    let mut stmt = db.prepare(&format!("SELECT id, {} FROM albums", have.join(", ")))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let mut fields = Vec::new();
        for c in &have {
            if let Some(v) = text(r, c)? {
                fields.push((*c, v));
            }
        }
        out.insert(r.get(0)?, Album { fields });
    }
    Ok(out)
}

/// One beets item as a row (without origin, path, stamp or quick id).
fn item(
    r: &Row<'_>,
    cols: &[String],
    albums: &HashMap<i64, Album>,
) -> rusqlite::Result<MusicTrack> {
    let has = |c: &str| cols.iter().any(|x| x == c);
    let mut extra: Vec<(String, String)> = Vec::new();
    for c in EXTRA.iter().filter(|c| has(c)) {
        if let Some(v) = text(r, c)? {
            extra.push((c.to_string(), v));
        }
    }
    for c in ["tracktotal", "disctotal"].iter().filter(|c| has(c)) {
        if let Some(v) = num(r, c)? {
            extra.push((c.to_string(), v.to_string()));
        }
    }
    if has("comp") {
        let comp: Option<i64> = r.get("comp")?;
        extra.push((
            "comp".into(),
            if comp.unwrap_or(0) != 0 { "1" } else { "0" }.into(),
        ));
    }
    let album_id: Option<i64> = if has("album_id") {
        r.get("album_id")?
    } else {
        None
    };
    if let Some(a) = album_id.and_then(|id| albums.get(&id)) {
        for (k, v) in &a.fields {
            if !extra.iter().any(|(e, _)| e == k) {
                extra.push((k.to_string(), v.clone()));
            }
        }
    }
    extra.sort();
    let length: Option<f64> = if has("length") {
        r.get("length")?
    } else {
        None
    };
    let bitrate: Option<i64> = if has("bitrate") {
        r.get("bitrate")?
    } else {
        None
    };
    Ok(MusicTrack {
        title: text(r, "title")?,
        artist: text(r, "artist")?,
        album: text(r, "album")?,
        albumartist: if has("albumartist") {
            text(r, "albumartist")?
        } else {
            None
        },
        genre: if has("genre") {
            text(r, "genre")?
        } else {
            None
        },
        year: if has("year") { num(r, "year")? } else { None },
        track: if has("track") { num(r, "track")? } else { None },
        disc: if has("disc") { num(r, "disc")? } else { None },
        duration_ms: length
            .filter(|l| *l > 0.0)
            .map(|l| (l * 1000.0).round() as u64),
        bitrate_kbps: bitrate.filter(|b| *b > 0).map(|b| (b / 1000) as u32),
        sample_rate: if has("samplerate") {
            num(r, "samplerate")?
        } else {
            None
        },
        extra,
        ..MusicTrack::default()
    })
}

/// The origin and relative path of `path`: the directory origin with the longest root
/// that holds it.
fn locate<'a>(path: &Path, roots: &'a [(String, PathBuf)]) -> Option<(&'a str, String)> {
    roots
        .iter()
        .filter_map(|(id, root)| path.strip_prefix(root).ok().map(|rel| (id, root, rel)))
        .max_by_key(|(_, root, _)| root.as_os_str().len())
        .and_then(|(id, _, rel)| Some((id.as_str(), rel.to_str()?.to_string())))
}

/// Imports the beets library at `library` into the index, for files under the roots of
/// `roots` (directory origins: id, root).
pub fn import_beets(
    meta: &dyn MetaStore,
    library: &Path,
    roots: &[(String, PathBuf)],
) -> Result<BeetsStats, BeetsError> {
    let lib_err = |source| BeetsError::Library {
        path: library.to_path_buf(),
        source,
    };
    let db =
        Connection::open_with_flags(library, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(lib_err)?;
    let albums = albums(&db).map_err(lib_err)?;
    let mut stmt = db
        .prepare("SELECT * FROM items ORDER BY id")
        .map_err(lib_err)?;
    let cols: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let mut rows = stmt.query([]).map_err(lib_err)?;
    let mut stats = BeetsStats::default();
    let mut batch: Vec<MusicTrack> = Vec::with_capacity(BATCH);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    while let Some(r) = rows.next().map_err(lib_err)? {
        stats.items += 1;
        // beets stores paths as bytes (BLOB), sometimes as text.
        let raw: Vec<u8> = match r.get_ref("path").map_err(lib_err)? {
            rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => b.to_vec(),
            _ => Vec::new(),
        };
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(&raw));
        let Some((origin, rel)) = locate(&path, roots) else {
            stats.outside += 1;
            continue;
        };
        let Ok(file) = std::fs::File::open(&path) else {
            stats.missing += 1;
            continue;
        };
        let Ok(md) = file.metadata() else {
            stats.missing += 1;
            continue;
        };
        let mut reader = RangedReader::new(Arc::new(LocalFile {
            file,
            len: md.len(),
        }));
        let Ok(quick) = quick_id(&mut reader) else {
            stats.missing += 1;
            continue;
        };
        let mut t = item(r, &cols, &albums).map_err(lib_err)?;
        t.origin = origin.to_string();
        t.format = rel
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        t.path = rel;
        t.size = md.len();
        t.mtime_ns = md.mtime() * 1_000_000_000 + md.mtime_nsec();
        t.quick_id = quick;
        t.scanned = now;
        batch.push(t);
        if batch.len() >= BATCH {
            meta.music_tracks_put(&batch)?;
            stats.imported += batch.len() as u64;
            batch.clear();
        }
    }
    meta.music_tracks_put(&batch)?;
    stats.imported += batch.len() as u64;
    Ok(stats)
}
