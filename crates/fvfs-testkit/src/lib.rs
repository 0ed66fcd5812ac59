//! Test helpers that start real things, each behind a feature so a crate pays only for
//! what it uses (and [`pseudo_random`] test data, always):
//! - `s3` (default): [`S3Server`], an in-process S3 server over a directory (`s3.rs`);
//! - `model`: [`model`], the POSIX reference model every filesystem face is checked
//!   against (engine, LAN client, FUSE mount), over a small system-under-test trait;
//! - `ext4`: [`Ext4Image`], a loop-mounted ext4 image per test (the HSM face's tests);
//! - `audio`: [`audio`], real audio files (ffmpeg-encoded, lofty-tagged) and truncated
//!   copies (the music face's tests);
//! - `sftp`: [`SftpServer`], Debian's sshd on 127.0.0.1 with its own keys (root only);
//! - `webdav`: [`WebDavServer`], wsgidav on 127.0.0.1.
//!
//! It is meant for tests and CI scripts only; it is never linked into fvfs itself.

#[cfg(feature = "audio")]
pub mod audio;
mod data;
pub use data::pseudo_random;
#[cfg(feature = "ext4")]
mod ext4;
#[cfg(feature = "ext4")]
pub use ext4::Ext4Image;
#[cfg(feature = "model")]
pub mod model;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "s3")]
mod s3_get;
#[cfg(feature = "s3")]
pub use s3::*;
#[cfg(feature = "sftp")]
mod sftp;
#[cfg(feature = "sftp")]
pub use sftp::SftpServer;
#[cfg(feature = "webdav")]
mod webdav;
#[cfg(feature = "webdav")]
pub use webdav::WebDavServer;
