//! Bearer tokens: the token file (mode 0600, only hashes of secrets) and the layer that
//! admits a request. OWNER: helper H2 — replace the stubs.

use std::path::{Path, PathBuf};

/// One token as listed (never the secret).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TokenInfo {
    /// Short id (first 8 hex digits of the secret's hash): what `revoke` takes, with the name.
    pub id: String,
    pub name: String,
    pub read_only: bool,
    pub created_unix: i64,
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
}

/// The token file. Re-reads the file when it changes, so `fvfsd token revoke` takes effect
/// on the running daemon at its next request.
pub struct TokenStore {
    pub path: PathBuf,
}

impl TokenStore {
    pub fn open(path: &Path) -> Result<TokenStore, AuthError> {
        let _ = path;
        todo!()
    }
    /// Creates a token; returns it with its secret (shown once).
    pub fn create(&self, name: &str, read_only: bool) -> Result<(TokenInfo, String), AuthError> {
        let _ = (name, read_only);
        todo!()
    }
    pub fn list(&self) -> Result<Vec<TokenInfo>, AuthError> {
        todo!()
    }
    pub fn revoke(&self, name_or_id: &str) -> Result<TokenInfo, AuthError> {
        let _ = name_or_id;
        todo!()
    }
    /// The token a bearer secret belongs to, if it is valid now.
    pub fn verify(&self, secret: &str) -> Option<TokenInfo> {
        let _ = secret;
        todo!()
    }
    /// True if at least one token exists (the daemon then binds all interfaces by default).
    pub fn any(&self) -> bool {
        todo!()
    }
}
