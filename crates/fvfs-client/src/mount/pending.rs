//! Uploads the daemon could not take, and their retries.
//!
//! Invariants: a closed file's content is either on the daemon or in the spool (durable on
//! local disk) before `close` returns success. When an upload at flush or release fails
//! because the daemon is unreachable or failing (connection errors, 5xx), the content is
//! saved in the spool and the inode's shared state (its local copy) is kept after the last
//! close, so reads and later writes through this mount see it; the uploads worker retries
//! it until the daemon takes it, then drops the state and the spool entry. The uploads
//! worker is a `fvfs_worker::Worker` ([`UploadsWorker`]): a pass every 2 s while nothing is
//! left, and the one backoff policy of `fvfs_worker` (100 ms doubling, up to 5 min) while
//! a pass leaves some; it stops at unmount through the runner's cancellation token, after
//! the upload it is making (what it leaves stays in the spool).
//! Entries left by an earlier run (the client was killed or unmounted while the daemon was
//! away) are uploaded by the next mount of the same cache directory, before it is served,
//! and retried after. An upload the daemon refuses for good (a 4xx: revoked token, parent
//! gone...) is reported with the spool file that holds the content and not retried in
//! this run.

use crate::client::ClientError;
use crate::mount::errno::errno_of;
use crate::mount::fs::ClientFs;
use crate::mount::handles::OpenFile;
use crate::mount::io::{hash_file, now_ns};
use crate::mount::spool::{SpoolEntry, SpoolMeta};
use futures::future::BoxFuture;
use fvfs_fuse::Errno;
use fvfs_types::api::{CreateRequest, ErrorCode};
use fvfs_worker::{Worker, WorkerState};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A failed upload: the errno to report, whether a later try can succeed, and why (logged
/// by whoever handles it: the spool at the first failure of a version, the worker at debug
/// level on retries).
#[derive(Debug)]
pub(super) struct UploadError {
    pub errno: Errno,
    pub retry: bool,
    pub msg: String,
}

impl UploadError {
    pub(super) fn io(op: &str, e: &std::io::Error) -> UploadError {
        UploadError {
            errno: crate::mount::errno::io_errno(op, e),
            retry: false,
            msg: format!("{op}: {e}"),
        }
    }

    pub(super) fn client(e: &ClientError) -> UploadError {
        UploadError {
            errno: errno_of(e),
            retry: retryable(e),
            msg: e.to_string(),
        }
    }
}

/// Whether the daemon may take the same request later: it was not reached, or failed.
pub(super) fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Connect { .. } | ClientError::Other(_) => true,
        ClientError::Api { code, .. } => {
            matches!(code, ErrorCode::Unavailable | ErrorCode::Internal)
        }
    }
}

/// Pause between passes of the uploads worker while they leave nothing to retry (a pass
/// that does waits the backoff of `fvfs_worker`).
pub(super) const RETRY_PAUSE: Duration = Duration::from_secs(2);

impl ClientFs {
    /// Uploads the inode's dirty copy; on failure saves it in the spool first. `Ok` means
    /// the daemon has it (or nobody can see it any more: the file was unlinked).
    pub(super) fn sync_copy(&self, ino: u64, st: &mut OpenFile) -> Result<(), UploadError> {
        match self.upload(ino, st) {
            Ok(()) => {
                self.unspool(ino, st);
                Ok(())
            }
            Err(e) => {
                self.spool_copy(ino, st, &e);
                Err(e)
            }
        }
    }

    /// Saves the copy in the spool without trying the daemon (it just failed for another
    /// file); returns the error that stands for the upload not made.
    pub(super) fn spool_only(&self, ino: u64, st: &mut OpenFile) -> UploadError {
        let e = UploadError {
            errno: Errno::EIO,
            retry: true,
            msg: "fvfsd did not answer for another file: not tried".into(),
        };
        self.spool_copy(ino, st, &e);
        e
    }

    /// Whether the current version of the copy is already saved in the spool.
    pub(super) fn spooled_current(st: &OpenFile) -> bool {
        st.spooled
            .as_ref()
            .is_some_and(|(v, _)| *v == st.changed_ns)
    }

