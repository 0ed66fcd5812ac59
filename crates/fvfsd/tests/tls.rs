//! TLS by default and certificate pins, through the real binaries: `fvfsc login` never
//! sends its token to a daemon whose certificate differs from the stored pin, and replaces
//! a pin only with `--replace-pin` naming the certificate the daemon presents (the one
//! `fvfsd status` prints); `fvfsd serve` refuses plain HTTP beyond loopback unless
//! `insecure_http = true`, and serves TLS there by default (in a network namespace with a
//! veth pair, so nothing listens on a real network).
//!
//! Whether a token reached the daemon is read from the daemon's device table over its
//! control socket: every request admitted with a token is counted there under the token's
//! name, and the token `laptop` is used for nothing else.

mod common;

use common::api::{fvfsc_bin, ApiDaemon};
use common::netns::Netns;
use common::{unix_http, Fixture};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The `tls` line of `fvfsd status`: `tls          sha256 <fp>`.
fn status_fingerprint(f: &Fixture) -> String {
    let out = f.ok(&["status"]);
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("tls ")).collect();
    assert_eq!(lines.len(), 1, "{out}");
    let fp = lines[0]
        .strip_prefix("tls          sha256 ")
        .unwrap_or_else(|| panic!("{}", lines[0]));
    assert!(
        fp.len() == 64 && fp.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{fp}"
    );
    fp.to_string()
}

