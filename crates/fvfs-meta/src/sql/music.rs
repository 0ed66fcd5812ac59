//! The music index on SQLite ([`MusicStore`]): tables `music_origins`, `music_tracks`,
//! `music_collections`, `music_views` and `music_entries` (schema.rs, version 6).
//! Extra tags are stored as one text column of `name=value` lines (names are beets field
//! names, values have their newlines and backslashes escaped). A view entry is a
//! directory when `dir` is set, a track when `track` is.

use super::{Engine, SqlStore};
use crate::error::{MetaError, Result};
use crate::sql::{params, Arg, OptionalExtension, Row, Tx};
use crate::store::{
    AudioSpan, MusicCollection, MusicEntry, MusicNode, MusicOrigin, MusicStamp, MusicStore,
    MusicTrack, MusicView,
};

const COLS: &str = "id, origin, path, size, mtime, etag, quick_id, content_hash, format, title, \
                    artist, album, albumartist, genre, year, track, disc, duration_ms, bitrate, \
                    sample_rate, extra, has_cover, error, scanned, audio_start, audio_len, audio_id";

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

fn encode_extra(extra: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in extra {
        out.push_str(k);
        out.push('=');
        out.push_str(&escape(v));
        out.push('\n');
    }
    out
}

fn decode_extra(s: &str) -> Vec<(String, String)> {
    s.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), unescape(v)))
        .collect()
}

fn hash32(v: Option<Vec<u8>>, what: &str, id: i64) -> Result<Option<[u8; 32]>> {
    v.map(|b| {
        b.try_into().map_err(|_| {
            MetaError::Corrupt(format!(
                "music track {id} has a {what} that is not 32 bytes"
            ))
        })
    })
    .transpose()
}

type RawTrack = (
    MusicTrack,
    Vec<u8>,
    Option<Vec<u8>>,
    String,
    Option<(i64, i64, Vec<u8>)>,
);

fn from_row(r: &Row<'_>) -> Result<RawTrack> {
    let u32_of =
        |i: usize| -> Result<Option<u32>> { Ok(r.get::<Option<i64>>(i)?.map(|v| v as u32)) };
    let t = MusicTrack {
        id: r.get::<i64>(0)? as u64,
        origin: r.get(1)?,
        path: r.get(2)?,
        size: r.get::<i64>(3)? as u64,
        mtime_ns: r.get(4)?,
        etag: r.get(5)?,
        quick_id: [0; 32],
        content_hash: None,
        format: r.get(8)?,
        title: r.get(9)?,
        artist: r.get(10)?,
        album: r.get(11)?,
        albumartist: r.get(12)?,
        genre: r.get(13)?,
        year: u32_of(14)?,
        track: u32_of(15)?,
        disc: u32_of(16)?,
        duration_ms: r.get::<Option<i64>>(17)?.map(|v| v as u64),
        bitrate_kbps: u32_of(18)?,
        sample_rate: u32_of(19)?,
        extra: Vec::new(),
        has_cover: r.get::<i64>(21)? != 0,
        error: r.get(22)?,
        scanned: r.get(23)?,
        audio: None,
    };
    let audio = match (
        r.get::<Option<i64>>(24)?,
        r.get::<Option<i64>>(25)?,
        r.get::<Option<Vec<u8>>>(26)?,
    ) {
        (Some(start), Some(len), Some(id)) => Some((start, len, id)),
        _ => None,
    };
    Ok((t, r.get(6)?, r.get(7)?, r.get(20)?, audio))
}

fn finish(raw: RawTrack) -> Result<MusicTrack> {
    let (mut t, quick, hash, extra, audio) = raw;
    let id = t.id as i64;
    t.quick_id = hash32(Some(quick), "quick id", id)?.unwrap_or_default();
    if let Some((start, len, aid)) = audio {
        t.audio = Some(AudioSpan {
            start: start as u64,
            len: len as u64,
            id: hash32(Some(aid), "audio id", id)?.unwrap_or_default(),
        });
    }
    t.content_hash = hash32(hash, "content hash", id)?;
    t.extra = decode_extra(&extra);
    Ok(t)
}

