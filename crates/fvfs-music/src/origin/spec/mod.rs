//! [`OriginSpec`]: what an origin is (id, kind and location, priority, health check
//! interval), parsed from a config table ([`OriginSpec::from_fields`]) or a one-line
//! string ([`OriginSpec::parse`]), both through the one validation of `from_fields`.
//!
//! Config table keys (`kind` may also be spelt `type`):
//! - every kind: `id` (1–32 of `a-z 0-9 _ -`, starting with a letter or digit), `kind`,
//!   `priority` (lower is preferred; default [`DEFAULT_PRIORITY`]), `check_interval`
//!   (`30s`, `500ms`, `2m`, `1h` or plain seconds; default 30 s);
//! - `fs` (also `local`, `nfs`): `path`, absolute;
//! - `s3`: `bucket`, `prefix`, `endpoint` (`http(s)://host[:port]`, for non-AWS
//!   services), `region` (default `us-east-1`), `path_style` (default true),
//!   `access_key_id` + `secret_access_key` (+ `session_token`); without keys the AWS
//!   chain is used (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profile, instance);
//! - `sftp`: `host`, `port` (22), `user`, `key_file` (absolute), `root` (absolute),
//!   `known_hosts` (`strict` default, `add`, `accept`);
//! - `webdav`: `url` (`http(s)://host[:port]/path`), `user`, `password` or
//!   `password_env` (the name of an environment variable read when the origin opens).
//!
//! One-line form: `ID=LOCATION` with LOCATION `/abs/dir` (no options), `file:///abs/dir`,
//! `s3://bucket/prefix`, `sftp://[user@]host[:port]/root`, `webdav://[user@]host[:port]/path`
//! (`webdavs://` for https), options as `?key=value&…` query pairs.
//!
//! Here: the types and the common fields; `kinds`: the kind-specific fields; `line`:
//! the one-line form and the display.
//!
//! Invariants: a spec that parses is complete (every required field, consistent
//! credentials) but says nothing of reachability (that is the health check's); secrets
//! are accepted from a config table only, never from a one-line string, and are shown
//! by neither `Debug` nor [`OriginSpec::display`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::error::OriginError;

mod kinds;
mod line;

use kinds::{s3, sftp, webdav, Fields};

/// Priority of an origin whose spec names none. Lower is preferred.
pub const DEFAULT_PRIORITY: u32 = 100;
/// Health check interval of an origin whose spec names none (the seed's 30 s).
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// S3 region used when none is named.
pub const DEFAULT_REGION: &str = "us-east-1";

/// A secret string: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Explicit S3 keys from a config table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Keys {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// How the SSH client treats the server's host key (OpenSSH `StrictHostKeyChecking`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KnownHosts {
    /// The key must already be in `~/.ssh/known_hosts`.
    Strict,
    /// Unknown keys are added, changed keys refused.
    Add,
    /// Any key is accepted (and added): tests and trusted networks only.
    Accept,
}

impl KnownHosts {
    fn name(self) -> &'static str {
        match self {
            KnownHosts::Strict => "strict",
            KnownHosts::Add => "add",
            KnownHosts::Accept => "accept",
        }
    }
}

/// Where an origin's files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginLocation {
    /// A local or mounted (NFS, SMB) directory.
    Fs { root: PathBuf },
    /// An S3-compatible bucket, files under `prefix` (no leading or trailing `/`).
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        region: String,
        path_style: bool,
        keys: Option<S3Keys>,
    },
    /// A directory on an SFTP server; `root` is absolute.
    Sftp {
        host: String,
        port: u16,
        user: Option<String>,
        key_file: Option<PathBuf>,
        root: String,
        known_hosts: KnownHosts,
    },
    /// A WebDAV share: `endpoint` is `http(s)://host[:port]`, `root` starts with `/`.
    WebDav {
        endpoint: String,
        root: String,
        user: Option<String>,
        password: Option<Secret>,
        password_env: Option<String>,
    },
}

/// One origin's description. See the module docs for the syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginSpec {
    pub id: String,
    pub location: OriginLocation,
    /// Lower is preferred; ties keep the caller's candidate order.
    pub priority: u32,
    pub check_interval: Duration,
}

