//! The HTTP API's request and response models, shared by the server (fvfs-api) and the
//! client (fvfs-client, fvfsc). docs/API.md describes the routes that carry them.
//!
//! Invariants: every field name and every [`ErrorCode`] string is part of the wire format
//! (`/v1`); add fields as `Option`/`#[serde(default)]` so older clients keep working, never
//! rename or repurpose one. Times are nanoseconds since the Unix epoch; modes are the
//! permission bits (low 12 bits of `st_mode`) as a number.

use serde::{Deserialize, Serialize};

/// Header carrying the expected BLAKE3 (hex) of a `PUT` body; a mismatch discards the upload.
pub const HEADER_BLAKE3: &str = "x-fvfs-blake3";
/// Header naming the client device (its hostname) for `GET /v1/devices`.
pub const HEADER_DEVICE: &str = "x-fvfs-device";
/// DNS-SD service type the daemon registers.
pub const MDNS_SERVICE: &str = "_fvfs._tcp.local.";
/// Default TCP port of the API.
pub const DEFAULT_PORT: u16 = 7734;

pub use crate::error::ErrorCode;

/// The body of every error response: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

/// What kind of object a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDev,
    BlockDev,
}

impl From<crate::FileKind> for Kind {
    fn from(k: crate::FileKind) -> Kind {
        use crate::FileKind as F;
        match k {
            F::File => Kind::File,
            F::Dir => Kind::Dir,
            F::Symlink => Kind::Symlink,
            F::Fifo => Kind::Fifo,
            F::Socket => Kind::Socket,
            F::CharDev => Kind::CharDev,
            F::BlockDev => Kind::BlockDev,
        }
    }
}

/// `GET /v1/meta/{path}`: what `lstat` says, plus where the data lives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stat {
    /// Normalised path, starting with `/`.
    pub path: String,
    /// Inode number: stable for the life of the file, never reused.
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    /// Permission bits (e.g. 420 = 0o644).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub atime_ns: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    /// Tiers holding every block of the file (bit i = tier i, hottest first; `0x7` on three
    /// tiers = fully replicated). 0 for directories and empty files.
    #[serde(default)]
    pub tiers: u32,
    /// The file's ETag (files only): changes whenever the content changes.
    #[serde(default)]
    pub etag: Option<String>,
    /// A symlink's target.
    #[serde(default)]
    pub target: Option<String>,
    /// Device number of a character or block device (0 otherwise).
    #[serde(default)]
    pub rdev: u32,
    /// `st_blocks`: 512-byte units of stored data (a file's holes are not counted).
    #[serde(default)]
    pub blocks: u64,
    /// The POSIX access ACL in `getfacl`'s short text form with numeric ids, e.g.
    /// `user::rw-,user:1000:r-x,group::r--,mask::r-x,other::r--`; absent when the mode
    /// says everything.
    #[serde(default)]
    pub acl_access: Option<String>,
    /// A directory's default ACL (what new entries inherit), in the same form.
    #[serde(default)]
    pub acl_default: Option<String>,
}

/// `GET /v1/ls/{prefix}`: one page of a directory, in name order.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Listing {
    pub path: String,
    pub entries: Vec<Stat>,
    /// Pass as `?after=` to get the next page; absent on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// One piece of a file's content: `len` bytes at file offset `offset` are bytes
/// `[block_offset, block_offset + len)` of block `id` (`GET /v1/blocks/{id}`, whose plain
/// bytes hash to `id` under BLAKE3). Ranges of the file no piece covers are zeros.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Piece {
    pub offset: u64,
    pub len: u64,
    pub id: String,
    pub block_offset: u64,
    pub block_len: u64,
}

/// `GET /v1/manifest/{path}`: the file's content as blocks, consistent with `etag`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Manifest {
    pub path: String,
    pub size: u64,
    pub etag: String,
    pub pieces: Vec<Piece>,
}

/// `PATCH /v1/meta/{path}` (setattr): only the fields given change.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetAttrRequest {
    #[serde(default)]
    pub mode: Option<u32>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
    /// Truncate or extend (with zeros) to this size.
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub atime_ns: Option<i64>,
    #[serde(default)]
    pub mtime_ns: Option<i64>,
}

/// `POST /v1/mkdir/{path}`, `POST /v1/symlink/{path}` and the query of `PUT /v1/files`:
/// the new object's owner and mode (defaults: the daemon's uid/gid, 0o755 / 0o644).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    #[serde(default)]
    pub mode: Option<u32>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
    /// Create missing parent directories (like `mkdir -p`).
    #[serde(default)]
    pub parents: Option<bool>,
    /// The target of `POST /v1/symlink`.
    #[serde(default)]
    pub target: Option<String>,
}

/// `POST /v1/rename`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    pub from: String,
    pub to: String,
    /// Fail with `exists` instead of replacing `to`.
    #[serde(default)]
    pub noreplace: bool,
}

