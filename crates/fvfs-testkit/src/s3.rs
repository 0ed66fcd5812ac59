//! An in-process S3 server over a directory: [`S3Server`], a thin wrapper around `s3s-fs`
//! (an S3 implementation that stores bucket `b`, key `k` as the file `root/b/k`; GET bodies
//! read in large pieces, `s3_get.rs`) served
//! with hyper on `127.0.0.1`. It is meant for tests and CI scripts only (see the `fvfs-s3-server`
//! binary); it is never linked into fvfs itself.
//!
//! Invariants:
//! - the server always listens on the same port for its whole life: [`S3Server::stop`]
//!   closes the listener *and* every open connection (so a client's pooled keep-alive
//!   connection cannot hide the outage), and [`S3Server::restart`] binds that port again;
//! - requests are checked against a single SigV4 key pair ([`S3Server::access_key`],
//!   [`S3Server::secret_key`]); only path-style URLs are served;
//! - the bucket directory exists once [`S3Server::start`] returns.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// Default access key used by [`S3Server::start`].
pub const DEFAULT_ACCESS_KEY: &str = "fvfs-test-access";
/// Default secret key used by [`S3Server::start`].
pub const DEFAULT_SECRET_KEY: &str = "fvfs-test-secret-0123456789";
/// Region reported to clients; s3s does not care, SigV4 needs one.
pub const REGION: &str = "us-east-1";

/// An S3-compatible server over a local directory, serving until dropped or stopped.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// Name of the bucket (a sub-directory of the root).
    pub bucket: String,
    /// Access key clients must sign with.
    pub access_key: String,
    /// Secret key clients must sign with.
    pub secret_key: String,
    root: PathBuf,
    addr: SocketAddr,
    service: S3Service,
    task: Mutex<Option<JoinHandle<()>>>,
}

fn s3fs_err(e: s3s_fs::Error) -> io::Error {
    io::Error::other(format!("s3s-fs: {e:?}"))
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let sock = TcpSocket::new_v4()?;
    // Needed by restart(): the old port may still have connections in TIME_WAIT.
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(1024)
}

/// Accepts connections until aborted; aborting drops the listener and the `JoinSet`,
/// which aborts (closes) every open connection too.
async fn accept_loop(listener: TcpListener, service: S3Service) {
    let http = ConnBuilder::new(TokioExecutor::new());
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let sock = match listener.accept().await {
            Ok((sock, _)) => sock,
            Err(e) => {
                tracing::warn!("s3 test server: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let conn = http
            .serve_connection(TokioIo::new(sock), service.clone())
            .into_owned();
        conns.spawn(async move {
            let _ = conn.await;
        });
    }
}

impl S3Server {
    /// Starts a server storing its objects under `root` (created if missing) with the
    /// default key pair, on a free port of 127.0.0.1.
    pub async fn start(root: &Path, bucket: &str) -> io::Result<S3Server> {
        Self::start_with(root, bucket, 0, DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY).await
    }

    /// Like [`S3Server::start`] with an explicit port (0 = any free port) and key pair.
    pub async fn start_with(
        root: &Path,
        bucket: &str,
        port: u16,
        access_key: &str,
        secret_key: &str,
    ) -> io::Result<S3Server> {
        if bucket.is_empty() || bucket.contains('/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid bucket name {bucket:?}"),
            ));
        }
        std::fs::create_dir_all(root.join(bucket))?;
        let fs = s3s_fs::FileSystem::new(root).map_err(s3fs_err)?;
        let store = crate::s3_get::FsStore {
            fs,
            root: root.to_path_buf(),
        };
        let mut b = S3ServiceBuilder::new(store);
        b.set_auth(SimpleAuth::from_single(access_key, secret_key));
        let service = b.build();
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, service.clone()));
        Ok(S3Server {
            endpoint: format!("http://{addr}"),
            bucket: bucket.to_string(),
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            root: root.to_path_buf(),
            addr,
            service,
            task: Mutex::new(Some(task)),
        })
    }

    /// The directory holding the buckets.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The port the server listens on (stable across [`S3Server::restart`]).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The fvfs-tier location of this server, objects under `prefix` (may be empty).
    pub fn location(&self, prefix: &str) -> String {
        let prefix = prefix.trim_matches('/');
        let path = if prefix.is_empty() {
            String::new()
        } else {
            format!("/{prefix}")
        };
        format!(
            "s3://{}{}?endpoint={}&region={REGION}&path_style=true",
            self.bucket, path, self.endpoint
        )
    }

    /// Environment variables a client process needs to sign requests to this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".to_string(), self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), self.secret_key.clone()),
            ("AWS_REGION".to_string(), REGION.to_string()),
        ]
    }

    /// Whether the server currently accepts connections.
    pub fn is_running(&self) -> bool {
        self.task
            .lock()
            .map(|t| t.as_ref().is_some_and(|h| !h.is_finished()))
            .unwrap_or(false)
    }

    /// Stops accepting connections and drops every open one ("S3 is down").
    /// Idempotent.
    pub async fn stop(&self) {
        let task = match self.task.lock() {
            Ok(mut t) => t.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Serves again on the same port after [`S3Server::stop`]. No-op when running.
    pub async fn restart(&self) -> io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let listener = bind(self.addr)?;
        let task = tokio::spawn(accept_loop(listener, self.service.clone()));
        match self.task.lock() {
            Ok(mut t) => *t = Some(task),
            Err(poisoned) => *poisoned.into_inner() = Some(task),
        }
        Ok(())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let task = match self.task.get_mut() {
            Ok(t) => t.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(task) = task {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn http_status(endpoint: &str) -> io::Result<String> {
        let addr = endpoint.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok(String::from_utf8_lossy(&buf)
            .lines()
            .next()
            .unwrap_or("")
            .to_string())
    }

    #[tokio::test]
    async fn start_stop_restart_same_port() {
        let dir = tempfile::tempdir().expect("tempdir");
        let srv = S3Server::start(dir.path(), "bkt").await.expect("start");
        assert!(dir.path().join("bkt").is_dir());
        assert!(srv
            .location("p/q")
            .starts_with("s3://bkt/p/q?endpoint=http://127.0.0.1:"));
        // Unsigned request: the server answers (with an auth error), it is up.
        let line = http_status(&srv.endpoint).await.expect("up");
        assert!(line.starts_with("HTTP/1.1"), "{line}");
        srv.stop().await;
        assert!(!srv.is_running());
        assert!(http_status(&srv.endpoint).await.is_err());
        let port = srv.port();
        srv.restart().await.expect("restart");
        assert_eq!(srv.port(), port);
        assert!(http_status(&srv.endpoint).await.is_ok());
    }
}
