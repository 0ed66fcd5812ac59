//! The read-only origins a music library is read from: a local or NFS directory, an
//! S3 bucket, an SFTP server, a WebDAV share (all through OpenDAL).
//!
//! - `spec`: [`OriginSpec`], what an origin is, from a config table or a line;
//! - `handle`: [`Origin`], list, stat and ranged reads on one origin;
//! - `error`: [`OriginError`], the one error type of this layer.
//!
//! Invariant: an origin is never modified. No type here has a write, create, rename
//! or delete method, and operators are built so that opening one writes nothing
//! (see `handle`).

mod error;
mod handle;
mod spec;

pub use error::{BoxError, OriginError};
pub use handle::{Origin, OriginEntry, OriginOptions};
pub use spec::{
    parse_duration, KnownHosts, OriginLocation, OriginSpec, S3Keys, Secret, DEFAULT_CHECK_INTERVAL,
    DEFAULT_PRIORITY, DEFAULT_REGION,
};
