//! `fvfsc mount`: a read-write FUSE mount of a remote fvfsd through the `/v1` API, reading
//! file contents as verified blocks through the on-disk [`BlockCache`].
//!
//! Invariants: the mount is served until it is unmounted (`umount`, `fusermount3 -u`) or
//! the process gets SIGINT/SIGTERM, which unmount it. Dirty files are uploaded whole at
//! close and fsync; what the daemon cannot take then is kept in the spool
//! (`<cache>/pending/`) and retried by the uploads worker (a `fvfs_worker::Worker`, stopped
//! with a bounded wait at unmount), and by the next mount if this one ends first
//! (`pending.rs`). Nothing is mounted unless the daemon answered `status`
//! and `stat /` first. Semantics: `fs.rs` (caching), `meta.rs` (namespace), `io.rs`
//! (contents) and docs/SEMANTICS.md ("The client mount"): no xattrs and no fallocate
//! (EOPNOTSUPP), no RENAME_EXCHANGE/WHITEOUT (EINVAL); locks are local to this host; O_EXCL
//! is checked by a `stat` before the `PUT`, not atomically against other clients.

mod errno;
mod fs;
mod handles;
mod inodes;
mod io;
mod meta;
mod pending;
mod spool;

pub use errno::errno_of;
pub use fs::ClientFs;
pub use spool::PendingUpload;

use crate::cache::{self, BlockCache, CacheError};
use crate::client::{Client, ClientError};
use fvfs_worker::Workers;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What `fvfsc mount` was asked.
#[derive(Clone, Debug)]
pub struct MountOptions {
    pub mountpoint: PathBuf,
    /// The block cache's directory (default: [`cache::default_dir`]).
    pub cache_dir: Option<PathBuf>,
    /// The block cache's byte limit (default: [`cache::DEFAULT_LIMIT`]).
    pub cache_size: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// Missing, not a directory, already mounted or not empty; or no /dev/fuse.
    #[error(transparent)]
    Mountpoint(#[from] fvfs_fuse::MountpointError),
    #[error("fvfsd is unreachable: {0}")]
    Unreachable(ClientError),
    #[error("fvfsd answered but its root cannot be read: {0}")]
    Root(ClientError),
    #[error("no cache directory: set HOME or XDG_CACHE_HOME, or pass a cache directory")]
    NoCacheDir,
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("cannot use {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot mount at {path}: {error}")]
    Mount {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the FUSE session ended with an error: {0}")]
    Session(std::io::Error),
}

/// The uploads a mount with the cache directory `cache_dir` (default:
/// [`cache::default_dir`]) has not made yet: the daemon could not take them at close.
pub fn pending_uploads(cache_dir: Option<&Path>) -> Result<Vec<PendingUpload>, MountError> {
    let dir = match cache_dir {
        Some(d) => d.to_path_buf(),
        None => cache::default_dir().ok_or(MountError::NoCacheDir)?,
    }
    .join(SPOOL_DIR);
    spool::scan(&dir).map_err(|error| MountError::Io { path: dir, error })
}

/// The spool's directory under the cache directory.
const SPOOL_DIR: &str = "pending";

/// How long an unmount waits for the uploads worker to stop (an upload it is making).
const UPLOADS_STOP: Duration = Duration::from_secs(10);

/// The mountpoint, made absolute, if it is an existing empty directory that is not a
/// mount point yet (fvfs-fuse's checks, shared by every mount).
pub fn check_mountpoint(p: &Path) -> Result<PathBuf, MountError> {
    Ok(fvfs_fuse::check_mountpoint(p, false)?)
}

pub use fvfs_fuse::is_mounted;

/// How the client mount is mounted: `fvfsc` in the mount table, 4 request threads,
/// `nosuid,nodev` (files come from another host).
fn mount_config() -> fvfs_fuse::MountConfig {
    fvfs_fuse::MountConfig {
        read_only: false,
        fsname: "fvfsc".into(),
        threads: 4,
        flags: fvfs_fuse::MountFlags::default(),
    }
}

fn cache_dir(opts: &MountOptions) -> Result<PathBuf, MountError> {
    opts.cache_dir
        .clone()
        .or_else(cache::default_dir)
        .ok_or(MountError::NoCacheDir)
}

/// The mount's face without the kernel: asks the daemon `client` talks to for its status
/// and root, opens the block cache, the temporary directory and the spool under
/// `opts.cache_dir`. `fvfsc mount` serves it through FUSE; tests call it directly.
pub fn open_fs(
    client: Client,
    rt: tokio::runtime::Handle,
    opts: &MountOptions,
) -> Result<ClientFs, MountError> {
    let status = rt
        .block_on(client.status())
        .map_err(MountError::Unreachable)?;
    // Only an admin token may name owners; a daemon that does not say trusts them all.
    let name_owner = status.caller.as_ref().is_none_or(|c| c.admin);
    if !name_owner {
        tracing::info!(
            "the token is not an admin token: new files belong to its identity on the daemon"
        );
    }
    let root = rt.block_on(client.stat("")).map_err(MountError::Root)?;
    let dir = cache_dir(opts)?;
    let cache = BlockCache::open(&dir, opts.cache_size.unwrap_or(cache::DEFAULT_LIMIT))?;
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|error| MountError::Io {
        path: tmp.clone(),
        error,
    })?;
    let spool_dir = dir.join(SPOOL_DIR);
    let session = format!("{:x}p{}", io::now_ns(), std::process::id());
    let spool = spool::Spool::open(&spool_dir, &session).map_err(|error| MountError::Io {
        path: spool_dir.clone(),
        error,
    })?;
    let blocks = handles::Blocks::new(client.clone(), rt.clone(), cache);
    Ok(ClientFs::new(
        client, rt, &root, blocks, &tmp, spool, name_owner,
    ))
}