    /// Saves the copy in the spool (once per version and path). Returns whether it is
    /// there.
    fn spool_copy(&self, ino: u64, st: &mut OpenFile, why: &UploadError) -> bool {
        let path = self.inodes.lock().path(ino);
        let (Some(path), Some(t)) = (path, &st.temp) else {
            return false;
        };
        if Self::spooled_current(st) && st.spooled.as_ref().is_some_and(|(_, p)| *p == path) {
            return true;
        }
        let saved = t
            .metadata()
            .and_then(|m| Ok((m.len(), hash_file(t, m.len())?)))
            .and_then(|(len, blake3)| {
                let a = self.attrs.lock().get(&ino).copied();
                let meta = SpoolMeta {
                    path: path.clone(),
                    mode: a.map(|a| a.perm),
                    uid: a.map(|a| a.uid),
                    gid: a.map(|a| a.gid),
                    atime_ns: st.atime_ns,
                    mtime_ns: st.mtime_ns,
                    len,
                    blake3,
                    spooled_ns: now_ns(),
                };
                self.spool.save(&self.spool.key(ino), t, &meta)
            });
        match saved {
            Ok(file) => {
                st.spooled = Some((st.changed_ns, path.clone()));
                if why.retry {
                    tracing::warn!(path, spool = %file.display(), error = why.msg, "fvfsd cannot take the upload now: the content is kept in the spool and uploaded when it answers");
                } else {
                    tracing::error!(path, spool = %file.display(), error = why.msg, "fvfsd refused the upload: the content is kept in the spool file");
                }
                true
            }
            Err(e) => {
                tracing::error!(path, spool = %self.spool.dir().display(), error = %e, "cannot save a failed upload in the spool");
                false
            }
        }
    }

    /// Forgets the spool entry of a copy the daemon now has.
    fn unspool(&self, ino: u64, st: &mut OpenFile) {
        if st.spooled.take().is_some() {
            if let Err(e) = self.spool.remove(&self.spool.key(ino)) {
                tracing::warn!(ino, error = %e, "cannot remove an uploaded entry from the spool");
            }
        }
    }

    /// One pass of the uploads worker: the kept copies of closed files, then entries of an
    /// earlier run. The pass stops trying at the first failure that may pass (the daemon
    /// is away: one timeout per pass, not one per file), and before the next upload once
    /// `stop` is cancelled. `Err` says why something is left to retry.
    pub(super) fn retry_pending(&self, stop: &CancellationToken) -> Result<(), String> {
        let mut left: Option<String> = None;
        let mut away = false;
        for (ino, state) in self.handles.idle() {
            let done = {
                let Some(mut st) = state.try_lock() else {
                    left.get_or_insert_with(|| format!("inode {ino} is in use: tried next pass"));
                    continue;
                };
                if !st.dirty {
                    true
                } else if away || stop.is_cancelled() {
                    left.get_or_insert_with(|| "the mount is stopping".into());
                    false
                } else {
                    match self.sync_copy(ino, &mut st) {
                        Ok(()) => {
                            tracing::info!(ino, "pending upload reached fvfsd");
                            true
                        }
                        Err(e) if e.retry => {
                            tracing::debug!(
                                ino,
                                error = e.msg,
                                "pending upload: fvfsd still cannot take it"
                            );
                            left.get_or_insert(e.msg);
                            away = true;
                            false
                        }
                        Err(_) => {
                            // Refused for good: the spool keeps the content for the user.
                            st.dirty = false;
                            true
                        }
                    }
                }
            };
            if done && self.handles.drop_if_done(ino) {
                self.inodes.lock().reap(ino);
            }
        }
        if self.earlier.load(Ordering::Relaxed) && !away {
            if let Err(e) = self.replay_spool(stop) {
                left.get_or_insert(e);
            }
        }
        left.map_or(Ok(()), Err)
    }

