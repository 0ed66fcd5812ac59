//! The control socket: [`bind`] it, [`serve_listener`] its clients until cancelled
//! ([`serve`] does both). Each connection is a task reading newline-delimited lines and
//! answering each through `rpc::handle_line`, in order.
//!
//! Invariants:
//! - the socket file never exists with a mode other than 0600: it is bound inside a
//!   fresh private directory (0700), chmodded there, then hard-linked to its path (which
//!   also never replaces a file that appeared meanwhile);
//! - a socket file nobody answers on (a killed mount's) is replaced; one a live process
//!   answers on is [`ControlError::SocketInUse`]; a file that is not a socket is an error;
//! - the socket file is removed when serving ends, if it is still ours (same inode);
//! - a line is at most [`MAX_LINE`] bytes: a longer one is answered `-32600` (id null)
//!   and the connection closed (after dropping what the client still sends, bounded,
//!   so that the close does not reset the answer away); a connection idle for [`IDLE_TIMEOUT`] is closed;
//! - at most [`MAX_CLIENTS`] connections are served at once; one more is answered
//!   `-32000` and closed;
//! - on cancel, accepting stops and the socket file goes at once; connections finish the
//!   request in hand (for up to [`DRAIN`]) and close.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdListener, UnixStream as StdStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::rpc::{error_line, handle_line};
use super::{ControlError, MusicControl};

/// The longest line (request or batch) read, without its newline.
pub const MAX_LINE: usize = 1 << 20;
/// Connections served at once.
pub const MAX_CLIENTS: usize = 128;
/// A connection that sends nothing (or reads nothing of an answer) this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long connections may finish their request in hand after cancel.
pub const DRAIN: Duration = Duration::from_secs(5);
/// What is read and dropped after a line over [`MAX_LINE`] before closing, at most.
const DISCARD_MAX: usize = 16 * MAX_LINE;
const DISCARD_TIME: Duration = Duration::from_secs(2);
/// Pauses after a failed accept (EMFILE…): the first, and the longest.
const ACCEPT_PAUSE_MIN: Duration = Duration::from_millis(10);
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);

/// Binds the control socket at `path` with mode 0600 (see the module invariants),
/// replacing a stale socket. Creates the parent directory (0700) if missing.
pub fn bind(path: &Path) -> Result<StdListener, ControlError> {
    let shown = path.display();
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(ControlError::io(
                format!("cannot bind {shown}"),
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "it exists and is not a socket",
                ),
            ));
        }
        match StdStream::connect(path) {
            Ok(_) => {
                return Err(ControlError::SocketInUse {
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %shown, "replacing a stale control socket");
                std::fs::remove_file(path)
                    .map_err(|e| ControlError::io(format!("cannot remove {shown}"), e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ControlError::io(
                    format!("cannot tell whether {shown} is live"),
                    e,
                ))
            }
        }
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&parent)
        .map_err(|e| ControlError::io(format!("cannot create {}", parent.display()), e))?;
    let private = parent.join(format!(".fvfs-ctl-{}", std::process::id()));
    if private.exists() {
        // Left by a crashed process that had our pid: ours to reuse.
        let _ = std::fs::remove_dir_all(&private);
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|e| ControlError::io(format!("cannot create {}", private.display()), e))?;
    let r = bind_inside(&private, path);
    if let Err(e) = std::fs::remove_dir_all(&private) {
        tracing::warn!(dir = %private.display(), error = %e, "cannot remove the bind directory");
    }
    r
}

fn bind_inside(private: &Path, path: &Path) -> Result<StdListener, ControlError> {
    let tmp = private.join("s");
    let l = StdListener::bind(&tmp)
        .map_err(|e| ControlError::io(format!("cannot bind {}", path.display()), e))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| ControlError::io(format!("cannot chmod {}", tmp.display()), e))?;
    match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(l),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(ControlError::SocketInUse {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(ControlError::io(
            format!("cannot link {}", path.display()),
            e,
        )),
    }
}

/// Removes the socket file at drop if it is still the one bound.
struct SocketFile {
    path: PathBuf,
    ino: Option<u64>,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| Some(m.ino()) == self.ino);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the control socket");
            }
        }
    }
}

/// [`bind`], then [`serve_listener`].
pub async fn serve(
    path: &Path,
    svc: Arc<dyn MusicControl>,
    cancel: CancellationToken,
) -> Result<(), ControlError> {
    let l = bind(path)?;
    serve_listener(l, path, svc, cancel).await
}

