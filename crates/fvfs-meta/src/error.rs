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
    #[error("metadata dump: {0}")]
    Dump(String),
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    /// A database failure. A stored value that does not convert (an unknown kind code, a
    /// block id of the wrong length…) is [`MetaError::Corrupt`] instead, never a default.
    #[error("metadata database error: {0}")]
    Db(DbError),
    /// The session's row is gone: a reaper on another host ended it (no heartbeat for
    /// longer than the session timeout).
    #[error("session {0} was ended by another host (no heartbeat within the session timeout)")]
    SessionGone(u64),
    /// Log shipping lost its position (the next generation starts with a new base).
    #[error("metadata log shipping lost its position: {0}")]
    LogGap(String),
    #[error("metadata I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// A failure of the database engine itself.
#[derive(Debug, Error)]
pub enum DbError {
    #[error("{0}")]
    Sqlite(rusqlite::Error),
    /// A PostgreSQL error: its SQLSTATE code and message (never the connection string).
    #[error("{message} (SQLSTATE {code})")]
    Postgres { code: String, message: String },
    /// The PostgreSQL server cannot be reached or the connection broke.
    #[error("PostgreSQL connection: {0}")]
    Connection(String),
    #[error("the query returned no row")]
    NoRow,
}

impl From<DbError> for MetaError {
    fn from(e: DbError) -> MetaError {
        MetaError::Db(e)
    }
}

impl From<rusqlite::Error> for MetaError {
    fn from(e: rusqlite::Error) -> MetaError {
        match e {
            rusqlite::Error::FromSqlConversionFailure(col, _, why) => {
                MetaError::Corrupt(format!("column {col}: {why}"))
            }
            rusqlite::Error::InvalidColumnType(col, name, ty) => {
                MetaError::Corrupt(format!("column {col} ({name}) holds a {ty}"))
            }
            rusqlite::Error::QueryReturnedNoRows => MetaError::Db(DbError::NoRow),
            e => MetaError::Db(DbError::Sqlite(e)),
        }
    }
}

/// A stored value that is not one of the values fvfs writes (`what` names the column).
#[derive(Debug, Error)]
#[error("{what} {value} is not one fvfs writes")]
pub struct BadValue {
    pub what: &'static str,
    pub value: String,
}

/// A stored value that is not one fvfs writes, in column `col`: [`MetaError::Corrupt`].
pub(crate) fn bad_value(col: usize, what: &'static str, value: impl ToString) -> MetaError {
    MetaError::Corrupt(format!(
        "column {col}: {}",
        BadValue {
            what,
            value: value.to_string(),
        }
    ))
}

impl MetaError {
    /// Whether the metadata's disk is full (SQLITE_FULL or ENOSPC).
    pub fn is_no_space(&self) -> bool {
        match self {
            MetaError::Db(DbError::Sqlite(rusqlite::Error::SqliteFailure(f, _))) => {
                f.code == rusqlite::ErrorCode::DiskFull
            }
            // disk_full, out_of_memory's neighbour in class 53 (insufficient resources).
            MetaError::Db(DbError::Postgres { code, .. }) => code == "53100",
            MetaError::Io { source, .. } => source.raw_os_error() == Some(libc::ENOSPC),
            _ => false,
        }
    }
}
