//! Finding fvfsd on the LAN: a bounded mDNS (DNS-SD) browse of
//! [`fvfs_types::api::MDNS_SERVICE`], whose TXT record carries `version`, `uuid`, `tls`
//! and `fp` (SHA-256 of the daemon's certificate when `tls=1`).
//!
//! Invariants: a browse never outlives its timeout (plus a bounded shutdown of the mDNS
//! daemon thread); loopback interfaces are browsed too (a daemon on the same host, or a
//! test in a network namespace with only `lo`, must be found); IPv4 addresses are
//! preferred to IPv6 ones. What mDNS says is not trusted beyond naming a URL and a pin.

use crate::client::{normalize_pin, ClientError, Result};
use fvfs_types::api::MDNS_SERVICE;
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent};
use serde::Serialize;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a first answer with only IPv6 addresses waits for an IPv4 one.
const V4_GRACE: Duration = Duration::from_millis(700);

/// A daemon found over mDNS.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Discovered {
    /// The DNS-SD instance name (`<name>._fvfs._tcp.local.`).
    pub instance: String,
    /// The host name it advertises (`<host>.local.`).
    pub host: String,
    /// `http(s)://<address>:<port>`, built from the preferred address.
    pub url: String,
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    pub version: Option<String>,
    pub uuid: Option<String>,
    pub tls: bool,
    /// The certificate pin (TXT `fp`), normalised; only when `tls`.
    pub fingerprint: Option<String>,
}

/// Orders addresses: IPv4 first, then non-loopback before loopback, then by value.
fn sort_addresses(addrs: &mut [IpAddr]) {
    addrs.sort_by_key(|a| (a.is_ipv6(), a.is_loopback(), *a));
}

/// `http://1.2.3.4:7734` or `https://[fe80::1]:7734`.
fn url_for(addr: &IpAddr, port: u16, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    match addr {
        IpAddr::V4(a) => format!("{scheme}://{a}:{port}"),
        IpAddr::V6(a) => format!("{scheme}://[{a}]:{port}"),
    }
}

fn from_resolved(s: &mdns_sd::ResolvedService) -> Option<Discovered> {
    let mut addresses: Vec<IpAddr> = s.addresses.iter().map(|a| a.to_ip_addr()).collect();
    // A link-local IPv6 address needs a zone id a URL cannot carry portably.
    addresses.retain(|a| match a {
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
        IpAddr::V4(_) => true,
    });
    sort_addresses(&mut addresses);
    let first = addresses.first()?;
    let txt = |k: &str| s.get_property_val_str(k).map(str::to_string);
    let tls = txt("tls").is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let fingerprint = if tls {
        txt("fp").and_then(|f| normalize_pin(&f))
    } else {
        None
    };
    Some(Discovered {
        instance: s.fullname.clone(),
        host: s.host.clone(),
        url: url_for(first, s.port, tls),
        addresses,
        port: s.port,
        version: txt("version"),
        uuid: txt("uuid"),
        tls,
        fingerprint,
    })
}

/// Browses for `timeout` (blocking). With `all`, collects every daemon resolved in that
/// time; otherwise returns as soon as the first one resolves.
pub fn browse_blocking(timeout: Duration, all: bool) -> Result<Vec<Discovered>> {
    let err = |e: mdns_sd::Error| ClientError::Other(format!("mDNS: {e}"));
    let daemon = ServiceDaemon::new().map_err(err)?;
    let found = browse_with(&daemon, timeout, all, &|_| true);
    // Bounded shutdown: the daemon thread answers within a few ms when healthy.
    if let Ok(rx) = daemon.shutdown() {
        let _ = rx.recv_timeout(Duration::from_secs(1));
    }
    found
}