/// Serves the clients of a socket [`bind`] made at `path` until `cancel`; then removes
/// the socket file and lets the connections finish (bounded by [`DRAIN`]).
pub async fn serve_listener(
    listener: StdListener,
    path: &Path,
    svc: Arc<dyn MusicControl>,
    cancel: CancellationToken,
) -> Result<(), ControlError> {
    let file = SocketFile {
        path: path.to_path_buf(),
        ino: std::fs::symlink_metadata(path).ok().map(|m| m.ino()),
    };
    let listener = listener
        .set_nonblocking(true)
        .and_then(|()| UnixListener::from_std(listener))
        .map_err(|e| ControlError::io("cannot serve the control socket", e))?;
    tracing::info!(path = %path.display(), "control socket ready");
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    let mut tasks = JoinSet::new();
    let mut pause = ACCEPT_PAUSE_MIN;
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            r = listener.accept() => match r {
                Ok((s, _)) => {
                    pause = ACCEPT_PAUSE_MIN;
                    s
                }
                Err(e) => {
                    tracing::warn!(error = %e, ?pause, "control socket accept failed");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(ACCEPT_PAUSE_MAX);
                    continue;
                }
            },
        };
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                tasks.spawn(connection(stream, svc.clone(), cancel.clone(), permit));
            }
            Err(_) => {
                tracing::warn!(
                    max = MAX_CLIENTS,
                    "control socket: too many clients, refusing one"
                );
                let e = ControlError::Failed(format!(
                    "too many clients (at most {MAX_CLIENTS}); retry later"
                ));
                // A fresh socket's buffer takes this short line whole, or the client loses it.
                let _ = stream.try_write(format!("{}\n", error_line(&e)).as_bytes());
            }
        }
    }
    drop(listener);
    drop(file);
    let drained =
        tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "control connections still busy after the drain; dropping them"
        );
    }
    tracing::info!(path = %path.display(), "control socket closed");
    Ok(())
}

/// How a line read ended.
enum Line {
    /// A newline ended it (not included).
    Full,
    /// End of stream after some bytes without a newline.
    Last,
    /// End of stream before any byte.
    Eof,
    /// More than the limit before a newline.
    TooLong,
}

/// Reads one line into `out` (cleared by the caller), at most `max` bytes. Cancel safe
/// in the sense the caller needs: it drops the connection on cancel.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if out.is_empty() {
                Line::Eof
            } else {
                Line::Last
            });
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if out.len() + take > max {
            return Ok(Line::TooLong);
        }
        out.extend_from_slice(&buf[..take]);
        r.consume(if done { take + 1 } else { take });
        if done {
            return Ok(Line::Full);
        }
    }
}

/// One client: lines in, answers out, in order, until it closes, idles, breaks a bound
/// or the server is cancelled (between requests).
async fn connection(
    stream: UnixStream,
    svc: Arc<dyn MusicControl>,
    cancel: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        let got = tokio::select! {
            _ = cancel.cancelled() => break,
            g = tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut r, &mut line, MAX_LINE)) => g,
        };
        let last = match got {
            Err(_) => {
                tracing::debug!("control connection idle; closing it");
                break;
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "control connection read failed");
                break;
            }
            Ok(Ok(Line::Eof)) => break,
            Ok(Ok(Line::TooLong)) => {
                tracing::warn!(max = MAX_LINE, "control request line too long; closing");
                let e = ControlError::InvalidRequest(format!("a line over {MAX_LINE} bytes"));
                if send(&mut w, &error_line(&e)).await.is_ok() {
                    let _ = w.shutdown().await;
                    discard(&mut r).await;
                }
                return;
            }
            Ok(Ok(Line::Full)) => false,
            Ok(Ok(Line::Last)) => true,
        };
        if let Some(answer) = handle_line(&svc, &line).await {
            if let Err(e) = send(&mut w, &answer).await {
                tracing::debug!(error = %e, "control answer not delivered");
                break;
            }
        }
        if last {
            break;
        }
    }
    let _ = w.shutdown().await;
}

/// Reads and drops what the client still sends, for a bounded time and size: closing a
/// Unix socket with unread input resets the peer, which would then lose the answer
/// already written.
async fn discard<R: AsyncBufRead + Unpin>(r: &mut R) {
    let drop_all = async {
        let mut left = DISCARD_MAX;
        while left > 0 {
            let n = match r.fill_buf().await {
                Ok([]) | Err(_) => return,
                Ok(b) => b.len(),
            };
            r.consume(n);
            left = left.saturating_sub(n);
        }
    };
    let _ = tokio::time::timeout(DISCARD_TIME, drop_all).await;
}

/// Writes one answer line, bounded by [`IDLE_TIMEOUT`].
async fn send(w: &mut tokio::net::unix::OwnedWriteHalf, answer: &str) -> io::Result<()> {
    let mut buf = Vec::with_capacity(answer.len() + 1);
    buf.extend_from_slice(answer.as_bytes());
    buf.push(b'\n');
    match tokio::time::timeout(IDLE_TIMEOUT, w.write_all(&buf)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client read nothing",
        )),
    }
}
