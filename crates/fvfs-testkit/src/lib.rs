//! Test helpers that start real things, each behind a feature so a crate pays only for
//! what it uses:
//! - `s3` (default): [`S3Server`], an in-process S3 server over a directory (`s3.rs`);
//! - `model`: [`model`], the POSIX reference model every filesystem face is checked
//!   against (engine, LAN client, FUSE mount), over a small system-under-test trait.
//!
//! It is meant for tests and CI scripts only; it is never linked into fvfs itself.

#[cfg(feature = "model")]
pub mod model;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "s3")]
pub use s3::*;
