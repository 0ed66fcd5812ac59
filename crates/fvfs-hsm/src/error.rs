//! `HsmError`, the errors of the HSM face. Each names the file and the step, because the
//! person reading it manages a directory of thousands of files.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, HsmError>;

#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not under a managed directory (fvfsd hsm add DIR)", .0.display())]
    NotManaged(PathBuf),
    #[error("{} is not a regular file", .0.display())]
    NotRegular(PathBuf),
    #[error("{} changed while it was being {}; left as it is", .0.display(), .1)]
    Changed(PathBuf, &'static str),
    #[error("{} is open elsewhere (no write lease); not released", .0.display())]
    Busy(PathBuf),
    #[error("{} is not archived (fvfsd hsm archive first)", .0.display())]
    NotArchived(PathBuf),
    #[error("no HSM listener runs in this process: a released file would read as holes (run `fvfsd hsm run` or `fvfsd serve` with [hsm])")]
    NoListener,
    #[error("{} is pinned: never released", .0.display())]
    Pinned(PathBuf),
    #[error("the payload of {} is not on the durable tier yet (verified copy missing)", .0.display())]
    NotDurable(PathBuf),
    #[error("{} carries a bad HSM marker: {}", .0.display(), .1)]
    BadMarker(PathBuf, String),
    #[error("catalog row {0} is missing: the file's marker names an unknown archive")]
    UnknownId(u64),
    #[error("the payload of {} does not match its hash after recall", .0.display())]
    HashMismatch(PathBuf),
    #[error("unknown HSM operation {0:?} (archive, release, recall, pin, unpin)")]
    BadRequest(String),
    #[error("HSM listener: {0}")]
    Listener(String),
    #[error(transparent)]
    Engine(#[from] fvfs_vfs::VfsError),
    #[error(transparent)]
    Meta(#[from] fvfs_meta::MetaError),
}

impl HsmError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HsmError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
