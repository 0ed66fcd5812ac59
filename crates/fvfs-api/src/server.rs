//! Listeners: TCP (plain or TLS) and the Unix control socket, each an accept loop serving
//! an axum `Router` with hyper-util's connection builder, and their graceful shutdown.
//!
//! Invariants: every TCP request carries its peer as `ConnectInfo<SocketAddr>` (the auth
//! layer records it). Every connection is bounded by [`ServerLimits`] (docs/API.md,
//! "Limits and timeouts"), so a silent or slow peer cannot pin a task or a descriptor:
//! - the TLS handshake and the first request head arrive within `header_timeout` of accept
//!   (hyper-util's auto builder has no timer while it sniffs the protocol, so a watchdog
//!   per connection holds this deadline); for HTTP/1, hyper's header timer also bounds
//!   each later head, from the end of the previous response;
//! - a connection with no request in flight is closed after `idle_timeout`, HTTP/1
//!   keep-alive and HTTP/2 alike (hyper has no HTTP/2 idle knob); HTTP/2 pings find dead
//!   peers meanwhile;
//! - a request body that sends nothing for `body_timeout` while its handler reads it fails
//!   the request, and a peer that reads nothing of a response for `body_timeout` loses the
//!   connection;
//! - at most `max_connections` TCP connections are served; one more is answered `503` with
//!   the JSON error body and closed (at most [`REFUSE_SLOTS`] such answers at a time; past
//!   them a connection is closed unanswered). The Unix socket has the timeouts, no cap.
//!
//! An accept error (EMFILE, ENFILE, ENOBUFS…) never ends a loop: it backs off (doubling up
//! to [`ACCEPT_BACKOFF_MAX`]) and is logged at most every [`LOG_EVERY`]. On cancel a
//! listener stops accepting at once, lets the requests in flight finish for up to `drain`,
//! then drops what is left. The control socket is created with mode 0600, refuses to
//! replace a socket another process still answers on, and is removed when its loop ends.

#[path = "server_conn.rs"]
mod conn;

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, StatusCode, Version};
use axum::response::Response;
use axum::Router;
use conn::{Activity, Bounds, IdleBody, LogEvery, Tracked, Verdict, Watched};
use fvfs_types::api::ErrorCode;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Interval of HTTP/2 keep-alive pings, and how long an answer may take before the peer
/// is taken for dead.
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a connection closed by a timeout may take to say goodbye (HTTP/2 GOAWAY).
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Connections past the cap being answered 503 at once, and the longest one may take.
pub const REFUSE_SLOTS: usize = 32;
const REFUSE_TIME: Duration = Duration::from_secs(5);
/// The first and the longest pause after a failed accept.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per period for each repeated connection-level event.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The bounds of every connection of a listener (see the module invariants).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// TCP connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// From accept to the first complete request head (TLS handshake included), and for
    /// HTTP/1 from the end of a response to the next complete head.
    pub header_timeout: Duration,
    /// How long a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// How long a request body may send nothing while it is read, and a peer may read
    /// nothing of a response.
    pub body_timeout: Duration,
    /// The longest TLS handshake (also within `header_timeout` of accept).
    pub tls_handshake_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 512,
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl ServerLimits {
    fn bounds(&self) -> Bounds {
        Bounds {
            header: self.header_timeout,
            idle: self.idle_timeout,
            body: self.body_timeout,
        }
    }
}

fn builder(limits: &ServerLimits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    b.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    b
}