/// Requests admitted with the token named `name`, from the daemon's device table.
fn requests_with(d: &ApiDaemon, name: &str) -> u64 {
    let (code, _, body) = unix_http(&d.state.join("fvfsd.sock"), "GET", "/v1/devices", b"");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["token"] == name)
        .map(|e| e["requests"].as_u64().unwrap())
        .sum()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn login_refuses_a_changed_certificate_until_replace_pin_names_it() {
    let Some(f) = Fixture::new() else { return };
    let laptop = f.ok(&["token", "create", "laptop"]).trim().to_string();
    let cfgdir = f.dir.path().join("laptop-config");
    let fvfsc = |args: &[&str]| -> Output {
        Command::new(fvfsc_bin())
            .env("FVFSC_CONFIG_DIR", &cfgdir)
            .env("FVFS_TOKEN", &laptop)
            .env("FVFSC_DISCOVERY_TIMEOUT", "0")
            .env_remove("FVFSD_URL")
            .env_remove("VFSD_URL")
            .args(args)
            .output()
            .unwrap()
    };
    let known = || std::fs::read_to_string(cfgdir.join("known_hosts.toml")).unwrap();

    // First use: pinned, and the pin is what the host's `fvfsd status` shows.
    let d = ApiDaemon::start(&f, &["--tls"]);
    let port = d.port();
    assert!(d.url.starts_with("https://127.0.0.1:"), "{}", d.url);
    let fp1 = status_fingerprint(&f);
    assert!(
        d.daemon
            .stdout
            .contains(&format!("tls        sha256 {fp1}")),
        "{:?}",
        d.daemon.stdout
    );
    let json: serde_json::Value = serde_json::from_str(&f.ok(&["status", "--json"])).unwrap();
    assert_eq!(json["tls_fingerprint"], fp1.as_str());
    let out = fvfsc(&["login", &d.url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("pinned certificate {fp1} for {}", d.addr)),
        "{}",
        text(&out.stderr)
    );
    let pinned = format!("\"{}\" = \"{fp1}\"\n", d.addr);
    assert_eq!(known(), pinned);
    assert_eq!(requests_with(&d, "laptop"), 1);
    d.stop();

    // The daemon comes back at the same address with another certificate.
    std::fs::remove_dir_all(f.dir.path().join("tls")).unwrap();
    let d = ApiDaemon::start_on(&f, port, &["--tls"]);
    let fp2 = status_fingerprint(&f);
    assert_ne!(fp1, fp2);

    // login (and any command) refuses it, names both fingerprints and the way out, keeps
    // the pin, and the token never reaches the daemon.
    let out = fvfsc(&["login", &d.url]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("pinned SHA-256 {fp1}, presented {fp2}"))
            && err.contains("`fvfsd status` on the host")
            && err.contains(&format!("fvfsc login --replace-pin {fp2} {}", d.url)),
        "{err}"
    );
    let out = fvfsc(&["ls", "/"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&fp2), "{}", text(&out.stderr));
    assert_eq!(known(), pinned);
    assert_eq!(requests_with(&d, "laptop"), 0);

    // --replace-pin with another fingerprint than the one presented: refused likewise.
    let wrong = fp1.clone();
    let out = fvfsc(&["login", "--replace-pin", &wrong, &d.url]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "presents the certificate SHA-256 {fp2}, not the {wrong} given to --replace-pin"
        )),
        "{err}"
    );
    assert_eq!(known(), pinned);
    assert_eq!(requests_with(&d, "laptop"), 0);

    // With the fingerprint `fvfsd status` shows (typed as AB:CD:…): replaced, then the
    // token goes, once.
    let typed: Vec<String> = fp2.to_uppercase().as_bytes().chunks(2).map(text).collect();
    let out = fvfsc(&["login", "--replace-pin", &typed.join(":"), &d.url]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "replaced pinned certificate {fp1} by {fp2} for {}",
            d.addr
        )),
        "{err}"
    );
    assert_eq!(known(), format!("\"{}\" = \"{fp2}\"\n", d.addr));
    assert_eq!(requests_with(&d, "laptop"), 1);
    let out = fvfsc(&["ls", "-1", "/"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(requests_with(&d, "laptop"), 2);

    // A host:port pinned with TLS is not sent the token over plain HTTP.
    let plain = format!("http://{}", d.addr);
    let out = fvfsc(&["login", &plain]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{} was pinned with TLS (SHA-256 {fp2})", d.addr)),
        "{err}"
    );
    assert_eq!(requests_with(&d, "laptop"), 2);
    d.stop();
}

/// A filesystem on a local block directory (no S3: the daemon runs in a namespace that
/// cannot reach the test's S3 server), its daemon config, and `fvfsd serve` in `ns`.
struct Host {
    dir: tempfile::TempDir,
    meta: String,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::Builder::new()
            .prefix("fvfs-tls-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let meta = format!("sqlite://{}/meta.db", dir.path().display());
        let blocks = dir.path().join("blocks");
        let out = Command::new(common::FVFSD)
            .args(["format", "--meta", &meta, "--storage"])
            .arg(&blocks)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        Host { dir, meta }
    }

    /// `fvfsd serve --bind BIND` in `ns` with `[daemon]` keys `daemon_toml`: its exit
    /// status if it stops within 60 s, else the child (running) and its stdout up to the
    /// `api` line.
    fn serve(&self, ns: &Netns, bind: &str, daemon_toml: &str) -> Served {
        let cfg = self.dir.path().join("fvfs.toml");
        std::fs::write(&cfg, format!("[daemon]\nmdns = false\n{daemon_toml}")).unwrap();
        let log = self.dir.path().join("serve.log");
        let _ = std::fs::remove_file(&log);
        let mut child = ns
            .cmd(Path::new(common::FVFSD))
            .args(["serve", "--no-mount", "--port", "0", "--bind", bind])
            .args(["--meta", &self.meta])
            .env("FVFS_CONFIG", &cfg)
            .env("FVFS_HOME", self.dir.path().join("home"))
            .env("FVFS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut lines = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(l) => {
                    let api = l.starts_with("api ");
                    lines.push(l);
                    if api {
                        return Served::Running(child, lines, log);
                    }
                }
                Err(_) => {
                    let st = child.wait().unwrap();
                    return Served::Exited(st, std::fs::read_to_string(&log).unwrap(), lines);
                }
            }
        }
    }
}

enum Served {
    Running(std::process::Child, Vec<String>, std::path::PathBuf),
    Exited(std::process::ExitStatus, String, Vec<String>),
}

