//! A storage tier: one OpenDAL operator (local directory or S3-compatible bucket) plus
//! the object key layout fvfs uses in it.
//!
//! This crate owns the location syntax ([`TierSpec`]), the construction of the
//! operator (retry + timeout layers, S3 credentials from the environment / AWS chain)
//! and the key layout:
//! - blocks live at `blocks/{hex[0..2]}/{hex[2..4]}/{hex}` ([`Tier::block_key`]);
//! - health probes at `probe/…` (written and deleted by [`Tier::check`]);
//! - anything else (metadata backups…) through the generic object calls.
//!
//! Invariants:
//! - an object is either absent or complete: S3 PUTs are atomic and the fs service is
//!   configured to write into `ROOT/.tmp/` and rename into place;
//! - no operation blocks forever: every call runs under a timeout, temporary failures
//!   are retried a few times with a short backoff, and a tier that does not answer
//!   yields [`TierError::Unreachable`];
//! - errors and [`Tier::display`] never contain credentials;
//! - this crate knows nothing of block contents: ids are computed and verified above.

mod error;
mod spec;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use fvfs_types::BlockId;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::Operator;

pub use error::{redact, BoxError, TierError};
pub use spec::{TierKind, TierSpec, DEFAULT_REGION};

/// Prefix of every block object.
pub const BLOCKS_PREFIX: &str = "blocks/";
/// Prefix of the objects written by [`Tier::check`].
pub const PROBE_PREFIX: &str = "probe/";
/// Bytes per part of [`Tier::put_object_from_file`] (S3 wants at least 5 MiB per part).
pub const FILE_PART: usize = 8 << 20;
/// Directory (under an fs root) where objects are written before being renamed.
pub const FS_TMP_DIR: &str = ".tmp";

/// Explicit S3 credentials, for tests and tools. When absent the standard AWS chain is
/// used (env `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, then
/// the shared config/profile, then instance metadata).
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Tunables of [`Tier::open_with`]; the defaults suit production.
#[derive(Clone, Debug)]
pub struct TierOptions {
    /// Explicit S3 credentials; `None` = AWS default chain. Ignored for fs tiers.
    pub credentials: Option<S3Credentials>,
    /// Bound of one control request attempt (stat, delete, list page, request start).
    pub op_timeout: Duration,
    /// Bound of one body read/write step of one attempt.
    pub io_timeout: Duration,
    /// Retries of a temporary failure (after the first attempt).
    pub retries: usize,
    /// Bound of the whole [`Tier::check`].
    pub check_timeout: Duration,
}

impl Default for TierOptions {
    fn default() -> Self {
        TierOptions {
            credentials: None,
            op_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(20),
            retries: 2,
            check_timeout: Duration::from_secs(10),
        }
    }
}

/// One storage tier. Cheap to clone (shares one operator).
#[derive(Clone)]
pub struct Tier {
    inner: Arc<Inner>,
}

struct Inner {
    op: Operator,
    spec: TierSpec,
    display: String,
    check_timeout: Duration,
    /// Bound of one whole-object read of a directory tier (`read_fs`).
    read_timeout: Duration,
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Tier").field(&self.inner.display).finish()
    }
}

static INSTALL: Once = Once::new();
static PROBE_SEQ: AtomicU64 = AtomicU64::new(0);

impl Tier {
    /// Opens a tier with default options. Does no network I/O (see [`Tier::check`]);
    /// for fs, creates the root directory if missing.
    pub fn open(spec: &TierSpec) -> Result<Tier, TierError> {
        Self::open_with(spec, &TierOptions::default())
    }

