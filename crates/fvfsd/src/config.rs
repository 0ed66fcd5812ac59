//! The daemon's reading of the `[daemon]` section: the kernel flags of its FUSE mount and
//! the connection bounds of its API listeners. The file itself is `fvfs_engine::config`.

use anyhow::{bail, Result};
pub use fvfs_engine::config::*;

/// Daemon settings that belong to the faces the daemon runs.
pub trait DaemonExt {
    fn mount_flags(&self) -> fvfs_fuse::MountFlags;
    fn server_limits(&self) -> Result<fvfs_api::server::ServerLimits>;
}

impl DaemonExt for Daemon {
    /// The kernel flags of the daemon's FUSE mount.
    fn mount_flags(&self) -> fvfs_fuse::MountFlags {
        fvfs_fuse::MountFlags {
            suid: self.mount_suid.unwrap_or(false),
            dev: self.mount_dev.unwrap_or(false),
        }
    }

    /// The connection bounds of the API listeners, defaults filled in.
    fn server_limits(&self) -> Result<fvfs_api::server::ServerLimits> {
        let d = fvfs_api::server::ServerLimits::default();
        let secs = |key: &str, v: Option<u64>, default: std::time::Duration| match v {
            Some(0) => bail!("[daemon] {key} must be at least 1"),
            Some(n) => Ok(std::time::Duration::from_secs(n)),
            None => Ok(default),
        };
        if self.max_connections == Some(0) {
            bail!("[daemon] max_connections must be at least 1");
        }
        Ok(fvfs_api::server::ServerLimits {
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            header_timeout: secs(
                "header_timeout_secs",
                self.header_timeout_secs,
                d.header_timeout,
            )?,
            idle_timeout: secs("idle_timeout_secs", self.idle_timeout_secs, d.idle_timeout)?,
            body_timeout: secs("body_timeout_secs", self.body_timeout_secs, d.body_timeout)?,
            tls_handshake_timeout: d.tls_handshake_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits() {
        use std::time::Duration;
        let d = Config::default().daemon.server_limits().unwrap();
        assert_eq!(d, fvfs_api::server::ServerLimits::default());
        let c: Config = toml::from_str(
            "[daemon]\nmax_connections = 8\nheader_timeout_secs = 2\nidle_timeout_secs = 3\nbody_timeout_secs = 4\n",
        )
        .unwrap();
        let l = c.daemon.server_limits().unwrap();
        assert_eq!(l.max_connections, 8);
        assert_eq!(l.header_timeout, Duration::from_secs(2));
        assert_eq!(l.idle_timeout, Duration::from_secs(3));
        assert_eq!(l.body_timeout, Duration::from_secs(4));
        assert_eq!(l.tls_handshake_timeout, d.tls_handshake_timeout);
        for bad in ["max_connections = 0", "idle_timeout_secs = 0"] {
            let c: Config = toml::from_str(&format!("[daemon]\n{bad}\n")).unwrap();
            let e = c.daemon.server_limits().unwrap_err().to_string();
            assert!(e.contains(bad.split(' ').next().unwrap()), "{e}");
        }
    }

    #[test]
    fn devices_and_mount_flags() {
        let d = Config::default().daemon;
        assert_eq!(d.allow_devices, None);
        assert_eq!(
            d.mount_flags(),
            fvfs_fuse::MountFlags {
                suid: false,
                dev: false
            }
        );
        let c: Config = toml::from_str(
            "[daemon]\nallow_devices = true\nmount_suid = true\nmount_dev = false\n",
        )
        .unwrap();
        assert_eq!(c.daemon.allow_devices, Some(true));
        assert_eq!(
            c.daemon.mount_flags(),
            fvfs_fuse::MountFlags {
                suid: true,
                dev: false
            }
        );
    }

    #[test]
    fn example_file_parses_with_the_api_keys_on() {
        let text = include_str!("../../../config.example.toml");
        toml::from_str::<Config>(text).unwrap();
        let on: String = text
            .lines()
            .map(|l| {
                let keys = [
                    "http_",
                    "tls =",
                    "insecure_http =",
                    "mdns =",
                    "max_upload_gb",
                    "max_connections",
                    "header_timeout_secs",
                    "idle_timeout_secs",
                    "body_timeout_secs",
                    "state_dir",
                    "socket_path",
                    "allow_devices",
                    "mount_suid",
                    "mount_dev",
                    "recall_concurrency",
                    "keeper_grace_secs",
                    "bulk_policy",
                ];
                match l.strip_prefix("# ") {
                    Some(k) if keys.iter().any(|p| k.starts_with(p)) => k,
                    _ => l,
                }
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let c: Config = toml::from_str(&on).unwrap();
        assert_eq!(c.daemon.http_port, Some(7734));
        assert_eq!(c.hsm.keeper_grace_secs, Some(30));
        assert_eq!(c.daemon.tls, Some(true));
        assert_eq!(c.daemon.insecure_http, Some(false));
        assert_eq!(c.daemon.max_upload_gb, Some(1024));
        assert_eq!(
            c.daemon.server_limits().unwrap(),
            fvfs_api::server::ServerLimits::default(),
            "the example shows the defaults"
        );
        assert!(c.daemon.socket_path.is_some() && c.daemon.state_dir.is_some());
        assert_eq!(
            (
                c.daemon.allow_devices,
                c.daemon.mount_suid,
                c.daemon.mount_dev
            ),
            (Some(false), Some(false), Some(false))
        );
    }
}
