//! The mDNS (DNS-SD) advertisement of the daemon: `<fs name>@<host>._fvfs._tcp.local.` on
//! `<host>.local.` with TXT `version`, `uuid`, `tls` (`0`/`1`) and `fp` (the certificate's
//! SHA-256 when TLS is on).
//!
//! Invariants: loopback interfaces are advertised on too (a host whose only interface is
//! `lo` can still discover itself); a daemon bound to one address advertises that address
//! only, one bound to a wildcard advertises every address of the host and follows address
//! changes. The advertisement is withdrawn when the [`Advert`] drops, within a bounded
//! wait, so a stopping daemon never hangs on the network.

use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo};
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("mDNS: {0}")]
pub struct MdnsError(#[from] mdns_sd::Error);

/// What the TXT record says about the daemon.
#[derive(Clone, Debug)]
pub struct Txt {
    pub version: String,
    pub uuid: String,
    pub tls: bool,
    /// SHA-256 of the certificate (hex), when `tls`.
    pub fingerprint: Option<String>,
}

/// This host's name as the kernel has it, without a domain.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length; the kernel NUL-terminates
    // within it (or truncates, which the length bound below tolerates).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let h = String::from_utf8_lossy(&buf[..end]).into_owned();
    let h = h.split('.').next().unwrap_or("").to_string();
    if h.is_empty() {
        "localhost".into()
    } else {
        h
    }
}

/// A registered service; withdrawn on drop.
pub struct Advert {
    daemon: ServiceDaemon,
    fullname: String,
}

/// How long the withdrawal may take at shutdown (per step).
const STOP_WAIT: Duration = Duration::from_secs(2);

impl Advert {
    /// The service's full DNS-SD name.
    pub fn fullname(&self) -> &str {
        &self.fullname
    }

    /// Withdraws the service and stops the mDNS thread (bounded).
    pub fn shutdown(self) {
        drop(self)
    }
}

impl Drop for Advert {
    fn drop(&mut self) {
        match self.daemon.unregister(&self.fullname) {
            Ok(rx) => {
                let _ = rx.recv_timeout(STOP_WAIT);
            }
            Err(e) => tracing::debug!(error = %e, "mDNS unregister failed"),
        }
        match self.daemon.shutdown() {
            Ok(rx) => {
                let _ = rx.recv_timeout(STOP_WAIT);
            }
            Err(e) => tracing::debug!(error = %e, "mDNS shutdown failed"),
        }
    }
}

/// The instance name of a filesystem `name` served by `host`.
pub fn instance_name(name: &str, host: &str) -> String {
    format!("{name}@{host}")
}