/// Browses on `daemon` for services `want` accepts (see [`browse_blocking`]).
fn browse_with(
    daemon: &ServiceDaemon,
    timeout: Duration,
    all: bool,
    want: &dyn Fn(&Discovered) -> bool,
) -> Result<Vec<Discovered>> {
    let err = |e: mdns_sd::Error| ClientError::Other(format!("mDNS: {e}"));
    daemon
        .enable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])
        .map_err(err)?;
    let rx = daemon.browse(MDNS_SERVICE).map_err(err)?;
    let mut deadline = Instant::now() + timeout;
    let mut found: Vec<Discovered> = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match rx.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(s)) => {
                let Some(d) = from_resolved(&s).filter(|d| want(d)) else {
                    continue;
                };
                if !all && d.addresses.iter().any(IpAddr::is_ipv4) {
                    let _ = daemon.stop_browse(MDNS_SERVICE);
                    return Ok(vec![d]);
                }
                if !all {
                    // IPv6 only so far: give its IPv4 address a moment to follow.
                    deadline = deadline.min(Instant::now() + V4_GRACE);
                }
                // A later resolution of the same instance may carry more addresses.
                match found.iter_mut().find(|f| f.instance == d.instance) {
                    Some(f) => *f = d,
                    None => found.push(d),
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = daemon.stop_browse(MDNS_SERVICE);
    if !all {
        found.truncate(1);
    }
    Ok(found)
}

/// The first daemon resolved within `timeout`, if any.
pub async fn discover(timeout: Duration) -> Result<Option<Discovered>> {
    discover_all(timeout, false)
        .await
        .map(|v| v.into_iter().next())
}

/// Every daemon resolved within `timeout` (`all`), or the first one.
pub async fn discover_all(timeout: Duration, all: bool) -> Result<Vec<Discovered>> {
    tokio::task::spawn_blocking(move || browse_blocking(timeout, all))
        .await
        .map_err(|e| ClientError::Other(format!("mDNS browse: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdns_sd::ServiceInfo;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn ipv4_is_preferred() {
        let mut a = vec![
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)),
        ];
        sort_addresses(&mut a);
        assert_eq!(a[0], IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)));
        assert_eq!(a[1], IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(
            url_for(&IpAddr::V6(Ipv6Addr::LOCALHOST), 1, true),
            "https://[::1]:1"
        );
    }

    #[test]
    fn txt_record_is_read() {
        let fp = "AB".repeat(32);
        let props = [
            ("version", "0.1.0"),
            ("uuid", "u-1"),
            ("tls", "1"),
            ("fp", fp.as_str()),
        ];
        let info = ServiceInfo::new(
            MDNS_SERVICE,
            "nas",
            "nas.local.",
            "127.0.0.1",
            7734,
            &props[..],
        )
        .unwrap();
        let d = from_resolved(&info.as_resolved_service()).unwrap();
        assert_eq!(d.url, "https://127.0.0.1:7734");
        assert_eq!(d.version.as_deref(), Some("0.1.0"));
        assert_eq!(d.uuid.as_deref(), Some("u-1"));
        assert!(d.tls);
        assert_eq!(d.fingerprint, Some("ab".repeat(32)));
    }

    /// A daemon pinned with TLS that now answers mDNS with `tls=0` (an impostor, or a
    /// downgrade): the client refuses before connecting, so the token is never sent.
    #[tokio::test]
    async fn a_tls_pinned_host_announcing_tls_0_gets_no_token() {
        let impostor = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        impostor.set_nonblocking(true).unwrap();
        let port = impostor.local_addr().unwrap().port();
        let fp = "ef".repeat(32);
        let props = [("version", "9"), ("uuid", "u"), ("tls", "0"), ("fp", &fp)];
        let info = ServiceInfo::new(
            MDNS_SERVICE,
            "nas",
            "nas.local.",
            "127.0.0.1",
            port,
            &props[..],
        )
        .unwrap();
        let d = from_resolved(&info.as_resolved_service()).unwrap();
        assert_eq!(d.url, format!("http://127.0.0.1:{port}"));
        assert_eq!(d.fingerprint, None, "no pin is taken from a tls=0 answer");

        let tmp = tempfile::tempdir().unwrap();
        crate::config::save_pin(tmp.path(), &format!("127.0.0.1:{port}"), &fp).unwrap();
        let err = crate::config::endpoint_for(tmp.path(), &d.url, Some("tok".into()), Some(&d))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pinned with TLS") && err.contains(&fp),
            "{err}"
        );
        match impostor.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("the client connected to the tls=0 host: {other:?}"),
        }
        // Without a pin for that host:port, plain HTTP stays usable (loopback daemons).
        let fresh = tempfile::tempdir().unwrap();
        let ep = crate::config::endpoint_for(fresh.path(), &d.url, None, Some(&d))
            .await
            .unwrap();
        assert_eq!((ep.url.as_str(), ep.fingerprint), (d.url.as_str(), None));
    }

    #[test]
    fn a_daemon_on_loopback_is_found() {
        let server = ServiceDaemon::new().unwrap();
        server
            .enable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])
            .unwrap();
        let fp = "cd".repeat(32);
        let props = [
            ("version", "9"),
            ("uuid", "loop"),
            ("tls", "1"),
            ("fp", fp.as_str()),
        ];
        let info = ServiceInfo::new(
            MDNS_SERVICE,
            "fvfs-discover-test",
            "fvfs-discover-test.local.",
            "127.0.0.1",
            47734,
            &props[..],
        )
        .unwrap();
        server.register(info).unwrap();
        // Other daemons may advertise on this host meanwhile: wait for this one.
        let client = ServiceDaemon::new().unwrap();
        let want = |d: &Discovered| d.uuid.as_deref() == Some("loop");
        let found = browse_with(&client, Duration::from_secs(8), false, &want).unwrap();
        for d in [client, server] {
            if let Ok(rx) = d.shutdown() {
                let _ = rx.recv_timeout(Duration::from_secs(1));
            }
        }
        let d = found.first().expect("the service registered on loopback");
        assert_eq!(d.url, "https://127.0.0.1:47734");
        assert_eq!(d.uuid.as_deref(), Some("loop"));
        assert_eq!(d.fingerprint, Some(fp));
    }
}