fn spec_err(msg: String) -> OriginError {
    OriginError::Spec(msg)
}

/// The keys a config table may hold, per kind, after the common ones.
const COMMON: [&str; 4] = ["id", "kind", "priority", "check_interval"];
const FS_KEYS: [&str; 1] = ["path"];
const S3_KEYS: [&str; 8] = [
    "bucket",
    "prefix",
    "endpoint",
    "region",
    "path_style",
    "access_key_id",
    "secret_access_key",
    "session_token",
];
const SFTP_KEYS: [&str; 6] = ["host", "port", "user", "key_file", "root", "known_hosts"];
const WEBDAV_KEYS: [&str; 4] = ["url", "user", "password", "password_env"];
/// Keys refused in a one-line string (it ends up in logs, shell history, `ps`).
const SECRET_KEYS: [&str; 4] = [
    "secret_access_key",
    "session_token",
    "password",
    "access_key_id",
];

fn check_id(id: &str) -> Result<(), OriginError> {
    let ok = (1..=32).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(spec_err(format!(
            "origin id {id:?} must be 1 to 32 of a-z, 0-9, _ and -, starting with a letter or digit"
        )))
    }
}

/// Parses `30s`, `500ms`, `2m`, `1h` or plain seconds; zero is refused.
pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..split].parse().ok()?;
    let d = match &v[split..] {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl OriginSpec {
    /// Builds a spec from a config table (`[[origins]]` keys, see the module docs).
    /// Unknown keys and keys of another kind are errors; empty values count as absent.
    pub fn from_fields<I, K, V>(fields: I) -> Result<OriginSpec, OriginError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut map = BTreeMap::new();
        for (k, v) in fields {
            let k = match k.as_ref() {
                "type" => "kind",
                k => k,
            };
            if map.insert(k.to_string(), v.as_ref().to_string()).is_some() {
                return Err(spec_err(format!("origin field {k:?} is given twice")));
            }
        }
        let id = map.remove("id").unwrap_or_default();
        check_id(&id)?;
        let mut f = Fields {
            map,
            id: id.clone(),
        };
        let Some(kind) = f.take("kind") else {
            return Err(spec_err(format!(
                "origin {id:?} has no kind (fs, s3, sftp or webdav)"
            )));
        };
        let priority = match f.take("priority") {
            None => DEFAULT_PRIORITY,
            Some(p) => p.parse().map_err(|_| {
                spec_err(format!(
                    "origin {id:?}: priority {p:?} is not a whole number (lower is preferred)"
                ))
            })?,
        };
        let check_interval = match f.take("check_interval") {
            None => DEFAULT_CHECK_INTERVAL,
            Some(v) => parse_duration(&v).ok_or_else(|| {
                spec_err(format!(
                    "origin {id:?}: check_interval {v:?} is not a duration like 30s, 500ms, 2m"
                ))
            })?,
        };
        let (location, known): (OriginLocation, &[&str]) = match kind.as_str() {
            "fs" | "local" | "nfs" => {
                let path = f.need("path", "fs")?;
                let root = PathBuf::from(f.absolute("path", path)?);
                (OriginLocation::Fs { root }, &FS_KEYS)
            }
            "s3" => (s3(&mut f)?, &S3_KEYS),
            "sftp" => (sftp(&mut f)?, &SFTP_KEYS),
            "webdav" => (webdav(&mut f)?, &WEBDAV_KEYS),
            other => {
                return Err(spec_err(format!(
                    "origin {id:?} has an unknown kind {other:?} (known: fs, s3, sftp, webdav)"
                )))
            }
        };
        if let Some(k) = f.map.keys().next() {
            let mut all: Vec<&str> = COMMON.to_vec();
            all.extend_from_slice(known);
            return Err(spec_err(format!(
                "origin {id:?}: unknown field {k:?} for a {kind} origin (known: {})",
                all.join(", ")
            )));
        }
        Ok(OriginSpec {
            id,
            location,
            priority,
            check_interval,
        })
    }
}

#[cfg(test)]
mod tests;