impl Served {
    /// The running daemon's stdout lines and log; stopped (SIGTERM, bounded) afterwards.
    fn running(self) -> (Vec<String>, String) {
        match self {
            Served::Running(mut child, lines, log) => {
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                while child.try_wait().unwrap().is_none() {
                    assert!(std::time::Instant::now() < deadline, "serve did not stop");
                    std::thread::sleep(Duration::from_millis(50));
                }
                (lines, std::fs::read_to_string(log).unwrap())
            }
            Served::Exited(st, log, lines) => {
                panic!("fvfsd serve exited ({st}); stdout {lines:?}; log:\n{log}")
            }
        }
    }
}

#[test]
fn plain_http_beyond_loopback_needs_insecure_http() {
    if unsafe { libc::geteuid() } != 0 {
        assert_ne!(
            std::env::var("FVFS_REQUIRE_PRIVILEGED").as_deref(),
            Ok("1"),
            "this test needs root for its network namespace"
        );
        eprintln!("SKIP: needs root (network namespace)");
        return;
    }
    if !common::netns::have_ip() {
        return;
    }
    let host = Host::new();
    let ns = Netns::new("tls");
    ns.add_veth("lan0", "10.77.0.1/24");

    // tls = false beyond loopback (an address, or the wildcard): refused at start, naming
    // both ways out, before anything listens.
    for bind in ["10.77.0.1", "0.0.0.0"] {
        match host.serve(&ns, bind, "tls = false\n") {
            Served::Exited(st, log, lines) => {
                assert_eq!(st.code(), Some(1), "{log}");
                assert!(!lines.iter().any(|l| l.starts_with("api ")), "{lines:?}");
                assert!(
                    log.contains(&format!(
                        "`[daemon] tls = false` would serve the API on {bind}, beyond loopback"
                    )) && log.contains("either remove `tls = false`")
                        && log.contains("or set `[daemon] insecure_http = true`"),
                    "{log}"
                );
            }
            Served::Running(..) => panic!("plain HTTP on {bind} without insecure_http started"),
        }
    }

    // With insecure_http: plain HTTP there, with a warning.
    let served = host.serve(&ns, "10.77.0.1", "tls = false\ninsecure_http = true\n");
    let (lines, log) = served.running();
    let api = lines.iter().find(|l| l.starts_with("api ")).unwrap();
    assert!(api.starts_with("api http://10.77.0.1:"), "{api}");
    assert!(!lines.iter().any(|l| l.starts_with("tls ")), "{lines:?}");
    let warn: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("insecure_http"))
        .collect();
    assert_eq!(warn.len(), 1, "{log}");
    assert!(
        warn[0].contains("WARN") && warn[0].contains("over plain HTTP"),
        "{}",
        warn[0]
    );

    // Nothing said: TLS beyond loopback, with the certificate `fvfsd status` names, and a
    // plain HTTP request gets no HTTP answer.
    let served = host.serve(&ns, "10.77.0.1", "");
    let Served::Running(child, lines, log) = served else {
        panic!("the default start failed")
    };
    let api = lines
        .iter()
        .find(|l| l.starts_with("api "))
        .unwrap()
        .clone();
    let addr = api
        .strip_prefix("api https://")
        .unwrap_or_else(|| panic!("{api}"))
        .to_string();
    assert!(addr.starts_with("10.77.0.1:"), "{addr}");
    let fp = status_fp_of(host.dir.path());
    assert!(
        lines.contains(&format!("tls        sha256 {fp}")),
        "{lines:?}"
    );
    let answer = ns.run_in(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        buf
    });
    assert!(
        !answer.starts_with(b"HTTP/1.1 "),
        "plain HTTP was answered: {}",
        text(&answer)
    );
    let (_, log2) = Served::Running(child, lines, log).running();
    assert!(!log2.contains("insecure_http"), "{log2}");
}

/// The `tls` line of `fvfsd status` for the filesystem in `state`.
fn status_fp_of(state: &Path) -> String {
    let meta = format!("sqlite://{}/meta.db", state.display());
    let out = Command::new(common::FVFSD)
        .args(["status", "--meta", &meta])
        .env("FVFS_HOME", state.join("home"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = text(&out.stdout);
    out.lines()
        .find_map(|l| l.strip_prefix("tls          sha256 "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string()
}
