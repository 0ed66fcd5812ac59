//! The music mount's control API (seed 4.3.7): what a running mount answers
//! ([`MusicControl`]), the answers as serde structs, the one error type
//! ([`ControlError`]) with THE table from errors to JSON-RPC codes
//! ([`ControlError::rpc_code`]), and the JSON-RPC 2.0 server on a Unix socket
//! ([`serve`]) with its blocking client ([`call`]) for the CLI.
//!
//! - `rpc`: one line of JSON-RPC in, one line out (parsing, validation, dispatch);
//! - `server`: the socket (bind with mode 0600, stale socket replaced, live one refused),
//!   connections, bounded lines, cancellation;
//! - `client`: [`call`], one request over a fresh connection, bounded by a timeout.
//!
//! Methods and their params (by name; unknown params are `-32602`):
//! `status`, `cache.stats`, `cache.clear {origin?}`, `search {query, limit? = 50}`,
//! `origin.list`, `origin.rescan {id?}`.
//!
//! Invariants: every field name of the answers is wire format (add, never rename); the
//! socket is the only guard (mode 0600: whoever can open it may do what its owner can),
//! so nothing here checks a caller; a synchronous [`MusicControl`] method may block (the
//! server runs it on the blocking pool, never on a runtime thread).

mod client;
mod rpc;
mod server;

pub use client::call;
pub use rpc::{handle_line, MAX_BATCH};
pub use server::{bind, serve, serve_listener, MAX_CLIENTS, MAX_LINE};

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::origin::{Origin, OriginError, OriginHealth, OriginLocation};
use crate::search::SearchError;

/// `search`'s `limit` when none is given, and the largest one accepted.
pub const DEFAULT_SEARCH_LIMIT: usize = 50;
pub const MAX_SEARCH_LIMIT: usize = 1000;

/// What the running music mount answers over the control socket. The mount implements
/// it; the server validates params before calling (a `limit` is within
/// 1..=[`MAX_SEARCH_LIMIT`], a `query` is a string).
pub trait MusicControl: Send + Sync + 'static {
    /// `status`: the mount as a whole.
    fn status(&self) -> Result<Status, ControlError>;
    /// `cache.stats`: the content cache's figures.
    fn cache_stats(&self) -> Result<CacheStats, ControlError>;
    /// `cache.clear`: drops the cached blocks of `origin`'s tracks, or of every track.
    /// An unknown origin is [`ControlError::UnknownOrigin`].
    fn cache_clear(&self, origin: Option<&str>) -> Result<CacheCleared, ControlError>;
    /// `search`: at most `limit` tracks matching `query` (the language of
    /// [`crate::search`]), best first.
    fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchResult>, ControlError>;
    /// `origin.list`: every origin, by priority.
    fn origins(&self) -> Result<Vec<OriginStatus>, ControlError>;
    /// `origin.rescan`: scans `id` (or every origin) now, then rebuilds the views; the
    /// answer comes when it is done. [`ControlError::Busy`] if a scan is running.
    fn rescan(&self, id: Option<String>) -> BoxFuture<'_, Result<RescanResult, ControlError>>;
}

/// `cache.stats` (the seed's fields, plus the limit).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// hits / (hits + misses); 0 before any read.
    pub hit_rate: f64,
    /// Block references the cached tracks hold.
    pub chunks_stored: u64,
    /// Distinct blocks among them.
    pub chunks_unique: u64,
    /// 1 - unique / stored: the share of references dedup saved; 0 when empty.
    pub dedup_ratio: f64,
    pub size_bytes: u64,
    /// The cache's configured limit.
    pub limit_bytes: u64,
    /// Bytes fetched from origins into the cache since the mount started.
    #[serde(default)]
    pub origin_bytes: u64,
    /// Cached windows that failed to read or verify and were fetched again.
    #[serde(default)]
    pub refetched: u64,
}

impl CacheStats {
    /// `hit_rate` from the counts (0 before any read).
    pub fn rate(hits: u64, misses: u64) -> f64 {
        let all = hits.saturating_add(misses);
        if all == 0 {
            0.0
        } else {
            hits as f64 / all as f64
        }
    }

    /// `dedup_ratio` from the counts (0 when nothing is stored).
    pub fn dedup(stored: u64, unique: u64) -> f64 {
        if stored == 0 {
            0.0
        } else {
            1.0 - unique.min(stored) as f64 / stored as f64
        }
    }
}

/// `cache.clear`: what was dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCleared {
    /// The origin cleared, none for all.
    pub origin: Option<String>,
    /// Tracks whose cached blocks were dropped.
    pub tracks: u64,
    /// Bytes the cache no longer holds for them.
    pub bytes: u64,
}

/// One track `search` found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    /// The track's id in the index.
    pub track: u64,
    /// Its path in the mounted view (from the mount point, starting with `/`), if the
    /// view shows it.
    pub path: Option<String>,
    pub origin: String,
    /// The file's path on that origin.
    pub origin_path: String,
    pub artist: Option<String>,
    pub album: Option<String>,
    pub title: Option<String>,
    /// Relevance, higher first.
    pub score: f32,
}

/// One origin in `origin.list` and `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginStatus {
    pub id: String,
    /// `fs`, `s3`, `sftp` or `webdav`.
    pub kind: String,
    /// Where it is, secret-free ([`Origin::display`]).
    pub location: String,
    /// Lower is preferred.
    pub priority: u32,
    /// 1 healthy, 0 not (`musicfs_origin_health`).
    pub health: u8,
    /// Tracks of the index on this origin.
    pub tracks: u64,
    pub last_error: Option<String>,
    /// Seconds since the Unix epoch.
    pub last_error_at: Option<u64>,
    pub last_check: Option<u64>,
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An origin's kind as `OriginStatus::kind` shows it.
pub fn origin_kind(loc: &OriginLocation) -> &'static str {
    match loc {
        OriginLocation::Fs { .. } => "fs",
        OriginLocation::S3 { .. } => "s3",
        OriginLocation::Sftp { .. } => "sftp",
        OriginLocation::WebDav { .. } => "webdav",
    }
}

