//! The client's stored state and how it finds the daemon: `config.toml` (the login: url
//! and token) and `known_hosts.toml` (`"host:port" = "<sha-256 hex>"`, the TLS pins) in
//! the config directory, and the resolution of the [`Endpoint`] from flags, environment,
//! login, mDNS and the default.
//!
//! Invariants: the config directory is 0700 and both files are written 0600, atomically
//! (temporary file + rename), because `config.toml` holds a bearer token. Resolution
//! order: URL = `--url` > `FVFSD_URL` > `VFSD_URL` > login > mDNS > `http://localhost:7734`;
//! token = `--token` > `FVFS_TOKEN` > login; pin = `known_hosts.toml` > mDNS TXT `fp` >
//! first use (recorded, stored and announced on stderr).
//!
//! Invariants (the token never reaches a host that is not the pinned one): a stored pin is
//! never replaced here; only `fvfsc login --replace-pin FP` replaces one, after
//! [`check_replacement`] saw FP presented by the server (probed without the token). A
//! `host:port` pinned with TLS is never spoken to over plain HTTP ([`pin_for`] refuses an
//! `http://` URL for it, whether named or announced over mDNS with `tls=0`). A changed
//! certificate is refused during the TLS handshake, before any request is written.

use crate::client::{
    host_port, is_https, normalize_pin, pin_changed, probe_fingerprint, ClientError, Endpoint,
    Result,
};
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
    let endpoint = endpoint_for(&dir, &url, token, discovered.as_ref()).await?;
    Ok(Resolved {
        endpoint,
        origin,
        discovered,
    })
}

/// The endpoint for `url` (named, or `discovered`'s) with its pin ([`pin_for`]); an error,
/// before anything is sent, when the URL is plain HTTP for a `host:port` pinned with TLS.
pub async fn endpoint_for(
    dir: &Path,
    url: &str,
    token: Option<String>,
    discovered: Option<&Discovered>,
) -> Result<Endpoint> {
    let url = normalize_url(url);
    let announced = discovered
        .and_then(|d| d.fingerprint.as_deref())
        .and_then(normalize_pin);
    let fingerprint = pin_for(dir, &url, announced).await?;
    Ok(Endpoint {
        url,
        token,
        fingerprint,
    })
}

/// The refusal to speak plain HTTP to `url`, whose `host:port` was pinned with TLS.
fn downgrade(dir: &Path, url: &str, pin: &str) -> ClientError {
    let hp = host_port(url).unwrap_or_else(|| url.to_string());
    ClientError::Other(format!(
        "{hp} was pinned with TLS (SHA-256 {pin}) but is now offered over plain HTTP \
         ({url}); refusing to send the token in the clear. Use its https:// URL; if the \
         daemon really serves plain HTTP now, remove the line for \"{hp}\" from {}",
        dir.join("known_hosts.toml").display()
    ))
}

/// The pin to use for `url`: for https the stored pin, else `announced` (from mDNS), else
/// the certificate seen now (first use), stored in `known_hosts.toml`. For http none,
/// unless its `host:port` has a pin: then an error (a downgrade, see [`downgrade`]).
pub async fn pin_for(dir: &Path, url: &str, announced: Option<String>) -> Result<Option<String>> {
    let stored = stored_pin(dir, url)?;
    if !is_https(url) {
        return match stored {
            Some(pin) => Err(downgrade(dir, url, &pin)),
            None => Ok(None),
        };
    }
    if let Some(fp) = stored {
        return Ok(Some(fp));
    }
    trust_on_first_use(dir, url, announced).await.map(Some)
}

/// Learns the certificate of `url` (or takes `announced`), stores it as the pin of its
/// `host:port` and says so on stderr. A different stored pin is an error (never replaced).
pub async fn trust_on_first_use(
    dir: &Path,
    url: &str,
    announced: Option<String>,
) -> Result<String> {
    let hp = host_port(url)
        .ok_or_else(|| ClientError::Other(format!("bad daemon URL {url:?}: no host")))?;
    let fp = match announced {
        Some(fp) => fp,
        None => probe_fingerprint(url).await?,
    };
    match load_known_hosts(dir)?
        .get(&hp)
        .and_then(|p| normalize_pin(p))
    {
        Some(old) if old == fp => {}
        Some(old) => return Err(ClientError::Other(pin_changed(url, &old, &fp))),
        None => {
            save_pin(dir, &hp, &fp)?;
            eprintln!("pinned certificate {fp} for {hp}");
        }
    }
    Ok(fp)
}

/// `fvfsc login --replace-pin WANTED`: the certificate `url` presents now (probed without
/// the token) must be `WANTED`; returns it, normalised. Storing it is the caller's, once
/// the daemon accepted the token over a connection pinned to it.
pub async fn check_replacement(url: &str, wanted: &str) -> Result<String> {
    if !is_https(url) {
        return Err(ClientError::Other(format!(
            "--replace-pin needs an https:// URL, not {url}"
        )));
    }
    let wanted = normalize_pin(wanted).ok_or_else(|| {
        ClientError::Other(format!(
            "bad certificate fingerprint {wanted:?}: expected 64 hex digits (SHA-256)"
        ))
    })?;
    let seen = probe_fingerprint(url).await?;
    if seen != wanted {
        let hp = host_port(url).unwrap_or_else(|| url.to_string());
        return Err(ClientError::Other(format!(
            "{hp} presents the certificate SHA-256 {seen}, not the {wanted} given to \
             --replace-pin; the pin is unchanged and the token was not sent"
        )));
    }
    Ok(seen)
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
            pin_for(dir, "http://x:1", Some(a.clone())).await.unwrap(),
            None
        );
        assert_eq!(
            pin_for(dir, url, Some(a.clone())).await.unwrap(),
            Some(a.clone())
        );
        // Stored pin wins over a different announcement.
        assert_eq!(
            pin_for(dir, url, Some(b.clone())).await.unwrap(),
            Some(a.clone())
        );
        let err = trust_on_first_use(dir, url, Some(b.clone()))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&a)
                && err.contains(&b)
                && err.contains("fvfsd status")
                && err.contains(&format!("fvfsc login --replace-pin {b} {url}")),
            "{err}"
        );
        assert_eq!(stored_pin(dir, url).unwrap(), Some(a.clone()), "unchanged");
        // The same host:port over plain HTTP is a downgrade: refused.
        let err = pin_for(dir, "http://127.0.0.1:9", None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pinned with TLS") && err.contains(&a) && err.contains("127.0.0.1:9"),
            "{err}"
        );
        assert_eq!(stored_pin(dir, url).unwrap(), Some(a));
    }

    #[tokio::test]
    async fn a_replacement_must_name_a_well_formed_pin_over_https() {
        let e = check_replacement("http://127.0.0.1:9", &"aa".repeat(32))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs an https:// URL"), "{e}");
        let e = check_replacement("https://127.0.0.1:9", "abc")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected 64 hex digits"), "{e}");
    }
}
