//! A typed client of the `/v1` API (docs/API.md): one method per route, JSON models from
//! `fvfs_types::api`, file bodies as byte streams both ways.
//!
//! Invariants: every request carries the bearer token (when there is one), `x-fvfs-device`
//! (this host's name) and `user-agent: fvfsc/<version>`; every path segment is
//! percent-encoded (paths are given as `/a/b c`, empty segments dropped); a non-2xx answer
//! becomes [`ClientError::Api`]; bytes of a block are returned only after their BLAKE3
//! matches the block id; over HTTPS with a pin only the pinned certificate is accepted
//! (`tls.rs`). No method logs the token.

mod tls;

pub use tls::{fingerprint, normalize_pin};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use fvfs_types::api::*;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, RANGE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tls::PinVerifier;

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

/// Where and how to reach the daemon. Its `Debug` output hides the token.
#[derive(Clone)]
pub struct Endpoint {
    /// `http://host:port` or `https://host:port`, no trailing slash.
    pub url: String,
    pub token: Option<String>,
    /// SHA-256 (hex) of the server certificate to accept (https only).
    pub fingerprint: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    ep: Endpoint,
    /// The pinning verifier, kept to explain a failed handshake.
    pin: Option<Arc<PinVerifier>>,
}

/// Characters left as they are in a path segment: RFC 3986 unreserved.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `/a//b c/` → `a/b%20c`: each non-empty segment percent-encoded, joined by `/`.
pub fn encode_path(path: &str) -> String {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// The version the client reports in `user-agent`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// This host's name (for `x-fvfs-device`), or `unknown`.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(s) if !s.is_empty() => s.to_string(),
        _ => "unknown".into(),
    }
}

/// The chain of causes of an error on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// A connection failure's causes, without reqwest's outer "error sending request for
/// url (...)" (the URL is already in [`ClientError::Connect`]).
fn connect_msg(e: &reqwest::Error) -> String {
    match std::error::Error::source(e) {
        Some(inner) => chain(inner),
        None => chain(e),
    }
}

/// A `host:port` key for a URL (default ports filled in), as used by `known_hosts.toml`.
pub fn host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if authority.is_empty() {
        return None;
    }
    let has_port = match authority.rfind(']') {
        Some(close) => authority[close..].contains(':'),
        None => authority.contains(':'),
    };
    if has_port {
        return Some(authority.to_ascii_lowercase());
    }
    let port = match scheme.to_ascii_lowercase().as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    Some(format!("{}:{port}", authority.to_ascii_lowercase()))
}

/// What to say when `url` presents the certificate `seen` instead of the pinned `pin`:
/// both fingerprints, and how to accept the new one after checking it on the host.
pub fn pin_changed(url: &str, pin: &str, seen: &str) -> String {
    let hp = host_port(url).unwrap_or_else(|| url.to_string());
    format!(
        "the TLS certificate of {hp} changed: pinned SHA-256 {pin}, presented {seen}; \
         nothing was sent. Compare it with the `tls` line of `fvfsd status` on the host; if \
         they match, run `fvfsc login --replace-pin {seen} {url}`"
    )
}

/// Whether a URL is `https://` (case-insensitive scheme).
pub fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
}

/// Common builder settings: headers every request carries, timeouts, no proxy (a LAN
/// daemon is reached directly).
fn builder(ep: &Endpoint) -> Result<reqwest::ClientBuilder> {
    let mut headers = HeaderMap::new();
    let device =
        HeaderValue::from_str(&hostname()).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    headers.insert(HEADER_DEVICE, device);
    if let Some(t) = &ep.token {
        let mut v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
            ClientError::Other("the token has characters not allowed in an HTTP header".into())
        })?;
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .user_agent(format!("fvfsc/{VERSION}"))
        .connect_timeout(Duration::from_secs(10))
        // Long enough for `POST /v1/admin/flush` (bounded 10 min on the server).
        .read_timeout(Duration::from_secs(660))
        .no_proxy())
}

