//! Errors of the chunk layer.
//!
//! Invariant: [`ChunkError`] is `Clone` (sources are behind `Arc`) so that one failed
//! tier read can be reported to every caller waiting on it.

use std::sync::Arc;

use fvfs_tier::TierError;
use fvfs_types::BlockId;
use thiserror::Error;

/// Everything that can go wrong storing or fetching a block.
#[derive(Clone, Debug, Error)]
pub enum ChunkError {
    /// The bytes read do not hash to the block id (or do not decompress): the copy is
    /// corrupt. Never returned together with data.
    #[error("block {id} is corrupt: its content does not match its id")]
    Corrupt { id: BlockId },
    /// A block larger than [`crate::MAX_BLOCK_SIZE`] was given to store.
    #[error("block of {size} bytes exceeds the {max} byte limit")]
    TooLarge { size: usize, max: usize },
    /// The storage tier failed (unreachable, object missing, denied, I/O).
    #[error(transparent)]
    Tier(Arc<TierError>),
    /// A local I/O error (opening the disk cache).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A background task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(String),
}

impl From<TierError> for ChunkError {
    fn from(e: TierError) -> Self {
        ChunkError::Tier(Arc::new(e))
    }
}

impl ChunkError {
    /// Whether the block is absent from the tier.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ChunkError::Tier(e) if e.is_not_found())
    }
    /// Whether the tier did not answer.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ChunkError::Tier(e) if e.is_unreachable())
    }
    /// Whether the bytes did not match the block id.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, ChunkError::Corrupt { .. })
    }
    /// Whether a local disk is full (the tier's own ENOSPC is a tier error).
    pub fn is_no_space(&self) -> bool {
        matches!(self, ChunkError::Io { source, .. } if source.raw_os_error() == Some(28))
    }
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ChunkError::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }
}
