//! The read-only origins a music library is read from: a local or NFS directory, an
//! S3 bucket, an SFTP server, a WebDAV share (all through OpenDAL).
//!
//! - `spec`: [`OriginSpec`], what an origin is, from a config table or a line;
//! - `handle`: [`Origin`], list, stat and ranged reads on one origin;
//! - `set`: [`OriginSet`], several origins, their health, and reads with retries and
//!   failover among the origins holding the same file (the rule is in `set`'s docs);
//! - `health`: [`OriginHealth`] and the periodic check ([`HealthCheck`]);
//! - `file`: blocking [`crate::source::RangeSource`]s over one origin or a set;
//! - `error`: [`OriginError`], the one error type of this layer.
//!
//! Invariant: an origin is never modified. No type here has a write, create, rename
//! or delete method, and operators are built so that opening one writes nothing
//! (see `handle`).

mod error;
mod file;
mod handle;
mod health;
mod set;
mod spec;

pub use error::{BoxError, OriginError};
pub use file::{FailoverFile, OriginFile};
pub use handle::{Origin, OriginEntry, OriginOptions};
pub use health::{HealthCheck, HealthState, OriginHealth};
pub use set::{OriginSet, RETRY_BACKOFF, UNHEALTHY_ATTEMPT_TIMEOUT};
pub use spec::{
    parse_duration, KnownHosts, OriginLocation, OriginSpec, S3Keys, Secret, DEFAULT_CHECK_INTERVAL,
    DEFAULT_PRIORITY, DEFAULT_REGION,
};