/// Connects once to an `https://` URL accepting any certificate (the handshake signatures
/// are still checked) and returns the SHA-256 of the certificate the daemon presented:
/// the first-use pin. The caller decides whether to trust and store it.
pub async fn probe_fingerprint(url: &str) -> Result<String> {
    let url = url.trim_end_matches('/');
    let verifier = PinVerifier::recording();
    let cfg = tls::client_config(verifier.clone()).map_err(ClientError::Other)?;
    let ep = Endpoint {
        url: url.to_string(),
        token: None,
        fingerprint: None,
    };
    let http = builder(&ep)?
        .tls_backend_preconfigured(cfg)
        .build()
        .map_err(|e| ClientError::Other(format!("HTTP client: {}", chain(&e))))?;
    // Any HTTP answer (401 included) means the handshake completed.
    let res = http.get(format!("{url}/v1/status")).send().await;
    match (verifier.seen(), res) {
        (Some(fp), _) => Ok(fp),
        (None, Err(e)) => Err(ClientError::Connect {
            url: url.to_string(),
            msg: connect_msg(&e),
        }),
        (None, Ok(_)) => Err(ClientError::Other(format!(
            "{url} answered without presenting a TLS certificate"
        ))),
    }
}

impl Client {
    pub fn new(ep: Endpoint) -> Result<Client> {
        let mut ep = ep;
        ep.url = ep.url.trim_end_matches('/').to_string();
        if !(ep.url.starts_with("http://") || is_https(&ep.url)) {
            return Err(ClientError::Other(format!(
                "bad daemon URL {:?}: expected http://host:port or https://host:port",
                ep.url
            )));
        }
        let mut b = builder(&ep)?;
        let mut pin = None;
        if let (true, Some(fp)) = (is_https(&ep.url), &ep.fingerprint) {
            let fp = normalize_pin(fp).ok_or_else(|| {
                ClientError::Other(format!(
                    "bad certificate fingerprint {fp:?}: expected 64 hex digits (SHA-256)"
                ))
            })?;
            ep.fingerprint = Some(fp.clone());
            let v = PinVerifier::pinned(fp);
            let cfg = tls::client_config(v.clone()).map_err(ClientError::Other)?;
            b = b.tls_backend_preconfigured(cfg);
            pin = Some(v);
        } else if !is_https(&ep.url) {
            // Plain HTTP never needs a certificate: a TLS config that accepts none (an
            // empty pin matches no certificate) spares every command from loading the
            // system's CA bundle (~150 files, most of a small request's time).
            let cfg = tls::client_config(PinVerifier::pinned(String::new()))
                .map_err(ClientError::Other)?;
            b = b.tls_backend_preconfigured(cfg);
        }
        let http = b
            .build()
            .map_err(|e| ClientError::Other(format!("HTTP client: {}", chain(&e))))?;
        Ok(Client { http, ep, pin })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// `base/v1/<route>/<encoded path>`; the root is `base/v1/<route>`.
    fn url(&self, route: &str, path: &str) -> String {
        let p = encode_path(path);
        if p.is_empty() {
            format!("{}/v1/{route}", self.ep.url)
        } else {
            format!("{}/v1/{route}/{p}", self.ep.url)
        }
    }

    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// Maps a transport error; a refused pinned certificate gets its own explanation.
    fn transport(&self, e: reqwest::Error) -> ClientError {
        if let Some(v) = &self.pin {
            if let (Some(seen), Some(pin)) = (v.seen(), v.pin()) {
                if seen != pin {
                    return ClientError::Connect {
                        url: self.ep.url.clone(),
                        msg: pin_changed(&self.ep.url, pin, &seen),
                    };
                }
            }
        }
        if e.is_connect() || e.is_timeout() || e.is_request() {
            ClientError::Connect {
                url: self.ep.url.clone(),
                msg: connect_msg(&e),
            }
        } else {
            ClientError::Other(chain(&e))
        }
    }

    /// Sends a request; a non-2xx answer becomes [`ClientError::Api`].
    async fn send(&self, req: RequestBuilder) -> Result<Response> {
        let res = req.send().await.map_err(|e| self.transport(e))?;
        if res.status().is_success() {
            Ok(res)
        } else {
            Err(api_error(res).await)
        }
    }

    async fn json<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T> {
        let res = self.send(req).await?;
        let body = res.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::Other(format!("unexpected answer from fvfsd: {e}")))
    }

    pub async fn stat(&self, path: &str) -> Result<Stat> {
        self.json(self.request(Method::GET, &self.url("meta", path)))
            .await
    }

    /// Every entry of a directory (follows `next` pages).
    pub async fn ls(&self, path: &str) -> Result<Listing> {
        let url = self.url("ls", path);
        let mut first: Listing = self.json(self.request(Method::GET, &url)).await?;
        let mut next = first.next.take();
        // Bounded: each page must advance the cursor.
        while let Some(after) = next {
            let page: Listing = self
                .json(
                    self.request(Method::GET, &url)
                        .query(&[("after", after.as_str())]),
                )
                .await?;
            next = page.next.filter(|n| *n != after);
            if page.entries.is_empty() {
                break;
            }
            first.entries.extend(page.entries);
        }
        Ok(first)
    }

