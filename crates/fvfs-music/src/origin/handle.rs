//! [`Origin`]: a read-only handle on one origin, an OpenDAL operator under a timeout
//! layer, with its spec. Scanning lists files ([`Origin::list`], [`Origin::list_stream`]),
//! the view stats and reads byte ranges ([`Origin::read_range`]).
//!
//! Invariants:
//! - nothing here writes, creates or deletes on an origin: there is no write method, and
//!   operators are rooted at the service root (`/` for fs and sftp, the bucket for S3,
//!   the server for WebDAV) with the origin's own root joined onto each path here,
//!   because OpenDAL's fs builder creates a missing root directory and its sftp
//!   connections create theirs (on a NAS mount point whose share is not mounted, that
//!   would make a local directory and hide the outage);
//! - opening does no I/O: an origin that does not answer opens and is found unhealthy
//!   by [`Origin::check`] or its first read;
//! - paths are relative to the origin root (`Artist/Album/01.flac`), never `.`/`..` or
//!   empty components, so no path leaves the root;
//! - every call is bounded: each request by `op_timeout`, each body step by
//!   `io_timeout`, a check by `check_timeout`; retries are not made here (no OpenDAL
//!   retry layer) but by [`super::OriginSet`], which knows the other origins.

use std::sync::{Arc, Once};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use opendal::layers::TimeoutLayer;
use opendal::{EntryMode, Metadata, Operator};

use super::error::{classify, OriginError};
use super::spec::{OriginLocation, OriginSpec};

/// Tunables of [`Origin::open_with`]; the defaults suit production.
#[derive(Clone, Debug)]
pub struct OriginOptions {
    /// Bound of one request (stat, list page, the start of a read).
    pub op_timeout: Duration,
    /// Bound of one body read step.
    pub io_timeout: Duration,
    /// Bound of one whole [`Origin::check`].
    pub check_timeout: Duration,
}

impl Default for OriginOptions {
    fn default() -> Self {
        OriginOptions {
            op_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(10),
            check_timeout: Duration::from_secs(10),
        }
    }
}

/// One file found on an origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginEntry {
    /// Relative to the origin root, `/`-separated.
    pub path: String,
    pub size: u64,
    pub mtime: Option<SystemTime>,
    /// The service's entity tag (S3, WebDAV), if it gives one.
    pub etag: Option<String>,
}

/// A read-only origin. Cheap to clone (shares one operator).
#[derive(Clone)]
pub struct Origin {
    inner: Arc<Inner>,
}

struct Inner {
    spec: OriginSpec,
    op: Operator,
    /// The origin root as an operator path: empty or ending in `/`, no leading `/`.
    base: String,
    display: String,
    check_timeout: Duration,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Origin").field(&self.inner.display).finish()
    }
}

static INSTALL: Once = Once::new();

/// Whether OpenDAL says a range read found fewer bytes than asked: a range past the
/// end (S3's 416) or a service that answered a short range without error (OpenDAL's
/// completeness check). A body cut by the connection is a transport error instead.
fn is_short(e: &opendal::Error) -> bool {
    e.kind() == opendal::ErrorKind::RangeNotSatisfied
        || (e.kind() == opendal::ErrorKind::Unexpected
            && e.message() == "reader got too little data")
}

/// `/a/b` → `a/b/`; `/` → empty.
fn base_of(root: &str) -> String {
    let t = root.trim_matches('/');
    if t.is_empty() {
        String::new()
    } else {
        format!("{t}/")
    }
}

fn spec_err(id: &str, e: opendal::Error) -> OriginError {
    OriginError::Spec(format!("origin {id:?}: {e}"))
}

impl Origin {
    /// Opens an origin with default options. Does no I/O.
    pub fn open(spec: &OriginSpec) -> Result<Origin, OriginError> {
        Self::open_with(spec, &OriginOptions::default())
    }

