//! The one-line form of a spec: [`OriginSpec::parse`] turns `ID=LOCATION?options`
//! into config table fields (so both forms share one validation), and
//! [`OriginSpec::display`] renders a spec back, canonical and secret-free.

use super::kinds::decode;
use super::{format_duration, spec_err, OriginLocation, OriginSpec, SECRET_KEYS};
use crate::origin::error::OriginError;

impl OriginSpec {
    /// Parses the one-line form `ID=LOCATION` (see the module docs).
    pub fn parse(line: &str) -> Result<OriginSpec, OriginError> {
        let Some((id, location)) = line.trim().split_once('=') else {
            return Err(spec_err(format!(
                "origin {line:?} is not of the form ID=LOCATION (e.g. nas=/mnt/music)"
            )));
        };
        let mut fields = vec![("id".to_string(), id.to_string())];
        if location.starts_with('/') {
            fields.push(("kind".into(), "fs".into()));
            fields.push(("path".into(), location.into()));
            return OriginSpec::from_fields(fields);
        }
        let url = url::Url::parse(location).map_err(|e| {
            spec_err(format!(
                "origin {id:?}: location {location:?} is neither an absolute path nor a URL: {e}"
            ))
        })?;
        if url.password().is_some() {
            return Err(spec_err(format!(
                "origin {id:?}: the location must not hold a password; use the config's password or password_env"
            )));
        }
        let host = url.host_str().unwrap_or("").to_string();
        let user = decode(url.username());
        let scheme = url.scheme();
        if scheme != "file" && host.is_empty() {
            return Err(spec_err(format!(
                "origin {id:?}: location {location:?} names no host"
            )));
        }
        let mut push = |k: &str, v: String| fields.push((k.to_string(), v));
        match scheme {
            "file" => {
                let path = url.to_file_path().map_err(|()| {
                    spec_err(format!(
                        "origin {id:?}: location {location:?} must be file:///absolute/path (three slashes)"
                    ))
                })?;
                push("kind", "fs".into());
                push("path", path.to_string_lossy().into_owned());
            }
            "s3" => {
                push("kind", "s3".into());
                push("bucket", host);
                push("prefix", decode(url.path()).trim_matches('/').to_string());
            }
            "sftp" => {
                push("kind", "sftp".into());
                push("host", host);
                if let Some(p) = url.port() {
                    push("port", p.to_string());
                }
                push("user", user.clone());
                push("root", decode(url.path()));
            }
            "webdav" | "webdavs" => {
                let http = if scheme == "webdavs" { "https" } else { "http" };
                let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                push("kind", "webdav".into());
                push("url", format!("{http}://{host}{port}{}", url.path()));
                push("user", user.clone());
            }
            other => {
                return Err(spec_err(format!(
                    "origin {id:?} has an unknown kind {other:?} (known: /path, file://, s3://, sftp://, webdav://, webdavs://)"
                )))
            }
        }
        if !user.is_empty() && matches!(url.scheme(), "file" | "s3") {
            return Err(spec_err(format!(
                "origin {id:?}: a {} location takes no user",
                url.scheme()
            )));
        }
        for (k, v) in url.query_pairs() {
            if SECRET_KEYS.contains(&k.as_ref()) {
                return Err(spec_err(format!(
                    "origin {id:?}: {k} is not accepted in a location string; put it in the config or the environment"
                )));
            }
            fields.push((k.into_owned(), v.into_owned()));
        }
        OriginSpec::from_fields(fields)
    }

    /// The one-line form, canonical and secret-free, for logs and status; parsing it
    /// gives back this spec (less any secret held in the config).
    pub fn display(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        let base = match &self.location {
            OriginLocation::Fs { root } => {
                let u = url::Url::from_file_path(root).map(|u| u.to_string());
                u.unwrap_or_else(|()| format!("file://{}", root.display()))
            }
            OriginLocation::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                path_style,
                keys: _,
            } => {
                if let Some(ep) = endpoint {
                    q.append_pair("endpoint", ep);
                }
                q.append_pair("region", region);
                q.append_pair("path_style", &path_style.to_string());
                with_path(&format!("s3://{bucket}"), &format!("/{prefix}"))
            }
            OriginLocation::Sftp {
                host,
                port,
                user,
                key_file,
                root,
                known_hosts,
            } => {
                if let Some(k) = key_file {
                    q.append_pair("key_file", &k.display().to_string());
                }
                q.append_pair("known_hosts", known_hosts.name());
                let user = user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
                with_path(&format!("sftp://{user}{host}:{port}"), root)
            }
            OriginLocation::WebDav {
                endpoint,
                root,
                user,
                password_env,
                password: _,
            } => {
                if let Some(v) = password_env {
                    q.append_pair("password_env", v);
                }
                let (scheme, rest) = match endpoint.strip_prefix("https://") {
                    Some(r) => ("webdavs", r),
                    None => ("webdav", endpoint.trim_start_matches("http://")),
                };
                let user = user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
                with_path(&format!("{scheme}://{user}{rest}"), root)
            }
        };
        q.append_pair("priority", &self.priority.to_string());
        q.append_pair("check_interval", &format_duration(self.check_interval));
        format!("{}={base}?{}", self.id, q.finish())
    }
}

/// `base` + `path`, the path percent-encoded as a URL path.
fn with_path(base: &str, path: &str) -> String {
    match url::Url::parse(base) {
        Ok(mut u) => {
            u.set_path(path);
            u.to_string()
        }
        Err(_) => format!("{base}{path}"),
    }
}
