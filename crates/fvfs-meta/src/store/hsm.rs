//! [`HsmStore`]: the catalog of the HSM face, which tiers files of native directories in
//! place. A catalog row is one archived file: its payload's block list (held by the
//! holder ("hsm", id as 8 big-endian bytes), see [`HolderStore`](super::HolderStore)),
//! the size, mtime and ctime it had when it was archived, the BLAKE3 hash of its content,
//! and its state. The row is keyed by a catalog id that the file carries in its
//! `trusted.fvfs.hsm` xattr, never by path: a renamed or hard-linked stub keeps its id.
//!
//! Invariant: a row in state `Archived` or `Released` has its whole payload held; a row
//! in state `Archiving` may hold part of it (the archive was interrupted) and is rolled
//! back by `hsm_forget`, which drops the row and its holds in one transaction.

use crate::error::Result;
use crate::types::BlockRef;

/// The holder kind of HSM payloads.
pub const HSM_HOLDER: &str = "hsm";

/// The holder key of catalog id `id`.
pub fn hsm_holder_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Where an archived file is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HsmState {
    /// The payload is being stored; the file is whole and untouched.
    Archiving,
    /// The payload is stored; the file is still whole on the native disk.
    Archived,
    /// The file is a stub: its blocks are holes except those in `resident`, which a
    /// recall wrote back.
    Released,
}

impl HsmState {
    pub fn code(self) -> i64 {
        match self {
            HsmState::Archiving => 0,
            HsmState::Archived => 1,
            HsmState::Released => 2,
        }
    }
    pub fn from_code(c: i64) -> Option<HsmState> {
        Some(match c {
            0 => HsmState::Archiving,
            1 => HsmState::Archived,
            2 => HsmState::Released,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            HsmState::Archiving => "archiving",
            HsmState::Archived => "archived",
            HsmState::Released => "released",
        }
    }
}

/// One catalog row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HsmFile {
    /// The catalog id (assigned by `hsm_new`).
    pub id: u64,
    /// The managed directory (`hsm_add_dir`).
    pub dir: u64,
    /// The last path the file was seen at, relative to its managed directory.
    pub path: Vec<u8>,
    /// A file handle (`name_to_handle_at`) that finds the inode after a rename.
    pub handle: Vec<u8>,
    pub state: HsmState,
    /// Never released while set.
    pub pinned: bool,
    pub size: u64,
    pub mtime_ns: i64,
    /// The ctime after fvfs set its xattr: any later change moves it.
    pub ctime_ns: i64,
    /// BLAKE3 of the whole content.
    pub hash: [u8; 32],
    /// The payload's blocks, in file order.
    pub blocks: Vec<BlockRef>,
    /// In state `Released`: bit i set = block i was recalled into the file.
    pub resident: Vec<u8>,
    pub archived_at: i64,
    pub last_recall: Option<i64>,
}

/// A directory under HSM management.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HsmDir {
    pub id: u64,
    pub path: String,
    pub added: i64,
}

/// A request to the HSM daemon (`fvfsd hsm archive PATH`, the janitor): a durable queue
/// keyed by due time, so requests survive a restart of either side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HsmRequest {
    pub id: u64,
    /// `archive`, `release`, `recall`, `pin` or `unpin`.
    pub op: String,
    /// Absolute path.
    pub path: Vec<u8>,
    pub due: i64,
    /// When it was carried out (None while pending).
    pub done: Option<i64>,
    pub ok: bool,
    /// What happened, for the requester.
    pub message: String,
}

pub trait HsmStore {
    /// Puts `path` (absolute, canonical) under management; returns its id (the existing
    /// one when it already is).
    fn hsm_add_dir(&self, path: &str, now: i64) -> Result<u64>;
    /// The managed directories.
    fn hsm_dirs(&self) -> Result<Vec<HsmDir>>;
    /// Inserts a row (its `id` is ignored) and returns the new id.
    fn hsm_new(&self, file: &HsmFile) -> Result<u64>;
    /// Replaces row `file.id`; `NotFound` when there is none.
    fn hsm_put(&self, file: &HsmFile) -> Result<()>;
    fn hsm_get(&self, id: u64) -> Result<Option<HsmFile>>;
    /// Rows in `state` (every row with None), by id.
    fn hsm_list(&self, state: Option<HsmState>) -> Result<Vec<HsmFile>>;
    /// Drops row `id` and its payload's holds in one transaction (blocks nothing else
    /// holds become garbage after the GC grace). Returns whether a row existed.
    fn hsm_forget(&self, id: u64) -> Result<bool>;
    /// Queues a request due at `due`; returns its id.
    fn hsm_request(&self, op: &str, path: &[u8], due: i64) -> Result<u64>;
    /// Pending requests due by `now`, oldest first.
    fn hsm_requests_due(&self, now: i64, limit: usize) -> Result<Vec<HsmRequest>>;
    /// Records the outcome of request `id`.
    fn hsm_request_done(&self, id: u64, ok: bool, message: &str, now: i64) -> Result<()>;
    fn hsm_request_get(&self, id: u64) -> Result<Option<HsmRequest>>;
    /// Deletes requests carried out before `before`; returns how many.
    fn hsm_requests_prune(&self, before: i64) -> Result<u64>;
}