    /// Opens an origin with explicit options. Does no I/O; fails only on a spec the
    /// service refuses or a `password_env` that is not set.
    pub fn open_with(spec: &OriginSpec, opts: &OriginOptions) -> Result<Origin, OriginError> {
        INSTALL.call_once(opendal::install_default);
        let id = spec.id.as_str();
        let (op, base) = match &spec.location {
            OriginLocation::Fs { root } => {
                let b = opendal::services::Fs::default().root("/");
                let root = root.to_str().ok_or_else(|| {
                    OriginError::Spec(format!("origin {id:?}: the path is not valid UTF-8"))
                })?;
                (
                    Operator::new(b).map_err(|e| spec_err(id, e))?,
                    base_of(root),
                )
            }
            OriginLocation::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                path_style,
                keys,
            } => {
                let mut b = opendal::services::S3::default()
                    .bucket(bucket)
                    .root("/")
                    .region(region);
                if let Some(ep) = endpoint {
                    b = b.endpoint(ep);
                }
                if !path_style {
                    b = b.enable_virtual_host_style();
                }
                if let Some(k) = keys {
                    // Explicit keys only: no profile files, no instance metadata probe.
                    b = b
                        .access_key_id(&k.access_key_id)
                        .secret_access_key(&k.secret_access_key.0)
                        .disable_config_load()
                        .disable_ec2_metadata();
                    if let Some(t) = &k.session_token {
                        b = b.session_token(&t.0);
                    }
                }
                (
                    Operator::new(b).map_err(|e| spec_err(id, e))?,
                    base_of(prefix),
                )
            }
            OriginLocation::Sftp {
                host,
                port,
                user,
                key_file,
                root,
                known_hosts,
            } => {
                let mut b = opendal::services::Sftp::default()
                    .endpoint(&format!("ssh://{host}:{port}"))
                    .root("/")
                    .known_hosts_strategy(match known_hosts {
                        super::KnownHosts::Strict => "strict",
                        super::KnownHosts::Add => "add",
                        super::KnownHosts::Accept => "accept",
                    });
                if let Some(u) = user {
                    b = b.user(u);
                }
                if let Some(k) = key_file.as_ref().and_then(|k| k.to_str()) {
                    b = b.key(k);
                }
                (
                    Operator::new(b).map_err(|e| spec_err(id, e))?,
                    base_of(root),
                )
            }
            OriginLocation::WebDav {
                endpoint,
                root,
                user,
                password,
                password_env,
            } => {
                let mut b = opendal::services::Webdav::default()
                    .endpoint(endpoint)
                    .root("/");
                if let Some(u) = user {
                    b = b.username(u);
                }
                if let Some(p) = password {
                    b = b.password(&p.0);
                }
                if let Some(var) = password_env {
                    let p = std::env::var(var).map_err(|_| {
                        OriginError::Spec(format!(
                            "origin {id:?}: password_env names {var}, which is not set"
                        ))
                    })?;
                    b = b.password(&p);
                }
                (
                    Operator::new(b).map_err(|e| spec_err(id, e))?,
                    base_of(root),
                )
            }
        };
        let op = op.layer(
            TimeoutLayer::new()
                .with_timeout(opts.op_timeout)
                .with_io_timeout(opts.io_timeout),
        );
        Ok(Origin {
            inner: Arc::new(Inner {
                display: spec.display(),
                spec: spec.clone(),
                op,
                base,
                check_timeout: opts.check_timeout,
            }),
        })
    }

    /// The origin's id.
    pub fn id(&self) -> &str {
        &self.inner.spec.id
    }

    /// The spec it was opened from.
    pub fn spec(&self) -> &OriginSpec {
        &self.inner.spec
    }

    /// Secret-free description for logs and status ([`OriginSpec::display`]).
    pub fn display(&self) -> &str {
        &self.inner.display
    }

    fn err(&self, path: &str, e: opendal::Error) -> OriginError {
        classify(self.id(), path, e)
    }

    /// The operator path of an origin path, or an error for a path that could leave
    /// the root or names a directory.
    fn full(&self, path: &str) -> Result<String, OriginError> {
        let bad = path.is_empty()
            || path.starts_with('/')
            || path.ends_with('/')
            || path
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..");
        if bad {
            return Err(OriginError::Io {
                origin: self.id().to_string(),
                path: path.to_string(),
                source: "not a file path (relative, no empty, . or .. component)".into(),
            });
        }
        Ok(format!("{}{path}", self.inner.base))
    }

    fn entry(&self, full: &str, meta: &Metadata) -> OriginEntry {
        OriginEntry {
            path: full
                .strip_prefix(self.inner.base.as_str())
                .unwrap_or(full)
                .to_string(),
            size: meta.content_length(),
            mtime: meta.last_modified().map(SystemTime::from),
            etag: meta.etag().map(str::to_string),
        }
    }

    /// Every file under `prefix` (`""` = the whole origin, else a directory such as
    /// `Artist/`), recursively, in the service's order. A missing prefix lists as
    /// empty. Entries the listing does not type (fs symlinks) are stat'ed: a link to
    /// a file is listed with the target's size, other entries are skipped.
    pub fn list_stream(
        &self,
        prefix: &str,
    ) -> BoxStream<'static, Result<OriginEntry, OriginError>> {
        let this = self.clone();
        let prefix = prefix.trim_matches('/');
        let dir = if prefix.is_empty() {
            self.inner.base.clone()
        } else {
            format!("{}{prefix}/", self.inner.base)
        };
        let opened = {
            let (this, dir) = (this.clone(), dir.clone());
            async move {
                match this.inner.op.lister_with(&dir).recursive(true).await {
                    Ok(l) => Ok(l.map_err(move |e| this.err(&dir, e)).boxed()),
                    Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
                        Ok(stream::empty().boxed())
                    }
                    Err(e) => Err(this.err(&dir, e)),
                }
            }
        };
        stream::once(opened)
            .try_flatten()
            .try_filter_map(move |e| {
                let this = this.clone();
                async move {
                    let meta = e.metadata();
                    match meta.mode() {
                        EntryMode::FILE => Ok(Some(this.entry(e.path(), meta))),
                        EntryMode::DIR => Ok(None),
                        EntryMode::Unknown => match this.inner.op.stat(e.path()).await {
                            Ok(m) if m.is_file() => Ok(Some(this.entry(e.path(), &m))),
                            Ok(_) => Ok(None),
                            Err(err) if err.kind() == opendal::ErrorKind::NotFound => Ok(None),
                            Err(err) => Err(this.err(e.path(), err)),
                        },
                    }
                }
            })
            .boxed()
    }

    /// [`Origin::list_stream`] collected and sorted by path.
    pub async fn list(&self, prefix: &str) -> Result<Vec<OriginEntry>, OriginError> {
        let mut all: Vec<OriginEntry> = self.list_stream(prefix).try_collect().await?;
        all.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(all)
    }

    /// One file's size, mtime and etag; a directory is an error.
    pub async fn stat(&self, path: &str) -> Result<OriginEntry, OriginError> {
        let full = self.full(path)?;
        let meta = self
            .inner
            .op
            .stat(&full)
            .await
            .map_err(|e| self.err(path, e))?;
        if !meta.is_file() {
            let e = opendal::Error::new(opendal::ErrorKind::IsADirectory, "not a file");
            return Err(self.err(path, e));
        }
        Ok(self.entry(&full, &meta))
    }

    /// Exactly the `len` bytes at `offset` of `path`. The range must lie within the
    /// file: callers know its length (a scan, a stat; the `RangeSource`s of `file` cut
    /// their ranges at it), because the services disagree past the end and OpenDAL
    /// refuses short answers. A range that is not wholly in the file (it shrank since
    /// the scan) is [`OriginError::Short`], a file-level failure.
    pub async fn read_range(
        &self,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, OriginError> {
        let full = self.full(path)?;
        if len == 0 {
            return Ok(Bytes::new());
        }
        let end = offset.saturating_add(len);
        let e = match self.inner.op.read_with(&full).range(offset..end).await {
            Ok(buf) if buf.len() as u64 == len => return Ok(buf.to_bytes()),
            Ok(_) => return Err(self.short(path, offset, len)),
            Err(e) if is_short(&e) => return Err(self.short(path, offset, len)),
            Err(e) => e,
        };
        // Some services answer a range past the end with an error OpenDAL does not
        // type (WebDAV's 416): a permanent failure is checked against the file's size.
        if e.kind() == opendal::ErrorKind::Unexpected && !e.is_temporary() {
            if let Ok(meta) = self.inner.op.stat(&full).await {
                if meta.is_file() && meta.content_length() < end {
                    return Err(self.short(path, offset, len));
                }
            }
        }
        Err(self.err(path, e))
    }

    fn short(&self, path: &str, offset: u64, len: u64) -> OriginError {
        OriginError::Short {
            origin: self.id().to_string(),
            path: path.to_string(),
            offset,
            len,
        }
    }

    /// Whether the origin answers: a listing of its root must yield at least one
    /// entry within the check timeout. An empty or missing root counts as down: an
    /// NFS share that is not mounted shows an empty mount point, a removed directory
    /// or a wrong prefix shows nothing, and an origin with no files serves nothing.
    pub async fn check(&self) -> Result<(), OriginError> {
        let base = self.inner.base.as_str();
        let down = |why: String| OriginError::Unavailable {
            origin: self.id().to_string(),
            source: why.into(),
        };
        let work = async {
            let mut l = self.inner.op.lister_with(base).limit(8).await?;
            while let Some(e) = l.try_next().await? {
                let p = e.path();
                if p != base && p != "/" && !p.is_empty() {
                    return Ok(true);
                }
            }
            Ok::<bool, opendal::Error>(false)
        };
        match tokio::time::timeout(self.inner.check_timeout, work).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(down(
                "its root lists nothing (missing, empty or not mounted)".into(),
            )),
            Ok(Err(e)) if e.kind() == opendal::ErrorKind::NotFound => {
                Err(down(format!("its root is missing: {e}")))
            }
            Ok(Err(e)) => Err(self.err("", e)),
            Err(_) => Err(down(format!(
                "no answer within {:?}",
                self.inner.check_timeout
            ))),
        }
    }
}
