//! Storage location syntax: parsing and display of [`TierSpec`].
//!
//! Accepted forms:
//! - `/abs/dir` or `file:///abs/dir`: a local (or NAS-mounted) directory;
//! - `s3://bucket[/prefix][?endpoint=URL&region=R&path_style=BOOL&storage_class=C]`;
//! - `webdav://host[:port]/path` (http) or `webdavs://host[:port]/path` (https): a NAS
//!   share over WebDAV; user and password come from `FVFS_WEBDAV_USERNAME` /
//!   `FVFS_WEBDAV_PASSWORD`.
//!
//! Invariants: a parsed spec never holds credentials (a `user:pass@` part is rejected;
//! S3 credentials come from the environment or the AWS profile chain), fs roots are
//! absolute, S3 prefixes have no leading or trailing `/`.

use std::path::PathBuf;

use crate::error::{redact, TierError};

/// Region used when an S3 location does not name one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// What kind of store a location names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TierKind {
    /// A directory on a local or mounted filesystem.
    Fs { root: PathBuf },
    /// An S3-compatible bucket.
    S3 {
        bucket: String,
        /// Key prefix inside the bucket, without leading/trailing `/` (may be empty).
        prefix: String,
        /// `http(s)://host[:port]` of a non-AWS service; `None` = AWS for `region`.
        endpoint: Option<String>,
        region: String,
        /// `true`: `endpoint/bucket/key` URLs; `false`: `bucket.endpoint/key`.
        path_style: bool,
        storage_class: Option<String>,
    },
    /// A WebDAV share (a NAS over HTTP).
    WebDav {
        /// `http(s)://host[:port]`.
        endpoint: String,
        /// Path of the fvfs root on the server, starting with `/`.
        root: String,
    },
}

/// A parsed storage location (see the module docs for the syntax).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierSpec {
    pub kind: TierKind,
}

fn config(msg: String) -> TierError {
    TierError::Config(msg)
}

fn parse_bool(key: &str, v: &str) -> Result<bool, TierError> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(config(format!(
            "query parameter {key}={v:?} is not a boolean (use true or false)"
        ))),
    }
}

impl TierSpec {
    /// Parses a storage location. Errors name the offending part and never echo
    /// credentials.
    pub fn parse(location: &str) -> Result<TierSpec, TierError> {
        let location = location.trim();
        if location.is_empty() {
            return Err(config("empty storage location".to_string()));
        }
        if location.starts_with('/') {
            return Ok(TierSpec {
                kind: TierKind::Fs {
                    root: PathBuf::from(location),
                },
            });
        }
        let Some((scheme, _)) = location.split_once("://") else {
            return Err(config(format!(
                "storage location {location:?} is neither an absolute path nor a URL (file:///dir or s3://bucket/prefix)"
            )));
        };
        let url = url::Url::parse(location).map_err(|e| {
            config(format!(
                "cannot parse storage location {:?}: {e}",
                redact(location)
            ))
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(config(format!(
                "storage location {:?} contains credentials; remove them from the URL and set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or an AWS profile) instead",
                redact(location)
            )));
        }
        match scheme {
            "file" => Self::parse_file(&url, location),
            "s3" => Self::parse_s3(&url, location),
            "webdav" | "webdavs" => Self::parse_webdav(&url, scheme == "webdavs", location),
            other => Err(config(format!(
                "unsupported storage scheme {other:?} in {:?} (supported: absolute path, file://, s3://, webdav://, webdavs://)",
                redact(location)
            ))),
        }
    }

    fn parse_webdav(url: &url::Url, tls: bool, location: &str) -> Result<TierSpec, TierError> {
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return Err(config(format!(
                "WebDAV location {location:?} has no host (webdav://host:port/path)"
            )));
        };
        if url.query().is_some() {
            return Err(config(format!(
                "WebDAV location {location:?} takes no query parameters"
            )));
        }
        let scheme = if tls { "https" } else { "http" };
        let endpoint = match url.port() {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        };
        let path = url.path().trim_end_matches('/');
        Ok(TierSpec {
            kind: TierKind::WebDav {
                endpoint,
                root: if path.is_empty() {
                    "/".into()
                } else {
                    path.to_string()
                },
            },
        })
    }

    fn parse_file(url: &url::Url, location: &str) -> Result<TierSpec, TierError> {
        if url.query().is_some() {
            return Err(config(format!(
                "file location {location:?} takes no query parameters"
            )));
        }
        if url
            .host_str()
            .is_some_and(|h| !h.is_empty() && h != "localhost")
        {
            return Err(config(format!(
                "file location {location:?} must be file:///absolute/path (three slashes)"
            )));
        }
        let root = url.to_file_path().map_err(|()| {
            config(format!(
                "file location {location:?} is not an absolute path"
            ))
        })?;
        Ok(TierSpec {
            kind: TierKind::Fs { root },
        })
    }

