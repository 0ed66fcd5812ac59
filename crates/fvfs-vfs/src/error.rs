//! The error type of the vfs layer and THE table that maps every error of fvfs's engine to
//! an errno (`VfsError::errno`). Faces use this table and no other.

use fvfs_chunk::ChunkError;
use fvfs_meta::MetaError;
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
    #[error("{0} bytes written earlier are still waiting to be stored: no more are buffered until they are")]
    Backlog(u64),
}

pub type Result<T, E = VfsError> = std::result::Result<T, E>;

impl VfsError {
    /// The errno a POSIX face returns for this error.
    pub fn errno(&self) -> i32 {
        use libc::*;
        match self {
            VfsError::Meta(m) => match m {
                MetaError::NotFound => ENOENT,
                MetaError::Exists => EEXIST,
                MetaError::NotDir => ENOTDIR,
                MetaError::IsDir => EISDIR,
                MetaError::NotEmpty => ENOTEMPTY,
                MetaError::Invalid(_) => EINVAL,
                MetaError::NameTooLong => ENAMETOOLONG,
                MetaError::TooManyLinks => EMLINK,
                MetaError::NoAttr => ENODATA,
                MetaError::AttrTooBig => E2BIG,
                MetaError::NotPermitted => EPERM,
                m if m.is_no_space() => ENOSPC,
                MetaError::MissingBlock(_)
                | MetaError::NotFormatted(_)
                | MetaError::AlreadyFormatted(_)
                | MetaError::TooNew { .. }
                | MetaError::BadUrl { .. }
                | MetaError::Corrupt(_)
                | MetaError::Db(_)
                | MetaError::Io { .. } => EIO,
            },
            VfsError::Chunk(c) => {
                if c.is_no_space() {
                    ENOSPC
                } else {
                    EIO
                }
            }
            VfsError::BadHandle => EBADF,
            VfsError::NotSupported => EOPNOTSUPP,
            VfsError::Invalid(_) => EINVAL,
            VfsError::TooBig => EFBIG,
            VfsError::NameTooLong => ENAMETOOLONG,
            VfsError::Internal(_) => EIO,
            VfsError::PermissionDenied(_) => EACCES,
            VfsError::NotPermitted(_) => EPERM,
            VfsError::Backlog(_) => ENOSPC,
        }
    }

    /// True for errors that are the caller's doing (ENOENT, EEXIST, …): faces log these at
    /// debug level only; everything else is logged as an error where it is handled.
    pub fn is_expected(&self) -> bool {
        !matches!(self.errno(), libc::EIO | libc::ENOSPC)
    }
}
