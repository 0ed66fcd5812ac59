//! The client's stored state and how it finds the daemon: `config.toml` (the login: url
//! and token) and `known_hosts.toml` (`"host:port" = "<sha-256 hex>"`, the TLS pins) in
//! the config directory, and the resolution of the [`Endpoint`] from flags, environment,
//! login, mDNS and the default.
//!
//! Invariants: the config directory is 0700 and both files are written 0600, atomically
//! (temporary file + rename), because `config.toml` holds a bearer token. Resolution
//! order: URL = `--url` > `FVFSD_URL` > `VFSD_URL` > login > mDNS > `http://localhost:7734`;
//! token = `--token` > `FVFS_TOKEN` > login; pin = `known_hosts.toml` > mDNS TXT `fp` >
//! first use (recorded, stored and announced on stderr). A stored pin is never replaced
//! silently: only [`trust_on_first_use`] with `replace` (from `fvfsc login`) does that.

use crate::client::{host_port, normalize_pin, probe_fingerprint, ClientError, Endpoint, Result};
use crate::discover::{discover, Discovered};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default endpoint when nothing else names one.
pub const DEFAULT_URL: &str = "http://localhost:7734";
/// How long to browse mDNS when resolving (overridden by `FVFSC_DISCOVERY_TIMEOUT`).
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// `config.toml`: the stored login. Its `Debug` output hides the token.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Login {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `known_hosts.toml`: `"host:port" = "<fingerprint>"`.
pub type KnownHosts = BTreeMap<String, String>;

/// The config directory: `$FVFSC_CONFIG_DIR`, else `$XDG_CONFIG_HOME/fvfsc`, else
/// `$HOME/.config/fvfsc`.
pub fn config_dir() -> Result<PathBuf> {
    config_dir_from(&|k| std::env::var(k).ok())
}

fn config_dir_from(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(d) = set("FVFSC_CONFIG_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = set("XDG_CONFIG_HOME") {
        return Ok(Path::new(&d).join("fvfsc"));
    }
    match set("HOME") {
        Some(h) => Ok(Path::new(&h).join(".config").join("fvfsc")),
        None => Err(ClientError::Other(
            "cannot find the config directory: set HOME, XDG_CONFIG_HOME or FVFSC_CONFIG_DIR"
                .into(),
        )),
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> ClientError {
    ClientError::Other(format!("{what} {}: {e}", path.display()))
}

/// Reads a TOML file; a missing file is the default value.
fn read_toml<T: Default + serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    match std::fs::read_to_string(path) {
        Ok(s) => toml::from_str(&s)
            .map_err(|e| ClientError::Other(format!("cannot parse {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(io_err("cannot read", path, e)),
    }
}

/// Writes `text` to `dir/name` with mode 0600, creating `dir` with mode 0700.
fn write_private(dir: &Path, name: &str, text: &str) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_err("cannot create", dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io_err("cannot chmod", dir, e))?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    // A stale temporary file may have another mode: start afresh.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err("cannot create", &tmp, e))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| io_err("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_err("cannot rename to", &path, e))
}

/// The stored login (empty when there is none).
pub fn load_login(dir: &Path) -> Result<Login> {
    read_toml(&dir.join("config.toml"))
}

pub fn save_login(dir: &Path, login: &Login) -> Result<()> {
    let text = toml::to_string(login)
        .map_err(|e| ClientError::Other(format!("cannot encode the login: {e}")))?;
    write_private(dir, "config.toml", &text)
}

pub fn load_known_hosts(dir: &Path) -> Result<KnownHosts> {
    read_toml(&dir.join("known_hosts.toml"))
}

/// Stores `fp` as the pin of `host_port`.
pub fn save_pin(dir: &Path, host_port: &str, fp: &str) -> Result<()> {
    let mut hosts = load_known_hosts(dir)?;
    hosts.insert(host_port.to_string(), fp.to_string());
    let text = toml::to_string(&hosts)
        .map_err(|e| ClientError::Other(format!("cannot encode known hosts: {e}")))?;
    write_private(dir, "known_hosts.toml", &text)
}

/// The pin stored for a URL's `host:port`.
pub fn stored_pin(dir: &Path, url: &str) -> Result<Option<String>> {
    let Some(hp) = host_port(url) else {
        return Ok(None);
    };
    Ok(load_known_hosts(dir)?
        .get(&hp)
        .and_then(|fp| normalize_pin(fp)))
}

/// Where the URL of a resolved endpoint came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env(&'static str),
    Login,
    Discovered,
    Default,
}

/// What the command line gave.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub url: Option<String>,
    pub token: Option<String>,
}

/// The URL (and its origin) named without discovery: flag > `FVFSD_URL` > `VFSD_URL` >
/// login. None = browse mDNS, then the default.
pub fn explicit_url(
    o: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
    login: &Login,
) -> Option<(String, Origin)> {
    let set = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    if let Some(u) = set(o.url.clone()) {
        return Some((u, Origin::Flag));
    }
    for k in ["FVFSD_URL", "VFSD_URL"] {
        if let Some(u) = set(env(k)) {
            return Some((u, Origin::Env(k)));
        }
    }
    set(login.url.clone()).map(|u| (u, Origin::Login))
}

/// `host:port` → `http://host:port`; a URL keeps its scheme; no trailing slash.
pub fn normalize_url(u: &str) -> String {
    let u = u.trim().trim_end_matches('/');
    if u.contains("://") {
        u.to_string()
    } else {
        format!("http://{u}")
    }
}

/// The token: flag > `FVFS_TOKEN` > login.
pub fn resolve_token(
    o: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
    login: &Login,
) -> Option<String> {
    let set = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    set(o.token.clone())
        .or_else(|| set(env("FVFS_TOKEN")))
        .or_else(|| set(login.token.clone()))
}

/// The mDNS browse time: `FVFSC_DISCOVERY_TIMEOUT` seconds, else 10 s.
pub fn discovery_timeout(env: &dyn Fn(&str) -> Option<String>) -> Duration {
    env("FVFSC_DISCOVERY_TIMEOUT")
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DISCOVERY_TIMEOUT)
}