fn tracks_where(tx: &dyn Tx, cond: &str, args: &[Arg<'_>]) -> Result<Vec<MusicTrack>> {
    let mut stmt = tx.prepare_cached(&format!("SELECT {COLS} FROM music_tracks WHERE {cond}"))?;
    let raw = stmt
        .query_map(args, from_row)?
        .collect::<Result<Vec<_>>>()?;
    raw.into_iter().map(finish).collect()
}

fn entry_from_row(r: &Row<'_>) -> Result<MusicEntry> {
    let dir: Option<i64> = r.get(2)?;
    let track: Option<i64> = r.get(3)?;
    Ok(MusicEntry {
        parent: r.get::<i64>(0)? as u64,
        name: r.get(1)?,
        node: match (dir, track) {
            (Some(d), _) => MusicNode::Dir(d as u64),
            (None, t) => MusicNode::Track(t.unwrap_or(0) as u64),
        },
    })
}

/// The served generation of `view`.
fn served(tx: &dyn Tx, view: u64) -> Result<i64> {
    tx.query_row(
        "SELECT generation FROM music_views WHERE id = ?1",
        params![view as i64],
        |r| r.get(0),
    )
    .optional()?
    .ok_or(MetaError::NotFound)
}

/// The counter of [`MusicStore::music_changes`] (in `counters`).
const CHANGES: &str = "music_changes";

/// Counts one change of the tracks, inside the transaction that makes it.
fn note_change(tx: &dyn Tx) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO counters (name, value) VALUES (?1, 1) \
         ON CONFLICT(name) DO UPDATE SET value = counters.value + 1",
    )?
    .execute(params![CHANGES])?;
    Ok(())
}

/// Inserts or updates the track at (origin, path) inside `tx`; returns its id.
fn put_track(tx: &dyn Tx, t: &MusicTrack) -> Result<u64> {
    tx.prepare_cached(
        "INSERT INTO music_tracks (origin, path, size, mtime, etag, quick_id, \
         content_hash, format, title, artist, album, albumartist, genre, year, track, \
         disc, duration_ms, bitrate, sample_rate, extra, has_cover, error, scanned, \
         audio_start, audio_len, audio_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
         ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26) \
         ON CONFLICT (origin, path) DO UPDATE SET size = ?3, mtime = ?4, etag = ?5, \
         quick_id = ?6, content_hash = ?7, format = ?8, title = ?9, artist = ?10, \
         album = ?11, albumartist = ?12, genre = ?13, year = ?14, track = ?15, \
         disc = ?16, duration_ms = ?17, bitrate = ?18, sample_rate = ?19, extra = ?20, \
         has_cover = ?21, error = ?22, scanned = ?23, audio_start = ?24, \
         audio_len = ?25, audio_id = ?26",
    )?
    .execute(params![
        t.origin,
        t.path,
        t.size as i64,
        t.mtime_ns,
        t.etag,
        &t.quick_id[..],
        t.content_hash.as_ref().map(|h| &h[..]),
        t.format,
        t.title,
        t.artist,
        t.album,
        t.albumartist,
        t.genre,
        t.year.map(i64::from),
        t.track.map(i64::from),
        t.disc.map(i64::from),
        t.duration_ms.map(|v| v as i64),
        t.bitrate_kbps.map(i64::from),
        t.sample_rate.map(i64::from),
        encode_extra(&t.extra),
        t.has_cover as i64,
        t.error,
        t.scanned,
        t.audio.map(|a| a.start as i64),
        t.audio.map(|a| a.len as i64),
        t.audio.as_ref().map(|a| a.id.to_vec())
    ])?;
    let id: i64 = tx
        .prepare_cached("SELECT id FROM music_tracks WHERE origin = ?1 AND path = ?2")?
        .query_row(params![t.origin, t.path], |r| r.get(0))?;
    Ok(id as u64)
}

