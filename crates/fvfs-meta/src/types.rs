//! Records the metadata store reads and writes. Times are nanoseconds since the Unix
//! epoch (i64), sizes are bytes. Invariant: a `Slice` lies inside one chunk
//! (`pos + len <= CHUNK_SIZE`) and, unless `zero`, its blocks' lengths sum to `len`.

use fvfs_types::{BlockId, Codec, FileKind, Ino};

/// Attributes of one inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: FileKind,
    /// Permission bits including setuid/setgid/sticky (the low 12 bits of st_mode).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u32,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
    pub rdev: u32,
    /// Parent directory for directories (for `..`); 0 otherwise.
    pub parent: Ino,
    /// st_blocks (512-byte units). A regular file counts only its stored data: the 4 KiB
    /// units its written data touches, holes excluded; other kinds count their size.
    pub blocks: u64,
}

/// A new inode to create.
#[derive(Clone, Debug)]
pub struct NewInode<'a> {
    pub kind: FileKind,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    /// Target of a symlink.
    pub target: Option<&'a [u8]>,
    pub now: i64,
    /// Extended attributes (name, value) stored with the new inode in the same
    /// transaction (inherited POSIX ACLs).
    pub xattrs: &'a [(&'a [u8], &'a [u8])],
}

/// One directory entry as listed by `readdir`.
#[derive(Clone, Debug)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: Ino,
    pub kind: FileKind,
    /// Opaque resume cookie: pass it back to continue after this entry. Always > 0.
    pub cookie: u64,
}

/// Attribute changes; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct SetAttr {
    pub perm: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub atime: Option<i64>,
    pub mtime: Option<i64>,
    /// Explicit ctime; otherwise ctime becomes `now` when anything changes.
    pub ctime: Option<i64>,
}

/// A reference to a block inside a slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRef {
    pub id: BlockId,
    pub len: u32,
}

/// An immutable written extent of one chunk. Later slices (higher `id`) overlay earlier ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    pub id: u64,
    /// Offset inside the chunk.
    pub pos: u32,
    pub len: u32,
    /// A zero slice reads as zeros (holes made by truncate and punch-hole) and has no blocks.
    pub zero: bool,
    pub blocks: Vec<BlockRef>,
}

/// A slice to add to a chunk.
#[derive(Clone, Debug)]
pub struct NewSlice {
    pub chunk: u64,
    pub pos: u32,
    pub len: u32,
    pub zero: bool,
    pub blocks: Vec<BlockRef>,
}

/// One atomic change of a file's content (see `MetaStore::commit`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Commit<'a> {
    pub slices: &'a [NewSlice],
    /// Block rows to insert if missing (blocks uploaded for this commit).
    pub new_blocks: &'a [NewBlock],
    /// The size becomes at least this.
    pub min_size: u64,
    /// New mtime and ctime, if the content changed.
    pub mtime: Option<i64>,
    /// Tiers (bitmask) that must receive a copy of each of `new_blocks`: a
    /// `wal_pending` row is queued for every such tier the block is not on yet.
    pub replicate_to: u32,
    /// Slices (by id) that the new slices fully cover and that are removed in the same
    /// transaction (provisional slices written by an earlier flush).
    pub supersede: &'a [u64],
    /// When set, the file's write journal is replaced by these records in the same
    /// transaction (none: cleared), so the journal never replays bytes older than what
    /// this commit stores.
    pub journal: Option<JournalReset<'a>>,
}

/// The records a commit leaves in a file's write journal: the bytes still buffered
/// (file offset, bytes) and the size and mtime the buffered writes imply.
#[derive(Clone, Copy, Debug, Default)]
pub struct JournalReset<'a> {
    pub records: &'a [(u64, &'a [u8])],
    pub size: u64,
    pub mtime: i64,
}

/// One record of a file's write journal: `data` written at `off`, after which the file's
/// size is at least `size` and its mtime `mtime`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalRecord {
    pub seq: u64,
    pub off: u64,
    pub size: u64,
    pub mtime: i64,
    pub data: Vec<u8>,
}

/// A block row to insert when a slice referencing it is committed (if not present yet).
#[derive(Clone, Copy, Debug)]
pub struct NewBlock {
    pub id: BlockId,
    pub size: u32,
    pub stored_size: u32,
    pub codec: Codec,
    /// Tier bitmask of the copies that exist now (bit n = tier n).
    pub tiers: u32,
}

/// A row of the `blocks` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRow {
    pub id: BlockId,
    pub size: u32,
    pub stored_size: u32,
    pub codec: Codec,
    pub refcount: u64,
    pub tiers: u32,
}

/// What `unlink`/`rename` did to an inode that lost a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unlinked {
    pub ino: Ino,
    pub kind: FileKind,
    /// Links left. At 0 the inode is an orphan: its data stays until `purge_inode`.
    pub nlink: u32,
}

/// Flags of rename(2).
#[derive(Clone, Copy, Debug, Default)]
pub struct RenameFlags {
    pub noreplace: bool,
    pub exchange: bool,
    /// A replaced file that loses its last name goes to the trash (`/.trash/<date>/`).
    pub trash: bool,
}

/// One xattr change made in the same transaction as an attribute change (a POSIX ACL and
/// the mode it implies change together).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XattrChange<'a> {
    Set {
        name: &'a [u8],
        value: &'a [u8],
    },
    /// Removes the xattr; a missing one is no error.
    Remove {
        name: &'a [u8],
    },
}

/// xattr set mode (XATTR_CREATE / XATTR_REPLACE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XattrMode {
    Any,
    Create,
    Replace,
}

/// A mount or daemon registered in the metadata.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: u64,
    pub host: String,
    pub pid: u32,
    pub mountpoint: String,
    pub started: i64,
    pub heartbeat: i64,
}

/// Totals for `status` and `statfs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub inodes: u64,
    /// Sum of the sizes of regular files.
    pub logical_bytes: u64,
    /// Number of block rows with refcount > 0.
    pub blocks: u64,
    /// Plain bytes of those blocks (each counted once).
    pub unique_bytes: u64,
    /// Stored (compressed) bytes of those blocks.
    pub stored_bytes: u64,
    /// Plain bytes referenced by all slices (a block counts once per reference).
    pub referenced_bytes: u64,
    /// Blocks whose refcount reached 0 and await garbage collection.
    pub garbage_blocks: u64,
}

/// A queued replication: copy `block` to tier `tier`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEntry {
    pub id: u64,
    pub block: BlockId,
    pub tier: u32,
    /// When the next attempt is due (ns since the epoch).
    pub due: i64,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// The block's row: codec, stored size and the tiers holding it now (None if the
    /// block is gone: the entry is then dropped).
    pub row: Option<BlockRow>,
}

/// A block that may be evicted from a tier, with its access statistics.
#[derive(Clone, Copy, Debug)]
pub struct EvictCandidate {
    pub row: BlockRow,
    pub last_access: i64,
    pub accesses: u64,
}

/// Bytes and blocks a tier holds (live blocks only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TierUsage {
    pub bytes: u64,
    pub blocks: u64,
}

/// Who holds block references besides files: a face's `kind` ("hsm", "music", …) and its
/// `key` of one payload (`HolderStore`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Holder {
    pub kind: String,
    pub key: Vec<u8>,
}

/// Raw write-ahead-log bytes of committed transactions (log shipping of the embedded
/// store): bytes `[start, end)` of log number `index` of a shipping generation. A log
/// starts at 0 with its 32-byte header; `end` always closes a commit frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFrames {
    pub index: u32,
    pub start: u64,
    pub end: u64,
    pub bytes: Vec<u8>,
}
