//! A typed client of the `/v1` API. OWNER: helper H3 — replace the stubs, keep the
//! signatures (the mount in `mount/` codes against them).

use bytes::Bytes;
use futures::Stream;
use fvfs_types::api::*;
use std::pin::Pin;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with an error body.
    #[error("{message} ({code:?}, HTTP {status})")]
    Api {
        status: u16,
        code: ErrorCode,
        message: String,
    },
    #[error("cannot reach fvfsd at {url}: {msg}")]
    Connect { url: String, msg: String },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Where and how to reach the daemon.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `http://host:port` or `https://host:port`, no trailing slash.
    pub url: String,
    pub token: Option<String>,
    /// SHA-256 (hex) of the server certificate to accept (https only).
    pub fingerprint: Option<String>,
}

#[derive(Clone)]
pub struct Client {}

impl Client {
    pub fn new(ep: Endpoint) -> Result<Client> {
        let _ = ep;
        todo!()
    }
    pub fn endpoint(&self) -> &Endpoint {
        todo!()
    }
    pub async fn stat(&self, path: &str) -> Result<Stat> {
        let _ = path;
        todo!()
    }
    /// Every entry of a directory (follows `next` pages).
    pub async fn ls(&self, path: &str) -> Result<Listing> {
        let _ = path;
        todo!()
    }
    /// The bytes `[offset, offset+len)` (`len` None = to the end) as a stream.
    pub async fn get(&self, path: &str, offset: u64, len: Option<u64>) -> Result<ByteStream> {
        let _ = (path, offset, len);
        todo!()
    }
    /// Uploads `body` as the whole new content of `path` (atomic on the server).
    pub async fn put(
        &self,
        path: &str,
        body: ByteStream,
        len: Option<u64>,
        blake3: Option<&str>,
        opts: &CreateRequest,
    ) -> Result<Stat> {
        let _ = (path, body, len, blake3, opts);
        todo!()
    }
    pub async fn delete(&self, path: &str) -> Result<()> {
        let _ = path;
        todo!()
    }
    pub async fn mkdir(&self, path: &str, opts: &CreateRequest) -> Result<Stat> {
        let _ = (path, opts);
        todo!()
    }
    pub async fn symlink(&self, path: &str, opts: &CreateRequest) -> Result<Stat> {
        let _ = (path, opts);
        todo!()
    }
    pub async fn rename(&self, req: &RenameRequest) -> Result<Stat> {
        let _ = req;
        todo!()
    }
    pub async fn setattr(&self, path: &str, req: &SetAttrRequest) -> Result<Stat> {
        let _ = (path, req);
        todo!()
    }
    pub async fn manifest(&self, path: &str) -> Result<Manifest> {
        let _ = path;
        todo!()
    }
    /// A block's plain bytes, verified against `id` (BLAKE3).
    pub async fn block(&self, id: &str) -> Result<Bytes> {
        let _ = id;
        todo!()
    }
    pub async fn status(&self) -> Result<Status> {
        todo!()
    }
    pub async fn devices(&self) -> Result<Devices> {
        todo!()
    }
    pub async fn wal(&self, limit: usize) -> Result<Wal> {
        let _ = limit;
        todo!()
    }
    pub async fn evict(&self, tier: Option<&str>) -> Result<EvictResult> {
        let _ = tier;
        todo!()
    }
    pub async fn flush(&self) -> Result<FlushResult> {
        todo!()
    }
}
