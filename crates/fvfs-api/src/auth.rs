//! Bearer tokens: the token file and the layer that admits a request.
//!
//! Invariants: the token file (`<state dir>/tokens.json`, mode 0600) holds only the BLAKE3
//! hash of each secret, never the secret; it is replaced atomically (temp file + rename,
//! under an advisory lock beside it), so a reader sees the old or the new list, and every
//! change gives it a new inode, which is how a running daemon notices `fvfsd token revoke`
//! at its next request. Secrets are compared by hash in constant time. Over TCP a request
//! passes only with a valid token, and a read-only token only with GET or HEAD; the Unix
//! control socket is guarded by its file mode and its callers are [`Caller::Local`].
//!
//! Identities: each token maps to one uid:gid (the routes act as that identity, see
//! `routes::Who`) and may be an admin token (it may set any owner). Entries written
//! before identities existed load with defaults: no uid/gid (the routes then use the
//! owner of the filesystem's root directory) and admin only for the entry named `admin`
//! (the one `format` made). A bearer secret that matches no token (or is not a Bearer
//! credential) is a failed login: counted in `fvfs_api_auth_failures_total` and logged at
//! WARN with the peer address, at most one line per peer per [`FAIL_LOG_WINDOW`] (with
//! the number of lines suppressed since); a request without `Authorization` is refused
//! the same way but is no login attempt.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fvfs_types::api::{ErrorBody, ErrorCode, ErrorDetail, HEADER_DEVICE};
use parking_lot::Mutex;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Prefix of every secret (helps secret scanners and users recognise one).
pub const SECRET_PREFIX: &str = "fvfs_";

/// One token as listed (never the secret).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenInfo {
    /// Short id (first 8 hex digits of the secret's hash): what `revoke` takes, with the name.
    pub id: String,
    pub name: String,
    pub read_only: bool,
    pub created_unix: i64,
    /// The identity the daemon acts as for this token; `None` (entries older than
    /// identities): the owner of the filesystem's root directory.
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
    /// May set another owner (and make devices and set-id files when the daemon allows).
    #[serde(default)]
    pub admin: bool,
}

/// What a new token is allowed and who it acts as.
#[derive(Clone, Copy, Debug, Default)]
pub struct NewToken {
    pub read_only: bool,
    pub admin: bool,
    /// The identity (uid, gid); `None` = the owner of the root directory at each request.
    pub identity: Option<(u32, u32)>,
}

/// Who is calling: inserted as a request extension by the server before the routes run.
#[derive(Clone, Debug)]
pub enum Caller {
    /// Over the Unix control socket.
    Local,
    Token(TokenInfo),
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("token file {path} is corrupt: {msg}")]
    Corrupt { path: PathBuf, msg: String },
    #[error("no token named or numbered {0:?}")]
    NoSuchToken(String),
    #[error("a token named {0:?} exists already")]
    Exists(String),
    #[error("invalid token name {0:?}: use 1 to 64 letters, digits, '.', '_' or '-'")]
    InvalidName(String),
}

/// One entry of the token file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    name: String,
    read_only: bool,
    created_unix: i64,
    /// BLAKE3 of the secret, hex.
    blake3: String,
    /// Absent in entries older than identities (see the module doc for the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    admin: Option<bool>,
}

impl Entry {
    fn info(&self) -> TokenInfo {
        TokenInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            read_only: self.read_only,
            created_unix: self.created_unix,
            uid: self.uid,
            gid: self.gid,
            // The `admin` entry `format` made before admin flags existed stays admin.
            admin: self.admin.unwrap_or(self.name == "admin"),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    tokens: Vec<Entry>,
}

/// What identifies one version of the file: a rename gives a new inode.
type Stamp = (u64, u64, u64, i64, i64);

fn stamp(m: &std::fs::Metadata) -> Stamp {
    (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec())
}

/// The parsed file and the version it was read from.
struct Cache {
    stamp: Option<Stamp>,
    /// (hash, info) of each valid token.
    entries: Vec<(blake3::Hash, TokenInfo)>,
}

/// The token file. Re-reads the file when it changes, so `fvfsd token revoke` takes effect
/// on the running daemon at its next request.
pub struct TokenStore {
    pub path: PathBuf,
    cache: Mutex<Cache>,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A new secret: the prefix and 40 hex digits (160 bits from the OS-seeded CSPRNG).
fn new_secret() -> String {
    let mut b = [0u8; 20];
    rand::rng().fill_bytes(&mut b);
    format!("{SECRET_PREFIX}{}", hex::encode(b))
}

/// Writes `bytes` to `path` atomically (temp file in the same directory, fsync, rename),
/// with mode 0600 from the start.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut rnd = [0u8; 6];
    rand::rng().fill_bytes(&mut rnd);
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(rnd)));
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The mode given at creation is filtered by the umask; 0600 must hold regardless.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

