//! How the API listens: the TLS rule (TLS beyond loopback unless plain HTTP is asked for
//! explicitly), the certificate it then needs, and the URL clients are given for a listener.
//!
//! Invariant: plain HTTP beyond loopback (a wildcard included) is never chosen silently.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `tls = false` on an address beyond loopback without `insecure_http`.
#[derive(Debug, thiserror::Error)]
#[error(
    "`[daemon] tls = false` would serve the API on {0}, beyond loopback, over plain \
     HTTP, where tokens cross the network in the clear; either remove `tls = false` \
     (TLS is the default beyond loopback) or set `[daemon] insecure_http = true` to \
     accept plain HTTP (or listen on loopback only: `http_bind = \"127.0.0.1\"`)"
)]
pub struct PlainHttpRefused(pub IpAddr);

/// How the API listens, from its address and `[daemon] tls` / `insecure_http`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tls,
    /// Plain HTTP on loopback only.
    Http,
    /// Plain HTTP beyond loopback, allowed by `insecure_http = true`.
    InsecureHttp,
}

pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The TLS rule: `tls` (`--tls` or `[daemon] tls`) set to true wins; on loopback the
/// default is plain HTTP; beyond loopback (a wildcard included) TLS is the default, and
/// plain HTTP needs `insecure_http` (asked for with `tls = false` without it: an error
/// that names the ways out).
pub fn transport(
    bind: IpAddr,
    tls: Option<bool>,
    insecure_http: bool,
) -> Result<Transport, PlainHttpRefused> {
    Ok(match tls {
        Some(true) => Transport::Tls,
        _ if is_loopback(bind) => Transport::Http,
        _ if insecure_http => Transport::InsecureHttp,
        None => Transport::Tls,
        Some(false) => return Err(PlainHttpRefused(bind)),
    })
}

/// Why the API cannot listen as configured.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(transparent)]
    PlainHttp(#[from] PlainHttpRefused),
    /// TLS is the default here (beyond loopback) and the stored certificate is unusable.
    #[error(
        "the API listens on {bind}, beyond loopback, so it needs TLS, and the certificate \
         in {dir} is unusable ({source}); repair or remove it (a new one is made at start), \
         or set `[daemon] insecure_http = true` to serve plain HTTP"
    )]
    DefaultTls {
        bind: IpAddr,
        dir: String,
        source: crate::tls::TlsError,
    },
    /// TLS was asked for and cannot be served.
    #[error("cannot serve TLS: {0}")]
    Tls(crate::tls::TlsError),
}

/// How the API listens, with what [`security`] loaded for it.
pub struct Security {
    pub transport: Transport,
    /// The server configuration when `transport` is TLS.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// The certificate's SHA-256 (the pin clients check) when `transport` is TLS.
    pub fingerprint: Option<String>,
}

/// Applies the TLS rule ([`transport`]) and, for TLS, makes the state directory's
/// certificate if there is none and loads it.
pub fn security(
    bind: IpAddr,
    tls: Option<bool>,
    insecure_http: bool,
    state_dir: &std::path::Path,
) -> Result<Security, ListenError> {
    let transport = transport(bind, tls, insecure_http)?;
    if transport != Transport::Tls {
        return Ok(Security {
            transport,
            tls: None,
            fingerprint: None,
        });
    }
    let loaded = crate::tls::ensure(state_dir, &crate::mdns::hostname())
        .and_then(|_| crate::tls::load(state_dir));
    match loaded {
        Ok((cfg, fp)) => Ok(Security {
            transport,
            tls: Some(cfg),
            fingerprint: Some(fp),
        }),
        Err(source) if tls.is_none() => Err(ListenError::DefaultTls {
            bind,
            dir: state_dir.join("tls").display().to_string(),
            source,
        }),
        Err(e) => Err(ListenError::Tls(e)),
    }
}

/// The URL clients use for a listener bound at `addr` (a wildcard becomes loopback).
pub fn api_url(tls: bool, addr: SocketAddr) -> String {
    let scheme = if tls { "https" } else { "http" };
    let ip = match addr.ip() {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_beyond_loopback() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let t = |b: &str, tls, insecure| transport(ip(b), tls, insecure).map_err(|e| e.to_string());
        for lo in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(t(lo, None, false), Ok(Transport::Http), "{lo}");
            assert_eq!(t(lo, Some(false), false), Ok(Transport::Http), "{lo}");
            assert_eq!(t(lo, Some(true), false), Ok(Transport::Tls), "{lo}");
        }
        for wide in ["0.0.0.0", "::", "192.168.1.5", "::ffff:10.0.0.1"] {
            assert_eq!(t(wide, None, false), Ok(Transport::Tls), "{wide}");
            assert_eq!(t(wide, Some(true), true), Ok(Transport::Tls), "{wide}");
            assert_eq!(t(wide, None, true), Ok(Transport::InsecureHttp), "{wide}");
            assert_eq!(
                t(wide, Some(false), true),
                Ok(Transport::InsecureHttp),
                "{wide}"
            );
            let e = t(wide, Some(false), false).unwrap_err();
            assert!(
                e.contains("remove `tls = false`") && e.contains("insecure_http = true"),
                "{e}"
            );
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            api_url(false, "0.0.0.0:7734".parse().unwrap()),
            "http://127.0.0.1:7734"
        );
        assert_eq!(api_url(true, "[::]:1".parse().unwrap()), "https://[::1]:1");
        assert_eq!(
            api_url(false, "192.168.1.2:80".parse().unwrap()),
            "http://192.168.1.2:80"
        );
    }
}
