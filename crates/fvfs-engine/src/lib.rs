//! The engine library: the one way to open and run an fvfs filesystem. It opens the
//! metadata, the tiers and the block store (`open.rs`), creates one (`format.rs`), builds the [`Vfs`] over them,
//! runs the workers and registers the session (`running.rs`), and holds the engine's
//! administration that is not a POSIX operation: tier changes with their bit shifting
//! and backfill (`tiers.rs`), naming files from outside (`files.rs`), importing directory trees
//! (`import.rs`), metadata backup and restore (`restore.rs`), what other processes see of
//! metadata shipping (`shipping.rs`) and the default
//! locations (`paths.rs`), and the configuration file
//! (`config.rs`). The daemon, the API tests and every test harness build their
//! engine here; faces then use [`Vfs`] only.
//!
//! Invariants: the metadata store and the block store never leave this crate and the
//! vfs; an embedded filesystem is served by one process at a time ([`MountLock`]).

pub mod config;
pub mod dump;
mod error;
pub mod files;
mod format;
pub mod hsm;
pub mod import;
pub mod music;
pub mod music_control;
pub mod music_mount;
mod open;
pub mod paths;
pub mod restore;
mod running;
pub mod shipping;
pub mod startup;
pub mod tiers;

pub use error::{EngineError, Result};
pub use format::{format, format_unchecked, tiers_from_locations, FormatSpec};
pub use fvfs_tier::redact;
pub use fvfs_vfs::{TierPolicy, Vfs, VfsConfig};
pub use open::{
    check_location, check_tier, is_new, is_shared, read_settings, root_owner, Engine, EngineOpts,
    MountLock, DEFAULT_CACHE_SIZE, MEM_CACHE,
};
pub use running::{spawn_tiering, Running};
