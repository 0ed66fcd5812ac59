//! fvfs's one FUSE layer. A face (the engine mount, the LAN client mount, a read-only
//! view) implements [`FsOps`] with plain fvfs types; [`FuseAdapter`] serves any face to
//! the kernel through `fuser`, and `mount.rs` mounts it (mountpoint checks, mount
//! options, unmount on signals).
//!
//! Layout: `ops.rs` the trait and its types, `adapter.rs` the `fuser::Filesystem`
//! (conversions, TTLs, reply flags, init), `mount.rs` the session and the mountpoint.
//!
//! Invariants: this crate knows no storage, metadata store or HTTP client (it depends on
//! fuser, libc, tracing, tokio and fvfs-types only), so that every face can use it
//! without linking another face's dependencies; only this crate speaks `fuser`'s types.

pub mod adapter;
mod mount;
pub mod ops;

pub use adapter::{system_time, time_ns, FuseAdapter};
pub use mount::{
    check_dev_fuse, check_mountpoint, is_mounted, session, unmount_and_wait, unmount_on_signals,
    MountConfig, MountFlags, MountpointError,
};
pub use ops::{Errno, FsOps};