impl TokenStore {
    /// Opens the token file, creating an empty one (mode 0600) if there is none. The
    /// directory must exist.
    pub fn open(path: &Path) -> Result<TokenStore, AuthError> {
        let store = TokenStore {
            path: path.to_path_buf(),
            cache: Mutex::new(Cache {
                stamp: None,
                entries: Vec::new(),
            }),
        };
        if !path.exists() {
            let _lock = store.lock()?;
            if !path.exists() {
                store.write(&TokenFile::default())?;
            }
        }
        store.refresh()?;
        Ok(store)
    }

    fn io(&self, source: std::io::Error) -> AuthError {
        AuthError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Serialises writers (`fvfsd token` commands) with an advisory lock beside the file.
    fn lock(&self) -> Result<std::fs::File, AuthError> {
        let lp = PathBuf::from(format!("{}.lock", self.path.display()));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lp)
            .map_err(|e| self.io(e))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor we own; released when the file is dropped.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(self.io(std::io::Error::last_os_error()));
        }
        Ok(f)
    }

    fn read(&self) -> Result<(TokenFile, Option<Stamp>), AuthError> {
        let f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((TokenFile::default(), None))
            }
            Err(e) => return Err(self.io(e)),
        };
        let st = stamp(&f.metadata().map_err(|e| self.io(e))?);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut &f, &mut text).map_err(|e| self.io(e))?;
        let file: TokenFile = serde_json::from_str(&text).map_err(|e| AuthError::Corrupt {
            path: self.path.clone(),
            msg: e.to_string(),
        })?;
        Ok((file, Some(st)))
    }

    fn write(&self, file: &TokenFile) -> Result<(), AuthError> {
        let mut text = serde_json::to_vec_pretty(file).map_err(|e| AuthError::Corrupt {
            path: self.path.clone(),
            msg: e.to_string(),
        })?;
        text.push(b'\n');
        write_private(&self.path, &text).map_err(|e| self.io(e))
    }

    /// Re-reads the file if it changed since the last read.
    fn refresh(&self) -> Result<(), AuthError> {
        let now = match std::fs::metadata(&self.path) {
            Ok(m) => Some(stamp(&m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.io(e)),
        };
        let mut cache = self.cache.lock();
        if now.is_some() && cache.stamp == now {
            return Ok(());
        }
        let (file, st) = self.read()?;
        let mut entries = Vec::with_capacity(file.tokens.len());
        for e in &file.tokens {
            let h = blake3::Hash::from_hex(&e.blake3).map_err(|_| AuthError::Corrupt {
                path: self.path.clone(),
                msg: format!("token {:?} has an invalid hash", e.name),
            })?;
            entries.push((h, e.info()));
        }
        cache.entries = entries;
        cache.stamp = st;
        Ok(())
    }

    /// Creates a token; returns it with its secret (shown once).
    pub fn create(&self, name: &str, new: NewToken) -> Result<(TokenInfo, String), AuthError> {
        if !valid_name(name) {
            return Err(AuthError::InvalidName(name.to_string()));
        }
        let _lock = self.lock()?;
        let (mut file, _) = self.read()?;
        if file.tokens.iter().any(|e| e.name == name) {
            return Err(AuthError::Exists(name.to_string()));
        }
        let (secret, hash) = loop {
            let s = new_secret();
            let h = blake3::hash(s.as_bytes()).to_hex().to_string();
            // Ids are short: a collision is unlikely, and refused so `revoke ID` stays exact.
            if !file.tokens.iter().any(|e| h.starts_with(&e.id)) {
                break (s, h);
            }
        };
        let entry = Entry {
            id: hash[..8].to_string(),
            name: name.to_string(),
            read_only: new.read_only,
            created_unix: now_unix(),
            blake3: hash,
            uid: new.identity.map(|i| i.0),
            gid: new.identity.map(|i| i.1),
            admin: Some(new.admin),
        };
        let info = entry.info();
        file.tokens.push(entry);
        self.write(&file)?;
        Ok((info, secret))
    }

    pub fn list(&self) -> Result<Vec<TokenInfo>, AuthError> {
        let (file, _) = self.read()?;
        Ok(file.tokens.iter().map(Entry::info).collect())
    }

    /// Removes the token with this name or id.
    pub fn revoke(&self, name_or_id: &str) -> Result<TokenInfo, AuthError> {
        let _lock = self.lock()?;
        let (mut file, _) = self.read()?;
        let pos = file
            .tokens
            .iter()
            .position(|e| e.name == name_or_id)
            .or_else(|| file.tokens.iter().position(|e| e.id == name_or_id))
            .ok_or_else(|| AuthError::NoSuchToken(name_or_id.to_string()))?;
        let gone = file.tokens.remove(pos);
        self.write(&file)?;
        Ok(gone.info())
    }

    /// The token a bearer secret belongs to, if it is valid now. An unreadable file admits
    /// nobody (and is logged: the daemon's operator must fix it).
    pub fn verify(&self, secret: &str) -> Option<TokenInfo> {
        if let Err(e) = self.refresh() {
            tracing::error!(error = %e, "cannot read the token file; refusing every token");
            let mut cache = self.cache.lock();
            cache.entries.clear();
            cache.stamp = None;
            return None;
        }
        let h = blake3::hash(secret.as_bytes());
        let cache = self.cache.lock();
        let mut found = None;
        // blake3::Hash equality is constant-time; every entry is compared.
        for (eh, info) in &cache.entries {
            if *eh == h && found.is_none() {
                found = Some(info.clone());
            }
        }
        found
    }

    /// True if at least one token exists (the daemon then binds all interfaces by default).
    pub fn any(&self) -> bool {
        self.list().map(|l| !l.is_empty()).unwrap_or(false)
    }
}

