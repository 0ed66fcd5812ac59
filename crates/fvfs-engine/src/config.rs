//! The TOML configuration file (`--config`), with the sections of the fvfs README:
//! `[daemon]`, `[tiers.NAME]`, `[upload]`, `[eviction]`, `[backup]`, `[trash]`, plus `[format]` for the settings
//! `fvfsd format` writes. Unknown keys are errors that name the key. Credentials are never
//! read from this file: S3 keys come from the environment or the AWS chain. It lives with
//! the engine because every face reads it and adds its own section.

use crate::error::{EngineError, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

// Some keys are validated now and take effect with tiering (see config.example.toml).
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub daemon: Daemon,
    #[serde(default)]
    pub tiers: BTreeMap<String, TierConfig>,
    #[serde(default)]
    pub upload: Upload,
    #[serde(default)]
    pub eviction: Eviction,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub hsm: crate::hsm::HsmSection,
    #[serde(default)]
    pub backup: Backup,
    #[serde(default)]
    pub trash: Trash,
    #[serde(default)]
    pub sessions: Sessions,
}

/// `[sessions]`: hosts that mount one filesystem (docs/SEMANTICS.md, "Several hosts").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sessions {
    /// Seconds a mount may go without a heartbeat before another host ends its session,
    /// releasing its locks and purging its unlinked files (default 60, at least 1).
    pub timeout_secs: Option<u64>,
}

/// Days a deleted or replaced file is kept in `/.trash` when `[trash] days` is absent.
pub const DEFAULT_TRASH_DAYS: u32 = 1;

/// `[trash]`: deleted and replaced files are kept under `/.trash/<date>/`
/// (docs/SEMANTICS.md, "Trash").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trash {
    /// Days a deleted file is kept (default 1; 0 turns the trash off and empties it).
    pub days: Option<u32>,
}

/// `[backup]`: continuous metadata shipping to the durable tier (docs/FORMAT.md,
/// "Shipped metadata").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// Ship the metadata at all (default true).
    pub enabled: Option<bool>,
    /// Committed metadata reaches the durable tier within this many seconds (default 10).
    pub max_lag_secs: Option<u64>,
    /// A new full base at least this often, in hours (default 24).
    pub base_interval_hours: Option<u64>,
    /// Points in time restorable for this many days (default 7).
    pub retention_days: Option<u64>,
}

// Some keys are validated now and take effect with tiering (see config.example.toml).
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Daemon {
    /// Where `serve` mounts; an empty path disables the mount.
    pub mount_path: Option<PathBuf>,
    /// TCP port of the HTTP API (default 7734; 0 = any free port).
    pub http_port: Option<u16>,
    /// Address the API listens on (default 0.0.0.0 once a token exists, else 127.0.0.1).
    pub http_bind: Option<std::net::IpAddr>,
    /// Serve the API over HTTPS with the self-signed certificate of the state dir.
    /// Default: on when the API listens beyond loopback, off on loopback only.
    pub tls: Option<bool>,
    /// Allow plain HTTP beyond loopback (tokens then cross the network in the clear).
    pub insecure_http: Option<bool>,
    /// Advertise the API over mDNS (default true).
    pub mdns: Option<bool>,
    /// Largest upload through the API, in GiB (default 1024).
    pub max_upload_gb: Option<u64>,
    /// TCP connections the API serves at once (default 512); one more gets `503`.
    pub max_connections: Option<usize>,
    /// Seconds from accept (TLS handshake included) to a complete request head, and for
    /// HTTP/1 from a response to the next head (default 30).
    pub header_timeout_secs: Option<u64>,
    /// Seconds a connection may stay open with no request in flight (default 60).
    pub idle_timeout_secs: Option<u64>,
    /// Seconds a request body may send nothing while it is read, and a client may read
    /// nothing of a response (default 60).
    pub body_timeout_secs: Option<u64>,
    /// The control socket (default `<state dir>/fvfsd.sock`).
    pub socket_path: Option<PathBuf>,
    /// Tokens, certificate, control socket (default: the directory of the SQLite
    /// database, else the data dir).
    pub state_dir: Option<PathBuf>,
    /// Path of the SQLite database (the README's key); `meta_url` is the general form.
    pub metadata_db: Option<PathBuf>,
    pub meta_url: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub cache_size: Option<ByteSize>,
    /// Devices and set-id files: admin tokens may create character and block devices and
    /// set-user-ID/set-group-ID files through the API (default false: no network caller
    /// may).
    pub allow_devices: Option<bool>,
    /// The daemon's FUSE mount (`serve`, `mount`) honours set-user-ID bits (default false:
    /// `nosuid`).
    pub mount_suid: Option<bool>,
    /// The daemon's FUSE mount opens device nodes (default false: `nodev`).
    pub mount_dev: Option<bool>,
}

