//! Helpers of the tests that drive `fvfsd serve` over the network: the daemon with its
//! admin token and a debug log (checked for secrets), the `fvfsc` binary, and raw
//! HTTP/1.1 written by hand so that nothing normalises what a test sends.

use super::Fixture;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// `target/<profile>/fvfsc`, built on demand: it is another package's binary.
pub fn fvfsc_bin() -> PathBuf {
    let dir = Path::new(super::FVFSD).parent().unwrap().to_path_buf();
    let bin = dir.join("fvfsc");
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "fvfsc", "--bin", "fvfsc"]);
        if dir.file_name().and_then(|n| n.to_str()) == Some("release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo build -p fvfsc");
        assert!(st.success(), "cargo build -p fvfsc failed");
    });
    assert!(bin.exists(), "{} is missing", bin.display());
    bin
}

/// A running `fvfsd serve` (no mount of its own, port 0, debug log) and how to reach it.
pub struct ApiDaemon {
    pub daemon: super::Daemon,
    pub url: String,
    pub addr: String,
    pub token: String,
    pub state: PathBuf,
    /// The daemon's log (debug level): checked for secrets at stop.
    pub log: PathBuf,
}

impl ApiDaemon {
    pub fn start(f: &Fixture, extra: &[&str]) -> ApiDaemon {
        Self::start_on(f, 0, extra)
    }

    /// [`ApiDaemon::start`] on a given port (0: any), e.g. to come back where clients know.
    pub fn start_on(f: &Fixture, port: u16, extra: &[&str]) -> ApiDaemon {
        let port = port.to_string();
        let mut args = vec!["--no-mount", "--port", port.as_str()];
        args.extend(extra);
        Self::start_with(f, &args)
    }

    /// `fvfsd serve ARGS` exactly (no `--no-mount` added: a config may mount).
    pub fn start_with(f: &Fixture, args: &[&str]) -> ApiDaemon {
        let log = f
            .dir
            .path()
            .join(format!("serve-{}.log", rand::random::<u32>()));
        let home = f.dir.path().join("home");
        let daemon = f.serve_with(
            args,
            &[("FVFS_LOG", "debug"), ("FVFS_HOME", home.to_str().unwrap())],
            &log,
        );
        let url = daemon.url.trim().to_string();
        let addr = url.split("://").nth(1).unwrap().to_string();
        ApiDaemon {
            daemon,
            addr,
            url,
            token: f.admin_token(),
            state: f.dir.path().to_path_buf(),
            log,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Asserts that the daemon's log (debug level) never carried `secret`.
    pub fn assert_not_logged(&self, secret: &str) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(!log.is_empty(), "the daemon logged nothing at debug level");
        assert!(
            !log.contains(secret),
            "a secret appeared in the daemon's log"
        );
    }

    /// `fvfsc ARGS` against this daemon, with a private config dir.
    pub fn fvfsc(&self) -> Command {
        let mut c = Command::new(fvfsc_bin());
        c.env("FVFSD_URL", &self.url)
            .env("FVFS_TOKEN", &self.token)
            .env("FVFSC_CONFIG_DIR", self.state.join("fvfsc-config"))
            .env("XDG_CACHE_HOME", self.state.join("fvfsc-cache"))
            .env_remove("VFSD_URL");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.fvfsc().args(args).output().unwrap()
    }

    /// Runs fvfsc, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "fvfsc {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend(args);
        let s = self.ok(&all);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("fvfsc {args:?} --json: {e}: {s}"))
    }

    /// SIGTERM and wait (bounded); asserts a clean exit and a log without secrets.
    pub fn stop(mut self) {
        self.assert_not_logged(&self.token);
        self.assert_not_logged(fvfs_testkit::DEFAULT_SECRET_KEY);
        let st = self.daemon.stop(60);
        assert!(st.success(), "fvfsd serve exited with {st}");
    }
}

/// One raw HTTP/1.1 exchange: `head` is the request line and headers (without the blank
/// line), `body` is sent as is. Returns (status, headers lowercased, body).
pub fn raw(addr: &str, head: &str, body: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let req = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    super::read_response(&mut s)
}

pub fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub fn get(d: &ApiDaemon, path: &str, extra: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let auth = format!("Authorization: Bearer {}", d.token);
    let head = if extra.is_empty() {
        format!("GET {path} HTTP/1.1\r\n{auth}")
    } else {
        format!("GET {path} HTTP/1.1\r\n{auth}\r\n{extra}")
    };
    raw(&d.addr, &head, b"")
}

pub fn error_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not a JSON error: {}", String::from_utf8_lossy(body)));
    v["error"]["code"].as_str().unwrap().to_string()
}
