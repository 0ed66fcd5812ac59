//! The engine library's errors: what failed while opening, running or administering a
//! filesystem, with the lower layer's error kept as the source.

use fvfs_chunk::ChunkError;
use fvfs_meta::MetaError;
use fvfs_tier::TierError;
use fvfs_vfs::VfsError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Vfs(#[from] VfsError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    #[error(transparent)]
    Hsm(#[from] fvfs_hsm::HsmError),
    #[error(transparent)]
    Music(#[from] fvfs_music::MusicError),
    #[error(transparent)]
    Tier(Box<TierError>),
    /// The metadata store of `url` could not be opened.
    #[error("cannot open the metadata at {url}: {source}")]
    OpenMeta { url: String, source: MetaError },
    /// A tier's location is malformed or its storage cannot be opened.
    #[error("tier {name:?} ({location}): {source}")]
    TierSpec {
        name: String,
        location: String,
        source: Box<TierError>,
    },
    /// A tier answered with an error to the reachability check.
    #[error("storage {tier} is not usable: {source}")]
    TierUnusable {
        tier: String,
        source: Box<TierError>,
    },
    /// A tier did not answer the reachability check in time.
    #[error("storage {0} did not answer within 30 s")]
    TierTimeout(String),
    /// An embedded filesystem is already served by another process.
    #[error("{0}")]
    Locked(String),
    /// A request the filesystem's state or settings do not allow (a bad tier change, a
    /// path outside the filesystem).
    #[error("{0}")]
    Invalid(String),
    /// The configuration file is unreadable or wrong (the message names the key).
    #[error("{0}")]
    Config(String),
    /// A local file or directory the engine needs (cache, spool, lock file).
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl From<TierError> for EngineError {
    fn from(e: TierError) -> EngineError {
        EngineError::Tier(Box::new(e))
    }
}

impl EngineError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
        let what = what.into();
        move |source| EngineError::Io { what, source }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