// Some keys are validated now and take effect with tiering (see config.example.toml).
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub path: Option<PathBuf>,
    /// Any storage location URL, e.g. `webdav://nas.local:8080/fvfs` for a NAS over WebDAV.
    pub url: Option<String>,
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub prefix: Option<String>,
    pub endpoint: Option<String>,
    pub path_style: Option<bool>,
    pub storage_class: Option<String>,
    pub high_watermark: Option<ByteSize>,
    pub low_watermark: Option<ByteSize>,
    pub high_watermark_gb: Option<u64>,
    pub low_watermark_gb: Option<u64>,
    pub durable: Option<bool>,
    pub keep_copy: Option<bool>,
}

// Some keys are validated now and take effect with tiering (see config.example.toml).
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    pub flush_size_mb: Option<u64>,
    pub flush_interval_secs: Option<u64>,
    /// Acknowledge fsync and close from the local write journal when the hottest tier is
    /// remote (default false; docs/SEMANTICS.md, "Write-back").
    pub writeback: Option<bool>,
}

// Some keys are validated now and take effect with tiering (see config.example.toml).
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eviction {
    pub interval_secs: Option<u64>,
    pub recency_weight: Option<f64>,
    pub frequency_weight: Option<f64>,
    /// Blocks per second the scrubber re-verifies (0 or absent: off).
    pub scrub_blocks_per_sec: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Format {
    pub compression: Option<String>,
    pub block_min: Option<ByteSize>,
    pub block_avg: Option<ByteSize>,
    pub block_max: Option<ByteSize>,
}

/// A byte count written as a number or a string such as "200GB", "150GiB", "512 MiB".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => parse_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses "123", "4KiB", "10 MB", "1.5GiB", "2T".
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        EngineError::Config(format!("invalid size {s:?}: expected e.g. 512MiB or 200GB"))
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        u => {
            return Err(EngineError::Config(format!(
                "invalid size {s:?}: unknown unit {u:?}"
            )))
        }
    };
    Ok((n * mult as f64) as u64)
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(EngineError::io(format!(
            "cannot read config file {}",
            path.display()
        )))?;
        toml::from_str(&text).map_err(|e| {
            EngineError::Config(format!(
                "invalid config file {}: {}",
                path.display(),
                e.to_string().trim()
            ))
        })
    }

    /// The metadata URL the config names, if any.
    pub fn meta_url(&self) -> Option<String> {
        self.daemon.meta_url.clone().or_else(|| {
            self.daemon
                .metadata_db
                .as_ref()
                .map(|p| format!("sqlite://{}", p.display()))
        })
    }

    /// Tiers from `[tiers.*]`, hottest first (local, nas, s3, then others by name), with
    /// their watermarks and roles.
    pub fn tier_settings(&self) -> Result<Vec<fvfs_types::TierSettings>> {
        let locs = self.storage_locations()?;
        let names = self.tier_names();
        let mut out = Vec::with_capacity(locs.len());
        for (name, location) in names.into_iter().zip(locs) {
            let t = &self.tiers[&name];
            let gb = |v: Option<u64>| v.map(|g| g * 1_000_000_000);
            out.push(fvfs_types::TierSettings {
                high_watermark: t.high_watermark.map(|b| b.0).or(gb(t.high_watermark_gb)),
                low_watermark: t.low_watermark.map(|b| b.0).or(gb(t.low_watermark_gb)),
                durable: t.durable.unwrap_or(false),
                keep_copy: t.keep_copy.unwrap_or(false),
                name,
                location,
            });
        }
        Ok(out)
    }

    fn tier_names(&self) -> Vec<String> {
        let rank = |n: &str| match n {
            "local" => 0,
            "nas" => 1,
            "s3" => 2,
            _ => 3,
        };
        let mut names: Vec<String> = self.tiers.keys().cloned().collect();
        names.sort_by_key(|n| (rank(n), n.clone()));
        names
    }

    /// Storage locations from `[tiers.*]`, hottest first: local, nas, then s3, then others
    /// in name order.
    pub fn storage_locations(&self) -> Result<Vec<String>> {
        let rank = |n: &str| match n {
            "local" => 0,
            "nas" => 1,
            "s3" => 2,
            _ => 3,
        };
        let mut names: Vec<&String> = self.tiers.keys().collect();
        names.sort_by_key(|n| (rank(n), n.to_string()));
        names
            .into_iter()
            .map(|n| {
                let t = &self.tiers[n];
                match (&t.path, &t.bucket, &t.url) {
                    (Some(p), None, None) => Ok(p.display().to_string()),
                    (None, None, Some(u)) => Ok(u.clone()),
                    (None, Some(b), None) => {
                        let mut url = format!("s3://{b}");
                        if let Some(p) = t.prefix.as_deref().map(|p| p.trim_matches('/')) {
                            if !p.is_empty() {
                                url.push('/');
                                url.push_str(p);
                            }
                        }
                        let mut q = vec![format!(
                            "region={}",
                            t.region.as_deref().unwrap_or("us-east-1")
                        )];
                        if let Some(e) = &t.endpoint {
                            q.push(format!("endpoint={e}"));
                        }
                        if let Some(ps) = t.path_style {
                            q.push(format!("path_style={ps}"));
                        }
                        if let Some(c) = &t.storage_class {
                            q.push(format!("storage_class={c}"));
                        }
                        Ok(format!("{url}?{}", q.join("&")))
                    }
                    _ => Err(EngineError::Config(format!(
                        "[tiers.{n}] needs exactly one of `path`, `bucket` or `url`"
                    ))),
                }
            })
            .collect()
    }
}

