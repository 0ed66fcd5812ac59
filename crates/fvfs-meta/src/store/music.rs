//! [`MusicStore`]: the index of the music face. Origins (read-only sources, by id), the
//! tracks found on them with their tags, saved searches shown as directories
//! (collections), and each mounted view's tree of rendered names.
//!
//! Invariants:
//! - A track row is keyed by (origin, path): a rescan updates it in place, so its id (and
//!   the inode a view derives from it) is stable while the file stays at its path.
//! - `quick_id` groups copies of one file across origins before the whole content is
//!   known (it is computed from the size and the bytes a tag read fetches anyway);
//!   `content_hash`, once known, is the BLAKE3 of the whole file.
//! - A view's tree is written as a new generation beside the one being served, then
//!   made current in one transaction (`music_view_swap`), which drops every other
//!   generation: a reader of the view sees the old tree or the new one, never a mix.
//! - Removing an origin removes its tracks in the same transaction.

use crate::error::Result;

/// A read-only source of audio files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MusicOrigin {
    /// Short name (`[a-z0-9_-]`), unique.
    pub id: String,
    /// The origin's spec as the music face serialises it (kind, location, options).
    pub spec: String,
    /// Lower is preferred when a track is on several origins.
    pub priority: i64,
    pub added: i64,
}

/// One audio file on one origin, with its tags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MusicTrack {
    /// Assigned by `music_track_put` on first sight of (origin, path).
    pub id: u64,
    pub origin: String,
    /// The path on the origin (OpenDAL paths are UTF-8).
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub etag: Option<String>,
    /// Groups copies of one file across origins (see the module's invariants).
    pub quick_id: [u8; 32],
    /// BLAKE3 of the whole file, once it was read whole.
    pub content_hash: Option<[u8; 32]>,
    /// Lowercase container name: flac, mp3, ogg, opus, m4a, …
    pub format: String,
    pub title: Option<String>,
    pub artist: Option<String>,
    pub album: Option<String>,
    pub albumartist: Option<String>,
    pub genre: Option<String>,
    pub year: Option<u32>,
    pub track: Option<u32>,
    pub disc: Option<u32>,
    pub duration_ms: Option<u64>,
    pub bitrate_kbps: Option<u32>,
    pub sample_rate: Option<u32>,
    /// Other tags by beets field name, sorted by name.
    pub extra: Vec<(String, String)>,
    pub has_cover: bool,
    /// Where the audio lies in the file without its tags (FLAC and MP3), with a hash
    /// recognising it after a tag edit; None for other formats (the file is one piece).
    pub audio: Option<AudioSpan>,
    /// Set when the file could not be read as audio (truncated, malformed): the row keeps
    /// its stamp so an unchanged bad file is not read again, and views skip it.
    pub error: Option<String>,
    pub scanned: i64,
}

/// The tag-free audio bytes of a file: `[start, start + len)`, and `id`, the BLAKE3 of
/// the length and the first and last 64 KiB of those bytes. Two versions of a file with
/// the same `id` are taken to hold the same audio (a tag edit moved it, nothing else):
/// the music cache keeps the audio under `id`, so the edit costs only the tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioSpan {
    pub start: u64,
    pub len: u64,
    pub id: [u8; 32],
}

/// What a rescan compares to decide whether a file changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MusicStamp {
    pub id: u64,
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub etag: Option<String>,
}

/// A saved search, shown as a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MusicCollection {
    pub id: u64,
    pub name: String,
    pub query: String,
    pub created: i64,
}

/// A view: a template mounted under a name; `generation` is the tree being served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MusicView {
    pub id: u64,
    pub name: String,
    pub template: String,
    pub generation: u64,
}

/// What a name in a view's tree is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MusicNode {
    /// A directory, by its id in the view (the root is 1).
    Dir(u64),
    /// A track, by its id.
    Track(u64),
}

/// One name in a view's tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MusicEntry {
    /// The directory holding it.
    pub parent: u64,
    pub name: String,
    pub node: MusicNode,
}

/// The root directory id of every view.
pub const MUSIC_ROOT: u64 = 1;