/// Serves one connection until it ends, breaks one of `limits`, or `cancel` fires; on
/// cancel the requests in flight finish (the caller bounds that).
async fn serve_conn<I>(
    io: I,
    app: Router,
    peer: Option<SocketAddr>,
    cancel: CancellationToken,
    limits: &ServerLimits,
    accepted: Instant,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let act = Activity::new(accepted);
    let body_timeout = limits.body_timeout;
    let a2 = act.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        if let Some(p) = peer {
            req.extensions_mut().insert(ConnectInfo(p));
        }
        let flight = a2.begin();
        let call = app
            .clone()
            .oneshot(req.map(|b| IdleBody::new(b, body_timeout)));
        async move {
            let resp = call.await?;
            Ok::<_, Infallible>(resp.map(|b| Tracked::new(b, flight)))
        }
    });
    let b = builder(limits);
    let conn = b.serve_connection_with_upgrades(TokioIo::new(Watched::new(io, act.clone())), svc);
    tokio::pin!(conn);
    let bounds = limits.bounds();
    let res = loop {
        let recheck = match act.verdict(&bounds) {
            Verdict::Recheck(t) => t,
            Verdict::Close(why) => {
                tracing::debug!(peer = ?peer, reason = why, "closing the connection");
                conn.as_mut().graceful_shutdown();
                break tokio::time::timeout(CLOSE_GRACE, conn.as_mut())
                    .await
                    .unwrap_or(Ok(()));
            }
        };
        let wake = async {
            match recheck {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = cancel.cancelled() => {
                conn.as_mut().graceful_shutdown();
                break conn.await;
            }
            _ = act.changed() => {}
            _ = wake => {}
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

/// The pause after failed accepts: doubling from [`ACCEPT_BACKOFF_MIN`] up to
/// [`ACCEPT_BACKOFF_MAX`], back to none after a success; logged at most every [`LOG_EVERY`].
struct AcceptBackoff {
    delay: Duration,
    log: LogEvery,
}

impl AcceptBackoff {
    fn new() -> AcceptBackoff {
        AcceptBackoff {
            delay: Duration::ZERO,
            log: LogEvery::new(LOG_EVERY),
        }
    }

    fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }

    /// Records a failed accept; returns how long to pause.
    fn failed(&mut self, e: &io::Error, listener: &str) -> Duration {
        self.delay = (self.delay * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
        if let Some(held) = self.log.hit() {
            tracing::warn!(
                listener,
                error = %e,
                retry_ms = self.delay.as_millis() as u64,
                not_logged = held,
                "accept failed; backing off"
            );
        }
        self.delay
    }
}

/// One TCP connection: the TLS handshake if any, then HTTP.
#[allow(clippy::too_many_arguments)]
async fn serve_tcp_conn(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    limits: Arc<ServerLimits>,
    cancel: CancellationToken,
    accepted: Instant,
) {
    let Some(acc) = acceptor else {
        return serve_conn(stream, app, Some(peer), cancel, &limits, accepted).await;
    };
    let deadline = accepted + limits.tls_handshake_timeout.min(limits.header_timeout);
    let hs = tokio::select! {
        r = tokio::time::timeout_at(deadline, acc.accept(stream)) => r,
        _ = cancel.cancelled() => return,
    };
    match hs {
        Ok(Ok(s)) => serve_conn(s, app, Some(peer), cancel, &limits, accepted).await,
        Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
    }
}

/// The answer to every request of a connection past the cap.
fn overloaded(version: Version) -> Response {
    let mut r = crate::auth::error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
        "too many connections; retry later",
    );
    let h = r.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    if version < Version::HTTP_2 {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// Answers a connection past the cap with 503 (no token needed) and closes it.
async fn refuse(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    limits: Arc<ServerLimits>,
    accepted: Instant,
) {
    let done = CancellationToken::new();
    let d2 = done.clone();
    let app = Router::new().fallback(move |req: Request| {
        // Answered: the connection closes after this response.
        d2.cancel();
        async move { overloaded(req.version()) }
    });
    let serve = serve_tcp_conn(stream, peer, acceptor, app, limits, done, accepted);
    let _ = tokio::time::timeout(REFUSE_TIME, serve).await;
}

/// Counts a TCP connection served (`fvfs_api_connections_open`) while it lives.
struct OpenGauge;

impl OpenGauge {
    fn new() -> OpenGauge {
        metrics::gauge!("fvfs_api_connections_open").increment(1.0);
        OpenGauge
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics::gauge!("fvfs_api_connections_open").decrement(1.0);
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is given) within `limits` until
/// `cancel`, then drains.
pub async fn serve_tcp(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    cancel: CancellationToken,
    drain: Duration,
    limits: ServerLimits,
) -> io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let spare = Arc::new(Semaphore::new(REFUSE_SLOTS));
    let refuse_limits = Arc::new(ServerLimits {
        header_timeout: limits.header_timeout.min(REFUSE_TIME),
        idle_timeout: limits.idle_timeout.min(REFUSE_TIME),
        body_timeout: limits.body_timeout.min(REFUSE_TIME),
        tls_handshake_timeout: limits.tls_handshake_timeout.min(REFUSE_TIME),
        ..limits.clone()
    });
    let limits = Arc::new(limits);
    let full_log = LogEvery::new(LOG_EVERY);
    let mut backoff = AcceptBackoff::new();
    let mut tasks = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            r = listener.accept() => match r {
                Ok(x) => {
                    backoff.succeeded();
                    x
                }
                Err(e) => {
                    let pause = backoff.failed(&e, "tcp");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(pause) => continue,
                    }
                }
            },
        };
        let accepted = Instant::now();
        let _ = stream.set_nodelay(true);
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let gauge = OpenGauge::new();
                let serve = serve_tcp_conn(
                    stream,
                    peer,
                    acceptor.clone(),
                    app.clone(),
                    limits.clone(),
                    cancel.clone(),
                    accepted,
                );
                tasks.spawn(async move {
                    serve.await;
                    drop((slot, gauge));
                });
            }
            Err(_) => {
                metrics::counter!("fvfs_api_connections_refused_total").increment(1);
                if let Some(held) = full_log.hit() {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        not_logged = held,
                        "connection limit reached: answering 503"
                    );
                }
                // Past the few answers in progress, closing unanswered costs nothing.
                if let Ok(spare) = spare.clone().try_acquire_owned() {
                    let serve = refuse(
                        stream,
                        peer,
                        acceptor.clone(),
                        refuse_limits.clone(),
                        accepted,
                    );
                    tasks.spawn(async move {
                        serve.await;
                        drop(spare);
                    });
                }
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
    let limits = ServerLimits::default();
    let mut backoff = AcceptBackoff::new();
    let mut tasks = JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            r = listener.accept() => match r {
                Ok((s, _)) => {
                    backoff.succeeded();
                    s
                }
                Err(e) => {
                    let pause = backoff.failed(&e, "unix");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(pause) => continue,
                    }
                }
            },
        };
        let (app, cancel, limits) = (app.clone(), cancel.clone(), limits.clone());
        tasks.spawn(
            async move { serve_conn(stream, app, None, cancel, &limits, Instant::now()).await },
        );
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

/// Raises the soft limit of open descriptors to the hard one: every API connection, block
/// file and database handle needs one. Returns (before, after), or the error.
pub fn raise_nofile() -> std::io::Result<(libc::rlim_t, libc::rlim_t)> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = l.rlim_cur;
    if l.rlim_cur < l.rlim_max {
        l.rlim_cur = l.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((before, l.rlim_cur))
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
