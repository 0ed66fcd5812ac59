//! The engine's background jobs use the one shape of background work of `fvfs-worker`
//! (shared with the LAN client): re-exported here so `fvfs_vfs::worker::*` keeps naming
//! it. Engine workers return `VfsError` (`type Error = VfsError`).

pub use fvfs_worker::{
    backoff, Worker, WorkerState, WorkerStatus, Workers, BACKOFF_MAX, BACKOFF_MIN,
};