    /// Uploads the spool entries of earlier runs, until `stop` is cancelled. `Err` says why
    /// some are left to retry.
    pub(super) fn replay_spool(&self, stop: &CancellationToken) -> Result<(), String> {
        let entries = match self.spool.list_orphans() {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(spool = %self.spool.dir().display(), error = %e, "cannot read the spool");
                return Err(format!("cannot read the spool: {e}"));
            }
        };
        let mut left = None;
        for e in &entries {
            if self.gave_up.lock().contains(&e.key) {
                continue;
            }
            if stop.is_cancelled() {
                left = Some("the mount is stopping".into());
                break;
            }
            match self.upload_spooled(e) {
                Ok(()) => {
                    tracing::info!(
                        path = e.meta.path,
                        "upload from an earlier run reached fvfsd"
                    );
                    if let Err(err) = self.spool.remove(&e.key) {
                        tracing::warn!(key = e.key, error = %err, "cannot remove an uploaded entry from the spool");
                    }
                }
                Err(err) if err.retry => {
                    tracing::debug!(
                        path = e.meta.path,
                        error = err.msg,
                        "upload from an earlier run: fvfsd cannot take it yet"
                    );
                    left = Some(err.msg);
                    break;
                }
                Err(err) => {
                    tracing::error!(path = e.meta.path, spool = %e.data.display(), error = err.msg, "an upload from an earlier run cannot be made: its content stays in the spool file");
                    self.gave_up.lock().insert(e.key.clone());
                }
            }
        }
        self.earlier.store(left.is_some(), Ordering::Relaxed);
        left.map_or(Ok(()), Err)
    }

    fn upload_spooled(&self, e: &SpoolEntry) -> Result<(), UploadError> {
        let f = std::fs::File::open(&e.data).map_err(|err| UploadError::io("spool", &err))?;
        let len = f
            .metadata()
            .map_err(|err| UploadError::io("spool", &err))?
            .len();
        let hash = hash_file(&f, len).map_err(|err| UploadError::io("spool", &err))?;
        if len != e.meta.len || hash != e.meta.blake3 {
            tracing::error!(spool = %e.data.display(), "spool entry does not match its recorded length and hash");
            return Err(UploadError {
                errno: Errno::EIO,
                retry: false,
                msg: "the spooled data does not match its length and hash".into(),
            });
        }
        let opts = self.owned(CreateRequest {
            mode: e.meta.mode,
            uid: e.meta.uid,
            gid: e.meta.gid,
            ..Default::default()
        });
        self.put_local(&e.meta.path, &f, len, &hash, &opts)?;
        self.set_times(&e.meta.path, e.meta.atime_ns, e.meta.mtime_ns);
        Ok(())
    }
}

/// The uploads worker: retries pending uploads (`retry_pending`) until the mount ends.
pub(super) struct UploadsWorker {
    fs: Arc<ClientFs>,
    /// The runner's token: a pass in progress ends before its next upload once cancelled.
    stop: CancellationToken,
    /// The first pause is taken: the mount has just replayed the spool before serving.
    paused: bool,
}

impl UploadsWorker {
    pub(super) fn new(fs: Arc<ClientFs>, stop: CancellationToken) -> UploadsWorker {
        UploadsWorker {
            fs,
            stop,
            paused: false,
        }
    }
}

impl Worker for UploadsWorker {
    type Error = String;
    fn name(&self) -> String {
        "uploads".into()
    }
    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>> {
        Box::pin(async move {
            if !std::mem::replace(&mut self.paused, true) {
                return Ok(WorkerState::Idle);
            }
            // A pass makes blocking calls (it waits on the runtime for each upload): it
            // runs in place (the mount's runtime is multi-threaded), so the runner's
            // bounded shutdown waits for it to end.
            tokio::task::block_in_place(|| self.fs.retry_pending(&self.stop))?;
            Ok(WorkerState::Idle)
        })
    }
    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(RETRY_PAUSE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreached_or_failing_daemons_are_retried() {
        let api = |code| ClientError::Api {
            status: 0,
            code,
            message: String::new(),
        };
        assert!(retryable(&ClientError::Connect {
            url: "u".into(),
            msg: "refused".into()
        }));
        assert!(retryable(&api(ErrorCode::Unavailable)));
        assert!(retryable(&api(ErrorCode::Internal)));
        assert!(!retryable(&api(ErrorCode::Forbidden)));
        assert!(!retryable(&api(ErrorCode::NotFound)));
        assert!(!retryable(&api(ErrorCode::NoSpace)));
    }
}
