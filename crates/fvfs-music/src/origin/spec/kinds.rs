//! The kind-specific fields of a config table (`s3`, `sftp`, `webdav`): what each
//! needs, its defaults and its consistency rules, and the [`Fields`] table they are
//! taken from (every key used once, empty values absent).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{spec_err, KnownHosts, OriginLocation, S3Keys, Secret, DEFAULT_REGION};
use crate::origin::error::OriginError;

/// A config table being consumed: every key must be used exactly once.
pub(super) struct Fields {
    pub(super) map: BTreeMap<String, String>,
    pub(super) id: String,
}

impl Fields {
    pub(super) fn take(&mut self, key: &str) -> Option<String> {
        self.map.remove(key).filter(|v| !v.is_empty())
    }
    pub(super) fn need(&mut self, key: &str, kind: &str) -> Result<String, OriginError> {
        self.take(key).ok_or_else(|| {
            spec_err(format!(
                "origin {:?}: a {kind} origin needs the field {key:?}",
                self.id
            ))
        })
    }
    fn bool(&mut self, key: &str, default: bool) -> Result<bool, OriginError> {
        match self.take(key).as_deref() {
            None => Ok(default),
            Some("true" | "yes" | "1") => Ok(true),
            Some("false" | "no" | "0") => Ok(false),
            Some(v) => Err(spec_err(format!(
                "origin {:?}: {key} = {v:?} is not a boolean (true or false)",
                self.id
            ))),
        }
    }
    pub(super) fn absolute(&mut self, key: &str, v: String) -> Result<String, OriginError> {
        if v.starts_with('/') {
            Ok(v)
        } else {
            Err(spec_err(format!(
                "origin {:?}: {key} {v:?} must be an absolute path",
                self.id
            )))
        }
    }
}

/// `http(s)://host[:port]` without credentials or path.
pub(super) fn check_endpoint(id: &str, key: &str, v: &str) -> Result<String, OriginError> {
    let url = url::Url::parse(v)
        .map_err(|e| spec_err(format!("origin {id:?}: {key} {v:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(spec_err(format!(
            "origin {id:?}: {key} must be http://host[:port] or https://host[:port]"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(spec_err(format!(
            "origin {id:?}: {key} must not contain credentials"
        )));
    }
    Ok(url.origin().ascii_serialization())
}

/// A URL component, percent-decoded.
pub(super) fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

pub(super) fn s3(f: &mut Fields) -> Result<OriginLocation, OriginError> {
    let id = f.id.clone();
    let bucket = f.need("bucket", "s3")?;
    let prefix = f.take("prefix").unwrap_or_default();
    let prefix = prefix.trim_matches('/').to_string();
    if prefix.split('/').any(|c| c == "." || c == "..") {
        return Err(spec_err(format!(
            "origin {id:?}: prefix {prefix:?} must not hold . or .. components"
        )));
    }
    let endpoint = match f.take("endpoint") {
        Some(ep) => Some(check_endpoint(&id, "endpoint", &ep)?),
        None => None,
    };
    let region = f.take("region").unwrap_or_else(|| DEFAULT_REGION.into());
    let path_style = f.bool("path_style", true)?;
    let keys = match (f.take("access_key_id"), f.take("secret_access_key")) {
        (Some(a), Some(s)) => Some(S3Keys {
            access_key_id: a,
            secret_access_key: Secret(s),
            session_token: f.take("session_token").map(Secret),
        }),
        (None, None) if f.map.contains_key("session_token") => {
            return Err(spec_err(format!(
                "origin {id:?}: session_token needs access_key_id and secret_access_key"
            )))
        }
        (None, None) => None,
        _ => {
            return Err(spec_err(format!(
                "origin {id:?}: access_key_id and secret_access_key go together"
            )))
        }
    };
    Ok(OriginLocation::S3 {
        bucket,
        prefix,
        endpoint,
        region,
        path_style,
        keys,
    })
}

pub(super) fn sftp(f: &mut Fields) -> Result<OriginLocation, OriginError> {
    let id = f.id.clone();
    let host = f.need("host", "sftp")?;
    let port = match f.take("port") {
        None => 22,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| spec_err(format!("origin {id:?}: port {p:?} is not a TCP port")))?,
    };
    let user = f.take("user");
    let key_file = match f.take("key_file") {
        Some(k) => Some(PathBuf::from(f.absolute("key_file", k)?)),
        None => None,
    };
    let root = f.need("root", "sftp")?;
    let root = f.absolute("root", root)?;
    let known_hosts = match f.take("known_hosts").as_deref() {
        None | Some("strict") => KnownHosts::Strict,
        Some("add") => KnownHosts::Add,
        Some("accept") => KnownHosts::Accept,
        Some(v) => {
            return Err(spec_err(format!(
                "origin {id:?}: known_hosts {v:?} is not strict, add or accept"
            )))
        }
    };
    Ok(OriginLocation::Sftp {
        host,
        port,
        user,
        key_file,
        root,
        known_hosts,
    })
}

pub(super) fn webdav(f: &mut Fields) -> Result<OriginLocation, OriginError> {
    let id = f.id.clone();
    let url = f.need("url", "webdav")?;
    let endpoint = check_endpoint(&id, "url", &url)?;
    let parsed = url::Url::parse(&url).map_err(|e| spec_err(e.to_string()))?;
    let root = decode(parsed.path().trim_end_matches('/'));
    let root = if root.is_empty() { "/".into() } else { root };
    let user = f.take("user");
    let password = f.take("password").map(Secret);
    let password_env = f.take("password_env");
    if (password.is_some() || password_env.is_some()) && user.is_none() {
        return Err(spec_err(format!(
            "origin {id:?}: a WebDAV password needs a user"
        )));
    }
    if password.is_some() && password_env.is_some() {
        return Err(spec_err(format!(
            "origin {id:?}: password and password_env exclude each other"
        )));
    }
    Ok(OriginLocation::WebDav {
        endpoint,
        root,
        user,
        password,
        password_env,
    })
}