/// Mounts the daemon `client` talks to at `opts.mountpoint` and serves it until it is
/// unmounted or the process gets SIGINT/SIGTERM. Blocking: runs its own async runtime.
pub fn run(client: Client, opts: MountOptions) -> Result<(), MountError> {
    let mp = check_mountpoint(&opts.mountpoint)?;
    fvfs_fuse::check_dev_fuse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(MountError::Runtime)?;
    let fs = Arc::new(open_fs(client, rt.handle().clone(), &opts)?);
    let url = fs.client.endpoint().url.clone();
    let dir = cache_dir(&opts)?;
    let spool_dir = dir.join(SPOOL_DIR);
    // Content an earlier run could not upload goes first: the mount then shows it.
    if let Err(e) = fs.replay_spool(&CancellationToken::new()) {
        tracing::warn!(spool = %spool_dir.display(), error = e, "uploads from an earlier run are still pending: retried in the background");
    }
    let mut session = fvfs_fuse::session(fs.clone(), &mp, &mount_config()).map_err(|error| {
        MountError::Mount {
            path: mp.clone(),
            error,
        }
    })?;
    let workers = Workers::new();
    {
        let _rt = rt.enter();
        workers.spawn(pending::UploadsWorker::new(fs.clone(), workers.token()));
    }
    fvfs_fuse::unmount_on_signals(rt.handle(), &mut session);
    tracing::info!(mountpoint = %mp.display(), daemon = %url, cache = %dir.display(), "mounted");
    {
        // Never panics: a full log disk must not take the mount down.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "fvfsc: {url} mounted at {}",
            mp.display()
        );
    }
    let served = session.run();
    tracing::info!("unmounted");
    // The uploads worker stops at once, or after the upload it is making (bounded); what it
    // leaves stays in the spool for the next mount.
    if !rt.block_on(workers.shutdown(UPLOADS_STOP)) {
        tracing::warn!(spool = %spool_dir.display(), "an upload was still running at unmount: left to the next mount");
        rt.shutdown_timeout(Duration::from_secs(1));
    }
    served.map_err(MountError::Session)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fvfs_fuse::MountpointError as E;

    #[test]
    fn mountpoint_checks() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = |p: &Path| match check_mountpoint(p) {
            Err(MountError::Mountpoint(e)) => e,
            r => panic!("{r:?}"),
        };
        assert!(matches!(err(&missing), E::Missing(_)));
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(err(&file), E::NotADirectory(_)));
        assert!(matches!(err(dir.path()), E::NotEmpty(_)));
        let empty = dir.path().join("mnt");
        std::fs::create_dir(&empty).unwrap();
        assert!(check_mountpoint(&empty).is_ok());
    }
}
