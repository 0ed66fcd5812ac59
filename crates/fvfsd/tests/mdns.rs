//! Discovery: inside a network namespace of its own (only `lo`, with multicast on), the
//! real `fvfsd serve` registers `_fvfs._tcp.local.` and the real `fvfsc`, given no URL at
//! all, finds it by mDNS and talks to it over HTTPS, pinning the certificate whose
//! SHA-256 the TXT record carries. The namespace keeps the test off every real
//! network and away from other daemons.

mod common;

use common::netns::Netns;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn fvfsc_finds_the_daemon_by_mdns_in_a_namespace() {
    if !common::privileged() {
        return;
    }
    if !common::netns::have_ip() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("fvfs-mdns-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let meta = format!("sqlite://{}/meta.db", dir.path().display());
    let blocks = dir.path().join("blocks");
    let out = Command::new(common::FVFSD)
        .args([
            "format",
            "--meta",
            &meta,
            "--storage",
            blocks.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = std::fs::read_to_string(dir.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_string();

    let ns = Netns::new("mdns");
    let mut serve = ns.cmd(Path::new(common::FVFSD));
    serve
        .args([
            "serve",
            "--meta",
            &meta,
            "--no-mount",
            "--port",
            "0",
            "--tls",
        ])
        .env("FVFS_HOME", dir.path().join("home"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut child = serve.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let _serve = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("api ") || line.starts_with("tls ") {
                let _ = tx.send(line);
            }
        }
    });
    let tls = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("fvfsd serve printed its tls line");
    let fp = tls.rsplit(' ').next().unwrap().to_string();
    assert_eq!(fp.len(), 64, "a SHA-256 fingerprint: {tls}");
    let api = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("fvfsd serve printed its api line");
    assert!(api.starts_with("api https://"), "{api}");
    eprintln!("daemon: {api}");

    // No FVFSD_URL, no VFSD_URL, no stored login: only mDNS can find it.
    let fvfsc = common::api::fvfsc_bin();
    let mut c = ns.cmd(&fvfsc);
    c.args(["--json", "status"])
        .env_remove("FVFSD_URL")
        .env_remove("VFSD_URL")
        .env("FVFS_TOKEN", &token)
        .env("FVFSC_CONFIG_DIR", dir.path().join("fvfsc"))
        .env("FVFSC_DISCOVERY_TIMEOUT", "10");
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "fvfsc status by discovery: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let settings_uuid = uuid_of(&meta);
    assert_eq!(status["uuid"].as_str(), Some(settings_uuid.as_str()));

    let mut c = ns.cmd(&fvfsc);
    c.args(["--json", "discover"])
        .env("FVFSC_DISCOVERY_TIMEOUT", "10");
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = String::from_utf8_lossy(&out.stdout);
    assert!(
        found.contains(&settings_uuid),
        "TXT carries the uuid: {found}"
    );
    assert!(found.contains(&fp), "TXT carries the fingerprint: {found}");
    // The fingerprint learnt from mDNS was pinned for the daemon's address.
    let known = std::fs::read_to_string(dir.path().join("fvfsc/known_hosts.toml"))
        .expect("fvfsc stored the pin");
    assert!(known.contains(&fp), "{known}");
}

fn uuid_of(meta: &str) -> String {
    let db = meta.strip_prefix("sqlite://").unwrap();
    let conn = rusqlite::Connection::open(db).unwrap();
    let json: String = conn
        .query_row(
            "SELECT value FROM settings WHERE key = 'settings'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["uuid"].as_str().unwrap().to_string()
}