/// A resolved endpoint and where its URL came from.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub endpoint: Endpoint,
    pub origin: Origin,
    /// The daemon found over mDNS, when the URL came from there.
    pub discovered: Option<Discovered>,
}

/// Resolves the endpoint from the process environment and the config directory. An https
/// endpoint always gets a pin (stored, announced, or learnt now on first use).
pub async fn resolve(o: &Overrides) -> Result<Resolved> {
    let dir = config_dir()?;
    let env = |k: &str| std::env::var(k).ok();
    let login = load_login(&dir)?;
    let token = resolve_token(o, &env, &login);
    let (url, origin, discovered) = match explicit_url(o, &env, &login) {
        Some((u, origin)) => (u, origin, None),
        None => match discover(discovery_timeout(&env)).await {
            Ok(Some(d)) => (d.url.clone(), Origin::Discovered, Some(d)),
            Ok(None) => (DEFAULT_URL.to_string(), Origin::Default, None),
            Err(e) => {
                tracing::debug!("mDNS discovery failed: {e}");
                (DEFAULT_URL.to_string(), Origin::Default, None)
            }
        },
    };
    let url = normalize_url(&url);
    let announced = discovered
        .as_ref()
        .and_then(|d| d.fingerprint.as_deref())
        .and_then(normalize_pin);
    let fingerprint = pin_for(&dir, &url, announced, false).await?;
    Ok(Resolved {
        endpoint: Endpoint {
            url,
            token,
            fingerprint,
        },
        origin,
        discovered,
    })
}

/// The pin to use for `url`: None for http; for https the stored pin, else `announced`
/// (from mDNS), else the certificate seen now (first use), stored in `known_hosts.toml`.
/// With `replace` (login) the stored pin is ignored and overwritten.
pub async fn pin_for(
    dir: &Path,
    url: &str,
    announced: Option<String>,
    replace: bool,
) -> Result<Option<String>> {
    if !url
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
    {
        return Ok(None);
    }
    if !replace {
        if let Some(fp) = stored_pin(dir, url)? {
            return Ok(Some(fp));
        }
    }
    trust_on_first_use(dir, url, announced, replace)
        .await
        .map(Some)
}

