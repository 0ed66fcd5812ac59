//! Building a view's tree from the index: every track rendered through the view's
//! template, directories given ids, and the result written as the view's next
//! generation, then swapped in (the old tree is served until that one transaction).
//!
//! Invariants:
//! - One entry per distinct file: copies of a file on several origins (same quick id)
//!   appear once, as the row on the preferred origin (lowest priority, then lowest id).
//!   Reads fail over between the copies; the tree does not change when an origin does.
//! - Rows the scanner could not read as audio (`error` set) are not in the tree.
//! - Names are deterministic: tracks are placed in id order, and a name already taken
//!   in its directory gets ` (2)`, ` (3)`, … before its extension, so the same index
//!   gives the same tree.
//! - A directory keeps its id across rebuilds while its path stays (ids are taken from
//!   the served tree first), so the inodes a mount derives from them are stable.
//! - `%aunique` groups tracks into albums by (directory relative to its origin's root,
//!   album tag): beets' albums are import directories. The origin is not part of it:
//!   an album mirrored on several origins is one album even when the preferred copy of
//!   one track lies on another origin than the rest's.
//! - Memory: the index is read in pages, three times (distinct files, albums, placing),
//!   and the build holds ids, one row per album and the names placed, never every row
//!   (1,000,000 tracks: bench/music.sh, docs/BENCHMARKS.md "Issue 11").

use super::fields::TrackFields;
use super::ViewError;
use crate::template::{aunique_disambiguator, Fields, RenderOptions, Template};
use fvfs_meta::{MetaStore, MusicEntry, MusicNode, MusicTrack, MusicView, MUSIC_ROOT};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// Tracks read from the index per query, and entries written per transaction.
const PAGE: usize = 10_000;

/// What a build did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildStats {
    /// Files in the tree.
    pub tracks: u64,
    /// Directories in the tree (the root not counted).
    pub dirs: u64,
    /// Files whose rendered name was taken and got a suffix.
    pub renamed: u64,
    /// Rows left out: unreadable files, and copies of a file already placed.
    pub skipped: u64,
    /// The generation now served.
    pub generation: u64,
}

/// A row seen through its fields only (an album's representative for `%aunique`).
struct Row<'a>(&'a MusicTrack);

impl Fields for Row<'_> {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        crate::tags::field(self.0, name)
    }
}