    /// Opens a tier with explicit options.
    pub fn open_with(spec: &TierSpec, opts: &TierOptions) -> Result<Tier, TierError> {
        INSTALL.call_once(opendal::install_default);
        let display = spec.display();
        let op = match &spec.kind {
            TierKind::Fs { root } => open_fs(root, &display)?,
            TierKind::WebDav { endpoint, root } => {
                let mut b = opendal::services::Webdav::default()
                    .endpoint(endpoint)
                    .root(root);
                if let Ok(u) = std::env::var("FVFS_WEBDAV_USERNAME") {
                    b = b.username(&u);
                }
                if let Ok(p) = std::env::var("FVFS_WEBDAV_PASSWORD") {
                    b = b.password(&p);
                }
                Operator::new(b).map_err(|e| TierError::Config(format!("{display}: {e}")))?
            }
            TierKind::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                path_style,
                storage_class,
            } => {
                let mut b = opendal::services::S3::default()
                    .bucket(bucket)
                    .root(&format!("/{prefix}"))
                    .region(region);
                if let Some(ep) = endpoint {
                    b = b.endpoint(ep);
                }
                if !path_style {
                    b = b.enable_virtual_host_style();
                }
                if let Some(sc) = storage_class {
                    b = b.default_storage_class(sc);
                }
                if let Some(c) = &opts.credentials {
                    b = b
                        .access_key_id(&c.access_key_id)
                        .secret_access_key(&c.secret_access_key)
                        .disable_config_load()
                        .disable_ec2_metadata();
                    if let Some(t) = &c.session_token {
                        b = b.session_token(t);
                    }
                }
                Operator::new(b).map_err(|e| TierError::Config(format!("{display}: {e}")))?
            }
        };
        let op = op
            .layer(
                TimeoutLayer::new()
                    .with_timeout(opts.op_timeout)
                    .with_io_timeout(opts.io_timeout),
            )
            .layer(
                RetryLayer::new()
                    .with_max_times(opts.retries)
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(1))
                    .with_factor(2.0)
                    .with_jitter(),
            );
        Ok(Tier {
            inner: Arc::new(Inner {
                op,
                spec: spec.clone(),
                display,
                check_timeout: opts.check_timeout,
                read_timeout: opts.op_timeout + opts.io_timeout,
            }),
        })
    }

    /// Parses `location` and opens it with default options.
    pub fn open_location(location: &str) -> Result<Tier, TierError> {
        Self::open(&TierSpec::parse(location)?)
    }

    /// The spec this tier was opened from.
    pub fn spec(&self) -> &TierSpec {
        &self.inner.spec
    }

    /// Secret-free description for logs and status.
    pub fn display(&self) -> String {
        self.inner.display.clone()
    }

    /// The underlying operator, for callers that need streaming or other services.
    pub fn operator(&self) -> &Operator {
        &self.inner.op
    }

    fn err(&self, key: &str, e: opendal::Error) -> TierError {
        error::classify(&self.inner.display, key, e)
    }

    /// Writes, reads back and deletes a probe object. Fails within the check timeout
    /// (10 s by default) with [`TierError::Unreachable`] when the tier does not answer.
    pub async fn check(&self) -> Result<(), TierError> {
        let seq = PROBE_SEQ.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let key = format!("{PROBE_PREFIX}{}-{nanos}-{seq}", std::process::id());
        let payload = Bytes::from(format!("fvfs probe {key}"));
        let work = async {
            self.put_object(&key, payload.clone()).await?;
            let back = self.get_object(&key).await?;
            let deleted = self.delete_object(&key).await;
            if back != payload {
                return Err(TierError::Unreachable {
                    location: self.display(),
                    source: "probe object read back with different content".into(),
                });
            }
            deleted
        };
        match tokio::time::timeout(self.inner.check_timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(TierError::Unreachable {
                location: self.display(),
                source: Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no answer within {} s",
                        self.inner.check_timeout.as_secs_f32()
                    ),
                )),
            }),
        }
    }

    /// Object key of a block: `blocks/{hex[0..2]}/{hex[2..4]}/{hex}`.
    pub fn block_key(id: &BlockId) -> String {
        let hex = id.to_hex();
        format!("{BLOCKS_PREFIX}{}/{}/{hex}", &hex[0..2], &hex[2..4])
    }

    /// Stores a block's stored (possibly compressed) bytes. Atomic.
    pub async fn put_block(&self, id: &BlockId, data: Bytes) -> Result<(), TierError> {
        self.put_object(&Self::block_key(id), data).await
    }

    /// Reads a block's stored bytes; [`TierError::NotFound`] if absent. Not verified.
    pub async fn get_block(&self, id: &BlockId) -> Result<Bytes, TierError> {
        self.get_object(&Self::block_key(id)).await
    }

    /// Whether a block object exists.
    pub async fn block_exists(&self, id: &BlockId) -> Result<bool, TierError> {
        self.object_exists(&Self::block_key(id)).await
    }

    /// Deletes a block; deleting a missing block is Ok.
    pub async fn delete_block(&self, id: &BlockId) -> Result<(), TierError> {
        self.delete_object(&Self::block_key(id)).await
    }

    /// Writes an object atomically (replacing any previous one).
    pub async fn put_object(&self, key: &str, data: Bytes) -> Result<(), TierError> {
        check_key(key)?;
        if let TierKind::Fs { root } = &self.inner.spec.kind {
            return self.write_fs(root.clone(), key, data).await;
        }
        self.inner
            .op
            .write(key, data)
            .await
            .map(|_| ())
            .map_err(|e| self.err(key, e))
    }

    /// Writes an object atomically from the file at `path`, in parts of
    /// [`FILE_PART`] bytes (an S3 multipart upload), so that memory does not grow with
    /// the file: large objects such as metadata backups.
    pub async fn put_object_from_file(
        &self,
        key: &str,
        path: &std::path::Path,
    ) -> Result<(), TierError> {
        use tokio::io::AsyncReadExt;
        check_key(key)?;
        let local = |e: std::io::Error| {
            self.err(
                key,
                opendal::Error::new(opendal::ErrorKind::Unexpected, "reading the local file")
                    .set_source(e),
            )
        };
        let mut file = tokio::fs::File::open(path).await.map_err(local)?;
        let mut w = self
            .inner
            .op
            .writer_with(key)
            .chunk(FILE_PART)
            .await
            .map_err(|e| self.err(key, e))?;
        loop {
            let mut buf = Vec::with_capacity(FILE_PART);
            while buf.len() < FILE_PART {
                let n = (&mut file)
                    .take((FILE_PART - buf.len()) as u64)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(local)?;
                if n == 0 {
                    break;
                }
            }
            if buf.is_empty() {
                break;
            }
            let last = buf.len() < FILE_PART;
            if let Err(e) = w.write(buf).await {
                let _ = w.abort().await;
                return Err(self.err(key, e));
            }
            if last {
                break;
            }
        }
        w.close().await.map(|_| ()).map_err(|e| self.err(key, e))
    }

    /// Reads a whole object; [`TierError::NotFound`] if absent.
    pub async fn get_object(&self, key: &str) -> Result<Bytes, TierError> {
        check_key(key)?;
        if let TierKind::Fs { root } = &self.inner.spec.kind {
            return self.read_fs(root.join(key), key).await;
        }
        self.inner
            .op
            .read(key)
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| self.err(key, e))
    }

    /// Reads a whole object of a directory tier in one blocking call (open, size, read):
    /// OpenDAL's fs service takes three hops through the blocking pool for it (open, a
    /// read into a 2 MiB buffer, a read of the end), which on a busy host cost more than
    /// the disk read on the way to a recall's first byte. Bounded like any tier call
    /// (a hung NAS mount yields [`TierError::Unreachable`]); objects are complete or
    /// absent (written under `.tmp/` and renamed), so a read sees one whole version.
    async fn read_fs(&self, path: PathBuf, key: &str) -> Result<Bytes, TierError> {
        let read = tokio::task::spawn_blocking(move || std::fs::read(path));
        let io = |kind: opendal::ErrorKind, e: std::io::Error| {
            self.err(key, opendal::Error::new(kind, "read").set_source(e))
        };
        match tokio::time::timeout(self.inner.read_timeout, read).await {
            Ok(Ok(Ok(v))) => Ok(Bytes::from(v)),
            Ok(Ok(Err(e))) => Err(match e.kind() {
                std::io::ErrorKind::NotFound => io(opendal::ErrorKind::NotFound, e),
                std::io::ErrorKind::PermissionDenied => io(opendal::ErrorKind::PermissionDenied, e),
                _ => io(opendal::ErrorKind::Unexpected, e),
            }),
            Ok(Err(join)) => Err(io(
                opendal::ErrorKind::Unexpected,
                std::io::Error::other(join.to_string()),
            )),
            Err(_) => Err(TierError::Unreachable {
                location: self.inner.display.clone(),
                source: format!(
                    "no answer within {:?} reading {key}",
                    self.inner.read_timeout
                )
                .into(),
            }),
        }
    }

    /// Writes a whole object of a directory tier in one blocking call: a new file under
    /// `.tmp/`, written and `fdatasync`ed, renamed into place (its directory made when
    /// missing). The same layout as OpenDAL's fs service, which takes a hop through the
    /// blocking pool per step (mkdir, open, write, fsync, rename), and makes the parent
    /// directories before every write: the cost of a small block's store. Bounded like
    /// a read.
    async fn write_fs(&self, root: PathBuf, key: &str, data: Bytes) -> Result<(), TierError> {
        let seq = PROBE_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = root.join(FS_TMP_DIR).join(format!(
            "{}-{}-{seq}",
            std::process::id(),
            key.rsplit('/').next().unwrap_or(key)
        ));
        let dest = root.join(key);
        let write = tokio::task::spawn_blocking(move || write_replace(&tmp, &dest, &data));
        let io = |e: std::io::Error| {
            let kind = match e.kind() {
                std::io::ErrorKind::PermissionDenied => opendal::ErrorKind::PermissionDenied,
                _ => opendal::ErrorKind::Unexpected,
            };
            self.err(key, opendal::Error::new(kind, "write").set_source(e))
        };
        match tokio::time::timeout(self.inner.read_timeout, write).await {
            Ok(Ok(r)) => r.map_err(io),
            Ok(Err(join)) => Err(io(std::io::Error::other(join.to_string()))),
            Err(_) => Err(TierError::Unreachable {
                location: self.inner.display.clone(),
                source: format!(
                    "no answer within {:?} writing {key}",
                    self.inner.read_timeout
                )
                .into(),
            }),
        }
    }

    /// Whether an object exists.
    pub async fn object_exists(&self, key: &str) -> Result<bool, TierError> {
        check_key(key)?;
        self.inner
            .op
            .exists(key)
            .await
            .map_err(|e| self.err(key, e))
    }

    /// Deletes an object; deleting a missing object is Ok.
    pub async fn delete_object(&self, key: &str) -> Result<(), TierError> {
        check_key(key)?;
        match self.inner.op.delete(key).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// Lists the objects (not directories) under `prefix`, recursively, with their
    /// sizes. Keys are relative to the tier root. A missing prefix lists as empty.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, TierError> {
        let mut out = Vec::new();
        self.for_each_object(prefix, |key, len| out.push((key.to_string(), len)))
            .await?;
        out.sort();
        Ok(out)
    }

    /// Calls `f` with every block object: its id, stored size and last modification
    /// (None when the backend does not say). Keys under `blocks/` that are not block keys
    /// are skipped.
    pub async fn for_each_block(
        &self,
        mut f: impl FnMut(BlockId, u64, Option<std::time::SystemTime>),
    ) -> Result<(), TierError> {
        self.for_each_object_meta(BLOCKS_PREFIX, |key, meta| {
            let id = key
                .rsplit('/')
                .next()
                .and_then(BlockId::from_hex)
                .filter(|id| Self::block_key(id) == key);
            if let Some(id) = id {
                let modified = meta.last_modified().map(std::time::SystemTime::from);
                f(id, meta.content_length(), modified);
            }
        })
        .await
    }

    /// When a block object was last written (None: absent, or the backend does not say).
    pub async fn block_modified(
        &self,
        id: &BlockId,
    ) -> Result<Option<std::time::SystemTime>, TierError> {
        let key = Self::block_key(id);
        match self.inner.op.stat(&key).await {
            Ok(m) => Ok(m.last_modified().map(std::time::SystemTime::from)),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(&key, e)),
        }
    }

    async fn for_each_object(
        &self,
        prefix: &str,
        mut f: impl FnMut(&str, u64),
    ) -> Result<(), TierError> {
        self.for_each_object_meta(prefix, |key, meta| f(key, meta.content_length()))
            .await
    }

    async fn for_each_object_meta(
        &self,
        prefix: &str,
        mut f: impl FnMut(&str, &opendal::Metadata),
    ) -> Result<(), TierError> {
        let mut lister = match self.inner.op.lister_with(prefix).recursive(true).await {
            Ok(l) => l,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.err(prefix, e)),
        };
        while let Some(entry) = lister.try_next().await.map_err(|e| self.err(prefix, e))? {
            let meta = entry.metadata();
            if meta.is_file() {
                f(entry.path(), meta);
            }
        }
        Ok(())
    }

    /// Sum of the stored sizes of all block objects (lists everything: slow on big
    /// tiers).
    pub async fn used_bytes(&self) -> Result<u64, TierError> {
        let mut total = 0u64;
        self.for_each_object(BLOCKS_PREFIX, |_, len| total += len)
            .await?;
        Ok(total)
    }
}