/// Learns the certificate of `url` (or takes `announced`), stores it as the pin of its
/// `host:port` and says so on stderr. `replace` overwrites a different stored pin.
pub async fn trust_on_first_use(
    dir: &Path,
    url: &str,
    announced: Option<String>,
    replace: bool,
) -> Result<String> {
    let hp = host_port(url)
        .ok_or_else(|| ClientError::Other(format!("bad daemon URL {url:?}: no host")))?;
    let fp = match announced {
        Some(fp) => fp,
        None => probe_fingerprint(url).await?,
    };
    let old = load_known_hosts(dir)?.get(&hp).cloned();
    match old {
        Some(old) if old == fp => {}
        Some(old) if !replace => {
            return Err(ClientError::Other(format!(
                "the TLS certificate of {hp} changed: expected SHA-256 {old}, saw {fp}; if \
                 the daemon's certificate was replaced on purpose, run `fvfsc login {url}` again"
            )))
        }
        Some(old) => {
            save_pin(dir, &hp, &fp)?;
            eprintln!("replaced pinned certificate {old} by {fp} for {hp}");
        }
        None => {
            save_pin(dir, &hp, &fp)?;
            eprintln!("pinned certificate {fp} for {hp}");
        }
    }
    Ok(fp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn url_resolution_order() {
        let login = Login {
            url: Some("http://stored:1".into()),
            token: Some("stored-token".into()),
        };
        let flag = Overrides {
            url: Some("http://flag:1".into()),
            token: Some("flag-token".into()),
        };
        let both = env_of(&[
            ("FVFSD_URL", "http://fvfsd:1"),
            ("VFSD_URL", "http://vfsd:1"),
            ("FVFS_TOKEN", "env-token"),
        ]);
        let none = Overrides::default();
        assert_eq!(
            explicit_url(&flag, &both, &login),
            Some(("http://flag:1".into(), Origin::Flag))
        );
        assert_eq!(
            explicit_url(&none, &both, &login),
            Some(("http://fvfsd:1".into(), Origin::Env("FVFSD_URL")))
        );
        let vfsd = env_of(&[("VFSD_URL", "http://vfsd:1"), ("FVFSD_URL", "")]);
        assert_eq!(
            explicit_url(&none, &vfsd, &login),
            Some(("http://vfsd:1".into(), Origin::Env("VFSD_URL")))
        );
        let empty = env_of(&[]);
        assert_eq!(
            explicit_url(&none, &empty, &login),
            Some(("http://stored:1".into(), Origin::Login))
        );
        assert_eq!(explicit_url(&none, &empty, &Login::default()), None);
        assert_eq!(normalize_url("nas:7734/"), "http://nas:7734");
        assert_eq!(normalize_url("https://nas:7734"), "https://nas:7734");

        assert_eq!(
            resolve_token(&flag, &both, &login).as_deref(),
            Some("flag-token")
        );
        assert_eq!(
            resolve_token(&none, &both, &login).as_deref(),
            Some("env-token")
        );
        assert_eq!(
            resolve_token(&none, &empty, &login).as_deref(),
            Some("stored-token")
        );
        assert_eq!(resolve_token(&none, &empty, &Login::default()), None);
    }

    #[test]
    fn config_dir_order() {
        let e = env_of(&[
            ("FVFSC_CONFIG_DIR", "/c"),
            ("XDG_CONFIG_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(config_dir_from(&e).unwrap(), PathBuf::from("/c"));
        let e = env_of(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(config_dir_from(&e).unwrap(), PathBuf::from("/x/fvfsc"));
        let e = env_of(&[("HOME", "/h")]);
        assert_eq!(
            config_dir_from(&e).unwrap(),
            PathBuf::from("/h/.config/fvfsc")
        );
        assert!(config_dir_from(&env_of(&[])).is_err());
    }

    #[test]
    fn discovery_timeout_env() {
        assert_eq!(discovery_timeout(&env_of(&[])), DISCOVERY_TIMEOUT);
        let e = env_of(&[("FVFSC_DISCOVERY_TIMEOUT", "2")]);
        assert_eq!(discovery_timeout(&e), Duration::from_secs(2));
        let e = env_of(&[("FVFSC_DISCOVERY_TIMEOUT", "x")]);
        assert_eq!(discovery_timeout(&e), DISCOVERY_TIMEOUT);
    }

    #[test]
    fn files_are_private_and_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("fvfsc");
        let login = Login {
            url: Some("https://nas:7734".into()),
            token: Some("secret".into()),
        };
        save_login(&dir, &login).unwrap();
        assert_eq!(load_login(&dir).unwrap(), login);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("config.toml")), 0o600);

        let fp = "ab".repeat(32);
        save_pin(&dir, "nas:7734", &fp).unwrap();
        assert_eq!(mode(&dir.join("known_hosts.toml")), 0o600);
        assert_eq!(
            stored_pin(&dir, "https://NAS:7734/").unwrap(),
            Some(fp.clone())
        );
        assert_eq!(stored_pin(&dir, "https://nas:7735").unwrap(), None);
        // A missing file is an empty one.
        let other = tmp.path().join("none");
        assert_eq!(load_login(&other).unwrap(), Login::default());
        assert!(load_known_hosts(&other).unwrap().is_empty());
    }

    #[tokio::test]
    async fn announced_pin_is_stored_and_a_change_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let url = "https://127.0.0.1:9";
        let a = "aa".repeat(32);
        let b = "bb".repeat(32);
        assert_eq!(
            pin_for(dir, "http://x:1", Some(a.clone()), false)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            pin_for(dir, url, Some(a.clone()), false).await.unwrap(),
            Some(a.clone())
        );
        // Stored pin wins over a different announcement.
        assert_eq!(
            pin_for(dir, url, Some(b.clone()), false).await.unwrap(),
            Some(a.clone())
        );
        let err = trust_on_first_use(dir, url, Some(b.clone()), false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&a) && err.contains(&b) && err.contains("fvfsc login"),
            "{err}"
        );
        // Login replaces it.
        assert_eq!(
            pin_for(dir, url, Some(b.clone()), true).await.unwrap(),
            Some(b.clone())
        );
        assert_eq!(stored_pin(dir, url).unwrap(), Some(b));
    }
}