impl Config {
    /// The replication and eviction policy the file asks for.
    pub fn policy(&self) -> fvfs_vfs::TierPolicy {
        let mut p = fvfs_vfs::TierPolicy::default();
        if let Some(mb) = self.upload.flush_size_mb {
            p.flush_bytes = mb << 20;
        }
        if let Some(s) = self.upload.flush_interval_secs {
            p.flush_interval = std::time::Duration::from_secs(s);
        }
        if let Some(s) = self.eviction.interval_secs {
            p.evict_interval = std::time::Duration::from_secs(s.max(1));
        }
        if let Some(w) = self.eviction.recency_weight {
            p.recency_weight = w;
        }
        if let Some(w) = self.eviction.frequency_weight {
            p.frequency_weight = w;
        }
        if let Some(r) = self.eviction.scrub_blocks_per_sec {
            p.scrub_blocks_per_sec = r;
        }
        if let Some(w) = self.upload.writeback {
            p.writeback = w;
        }
        if let Some(on) = self.backup.enabled {
            p.meta_ship.enabled = on;
        }
        if let Some(s) = self.backup.max_lag_secs {
            p.meta_ship.max_lag = std::time::Duration::from_secs(s.max(1));
        }
        if let Some(h) = self.backup.base_interval_hours {
            p.meta_ship.base_every = std::time::Duration::from_secs(h.max(1) * 3600);
        }
        if let Some(d) = self.backup.retention_days {
            p.meta_ship.retention = std::time::Duration::from_secs(d * 86_400);
        }
        p.trash_days = self.trash.days.unwrap_or(DEFAULT_TRASH_DAYS);
        if let Some(s) = self.sessions.timeout_secs {
            p.session_timeout = std::time::Duration::from_secs(s.max(1));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("200GB").unwrap(), 200_000_000_000);
        assert_eq!(parse_size("150GiB").unwrap(), 150 << 30);
        assert_eq!(parse_size("512 MiB").unwrap(), 512 << 20);
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn unknown_key_is_named() {
        let e = toml::from_str::<Config>("[daemon]\nmount_pth = \"/x\"\n").unwrap_err();
        assert!(e.to_string().contains("mount_pth"), "{e}");
    }

    #[test]
    fn readme_example_parses() {
        let c: Config = toml::from_str(
            r#"
[daemon]
mount_path = "/mnt/fvfs"
http_port = 7734
metadata_db = "/var/fvfsd/meta.db"
[tiers.local]
path = "/srv/fvfs-cache"
high_watermark_gb = 200
low_watermark_gb = 150
[tiers.s3]
bucket = "freddie-fvfs"
region = "us-east-1"
prefix = "fvfs/"
[upload]
flush_size_mb = 256
flush_interval_secs = 300
[eviction]
interval_secs = 600
recency_weight = 0.7
frequency_weight = 0.3
"#,
        )
        .unwrap();
        assert_eq!(c.meta_url().unwrap(), "sqlite:///var/fvfsd/meta.db");
        let locs = c.storage_locations().unwrap();
        let w: Config = toml::from_str("[tiers.nas]\nurl = \"webdav://nas:8080/fvfs\"\n").unwrap();
        assert_eq!(
            w.storage_locations().unwrap(),
            vec!["webdav://nas:8080/fvfs".to_string()]
        );
        assert_eq!(locs[0], "/srv/fvfs-cache");
        assert_eq!(locs[1], "s3://freddie-fvfs/fvfs?region=us-east-1");
    }

    #[test]
    fn daemon_api_keys_parse() {
        let c: Config = toml::from_str(
            "[daemon]\nhttp_bind = \"192.168.1.5\"\nhttp_port = 0\ntls = true\nmdns = false\nmax_upload_gb = 2\nsocket_path = \"/run/fvfsd.sock\"\nstate_dir = \"/var/lib/fvfs\"\nmount_path = \"\"\n",
        )
        .unwrap();
        assert_eq!(c.daemon.http_bind, Some("192.168.1.5".parse().unwrap()));
        assert_eq!(c.daemon.tls, Some(true));
        assert_eq!(c.daemon.mount_path, Some(PathBuf::new()));
        assert!(toml::from_str::<Config>("[daemon]\nhttp_bind = \"nope\"\n").is_err());
    }
}