/// Registers the daemon listening on `port`; `bind` is its listen address (a wildcard
/// address means every address of the host).
pub fn register(name: &str, port: u16, bind: IpAddr, txt: &Txt) -> Result<Advert, MdnsError> {
    let host = hostname();
    let daemon = ServiceDaemon::new()?;
    // Explicitly on: a namespace or host with only `lo` must still be reachable.
    daemon.enable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
    let mut props = vec![
        ("version".to_string(), txt.version.clone()),
        ("uuid".to_string(), txt.uuid.clone()),
        (
            "tls".to_string(),
            if txt.tls { "1" } else { "0" }.to_string(),
        ),
    ];
    if let (true, Some(fp)) = (txt.tls, &txt.fingerprint) {
        props.push(("fp".to_string(), fp.clone()));
    }
    let host_name = format!("{host}.local.");
    let instance = instance_name(name, &host);
    let info = if bind.is_unspecified() {
        ServiceInfo::new(
            fvfs_types::api::MDNS_SERVICE,
            &instance,
            &host_name,
            (),
            port,
            &props[..],
        )?
        .enable_addr_auto()
    } else {
        ServiceInfo::new(
            fvfs_types::api::MDNS_SERVICE,
            &instance,
            &host_name,
            bind,
            port,
            &props[..],
        )?
    };
    let fullname = info.get_fullname().to_string();
    let advert = Advert { daemon, fullname };
    advert.daemon.register(info)?;
    Ok(advert)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As root, moves the calling thread (and the threads and processes it starts) into a
    /// new network namespace with only `lo`, up, multicast on, routed for multicast. The
    /// test then needs no LAN multicast and sees no other daemon. False when not root.
    fn private_netns() -> bool {
        // SAFETY: plain syscalls; unshare(CLONE_NEWNET) affects the calling thread only.
        if unsafe { libc::geteuid() } != 0 {
            return false;
        }
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
        for args in [
            &["link", "set", "lo", "up"][..],
            &["link", "set", "lo", "multicast", "on"],
            &["route", "add", "224.0.0.0/4", "dev", "lo"],
        ] {
            // A child starts in the namespace of the thread that spawns it.
            let st = std::process::Command::new("ip")
                .args(args)
                .status()
                .expect("`ip` (iproute2) for the test's network namespace");
            assert!(st.success(), "ip {args:?}");
        }
        true
    }

    /// Registers on 127.0.0.1 and browses for it from a second daemon (bounded: 10 s). As
    /// root it runs in a network namespace of its own and must find it; otherwise on the
    /// host's interfaces, where a miss (no multicast) is a skip unless
    /// FVFS_REQUIRE_PRIVILEGED=1.
    #[test]
    fn register_and_browse() {
        std::thread::spawn(|| {
            let isolated = private_netns();
            if !isolated && std::env::var("FVFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
                panic!("FVFS_REQUIRE_PRIVILEGED=1: this test needs root for its network namespace");
            }
            register_and_browse_here(isolated)
        })
        .join()
        .unwrap();
    }

    /// The advertisement `ad` as a second mDNS daemon on loopback resolves it (10 s).
    fn browse_for(ad: &Advert) -> Option<Box<mdns_sd::ResolvedService>> {
        let browser = ServiceDaemon::new().unwrap();
        browser
            .enable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])
            .unwrap();
        let rx = browser.browse(fvfs_types::api::MDNS_SERVICE).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut found = None;
        while std::time::Instant::now() < deadline && found.is_none() {
            if let Ok(mdns_sd::ServiceEvent::ServiceResolved(info)) =
                rx.recv_timeout(Duration::from_millis(200))
            {
                if info.fullname == ad.fullname() {
                    found = Some(info);
                }
            }
        }
        if let Ok(rx) = browser.shutdown() {
            let _ = rx.recv_timeout(STOP_WAIT);
        }
        found
    }

    fn register_and_browse_here(must_find: bool) {
        let txt = Txt {
            version: "0.0.0".into(),
            uuid: "u-1".into(),
            tls: true,
            fingerprint: Some("ab".repeat(32)),
        };
        let name = format!("test{}", std::process::id());
        let ad = register(&name, 7999, "127.0.0.1".parse().unwrap(), &txt).unwrap();
        assert!(ad.fullname().starts_with(&name), "{}", ad.fullname());
        match browse_for(&ad) {
            Some(info) => {
                let p = &info.txt_properties;
                assert_eq!(info.port, 7999);
                assert_eq!(p.get_property_val_str("version"), Some("0.0.0"));
                assert_eq!(p.get_property_val_str("uuid"), Some("u-1"));
                assert_eq!(p.get_property_val_str("tls"), Some("1"));
                assert_eq!(p.get_property_val_str("fp"), Some(&*"ab".repeat(32)));
                let addrs: Vec<IpAddr> = info.addresses.iter().map(|a| a.to_ip_addr()).collect();
                assert_eq!(addrs, ["127.0.0.1".parse::<IpAddr>().unwrap()]);
            }
            None if must_find => panic!("the advertisement was not seen within 10 s"),
            None => eprintln!("SKIP: no mDNS answer here (multicast unavailable?)"),
        }
        let t = std::time::Instant::now();
        ad.shutdown();
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    /// Without TLS the TXT says `tls=0` and carries no `fp`, whatever fingerprint is known.
    #[test]
    fn plain_http_is_announced_without_a_fingerprint() {
        std::thread::spawn(|| {
            if !private_netns() {
                assert_ne!(
                    std::env::var("FVFS_REQUIRE_PRIVILEGED").as_deref(),
                    Ok("1"),
                    "this test needs root for its network namespace"
                );
                eprintln!("SKIP: needs root for its network namespace");
                return;
            }
            let txt = Txt {
                version: "0.0.0".into(),
                uuid: "u-2".into(),
                tls: false,
                fingerprint: Some("cd".repeat(32)),
            };
            let ad = register("plain", 7998, "127.0.0.1".parse().unwrap(), &txt).unwrap();
            let info = browse_for(&ad).expect("the advertisement within 10 s");
            let p = &info.txt_properties;
            assert_eq!(p.get_property_val_str("tls"), Some("0"));
            assert_eq!(p.get_property_val_str("fp"), None);
            assert_eq!(p.get_property_val_str("uuid"), Some("u-2"));
        })
        .join()
        .unwrap();
    }
}
