//! Errors of the metadata layer. POSIX-shaped outcomes (`NotFound`, `Exists`, …) are
//! variants of their own so that the one errno table in fvfs-vfs can map them; store
//! failures carry the underlying cause.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum MetaError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    #[error("name too long")]
    NameTooLong,
    #[error("too many links")]
    TooManyLinks,
    #[error("no such attribute")]
    NoAttr,
    #[error("attribute value too large")]
    AttrTooBig,
    #[error("operation not permitted")]
    NotPermitted,
    #[error("metadata references block {0} that has no row")]
    MissingBlock(fvfs_types::BlockId),
    #[error("the filesystem is not formatted (no settings in {0})")]
    NotFormatted(String),
    #[error("the filesystem at {0} is already formatted")]
    AlreadyFormatted(String),
    #[error(
        "metadata schema version {found} is newer than this fvfs build supports ({supported}); upgrade fvfs"
    )]
    TooNew { found: u32, supported: u32 },
    #[error("invalid metadata URL {url:?}: {why}")]
    BadUrl { url: String, why: String },
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    #[error("metadata database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("metadata I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

impl MetaError {
    /// Whether the metadata's disk is full (SQLITE_FULL or ENOSPC).
    pub fn is_no_space(&self) -> bool {
        match self {
            MetaError::Db(rusqlite::Error::SqliteFailure(f, _)) => {
                f.code == rusqlite::ErrorCode::DiskFull
            }
            MetaError::Io { source, .. } => source.raw_os_error() == Some(libc::ENOSPC),
            _ => false,
        }
    }
}