/// Rejects keys OpenDAL would treat as directories or that escape the root.
fn check_key(key: &str) -> Result<(), TierError> {
    if key.is_empty() || key.ends_with('/') || key.starts_with('/') {
        return Err(TierError::Config(format!(
            "invalid object key {key:?}: must be non-empty, relative and not end with /"
        )));
    }
    if key
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(TierError::Config(format!(
            "invalid object key {key:?}: empty, . or .. component"
        )));
    }
    Ok(())
}

/// `write_fs`'s blocking part: `tmp` (a fresh name) gets `data` and its device flush,
/// then replaces `dest`. The temporary file is removed on failure.
fn write_replace(tmp: &Path, dest: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
        match std::fs::rename(tmp, dest) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = dest.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::rename(tmp, dest)
            }
            r => r,
        }
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    written
}

fn open_fs(root: &Path, display: &str) -> Result<Operator, TierError> {
    let unreachable = |e: std::io::Error| TierError::Unreachable {
        location: display.to_string(),
        source: Box::new(e),
    };
    let tmp = root.join(FS_TMP_DIR);
    std::fs::create_dir_all(&tmp).map_err(unreachable)?;
    let (Some(root_s), Some(tmp_s)) = (root.to_str(), tmp.to_str()) else {
        return Err(TierError::Config(format!(
            "storage directory {display} is not valid UTF-8"
        )));
    };
    let b = opendal::services::Fs::default()
        .root(root_s)
        .atomic_write_dir(tmp_s);
    Operator::new(b).map_err(|e| TierError::Config(format!("{display}: {e}")))
}

#[cfg(test)]
mod tests;