/// The library's distinct files: for each quick id, the id of the preferred row (the
/// lowest origin priority, then the lowest id), ascending. Reads the index in pages and
/// keeps only those ids (not the rows).
fn distinct(meta: &dyn MetaStore, stats: &mut BuildStats) -> Result<Vec<u64>, ViewError> {
    let priority: HashMap<String, i64> = meta
        .music_origins()?
        .into_iter()
        .map(|o| (o.id, o.priority))
        .collect();
    let mut by_quick: HashMap<[u8; 32], (i64, u64)> = HashMap::new();
    let mut after = 0;
    loop {
        let page = meta.music_tracks(None, after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for t in page {
            if t.error.is_some() {
                stats.skipped += 1;
                continue;
            }
            let rank = (priority.get(&t.origin).copied().unwrap_or(i64::MAX), t.id);
            match by_quick.entry(t.quick_id) {
                Entry::Occupied(mut e) => {
                    stats.skipped += 1;
                    if rank < *e.get() {
                        e.insert(rank);
                    }
                }
                Entry::Vacant(e) => {
                    e.insert(rank);
                }
            }
        }
    }
    let mut ids: Vec<u64> = by_quick.into_values().map(|(_, id)| id).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Calls `f` with each row of `ids` (ascending), read from the index in pages, in id
/// order. A row gone since `ids` was made is not seen.
fn each_track(
    meta: &dyn MetaStore,
    ids: &[u64],
    mut f: impl FnMut(MusicTrack) -> Result<(), ViewError>,
) -> Result<(), ViewError> {
    let mut after = 0;
    loop {
        let page = meta.music_tracks(None, after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for t in page {
            if t.error.is_none() && ids.binary_search(&t.id).is_ok() {
                f(t)?;
            }
        }
    }
    Ok(())
}

/// Album representatives by their identifier values.
type Groups = HashMap<Vec<String>, Vec<usize>>;

/// Albums for `%aunique`: each track's album representative (its album's first track).
/// Only the representatives' rows are held, one per album.
struct Albums {
    /// The representatives, in the id order of their first track.
    reps: Vec<MusicTrack>,
    /// (track id, index in `reps` of its album's representative), by track id.
    album_of: Vec<(u64, usize)>,
    /// Representatives, by the identifier list and their values (built on first use).
    groups: RefCell<HashMap<Vec<String>, Groups>>,
}

impl Albums {
    fn new(meta: &dyn MetaStore, ids: &[u64]) -> Result<Albums, ViewError> {
        let mut first: HashMap<(String, String), usize> = HashMap::new();
        let mut reps = Vec::new();
        let mut album_of = Vec::with_capacity(ids.len());
        each_track(meta, ids, |t| {
            let dir = t.path.rsplit_once('/').map_or("", |(d, _)| d).to_string();
            let album = crate::tags::field(&t, "album")
                .unwrap_or_default()
                .into_owned();
            let id = t.id;
            let rep = match first.entry((dir, album)) {
                Entry::Occupied(e) => *e.get(),
                Entry::Vacant(e) => {
                    reps.push(t);
                    *e.insert(reps.len() - 1)
                }
            };
            album_of.push((id, rep));
            Ok(())
        })?;
        Ok(Albums {
            reps,
            album_of,
            groups: RefCell::new(HashMap::new()),
        })
    }

    fn rep_of(&self, track: u64) -> Option<usize> {
        let i = self
            .album_of
            .binary_search_by_key(&track, |(id, _)| *id)
            .ok()?;
        Some(self.album_of[i].1)
    }

    fn key(&self, rep: usize, identifiers: &[&str]) -> Vec<String> {
        identifiers
            .iter()
            .map(|f| {
                crate::tags::field(&self.reps[rep], f)
                    .unwrap_or_default()
                    .into_owned()
            })
            .collect()
    }

    fn aunique(
        &self,
        t: &MusicTrack,
        identifiers: &[&str],
        disambiguators: &[&str],
    ) -> Option<String> {
        let rep = self.rep_of(t.id)?;
        let ids: Vec<String> = identifiers.iter().map(|s| s.to_string()).collect();
        let mut groups = self.groups.borrow_mut();
        let by_key = groups.entry(ids).or_insert_with(|| {
            let mut m = Groups::new();
            for r in 0..self.reps.len() {
                m.entry(self.key(r, identifiers)).or_default().push(r);
            }
            m
        });
        let sharing = by_key.get(&self.key(rep, identifiers))?;
        if sharing.len() <= 1 {
            return None;
        }
        let rows: Vec<Row<'_>> = sharing.iter().map(|&r| Row(&self.reps[r])).collect();
        aunique_disambiguator(
            &Row(&self.reps[rep]),
            rows.iter(),
            identifiers,
            disambiguators,
            &self.reps[rep].id.to_string(),
        )
    }
}

/// `name` with ` (n)` before its extension (the text after the last `.`, when the name
/// has one that is not its start).
fn numbered(name: &str, n: u64) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

/// The served tree's directories, (parent, name) → id, to keep ids across rebuilds.
fn served_dirs(meta: &dyn MetaStore, view: u64) -> Result<HashMap<(u64, String), u64>, ViewError> {
    let mut out = HashMap::new();
    let mut todo = vec![MUSIC_ROOT];
    while let Some(dir) = todo.pop() {
        let mut after: Option<String> = None;
        loop {
            let page = meta.music_readdir(view, dir, after.as_deref(), PAGE)?;
            let Some(last) = page.last() else { break };
            after = Some(last.name.clone());
            for e in page {
                if let MusicNode::Dir(id) = e.node {
                    out.insert((dir, e.name), id);
                    todo.push(id);
                }
            }
        }
    }
    Ok(out)
}

/// Renders the library through `view`'s template and serves the result.
pub fn build_view(
    meta: &dyn MetaStore,
    view: &MusicView,
    opts: &RenderOptions<'_>,
) -> Result<BuildStats, ViewError> {
    let template = Template::parse(&view.template)?;
    let mut stats = BuildStats::default();
    let ids = distinct(meta, &mut stats)?;
    let albums = Albums::new(meta, &ids)?;
    let aunique = |t: &MusicTrack, i: &[&str], d: &[&str]| albums.aunique(t, i, d);
    let old = served_dirs(meta, view.id)?;
    let mut next_id = old
        .values()
        .copied()
        .max()
        .unwrap_or(MUSIC_ROOT)
        .max(MUSIC_ROOT)
        + 1;
    let gen = meta.music_view_begin(view.id)?;
    let mut dirs: HashMap<(u64, String), u64> = HashMap::new();
    let mut taken: HashMap<(u64, String), u64> = HashMap::new();
    let mut batch: Vec<MusicEntry> = Vec::with_capacity(PAGE);
    each_track(meta, &ids, |t| {
        let t = &t;
        let parts = template.render_with(
            &TrackFields {
                track: t,
                aunique: &aunique,
            },
            opts,
        );
        let Some((file, path)) = parts.split_last() else {
            return Ok(());
        };
        let mut parent = MUSIC_ROOT;
        for name in path {
            let key = (parent, name.clone());
            parent = match dirs.get(&key) {
                Some(&id) => id,
                None => {
                    let id = old.get(&key).copied().unwrap_or_else(|| {
                        next_id += 1;
                        next_id - 1
                    });
                    dirs.insert(key.clone(), id);
                    batch.push(MusicEntry {
                        parent: key.0,
                        name: key.1,
                        node: MusicNode::Dir(id),
                    });
                    stats.dirs += 1;
                    id
                }
            };
        }
        // Every file is at the template's depth, so a directory never takes a file's name.
        let key = (parent, file.clone());
        let name = match taken.get(&key).copied() {
            None => {
                taken.insert(key, 1);
                file.clone()
            }
            Some(last) => {
                // The next free number: a track may itself be named like "x (2).flac".
                let mut n = last + 1;
                while taken.contains_key(&(parent, numbered(file, n))) {
                    n += 1;
                }
                taken.insert(key, n);
                stats.renamed += 1;
                let name = numbered(file, n);
                taken.insert((parent, name.clone()), 1);
                name
            }
        };
        batch.push(MusicEntry {
            parent,
            name,
            node: MusicNode::Track(t.id),
        });
        stats.tracks += 1;
        if batch.len() >= PAGE {
            meta.music_view_write(view.id, gen, &batch)?;
            batch.clear();
        }
        Ok(())
    })?;
    meta.music_view_write(view.id, gen, &batch)?;
    meta.music_view_swap(view.id, gen)?;
    stats.generation = gen;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn a_taken_name_is_numbered_before_its_extension() {
        assert_eq!(numbered("01 - Intro.flac", 2), "01 - Intro (2).flac");
        assert_eq!(numbered("Intro", 3), "Intro (3)");
        assert_eq!(numbered(".flac", 2), ".flac (2)");
    }
}