impl<E: Engine> MusicStore for SqlStore<E> {
    fn music_origin_put(&self, o: &MusicOrigin) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO music_origins (id, spec, priority, added) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (id) DO UPDATE SET spec = ?2, priority = ?3",
                params![o.id, o.spec, o.priority, o.added],
            )?;
            Ok(())
        })
    }

    fn music_origins(&self) -> Result<Vec<MusicOrigin>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT id, spec, priority, added FROM music_origins ORDER BY priority, id",
            )?;
            let rows = stmt.query_map(params![], |r| {
                Ok(MusicOrigin {
                    id: r.get(0)?,
                    spec: r.get(1)?,
                    priority: r.get(2)?,
                    added: r.get(3)?,
                })
            })?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn music_origin_remove(&self, id: &str) -> Result<bool> {
        self.write(|tx| {
            tx.execute("DELETE FROM music_tracks WHERE origin = ?1", params![id])?;
            note_change(tx)?;
            Ok(tx.execute("DELETE FROM music_origins WHERE id = ?1", params![id])? > 0)
        })
    }

    fn music_track_put(&self, t: &MusicTrack) -> Result<u64> {
        self.write(|tx| {
            note_change(tx)?;
            put_track(tx, t)
        })
    }

    fn music_tracks_put(&self, ts: &[MusicTrack]) -> Result<Vec<u64>> {
        self.write(|tx| {
            note_change(tx)?;
            ts.iter().map(|t| put_track(tx, t)).collect()
        })
    }

    fn music_track_get(&self, id: u64) -> Result<Option<MusicTrack>> {
        self.read(|tx| Ok(tracks_where(tx, "id = ?1", params![id as i64])?.pop()))
    }

    fn music_tracks(
        &self,
        origin: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<MusicTrack>> {
        self.read(|tx| {
            tracks_where(
                tx,
                "(CAST(?1 AS TEXT) IS NULL OR origin = ?1) AND id > ?2 ORDER BY id LIMIT ?3",
                params![origin, after as i64, limit],
            )
        })
    }

    fn music_stamps(&self, origin: &str) -> Result<Vec<MusicStamp>> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT id, path, size, mtime, etag FROM music_tracks WHERE origin = ?1 \
                 ORDER BY path",
            )?;
            let rows = stmt.query_map(params![origin], |r| {
                Ok(MusicStamp {
                    id: r.get::<i64>(0)? as u64,
                    path: r.get(1)?,
                    size: r.get::<i64>(2)? as u64,
                    mtime_ns: r.get(3)?,
                    etag: r.get(4)?,
                })
            })?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn music_tracks_delete(&self, ids: &[u64]) -> Result<u64> {
        self.write(|tx| {
            note_change(tx)?;
            let mut stmt = tx.prepare_cached("DELETE FROM music_tracks WHERE id = ?1")?;
            let mut n = 0;
            for id in ids {
                n += stmt.execute(params![*id as i64])? as u64;
            }
            Ok(n)
        })
    }

    fn music_copies(&self, quick_id: &[u8; 32]) -> Result<Vec<MusicTrack>> {
        self.read(|tx| tracks_where(tx, "quick_id = ?1 ORDER BY id", params![&quick_id[..]]))
    }

    fn music_set_content_hash(&self, id: u64, hash: &[u8; 32]) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE music_tracks SET content_hash = ?2 WHERE id = ?1",
                params![id as i64, &hash[..]],
            )?;
            if n == 0 {
                return Err(MetaError::NotFound);
            }
            Ok(())
        })
    }

    fn music_track_count(&self, origin: Option<&str>) -> Result<u64> {
        self.read(|tx| {
            let n: i64 = tx.query_row(
                "SELECT COUNT(*) FROM music_tracks WHERE CAST(?1 AS TEXT) IS NULL OR origin = ?1",
                params![origin],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        })
    }

    fn music_changes(&self) -> Result<u64> {
        self.read(|tx| {
            let n: Option<i64> = tx
                .prepare_cached("SELECT value FROM counters WHERE name = ?1")?
                .query_row(params![CHANGES], |r| r.get(0))
                .optional()?;
            Ok(n.unwrap_or(0) as u64)
        })
    }

    fn music_collection_put(&self, name: &str, query: &str, now: i64) -> Result<u64> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO music_collections (name, query, created) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET query = ?2",
                params![name, query, now],
            )?;
            let id: i64 = tx.query_row(
                "SELECT id FROM music_collections WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )?;
            Ok(id as u64)
        })
    }

    fn music_collections(&self) -> Result<Vec<MusicCollection>> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare("SELECT id, name, query, created FROM music_collections ORDER BY name")?;
            let rows = stmt.query_map(params![], |r| {
                Ok(MusicCollection {
                    id: r.get::<i64>(0)? as u64,
                    name: r.get(1)?,
                    query: r.get(2)?,
                    created: r.get(3)?,
                })
            })?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn music_collection_remove(&self, name: &str) -> Result<bool> {
        self.write(|tx| {
            Ok(tx.execute(
                "DELETE FROM music_collections WHERE name = ?1",
                params![name],
            )? > 0)
        })
    }

    fn music_view_put(&self, name: &str, template: &str) -> Result<u64> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO music_views (name, template) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET template = ?2",
                params![name, template],
            )?;
            let id: i64 = tx.query_row(
                "SELECT id FROM music_views WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )?;
            Ok(id as u64)
        })
    }

    fn music_views(&self) -> Result<Vec<MusicView>> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare("SELECT id, name, template, generation FROM music_views ORDER BY id")?;
            let rows = stmt.query_map(params![], |r| {
                Ok(MusicView {
                    id: r.get::<i64>(0)? as u64,
                    name: r.get(1)?,
                    template: r.get(2)?,
                    generation: r.get::<i64>(3)? as u64,
                })
            })?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn music_view_begin(&self, view: u64) -> Result<u64> {
        self.write(|tx| {
            let gen = served(tx, view)?;
            tx.execute(
                "DELETE FROM music_entries WHERE view = ?1 AND gen != ?2",
                params![view as i64, gen],
            )?;
            Ok(gen as u64 + 1)
        })
    }

    fn music_view_write(&self, view: u64, gen: u64, entries: &[MusicEntry]) -> Result<()> {
        self.write(|tx| {
            if served(tx, view)? == gen as i64 {
                return Err(MetaError::Corrupt(format!(
                    "generation {gen} of music view {view} is the one being served"
                )));
            }
            let mut stmt = tx.prepare_cached(
                "INSERT INTO music_entries (view, gen, parent, name, dir, track) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (view, gen, parent, name) \
                 DO UPDATE SET dir = excluded.dir, track = excluded.track",
            )?;
            for e in entries {
                let (dir, track) = match e.node {
                    MusicNode::Dir(d) => (Some(d as i64), None),
                    MusicNode::Track(t) => (None, Some(t as i64)),
                };
                stmt.execute(params![
                    view as i64,
                    gen as i64,
                    e.parent as i64,
                    e.name,
                    dir,
                    track
                ])?;
            }
            Ok(())
        })
    }

    fn music_view_swap(&self, view: u64, gen: u64) -> Result<()> {
        self.write(|tx| {
            served(tx, view)?;
            tx.execute(
                "UPDATE music_views SET generation = ?2 WHERE id = ?1",
                params![view as i64, gen as i64],
            )?;
            tx.execute(
                "DELETE FROM music_entries WHERE view = ?1 AND gen != ?2",
                params![view as i64, gen as i64],
            )?;
            Ok(())
        })
    }

    fn music_lookup(&self, view: u64, parent: u64, name: &str) -> Result<Option<MusicEntry>> {
        self.read(|tx| {
            let gen = served(tx, view)?;
            tx.prepare_cached(
                "SELECT parent, name, dir, track FROM music_entries \
                     WHERE view = ?1 AND gen = ?2 AND parent = ?3 AND name = ?4",
            )?
            .query_row(
                params![view as i64, gen, parent as i64, name],
                entry_from_row,
            )
            .optional()
        })
    }

    fn music_readdir(
        &self,
        view: u64,
        parent: u64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MusicEntry>> {
        self.read(|tx| {
            let gen = served(tx, view)?;
            let mut stmt = tx.prepare_cached(
                // `name > ?4` alone (no `?4 IS NULL OR`): the planner then seeks to the
                // page's first name instead of scanning the directory from its start
                // for every page. Names are never empty, so "" starts at the first.
                "SELECT parent, name, dir, track FROM music_entries \
                 WHERE view = ?1 AND gen = ?2 AND parent = ?3 AND name > ?4 \
                 ORDER BY name LIMIT ?5",
            )?;
            let rows = stmt.query_map(
                params![view as i64, gen, parent as i64, after.unwrap_or(""), limit],
                entry_from_row,
            )?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    fn music_dir_entry(&self, view: u64, dir: u64) -> Result<Option<MusicEntry>> {
        self.read(|tx| {
            let gen = served(tx, view)?;
            tx.prepare_cached(
                // Without statistics the planner prefers the primary key's
                // (view, gen) prefix, a scan of the whole tree: name the index.
                "SELECT parent, name, dir, track FROM music_entries \
                     INDEXED BY music_entries_dir \
                     WHERE view = ?1 AND gen = ?2 AND dir = ?3 AND dir IS NOT NULL",
            )?
            .query_row(params![view as i64, gen, dir as i64], entry_from_row)
            .optional()
        })
    }

    fn music_dir_cover_track(&self, view: u64, parent: u64) -> Result<Option<u64>> {
        self.read(|tx| {
            let gen = served(tx, view)?;
            tx.prepare_cached(
                "SELECT e.track FROM music_entries e JOIN music_tracks t ON t.id = e.track \
                     WHERE e.view = ?1 AND e.gen = ?2 AND e.parent = ?3 AND t.has_cover = 1 \
                     AND t.error IS NULL ORDER BY e.name LIMIT 1",
            )?
            .query_row(params![view as i64, gen, parent as i64], |r| {
                r.get::<i64>(0).map(|v| v as u64)
            })
            .optional()
        })
    }

    fn music_track_entry(&self, view: u64, track: u64) -> Result<Option<MusicEntry>> {
        self.read(|tx| {
            let gen = served(tx, view)?;
            tx.prepare_cached(
                "SELECT parent, name, dir, track FROM music_entries \
                     INDEXED BY music_entries_track \
                     WHERE view = ?1 AND gen = ?2 AND track = ?3 AND track IS NOT NULL LIMIT 1",
            )?
            .query_row(params![view as i64, gen, track as i64], entry_from_row)
            .optional()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{decode_extra, encode_extra};

    #[test]
    fn extra_tags_round_trip_with_newlines_and_backslashes() {
        let extra = vec![
            ("comment".to_string(), "line 1\nline 2 \\ end".to_string()),
            ("label".to_string(), "Warp=Records".to_string()),
        ];
        assert_eq!(decode_extra(&encode_extra(&extra)), extra);
    }
}
