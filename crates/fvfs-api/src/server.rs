//! Listeners: TCP (plain or TLS) and the Unix control socket, each an accept loop serving
//! an axum `Router` with hyper-util's connection builder, and their graceful shutdown.
//!
//! Invariants: every TCP request carries its peer as `ConnectInfo<SocketAddr>` (the auth
//! layer records it); a TLS handshake or a request head that does not arrive within its
//! timeout ends the connection, so a silent peer cannot pin a task. On cancel a listener
//! stops accepting at once, lets the requests in flight finish for up to `drain`, then
//! drops what is left. The control socket is created with mode 0600, refuses to replace a
//! socket another process still answers on, and is removed when its loop ends.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Longest a client may take for its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a client may take to send a request head (HTTP/1).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    b
}

/// Serves one connection until it ends, or until `cancel`, then finishes the request in
/// flight (the caller bounds that).
async fn serve_conn<I>(io: I, app: Router, peer: Option<SocketAddr>, cancel: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        if let Some(p) = peer {
            req.extensions_mut().insert(ConnectInfo(p));
        }
        app.clone().oneshot(req)
    });
    let b = builder();
    let conn = b.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let res = tokio::select! {
        r = conn.as_mut() => r,
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = res {
        // Clients going away mid-request are routine; not worth more than debug.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Waits up to `drain` for the connections' requests in flight, then drops the rest.
async fn drain_all(mut tasks: JoinSet<()>, drain: Duration, what: &str) {
    let all = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(drain, all).await.is_err() {
        tracing::warn!(
            listener = what,
            left = tasks.len(),
            "requests still running after the drain time; dropping them"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `cancel`, then drains.
pub async fn serve_tcp(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    cancel: CancellationToken,
    drain: Duration,
) -> io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut tasks = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let cancel = cancel.clone();
        match &acceptor {
            None => {
                tasks.spawn(serve_conn(stream, app, Some(peer), cancel));
            }
            Some(acc) => {
                let acc = acc.clone();
                tasks.spawn(async move {
                    let hs = tokio::select! {
                        r = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acc.accept(stream)) => r,
                        _ = cancel.cancelled() => return,
                    };
                    match hs {
                        Ok(Ok(s)) => serve_conn(s, app, Some(peer), cancel).await,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    drain_all(tasks, drain, "tcp").await;
    Ok(())
}

/// Binds the control socket at `path` with mode 0600. A socket file left by a dead daemon
/// is replaced; one a live process answers on, or a file that is not a socket, is an error.
pub fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "another process answers on {} (is a daemon running?)",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let l = UnixListener::bind(path)?;
    // Before anyone is served: the mode is the only guard of this socket.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Removes the socket file at drop if it is still the one this process bound.
struct SocketFile {
    path: PathBuf,
    ino: Option<u64>,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let same = std::fs::symlink_metadata(&self.path)
            .map(|m| Some(m.ino()) == self.ino)
            .unwrap_or(false);
        if same {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the control socket");
            }
        }
    }
}

/// Serves `app` on a bound control socket until `cancel`, drains, removes the socket.
pub async fn serve_unix_listener(
    listener: UnixListener,
    path: &Path,
    app: Router,
    cancel: CancellationToken,
    drain: Duration,
) -> io::Result<()> {
    let _file = SocketFile {
        path: path.to_path_buf(),
        ino: std::fs::symlink_metadata(path).ok().map(|m| m.ino()),
    };
    let mut tasks = JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept on the control socket failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        tasks.spawn(serve_conn(stream, app.clone(), None, cancel.clone()));
    }
    drop(listener);
    drain_all(tasks, drain, "unix").await;
    Ok(())
}

/// [`bind_unix`] then [`serve_unix_listener`].
pub async fn serve_unix(
    path: &Path,
    app: Router,
    cancel: CancellationToken,
    drain: Duration,
) -> io::Result<()> {
    let l = bind_unix(path)?;
    serve_unix_listener(l, path, app, cancel, drain).await
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