impl OriginStatus {
    /// The status of an opened origin with its health now and its track count.
    pub fn of(origin: &Origin, health: &OriginHealth, tracks: u64) -> OriginStatus {
        OriginStatus {
            id: origin.id().to_string(),
            kind: origin_kind(&origin.spec().location).to_string(),
            location: origin.display().to_string(),
            priority: origin.spec().priority,
            health: health.gauge(),
            tracks,
            last_error: health.last_error.clone(),
            last_error_at: health.last_error_at.map(unix_secs),
            last_check: health.last_check.map(unix_secs),
        }
    }
}

/// `status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The daemon's version.
    pub version: String,
    pub mountpoint: Option<String>,
    pub uptime_secs: u64,
    /// Tracks in the index.
    pub tracks: u64,
    /// The views' names.
    pub views: Vec<String>,
    pub origins: Vec<OriginStatus>,
    pub cache: CacheStats,
}

/// One origin's part of `origin.rescan`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginRescan {
    pub id: String,
    /// Why the scan failed; the counts below are then zero.
    pub error: Option<String>,
    pub seen: u64,
    pub added: u64,
    pub updated: u64,
    #[serde(default)]
    pub unchanged: u64,
    pub removed: u64,
    pub unreadable: u64,
    pub failed: u64,
    /// Bytes read from the origin to read tags.
    #[serde(default)]
    pub fetched_bytes: u64,
}

/// `origin.rescan`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RescanResult {
    pub origins: Vec<OriginRescan>,
    /// Views rebuilt after the scans.
    pub views: u64,
    pub elapsed_ms: u64,
}

/// Any failure of the control API, on either side of the socket.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The line is not JSON.
    #[error("parse error: {0}")]
    Parse(String),
    /// JSON, but not a JSON-RPC 2.0 request.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("method not found: {0}")]
    MethodNotFound(String),
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// A bug or a panic in the server.
    #[error("internal error: {0}")]
    Internal(String),
    /// A failure of the mount not covered below.
    #[error("{0}")]
    Failed(String),
    #[error("bad search query {query:?}: {reason}")]
    BadQuery { query: String, reason: String },
    #[error("unknown origin {0:?}")]
    UnknownOrigin(String),
    /// Something the answer needs does not answer (an origin, the search index), or
    /// the mount is stopping.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The operation is already running (a rescan).
    #[error("busy: {0}")]
    Busy(String),
    /// Client side: the daemon answered with this JSON-RPC error.
    #[error("{message} (code {code})")]
    Remote { code: i64, message: String },
    /// Client side: nothing listens on the socket.
    #[error("no music mount answers on {}: {reason} (is it mounted?)", path.display())]
    NoDaemon { path: PathBuf, reason: String },
    /// Server side: a live process answers on the socket.
    #[error("another mount serves this socket: {}", path.display())]
    SocketInUse { path: PathBuf },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Client side: the daemon's answer is not a JSON-RPC response to our request.
    #[error("malformed answer from the daemon: {0}")]
    Protocol(String),
}

impl ControlError {
    /// THE table from errors to JSON-RPC codes: the standard ones (-32700 parse,
    /// -32600 invalid request, -32601 method not found, -32602 invalid params, -32603
    /// internal) and the application's (-32000..-32099). Client-side errors never go on
    /// the wire; they get -32000 for completeness, a `Remote` error keeps its code.
    pub fn rpc_code(&self) -> i64 {
        match self {
            ControlError::Parse(_) => -32700,
            ControlError::InvalidRequest(_) => -32600,
            ControlError::MethodNotFound(_) => -32601,
            ControlError::InvalidParams(_) => -32602,
            ControlError::Internal(_) => -32603,
            ControlError::Failed(_) => -32000,
            ControlError::BadQuery { .. } => -32001,
            ControlError::UnknownOrigin(_) => -32002,
            ControlError::Unavailable(_) => -32003,
            ControlError::Busy(_) => -32004,
            ControlError::Remote { code, .. } => *code,
            ControlError::NoDaemon { .. }
            | ControlError::SocketInUse { .. }
            | ControlError::Io { .. }
            | ControlError::Timeout(_)
            | ControlError::Protocol(_) => -32000,
        }
    }

    /// A failure of the caller (its request), as opposed to the mount's.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            ControlError::Parse(_)
                | ControlError::InvalidRequest(_)
                | ControlError::MethodNotFound(_)
                | ControlError::InvalidParams(_)
                | ControlError::BadQuery { .. }
                | ControlError::UnknownOrigin(_)
                | ControlError::Busy(_)
        )
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> ControlError {
        ControlError::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<SearchError> for ControlError {
    fn from(e: SearchError) -> ControlError {
        match e {
            SearchError::BadQuery { query, reason } => ControlError::BadQuery { query, reason },
            SearchError::Index(m) => ControlError::Unavailable(format!("search index: {m}")),
        }
    }
}

impl From<OriginError> for ControlError {
    fn from(e: OriginError) -> ControlError {
        match e {
            OriginError::UnknownOrigin(id) => ControlError::UnknownOrigin(id),
            e @ (OriginError::Unavailable { .. }
            | OriginError::Denied { .. }
            | OriginError::AllFailed(_)) => ControlError::Unavailable(e.to_string()),
            e => ControlError::Failed(e.to_string()),
        }
    }
}