    /// The bytes `[offset, offset+len)` (`len` None = to the end) as a stream. A range
    /// that starts at or past the end of the file gives an empty stream.
    pub async fn get(&self, path: &str, offset: u64, len: Option<u64>) -> Result<ByteStream> {
        if len == Some(0) {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let mut req = self.request(Method::GET, &self.url("files", path));
        let ranged = offset > 0 || len.is_some();
        if ranged {
            let range = match len {
                Some(n) => format!("bytes={offset}-{}", offset.saturating_add(n - 1)),
                None => format!("bytes={offset}-"),
            };
            req = req.header(RANGE, range);
        }
        let res = match req.send().await {
            Ok(r) => r,
            Err(e) => return Err(self.transport(e)),
        };
        let status = res.status();
        if ranged && status == StatusCode::RANGE_NOT_SATISFIABLE {
            return Ok(Box::pin(futures::stream::empty()));
        }
        if !status.is_success() {
            return Err(api_error(res).await);
        }
        // 206: the body starts at the range's first byte (checked); 200: the whole file.
        let skip = if status == StatusCode::PARTIAL_CONTENT {
            let start = res
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(content_range_start);
            if start != Some(offset) {
                return Err(ClientError::Other(format!(
                    "fvfsd answered a range request for offset {offset} with Content-Range \
                     starting at {start:?}"
                )));
            }
            0
        } else {
            offset
        };
        let body = res.bytes_stream().map_err(std::io::Error::other);
        Ok(window(Box::pin(body), skip, len))
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
        let mut req = self
            .request(Method::PUT, &self.url("files", path))
            .query(&create_query(opts))
            .body(reqwest::Body::wrap_stream(body));
        if let Some(n) = len {
            req = req.header(CONTENT_LENGTH, n);
        }
        if let Some(h) = blake3 {
            req = req.header(HEADER_BLAKE3, h);
        }
        self.json(req).await
    }

    pub async fn delete(&self, path: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, &self.url("files", path)))
            .await?;
        Ok(())
    }

    pub async fn mkdir(&self, path: &str, opts: &CreateRequest) -> Result<Stat> {
        self.json(
            self.request(Method::POST, &self.url("mkdir", path))
                .json(opts),
        )
        .await
    }

    pub async fn symlink(&self, path: &str, opts: &CreateRequest) -> Result<Stat> {
        self.json(
            self.request(Method::POST, &self.url("symlink", path))
                .json(opts),
        )
        .await
    }

    pub async fn rename(&self, req: &RenameRequest) -> Result<Stat> {
        let url = format!("{}/v1/rename", self.ep.url);
        self.json(self.request(Method::POST, &url).json(req)).await
    }

    /// A fifo, socket or device node (`POST /v1/mknod`).
    pub async fn mknod(&self, path: &str, req: &MknodRequest) -> Result<Stat> {
        self.json(
            self.request(Method::POST, &self.url("mknod", path))
                .json(req),
        )
        .await
    }

    /// A hard link: `req.to` becomes a new name of `req.from` (`POST /v1/link`).
    pub async fn link(&self, req: &LinkRequest) -> Result<Stat> {
        let url = format!("{}/v1/link", self.ep.url);
        self.json(self.request(Method::POST, &url).json(req)).await
    }

    pub async fn setattr(&self, path: &str, req: &SetAttrRequest) -> Result<Stat> {
        self.json(
            self.request(Method::PATCH, &self.url("meta", path))
                .json(req),
        )
        .await
    }

    pub async fn manifest(&self, path: &str) -> Result<Manifest> {
        self.json(self.request(Method::GET, &self.url("manifest", path)))
            .await
    }

    /// A block's plain bytes, verified against `id` (BLAKE3).
    pub async fn block(&self, id: &str) -> Result<Bytes> {
        let id = id.to_ascii_lowercase();
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ClientError::Other(format!(
                "bad block id {id:?}: expected 64 hex digits"
            )));
        }
        let res = self
            .send(self.request(Method::GET, &format!("{}/v1/blocks/{id}", self.ep.url)))
            .await?;
        let bytes = res.bytes().await.map_err(|e| self.transport(e))?;
        verify_block(&id, bytes)
    }

    pub async fn status(&self) -> Result<Status> {
        let url = format!("{}/v1/status", self.ep.url);
        self.json(self.request(Method::GET, &url)).await
    }

    pub async fn devices(&self) -> Result<Devices> {
        let url = format!("{}/v1/devices", self.ep.url);
        self.json(self.request(Method::GET, &url)).await
    }

    pub async fn wal(&self, limit: usize) -> Result<Wal> {
        let url = format!("{}/v1/admin/wal", self.ep.url);
        self.json(self.request(Method::GET, &url).query(&[("limit", limit)]))
            .await
    }

    pub async fn evict(&self, tier: Option<&str>) -> Result<EvictResult> {
        let url = format!("{}/v1/admin/evict", self.ep.url);
        let mut req = self.request(Method::POST, &url);
        if let Some(t) = tier {
            req = req.query(&[("tier", t)]);
        }
        self.json(req).await
    }

    pub async fn flush(&self) -> Result<FlushResult> {
        let url = format!("{}/v1/admin/flush", self.ep.url);
        self.json(self.request(Method::POST, &url)).await
    }
}