    fn parse_s3(url: &url::Url, location: &str) -> Result<TierSpec, TierError> {
        let bucket = url.host_str().unwrap_or("").to_string();
        if bucket.is_empty() {
            return Err(config(format!(
                "S3 location {location:?} has no bucket (s3://bucket/prefix)"
            )));
        }
        let prefix = url.path().trim_matches('/').to_string();
        if prefix.split('/').any(|c| c == "." || c == "..") {
            return Err(config(format!(
                "S3 prefix {prefix:?} must not contain . or .. components"
            )));
        }
        let mut endpoint = None;
        let mut region = None;
        let mut path_style = true;
        let mut storage_class = None;
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "endpoint" => {
                    let ep = v.trim_end_matches('/').to_string();
                    let ok = ep.starts_with("http://") || ep.starts_with("https://");
                    if !ok {
                        return Err(config(format!(
                            "S3 endpoint {:?} must start with http:// or https://",
                            redact(&ep)
                        )));
                    }
                    if ep.contains('@') {
                        return Err(config(
                            "S3 endpoint must not contain credentials".to_string(),
                        ));
                    }
                    endpoint = Some(ep);
                }
                "region" => region = Some(v.to_string()),
                "path_style" => path_style = parse_bool("path_style", &v)?,
                "storage_class" => storage_class = Some(v.to_string()),
                other => {
                    return Err(config(format!(
                        "unknown query parameter {other:?} in S3 location (known: endpoint, region, path_style, storage_class)"
                    )))
                }
            }
        }
        Ok(TierSpec {
            kind: TierKind::S3 {
                bucket,
                prefix,
                endpoint,
                region: region
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| DEFAULT_REGION.to_string()),
                path_style,
                storage_class,
            },
        })
    }

    /// A canonical, secret-free rendering for logs and status output. Parsing it gives
    /// back an equal spec.
    pub fn display(&self) -> String {
        match &self.kind {
            TierKind::Fs { root } => root.display().to_string(),
            TierKind::WebDav { endpoint, root } => {
                let (scheme, rest) = match endpoint.strip_prefix("https://") {
                    Some(r) => ("webdavs", r),
                    None => ("webdav", endpoint.trim_start_matches("http://")),
                };
                format!("{scheme}://{rest}{root}")
            }
            TierKind::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                path_style,
                storage_class,
            } => {
                let mut s = format!("s3://{bucket}");
                if !prefix.is_empty() {
                    s.push('/');
                    s.push_str(prefix);
                }
                let mut q = Vec::new();
                if let Some(ep) = endpoint {
                    q.push(format!("endpoint={ep}"));
                }
                q.push(format!("region={region}"));
                q.push(format!("path_style={path_style}"));
                if let Some(sc) = storage_class {
                    q.push(format!("storage_class={sc}"));
                }
                s.push('?');
                s.push_str(&q.join("&"));
                s
            }
        }
    }
}

impl std::str::FromStr for TierSpec {
    type Err = TierError;
    fn from_str(s: &str) -> Result<Self, TierError> {
        TierSpec::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webdav_locations() {
        let s = TierSpec::parse("webdav://nas.local:8080/shares/fvfs/").unwrap();
        assert_eq!(
            s.kind,
            TierKind::WebDav {
                endpoint: "http://nas.local:8080".into(),
                root: "/shares/fvfs".into()
            }
        );
        assert_eq!(s.display(), "webdav://nas.local:8080/shares/fvfs");
        assert_eq!(TierSpec::parse(&s.display()).unwrap(), s);
        let t = TierSpec::parse("webdavs://nas/x").unwrap();
        assert!(
            matches!(t.kind, TierKind::WebDav { ref endpoint, .. } if endpoint == "https://nas")
        );
        assert!(TierSpec::parse("webdav://u:p@nas/x").is_err());
        assert!(TierSpec::parse("webdav://nas/x?a=b").is_err());
    }

    fn err(s: &str) -> String {
        match TierSpec::parse(s) {
            Ok(spec) => panic!("{s} parsed as {spec:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn fs_forms() {
        let a = TierSpec::parse("/var/lib/fvfs").expect("abs");
        let b = TierSpec::parse("file:///var/lib/fvfs").expect("file url");
        assert_eq!(a, b);
        assert_eq!(a.display(), "/var/lib/fvfs");
        assert!(err("data/dir").contains("absolute"));
        assert!(err("file://host/x").contains("three slashes"));
    }

    #[test]
    fn s3_full() {
        let s = TierSpec::parse(
            "s3://bkt/some/prefix/?endpoint=http://127.0.0.1:9000/&region=eu-west-1&path_style=false&storage_class=STANDARD_IA",
        )
        .expect("s3");
        assert_eq!(
            s.kind,
            TierKind::S3 {
                bucket: "bkt".into(),
                prefix: "some/prefix".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: "eu-west-1".into(),
                path_style: false,
                storage_class: Some("STANDARD_IA".into()),
            }
        );
        assert_eq!(TierSpec::parse(&s.display()).expect("round trip"), s);
    }

    #[test]
    fn s3_defaults() {
        let s = TierSpec::parse("s3://bkt").expect("s3");
        let TierKind::S3 {
            prefix,
            region,
            path_style,
            endpoint,
            ..
        } = &s.kind
        else {
            panic!("not s3")
        };
        assert_eq!(prefix, "");
        assert_eq!(region, DEFAULT_REGION);
        assert!(*path_style);
        assert!(endpoint.is_none());
    }

    #[test]
    fn s3_errors() {
        let e = err("s3://AKIAXXX:supersecret@bkt/p");
        assert!(e.contains("credentials"), "{e}");
        assert!(!e.contains("supersecret") && !e.contains("AKIAXXX"), "{e}");
        assert!(err("s3://bkt/p?colour=red").contains("\"colour\""));
        assert!(err("s3://bkt?path_style=maybe").contains("boolean"));
        assert!(err("s3://bkt?endpoint=ftp://x").contains("http://"));
        assert!(err("gs://bkt").contains("unsupported"));
        assert!(err("").contains("empty"));
    }
}