pub trait MusicStore {
    /// Adds or replaces origin `o.id`.
    fn music_origin_put(&self, o: &MusicOrigin) -> Result<()>;
    fn music_origins(&self) -> Result<Vec<MusicOrigin>>;
    /// Removes an origin and its tracks; false when there was none.
    fn music_origin_remove(&self, id: &str) -> Result<bool>;

    /// Inserts or updates the track at (origin, path); returns its id (the existing one
    /// on update; `t.id` is ignored).
    fn music_track_put(&self, t: &MusicTrack) -> Result<u64>;
    /// [`MusicStore::music_track_put`] of every row of `ts`, in one transaction: all of
    /// them or none. Returns their ids, in order.
    fn music_tracks_put(&self, ts: &[MusicTrack]) -> Result<Vec<u64>> {
        ts.iter().map(|t| self.music_track_put(t)).collect()
    }
    fn music_track_get(&self, id: u64) -> Result<Option<MusicTrack>>;
    /// Tracks with an id above `after`, by id, at most `limit` (every origin with None).
    fn music_tracks(
        &self,
        origin: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<MusicTrack>>;
    /// The stamps of an origin's tracks, by path.
    fn music_stamps(&self, origin: &str) -> Result<Vec<MusicStamp>>;
    /// Deletes tracks by id; returns how many existed.
    fn music_tracks_delete(&self, ids: &[u64]) -> Result<u64>;
    /// Every copy of one file: the tracks with this quick id, on any origin.
    fn music_copies(&self, quick_id: &[u8; 32]) -> Result<Vec<MusicTrack>>;
    /// Records the whole-content hash of a track.
    fn music_set_content_hash(&self, id: u64, hash: &[u8; 32]) -> Result<()>;
    /// Number of tracks, unreadable ones included, of one origin (of all with None).
    fn music_track_count(&self, origin: Option<&str>) -> Result<u64>;
    /// A number that grows with every committed change of the tracks (put, delete,
    /// origin removal), 0 before the first: equal values mean the same tracks, so a
    /// derived index (search) that recorded it can skip a sync.
    fn music_changes(&self) -> Result<u64>;

    /// Adds or replaces the collection named `name`; returns its id.
    fn music_collection_put(&self, name: &str, query: &str, now: i64) -> Result<u64>;
    fn music_collections(&self) -> Result<Vec<MusicCollection>>;
    fn music_collection_remove(&self, name: &str) -> Result<bool>;

    /// Adds view `name` (or changes its template); returns its id.
    fn music_view_put(&self, name: &str, template: &str) -> Result<u64>;
    fn music_views(&self) -> Result<Vec<MusicView>>;
    /// Starts a rebuild of a view: drops every generation but the served one (the rows
    /// of a rebuild that was interrupted) and returns the next generation's number.
    fn music_view_begin(&self, view: u64) -> Result<u64>;
    /// Writes entries of generation `gen` of a view (not served until the swap).
    fn music_view_write(&self, view: u64, gen: u64, entries: &[MusicEntry]) -> Result<()>;
    /// Makes `gen` the view's served tree and drops every other generation.
    fn music_view_swap(&self, view: u64, gen: u64) -> Result<()>;
    /// The entry `name` in directory `parent` of the served tree.
    fn music_lookup(&self, view: u64, parent: u64, name: &str) -> Result<Option<MusicEntry>>;
    /// Entries of directory `parent` of the served tree with a name after `after`, by
    /// name, at most `limit`.
    fn music_readdir(
        &self,
        view: u64,
        parent: u64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MusicEntry>>;
    /// The entry naming directory `dir` (its parent and name); None for the root.
    fn music_dir_entry(&self, view: u64, dir: u64) -> Result<Option<MusicEntry>>;
    /// The first track (by name) of directory `parent` of the served tree whose file
    /// embeds a front cover, if any (one indexed query: a listing's cover check).
    fn music_dir_cover_track(&self, view: u64, parent: u64) -> Result<Option<u64>>;
    /// An entry naming track `track` in the served tree (its parent and name), if the
    /// view shows it.
    fn music_track_entry(&self, view: u64, track: u64) -> Result<Option<MusicEntry>>;
}