/// How a listener admits requests.
#[derive(Clone)]
pub enum Access {
    /// TCP: a bearer token from this store.
    Tokens(Arc<TokenStore>),
    /// The Unix control socket: everyone who can open it (its mode is 0600).
    Local,
}

/// Records each admitted request: (device name, address, token name, user agent).
pub type SeenFn = Arc<dyn Fn(&str, &str, &str, Option<&str>) + Send + Sync>;

#[derive(Clone)]
struct Guard {
    access: Access,
    seen: Option<SeenFn>,
    failures: Arc<FailedLogins>,
}

/// Wraps `app` so every request is admitted by `access` first (see the module invariants);
/// `seen` is told of each admitted request (for `GET /v1/devices`).
pub fn guard(app: axum::Router, access: Access, seen: Option<SeenFn>) -> axum::Router {
    app.layer(axum::middleware::from_fn_with_state(
        Guard {
            access,
            seen,
            failures: Arc::new(FailedLogins::default()),
        },
        admit,
    ))
}

/// A failed login is logged at most once per peer within this window.
pub const FAIL_LOG_WINDOW: Duration = Duration::from_secs(60);
/// Peers whose failed logins are remembered; beyond, they share one entry.
const FAIL_PEERS: usize = 1024;

/// Rate limit of the failed-login log (see the module doc).
#[derive(Default)]
struct FailedLogins {
    /// Per peer (`None`: the shared entry): when its last line was logged and how many
    /// failures were not logged since.
    peers: Mutex<HashMap<Option<IpAddr>, (Instant, u64)>>,
}

impl FailedLogins {
    /// Records a failure of `peer` at `now`: `Some(suppressed)` if a line is to be
    /// logged (with the failures not logged since the last one), `None` to stay quiet.
    fn record(&self, peer: Option<IpAddr>, now: Instant) -> Option<u64> {
        let mut peers = self.peers.lock();
        if !peers.contains_key(&peer) && peers.len() >= FAIL_PEERS {
            peers.retain(|_, (at, _)| now.duration_since(*at) < FAIL_LOG_WINDOW);
        }
        let key = if peers.contains_key(&peer) || peers.len() < FAIL_PEERS {
            peer
        } else {
            None
        };
        match peers.get_mut(&key) {
            Some((at, quiet)) if now.duration_since(*at) < FAIL_LOG_WINDOW => {
                *quiet += 1;
                None
            }
            Some((at, quiet)) => {
                let n = *quiet;
                *at = now;
                *quiet = 0;
                Some(n)
            }
            None => {
                peers.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

/// Counts and (rate-limited) logs a failed login from the request's peer.
fn failed_login(g: &Guard, req: &Request, why: &str) {
    metrics::counter!("fvfs_api_auth_failures_total").increment(1);
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Some(suppressed) = g.failures.record(peer.map(|p| p.ip()), Instant::now()) {
        let peer = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
        tracing::warn!(
            peer = %peer,
            reason = why,
            suppressed,
            "failed login (lines from this peer are limited to one a minute; `suppressed` counts those not logged since the last)"
        );
    }
}

/// An error response with the wire body of every API error.
pub fn error_response(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message: message.to_string(),
        },
    };
    (status, axum::Json(body)).into_response()
}

fn unauthorized(message: &str) -> Response {
    let mut r = error_response(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message);
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|s| !s.is_empty())
}

async fn admit(State(g): State<Guard>, mut req: Request, next: Next) -> Response {
    let caller = match &g.access {
        Access::Local => Caller::Local,
        Access::Tokens(store) => {
            let Some(secret) = bearer(&req) else {
                if req.headers().contains_key(header::AUTHORIZATION) {
                    failed_login(&g, &req, "not a bearer token");
                }
                return unauthorized("this API needs `Authorization: Bearer <token>`");
            };
            let Some(info) = store.verify(secret) else {
                failed_login(&g, &req, "invalid or revoked token");
                return unauthorized("invalid or revoked token");
            };
            if info.read_only && req.method() != Method::GET && req.method() != Method::HEAD {
                return error_response(
                    StatusCode::FORBIDDEN,
                    ErrorCode::Forbidden,
                    "this token is read-only: GET and HEAD only",
                );
            }
            Caller::Token(info)
        }
    };
    if let Some(seen) = &g.seen {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "local".to_string());
        let hdr = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let device = hdr(HEADER_DEVICE)
            .filter(|d| !d.is_empty() && d.len() <= 255)
            .unwrap_or_else(|| peer.clone());
        let ua = hdr(header::USER_AGENT.as_str());
        let token = match &caller {
            Caller::Local => "local",
            Caller::Token(t) => t.name.as_str(),
        };
        seen(&device, &peer, token, ua.as_deref());
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