/// `POST /v1/mknod/{path}`: a special file (fifo, socket, character or block device).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MknodRequest {
    /// `fifo`, `socket`, `char_dev` or `block_dev` (other kinds are `invalid_argument`).
    #[cfg_attr(feature = "openapi", schema(value_type = SpecialKind))]
    pub kind: Kind,
    /// Permission bits (default 0o644).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 4095))]
    pub mode: Option<u32>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
    /// Device number of a device node (`makedev(major, minor)`), 0 otherwise.
    #[serde(default)]
    pub rdev: u32,
}

/// The kinds `POST /v1/mknod` creates: the schema of [`MknodRequest::kind`] (the wire
/// values are those of [`Kind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SpecialKind {
    Fifo,
    Socket,
    CharDev,
    BlockDev,
}

impl From<SpecialKind> for Kind {
    fn from(k: SpecialKind) -> Kind {
        match k {
            SpecialKind::Fifo => Kind::Fifo,
            SpecialKind::Socket => Kind::Socket,
            SpecialKind::CharDev => Kind::CharDev,
            SpecialKind::BlockDev => Kind::BlockDev,
        }
    }
}

/// `POST /v1/link`: a new name `to` for the non-directory `from` (a hard link).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    pub from: String,
    pub to: String,
}

/// One tier in `GET /v1/status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierStatus {
    pub name: String,
    /// Location with credentials removed.
    pub location: String,
    pub bytes: u64,
    #[serde(default)]
    pub high_watermark: Option<u64>,
    #[serde(default)]
    pub low_watermark: Option<u64>,
    pub durable: bool,
    pub healthy: bool,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// `GET /v1/status`: daemon health and tier figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Status {
    pub version: String,
    pub uuid: String,
    pub name: String,
    pub uptime_secs: u64,
    pub tiers: Vec<TierStatus>,
    /// Block copies still to replicate (the WAL's depth).
    pub wal_pending: u64,
    /// Background workers by name → state (`idle`, `busy`, `error: …`).
    pub workers: std::collections::BTreeMap<String, String>,
    /// Where the daemon's FUSE mount is, if it has one.
    #[serde(default)]
    pub mount: Option<String>,
    /// Files and bytes in the namespace.
    pub files: u64,
    pub bytes: u64,
    /// Who is asking: the identity the daemon acts as for this caller.
    #[serde(default)]
    pub caller: Option<CallerInfo>,
    /// Continuous metadata shipping to the durable tier (absent: the store ships none).
    #[serde(default)]
    pub meta_shipping: Option<MetaShipping>,
}

/// Where continuous metadata shipping stands (`GET /v1/status`, `fvfsd status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetaShipping {
    /// The current generation (`meta/gen/<id>/`), once its base is on the tier.
    #[serde(default)]
    pub generation: Option<String>,
    /// Seconds the oldest commit not yet on the tier has waited (0: none waits).
    pub lag_secs: f64,
    /// Bytes of metadata log taken from the store but not yet on the tier.
    pub pending_bytes: u64,
    /// Log bytes, segments and bases uploaded by this process.
    pub shipped_bytes: u64,
    pub segments: u64,
    pub bases: u64,
    /// Unix time (ms) before which every metadata commit is on the tier.
    #[serde(default)]
    pub synced_at_ms: Option<u64>,
    /// The last upload error, while shipping fails.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// The identity of the caller of `GET /v1/status`: its token and the uid:gid the daemon
/// checks permissions as and gives new files (docs/API.md, "Identities").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallerInfo {
    /// The token's name (`local` over the control socket).
    pub token: String,
    pub uid: u32,
    pub gid: u32,
    /// May set any owner (and, with `[daemon] allow_devices`, make devices and set-id files).
    pub admin: bool,
    pub read_only: bool,
}

/// One client in `GET /v1/devices`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Device {
    /// The device's name (`x-fvfs-device`, else the peer address).
    pub name: String,
    pub address: String,
    /// The token's name (`local` over the control socket).
    pub token: String,
    #[serde(default)]
    pub user_agent: Option<String>,
    pub last_seen_unix: i64,
    pub requests: u64,
}

/// `GET /v1/devices`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Devices {
    pub devices: Vec<Device>,
}

/// One queued replication in `GET /v1/admin/wal`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WalItem {
    pub id: u64,
    pub block: String,
    /// Name of the tier the copy is for.
    pub tier: String,
    pub due_ns: i64,
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// `GET /v1/admin/wal`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Wal {
    pub pending: u64,
    pub entries: Vec<WalItem>,
}

/// `POST /v1/admin/evict`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvictResult {
    pub evicted_bytes: u64,
}

/// `POST /v1/admin/flush`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlushResult {
    pub replicated: u64,
    pub pending: u64,
}

/// One track of `GET /v1/music/search` (the same fields as the music control socket's
/// `search` answer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MusicHit {
    /// The track's id in the music index.
    pub track: u64,
    /// Its path in the mounted view, if the view shows it.
    pub path: Option<String>,
    /// The origin holding the file, and the file's path there.
    pub origin: String,
    pub origin_path: String,
    pub artist: Option<String>,
    pub album: Option<String>,
    pub title: Option<String>,
    /// Relevance, higher first.
    pub score: f32,
}

/// `GET /v1/music/search`: the tracks found, best first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MusicSearchResult {
    pub query: String,
    pub hits: Vec<MusicHit>,
}