/// The query of `PUT /v1/files/{path}` from a [`CreateRequest`] (the fields it has).
fn create_query(opts: &CreateRequest) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(m) = opts.mode {
        q.push(("mode", m.to_string()));
    }
    if let Some(u) = opts.uid {
        q.push(("uid", u.to_string()));
    }
    if let Some(g) = opts.gid {
        q.push(("gid", g.to_string()));
    }
    if opts.parents == Some(true) {
        q.push(("parents", "true".to_string()));
    }
    q
}

/// `bytes a-b/size` → a.
fn content_range_start(v: &str) -> Option<u64> {
    let r = v.trim().strip_prefix("bytes")?.trim_start();
    r.split('-').next()?.trim().parse().ok()
}

/// Returns `bytes` if they hash to `id` (lowercase hex), else an error (never the bytes).
pub fn verify_block(id: &str, bytes: Bytes) -> Result<Bytes> {
    let got = blake3::hash(&bytes).to_hex();
    if got.as_str() == id {
        Ok(bytes)
    } else {
        Err(ClientError::Other(format!(
            "block {id} from fvfsd hashes to {got}: corrupt or tampered in transit, discarded"
        )))
    }
}

/// The part of a stream after its first `skip` bytes, at most `len` bytes long.
pub fn window(inner: ByteStream, skip: u64, len: Option<u64>) -> ByteStream {
    let state = (inner, skip, len.unwrap_or(u64::MAX));
    Box::pin(futures::stream::unfold(
        state,
        |(mut inner, mut skip, mut left)| async move {
            loop {
                if left == 0 {
                    return None;
                }
                let mut chunk = match inner.next().await? {
                    Ok(c) => c,
                    Err(e) => return Some((Err(e), (inner, 0, 0))),
                };
                if skip > 0 {
                    let n = skip.min(chunk.len() as u64);
                    skip -= n;
                    chunk = chunk.slice(n as usize..);
                }
                if chunk.is_empty() {
                    continue;
                }
                if (chunk.len() as u64) > left {
                    chunk.truncate(left as usize);
                }
                left -= chunk.len() as u64;
                return Some((Ok(chunk), (inner, skip, left)));
            }
        },
    ))
}

/// Turns a non-2xx response into [`ClientError::Api`], from our JSON error body when it is
/// one, else from the status and the start of the body.
async fn api_error(res: Response) -> ClientError {
    let status = res.status();
    let body = res.bytes().await.unwrap_or_default();
    if let Ok(b) = serde_json::from_slice::<ErrorBody>(&body) {
        return ClientError::Api {
            status: status.as_u16(),
            code: b.error.code,
            message: b.error.message,
        };
    }
    let text = String::from_utf8_lossy(&body);
    let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    let reason = status.canonical_reason().unwrap_or("error");
    let message = if text.trim().is_empty() {
        format!(
            "HTTP {} {reason} (no error body; is this an fvfsd?)",
            status.as_u16()
        )
    } else {
        format!(
            "HTTP {} {reason} (not an fvfsd error body; is this an fvfsd?): {}",
            status.as_u16(),
            text.trim()
        )
    };
    ClientError::Api {
        status: status.as_u16(),
        code: ErrorCode::for_status(status.as_u16()),
        message,
    }
}

#[cfg(test)]
mod tests;
