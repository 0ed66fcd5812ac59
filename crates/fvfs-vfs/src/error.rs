//! The error type of the vfs layer and THE table that maps every error of fvfs's engine to
//! a code of the error vocabulary (`VfsError::code`, fvfs-types `ErrorCode`), from which
//! the errno of a POSIX face and the API's HTTP status are derived. Faces use this table
//! and no other.

use fvfs_chunk::ChunkError;
use fvfs_meta::MetaError;
use fvfs_types::error::ErrorCode;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum VfsError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    #[error("bad file handle")]
    BadHandle,
    #[error("operation not supported")]
    NotSupported,
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    #[error("file too large")]
    TooBig,
    #[error("name too long")]
    NameTooLong,
    #[error("internal error: {0}")]
    Internal(String),
    /// EACCES: the caller lacks a permission the mode bits (or ACL) grant (access.rs).
    #[error("permission denied: {0}")]
    PermissionDenied(&'static str),
    /// EPERM: only the owner or root may do this (access.rs).
    #[error("operation not permitted: {0}")]
    NotPermitted(&'static str),
    /// A file lock another owner holds (locks.rs).
    #[error("the file is locked by another owner")]
    Locked,
    /// A wait for a file lock ended: the waiting file was closed.
    #[error("the wait for a file lock was interrupted")]
    Interrupted,
    #[error("{0} bytes written earlier are still waiting to be stored: no more are buffered until they are")]
    Backlog(u64),
}

pub type Result<T, E = VfsError> = std::result::Result<T, E>;

impl VfsError {
    /// THE table from engine errors to the error vocabulary; the errno of a POSIX face and
    /// the API's status both derive from the code ([`ErrorCode::errno`],
    /// [`ErrorCode::http_status`]).
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            VfsError::Meta(m) => match m {
                MetaError::NotFound => C::NotFound,
                MetaError::Exists => C::Exists,
                MetaError::NotDir => C::NotDir,
                MetaError::IsDir => C::IsDir,
                MetaError::NotEmpty => C::NotEmpty,
                MetaError::Invalid(_) => C::InvalidArgument,
                MetaError::NameTooLong => C::NameTooLong,
                MetaError::TooManyLinks => C::TooManyLinks,
                MetaError::NoAttr => C::NoAttribute,
                MetaError::AttrTooBig => C::AttributeTooBig,
                MetaError::NotPermitted => C::NotPermitted,
                m if m.is_no_space() => C::NoSpace,
                MetaError::MissingBlock(_)
                | MetaError::NotFormatted(_)
                | MetaError::AlreadyFormatted(_)
                | MetaError::TooNew { .. }
                | MetaError::BadUrl { .. }
                | MetaError::Corrupt(_)
                | MetaError::LogGap(_)
                | MetaError::SessionGone(_)
                | MetaError::Dump(_)
                | MetaError::Db(_)
                | MetaError::Io { .. } => C::Internal,
            },
            VfsError::Chunk(c) if c.is_no_space() => C::NoSpace,
            VfsError::Chunk(c) if c.is_unreachable() => C::Unavailable,
            VfsError::Chunk(_) => C::Internal,
            VfsError::BadHandle => C::BadHandle,
            VfsError::NotSupported => C::NotSupported,
            VfsError::Invalid(_) => C::InvalidArgument,
            VfsError::TooBig => C::FileTooBig,
            VfsError::NameTooLong => C::NameTooLong,
            VfsError::Internal(_) => C::Internal,
            VfsError::Locked => C::Locked,
            VfsError::Interrupted => C::Interrupted,
            VfsError::PermissionDenied(_) => C::PermissionDenied,
            VfsError::NotPermitted(_) => C::NotPermitted,
            VfsError::Backlog(_) => C::NoSpace,
        }
    }

    /// The errno a POSIX face returns for this error (its code's).
    pub fn errno(&self) -> i32 {
        self.code().errno()
    }

    /// True for errors that are the caller's doing (ENOENT, EEXIST, …): faces log these at
    /// debug level only; everything else is logged as an error where it is handled.
    pub fn is_expected(&self) -> bool {
        !matches!(self.errno(), libc::EIO | libc::ENOSPC)
    }
}
