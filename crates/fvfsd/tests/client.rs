//! End to end over the network face: the real `fvfsd serve` (HTTP API on 127.0.0.1 port 0,
//! no FUSE mount of its own) on the S3 test server, driven by the real `fvfsc` binary, by
//! raw HTTP/1.1 written by hand (so that nothing normalises what we send), and by
//! `fvfsc mount`. Bad input: traversal, oversized and truncated bodies, a client killed in
//! the middle of a PUT, revoked and read-only tokens.

mod common;

use common::Fixture;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/fvfsc`, built on demand: it is another package's binary.
fn fvfsc_bin() -> PathBuf {
    let dir = Path::new(common::FVFSD).parent().unwrap().to_path_buf();
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

/// A running `fvfsd serve` and how to reach it.
struct Daemon {
    child: Child,
    url: String,
    addr: String,
    token: String,
    state: PathBuf,
    /// The daemon's log (debug level): checked for secrets at stop.
    log: PathBuf,
}

impl Daemon {
    fn start(f: &Fixture, extra: &[&str]) -> Daemon {
        let log = f
            .dir
            .path()
            .join(format!("serve-{}.log", rand::random::<u32>()));
        let mut cmd = f.fvfsd();
        cmd.args(["serve", "--meta", &f.meta_url, "--no-mount", "--port", "0"])
            .args(extra)
            .env("FVFS_LOG", "debug")
            .env("FVFS_HOME", f.dir.path().join("home"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = cmd.spawn().expect("spawn fvfsd serve");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("api ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                panic!("fvfsd serve printed no `api` line within 60 s");
            }
        };
        let state = f.dir.path().to_path_buf();
        let token = std::fs::read_to_string(state.join("admin.token"))
            .expect("admin.token beside the metadata")
            .trim()
            .to_string();
        let addr = url.split("://").nth(1).unwrap().to_string();
        Daemon {
            child,
            url,
            addr,
            token,
            state,
            log,
        }
    }

    /// Asserts that the daemon's log (debug level) never carried `secret`.
    fn assert_not_logged(&self, secret: &str) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(!log.is_empty(), "the daemon logged nothing at debug level");
        assert!(
            !log.contains(secret),
            "a secret appeared in the daemon's log"
        );
    }

    /// `fvfsc ARGS` against this daemon, with a private config dir.
    fn fvfsc(&self) -> Command {
        let mut c = Command::new(fvfsc_bin());
        c.env("FVFSD_URL", &self.url)
            .env("FVFS_TOKEN", &self.token)
            .env("FVFSC_CONFIG_DIR", self.state.join("fvfsc-config"))
            .env("XDG_CACHE_HOME", self.state.join("fvfsc-cache"))
            .env_remove("VFSD_URL");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.fvfsc().args(args).output().unwrap()
    }

    /// Runs fvfsc, asserts success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "fvfsc {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend(args);
        let s = self.ok(&all);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("fvfsc {args:?} --json: {e}: {s}"))
    }

    /// SIGTERM and wait (bounded); asserts a clean exit.
    fn stop(mut self) {
        self.assert_not_logged(&self.token.clone());
        self.assert_not_logged(fvfs_testkit::DEFAULT_SECRET_KEY);
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "fvfsd serve exited with {st}");
                return;
            }
            assert!(Instant::now() < deadline, "fvfsd serve ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw HTTP/1.1 exchange: `head` is the request line and headers (without the blank
/// line), `body` is sent as is. Returns (status, headers lowercased, body).
fn raw(addr: &str, head: &str, body: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let req = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let text = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = text.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn get(d: &Daemon, path: &str, extra: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let auth = format!("Authorization: Bearer {}", d.token);
    let head = if extra.is_empty() {
        format!("GET {path} HTTP/1.1\r\n{auth}")
    } else {
        format!("GET {path} HTTP/1.1\r\n{auth}\r\n{extra}")
    };
    raw(&d.addr, &head, b"")
}

fn error_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not a JSON error: {}", String::from_utf8_lossy(body)));
    v["error"]["code"].as_str().unwrap().to_string()
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn fvfsc_drives_every_command() {
    let Some(f) = Fixture::new() else { return };
    let d = Daemon::start(&f, &[]);
    let dir = f.dir.path();

    // put from a file (hash-checked) and from stdin; --parents makes directories.
    let big = data(3 << 20, 1);
    let src = dir.join("big.bin");
    std::fs::write(&src, &big).unwrap();
    let st = d.json(&[
        "put",
        "--parents",
        src.to_str().unwrap(),
        "/photos/2024/big.bin",
    ]);
    assert_eq!(st["size"], 3 << 20);
    let mut child = d
        .fvfsc()
        .args(["put", "-", "/notes/hello.txt", "--parents"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    assert!(child.wait().unwrap().success());

    // cat: whole, and a range.
    let out = d.run(&["cat", "/photos/2024/big.bin"]);
    assert!(out.status.success());
    assert!(out.stdout == big, "cat returned other bytes");
    let out = d.run(&["cat", "--range", "1000-1999", "/photos/2024/big.bin"]);
    assert_eq!(out.stdout, &big[1000..2000]);
    assert_eq!(d.ok(&["cat", "/notes/hello.txt"]), "hello\n");

    // ls, stat, mkdir, mv, rm.
    let ls = d.json(&["ls", "/photos/2024"]);
    let names: Vec<&str> = ls["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/photos/2024/big.bin"]);
    assert!(d.ok(&["ls", "/"]).contains("photos"));
    let st = d.json(&["stat", "/notes/hello.txt"]);
    assert_eq!(st["kind"], "file");
    assert_eq!(st["size"], 6);
    assert!(st["etag"].is_string());
    d.ok(&["mkdir", "/empty"]);
    d.ok(&["mkdir", "-p", "/deep/er/est"]);
    assert_eq!(d.json(&["stat", "/deep/er/est"])["kind"], "dir");
    d.ok(&["mv", "/notes/hello.txt", "/deep/hello.txt"]);
    assert!(!d.run(&["stat", "/notes/hello.txt"]).status.success());
    assert_eq!(d.ok(&["cat", "/deep/hello.txt"]), "hello\n");
    d.ok(&["rm", "/deep/hello.txt"]);
    let out = d.run(&["stat", "/deep/hello.txt"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such file"),
        "a clear error: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // status, wal, devices, flush.
    let s = d.json(&["status"]);
    assert_eq!(s["tiers"].as_array().unwrap().len(), 1);
    assert!(s["uuid"].is_string());
    assert!(d.ok(&["status"]).contains("s3") || d.ok(&["status"]).contains("tier"));
    let w = d.json(&["wal"]);
    assert!(w["pending"].is_u64());
    d.ok(&["wal"]);
    let dev = d.json(&["devices"]);
    assert!(
        !dev["devices"].as_array().unwrap().is_empty(),
        "fvfsc is a device"
    );
    let fl = d.json(&["flush"]);
    assert_eq!(fl["pending"], 0, "flush drains the replication queue: {fl}");
    let ev = d.json(&["evict"]);
    assert!(ev["evicted_bytes"].is_u64(), "{ev}");
    assert!(
        d.ok(&["devices"]).contains("fvfsc"),
        "human devices output names the client"
    );

    // login stores the URL and token (mode 0600); later commands need neither.
    let cfgdir = dir.join("login-config");
    let mut login = Command::new(fvfsc_bin())
        .env("FVFSC_CONFIG_DIR", &cfgdir)
        .env_remove("FVFSD_URL")
        .env_remove("VFSD_URL")
        .env_remove("FVFS_TOKEN")
        .args(["login", &d.url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(login.stdin.take().unwrap(), "{}", d.token).unwrap();
    let out = login.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "login: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conf = cfgdir.join("config.toml");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&conf).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let out = Command::new(fvfsc_bin())
        .env("FVFSC_CONFIG_DIR", &cfgdir)
        .env("FVFSC_DISCOVERY_TIMEOUT", "1")
        .env_remove("FVFSD_URL")
        .env_remove("VFSD_URL")
        .env_remove("FVFS_TOKEN")
        .args(["cat", "/photos/2024/big.bin"])
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout == big, "cat after login");
    // VFSD_URL (the README's spelling) works as FVFSD_URL does.
    let out = Command::new(fvfsc_bin())
        .env("FVFSC_CONFIG_DIR", dir.join("none"))
        .env("VFSD_URL", &d.url)
        .env("FVFS_TOKEN", &d.token)
        .env_remove("FVFSD_URL")
        .args(["ls", "/"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "VFSD_URL: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.stop();
}

#[test]
fn raw_http_range_etag_and_tokens() {
    let Some(f) = Fixture::new() else { return };
    let d = Daemon::start(&f, &[]);
    let body = data(1 << 20, 2);
    d.ok(&["put", "-", "/r.bin"]);
    let src = f.dir.path().join("r.bin");
    std::fs::write(&src, &body).unwrap();
    d.ok(&["put", src.to_str().unwrap(), "/r.bin"]);

    // No token, a wrong token: 401 with a JSON error and WWW-Authenticate.
    let (st, h, b) = raw(&d.addr, "GET /v1/files/r.bin HTTP/1.1", b"");
    assert_eq!(st, 401);
    assert_eq!(error_code(&b), "unauthorized");
    assert!(header(&h, "www-authenticate")
        .unwrap_or("")
        .starts_with("Bearer"));
    let (st, _, _) = raw(
        &d.addr,
        "GET /v1/status HTTP/1.1\r\nAuthorization: Bearer fvfs_0000000000000000000000000000000000000000",
        b"",
    );
    assert_eq!(st, 401);
    let (st, _, _) = raw(&d.addr, "GET /metrics HTTP/1.1", b"");
    assert_eq!(st, 401, "/metrics needs a token too");

    // Whole file, ETag, If-None-Match.
    let (st, h, b) = get(&d, "/v1/files/r.bin", "");
    assert_eq!(st, 200);
    assert!(b == body);
    let etag = header(&h, "etag").expect("an ETag").to_string();
    assert_eq!(header(&h, "accept-ranges"), Some("bytes"));
    let (st, _, b) = get(&d, "/v1/files/r.bin", &format!("If-None-Match: {etag}"));
    assert_eq!(st, 304);
    assert!(b.is_empty());

    // Ranges: a-b, a-, -n; unsatisfiable.
    let (st, h, b) = get(&d, "/v1/files/r.bin", "Range: bytes=100-199");
    assert_eq!(st, 206);
    assert_eq!(b, &body[100..200]);
    assert_eq!(header(&h, "content-range"), Some("bytes 100-199/1048576"));
    let (st, _, b) = get(&d, "/v1/files/r.bin", "Range: bytes=1048000-");
    assert_eq!(st, 206);
    assert_eq!(b, &body[1048000..]);
    let (st, _, b) = get(&d, "/v1/files/r.bin", "Range: bytes=-10");
    assert_eq!(st, 206);
    assert_eq!(b, &body[body.len() - 10..]);
    let (st, h, _) = get(&d, "/v1/files/r.bin", "Range: bytes=2000000-");
    assert_eq!(st, 416);
    assert_eq!(header(&h, "content-range"), Some("bytes */1048576"));

    // A new content has a new ETag; the old one no longer matches.
    d.ok(&["put", "-", "/r.bin"]);
    let (st, h, _) = get(&d, "/v1/files/r.bin", &format!("If-None-Match: {etag}"));
    assert_eq!(st, 200);
    assert_ne!(header(&h, "etag"), Some(etag.as_str()));

    // Metrics with a token: per-route counters.
    let (st, _, b) = get(&d, "/metrics", "");
    assert_eq!(st, 200);
    let text = String::from_utf8_lossy(&b);
    assert!(text.contains("fvfs_http_requests_total"), "{text}");
    assert!(text.contains("fvfs_wal_pending"), "{text}");

    // A read-only token reads but cannot write; a revoked token is refused at once.
    let out = f.ok(&["token", "create", "laptop", "--read-only"]);
    let ro = out
        .split_whitespace()
        .find(|w| w.starts_with("fvfs_"))
        .expect("the new token is printed")
        .to_string();
    let (st, _, _) = raw(
        &d.addr,
        &format!("GET /v1/files/r.bin HTTP/1.1\r\nAuthorization: Bearer {ro}"),
        b"",
    );
    assert_eq!(st, 200);
    let (st, _, b) = raw(
        &d.addr,
        &format!("PUT /v1/files/x HTTP/1.1\r\nAuthorization: Bearer {ro}\r\nContent-Length: 1"),
        b"x",
    );
    assert_eq!(st, 403);
    assert_eq!(error_code(&b), "forbidden");
    f.ok(&["token", "revoke", "laptop"]);
    let (st, _, _) = raw(
        &d.addr,
        &format!("GET /v1/files/r.bin HTTP/1.1\r\nAuthorization: Bearer {ro}"),
        b"",
    );
    assert_eq!(st, 401, "a revoked token is refused without a restart");
    d.assert_not_logged(&ro);
    // The token file is private and holds no secret.
    let tokens = std::fs::read_to_string(d.state.join("tokens.json")).unwrap();
    assert!(!tokens.contains(&d.token));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.state.join("tokens.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    d.stop();
}

/// Names of upload temporaries left in the namespace (there must be none).
fn leftovers(f: &Fixture) -> i64 {
    f.count("SELECT COUNT(*) FROM dentries WHERE CAST(name AS TEXT) LIKE '.fvfs-put.%'")
}

#[test]
fn bad_input_is_refused_and_loses_nothing() {
    let Some(f) = Fixture::new() else { return };
    let d = Daemon::start(&f, &[]);
    let auth = format!("Authorization: Bearer {}", d.token);
    let old = data(200_000, 3);
    let src = f.dir.path().join("old.bin");
    std::fs::write(&src, &old).unwrap();
    d.ok(&["put", src.to_str().unwrap(), "/keep.bin"]);

    // Path traversal in every spelling: 400 (or 404 when the router never matched), never
    // a file outside the namespace.
    for p in [
        "/v1/files/../../etc/passwd",
        "/v1/files/a/../../etc/passwd",
        "/v1/files/%2e%2e/%2e%2e/etc/passwd",
        "/v1/files/a%2f..%2f..%2fetc%2fpasswd",
        "/v1/files/a%00b",
        "/v1/files/%ff%fe",
        "/v1/files/./keep.bin",
        "/v1/meta/..",
        "/v1/ls/..%2f..",
    ] {
        let (st, _, b) = raw(&d.addr, &format!("GET {p} HTTP/1.1\r\n{auth}"), b"");
        assert!(
            st == 400 || st == 404,
            "{p}: {st} {}",
            String::from_utf8_lossy(&b)
        );
        assert!(
            !String::from_utf8_lossy(&b).contains("root:"),
            "{p} leaked a host file"
        );
    }
    let long = "a".repeat(300);
    let (st, _, b) = raw(
        &d.addr,
        &format!("GET /v1/meta/{long} HTTP/1.1\r\n{auth}"),
        b"",
    );
    assert_eq!((st, error_code(&b).as_str()), (400, "name_too_long"));

    // An oversized body is refused before it is read.
    let (st, _, b) = raw(
        &d.addr,
        &format!("PUT /v1/files/huge HTTP/1.1\r\n{auth}\r\nContent-Length: 1125899906842624"),
        b"",
    );
    assert_eq!((st, error_code(&b).as_str()), (413, "payload_too_large"));
    let (st, _, _) = raw(
        &d.addr,
        &format!(
            "POST /v1/rename HTTP/1.1\r\n{auth}\r\nContent-Type: application/json\r\nContent-Length: 200000"
        ),
        &vec![b' '; 200_000],
    );
    assert_eq!(st, 413);

    // A hash that does not match: nothing changes.
    let (st, _, b) = raw(
        &d.addr,
        &format!(
            "PUT /v1/files/keep.bin HTTP/1.1\r\n{auth}\r\nContent-Length: 5\r\nx-fvfs-blake3: {}",
            "0".repeat(64)
        ),
        b"12345",
    );
    assert_eq!((st, error_code(&b).as_str()), (422, "hash_mismatch"));
    assert!(get(&d, "/v1/files/keep.bin", "").2 == old);

    // A truncated upload (the client closes after part of its Content-Length): the old
    // content stays, a new name never appears.
    for target in ["keep.bin", "new.bin"] {
        let mut s = TcpStream::connect(&d.addr).unwrap();
        write!(
            s,
            "PUT /v1/files/{target} HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: 5000000\r\n\r\n"
        )
        .unwrap();
        s.write_all(&data(1_000_000, 4)).unwrap();
        drop(s);
    }
    f.wait_until(30, "the truncated uploads are cleaned up", |f| {
        leftovers(f) == 0
    });
    assert!(get(&d, "/v1/files/keep.bin", "").2 == old);
    assert_eq!(get(&d, "/v1/meta/new.bin", "").0, 404);

    // A client killed in the middle of a PUT: the same.
    let mut child = d
        .fvfsc()
        .args(["put", "-", "/keep.bin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&data(8 << 20, 5)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    let _ = child.wait();
    drop(stdin);
    f.wait_until(30, "the killed upload is cleaned up", |f| leftovers(f) == 0);
    assert!(
        get(&d, "/v1/files/keep.bin", "").2 == old,
        "a killed PUT changed the file"
    );
    // The daemon still serves.
    assert_eq!(get(&d, "/v1/status", "").0, 200);
    d.stop();
}

#[test]
fn fvfsc_mount_reads_and_writes_through_the_api() {
    let Some(f) = Fixture::new() else { return };
    let d = Daemon::start(&f, &[]);
    let mnt = f.dir.path().join("cmnt");
    let cache = f.dir.path().join("ccache");
    std::fs::create_dir_all(&mnt).unwrap();
    let mount = |d: &Daemon| -> Child {
        let c = d
            .fvfsc()
            .args([
                "mount",
                "--foreground",
                "--cache-dir",
                cache.to_str().unwrap(),
                mnt.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !common::is_mounted(&mnt) {
            assert!(Instant::now() < deadline, "fvfsc mount did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    };
    let unmount = |mut c: Child| {
        let st = Command::new("umount").arg(&mnt).status().unwrap();
        assert!(st.success(), "umount of the client mount");
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "fvfsc mount did not exit after umount"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    let big = data(20 << 20, 6);
    let src = f.dir.path().join("big.bin");
    std::fs::write(&src, &big).unwrap();
    d.ok(&["put", "--parents", src.to_str().unwrap(), "/a/big.bin"]);
    let c = mount(&d);
    // Read what the API wrote; write, overwrite in place, append, rename, delete.
    assert!(std::fs::read(mnt.join("a/big.bin")).unwrap() == big);
    std::fs::write(mnt.join("a/new.txt"), b"from the mount").unwrap();
    assert_eq!(d.ok(&["cat", "/a/new.txt"]), "from the mount");
    {
        use std::os::unix::fs::FileExt;
        let fh = std::fs::OpenOptions::new()
            .write(true)
            .open(mnt.join("a/big.bin"))
            .unwrap();
        fh.write_all_at(b"PATCH", 1 << 20).unwrap();
        fh.sync_all().unwrap();
    }
    let mut want = big.clone();
    want[1 << 20..(1 << 20) + 5].copy_from_slice(b"PATCH");
    assert!(
        d.run(&["cat", "/a/big.bin"]).stdout == want,
        "in-place write"
    );
    std::fs::create_dir(mnt.join("d")).unwrap();
    std::fs::rename(mnt.join("a/new.txt"), mnt.join("d/moved.txt")).unwrap();
    assert_eq!(
        std::fs::read(mnt.join("d/moved.txt")).unwrap(),
        b"from the mount"
    );
    std::fs::remove_file(mnt.join("d/moved.txt")).unwrap();
    std::fs::remove_dir(mnt.join("d")).unwrap();
    assert!(!d.run(&["stat", "/d"]).status.success());
    let mut names: Vec<String> = std::fs::read_dir(mnt.join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["big.bin"]);
    unmount(c);

    // The block cache survived the client's restart: blocks are on disk, and a second
    // mount reads the file identically.
    let cached: usize = walk(&cache).len();
    assert!(cached > 0, "the client cache holds blocks");
    let c = mount(&d);
    assert!(std::fs::read(mnt.join("a/big.bin")).unwrap() == want);
    unmount(c);
    d.stop();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn tls_login_pins_the_certificate_on_first_use() {
    let Some(f) = Fixture::new() else { return };
    let d = Daemon::start(&f, &["--tls"]);
    assert!(d.url.starts_with("https://"), "{}", d.url);
    let cfgdir = f.dir.path().join("tls-config");
    let fvfsc = |args: &[&str]| {
        Command::new(fvfsc_bin())
            .env("FVFSC_CONFIG_DIR", &cfgdir)
            .env("FVFS_TOKEN", &d.token)
            .env_remove("FVFSD_URL")
            .env_remove("VFSD_URL")
            .args(args)
            .output()
            .unwrap()
    };
    let out = fvfsc(&["login", &d.url]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "login over https: {err}");
    assert!(
        err.contains("pinned certificate"),
        "first use says what it pinned: {err}"
    );
    let known = std::fs::read_to_string(cfgdir.join("known_hosts.toml")).unwrap();
    assert!(known.contains(&d.addr), "{known}");
    let out = fvfsc(&["--json", "status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Another certificate at the same address is refused, with both fingerprints named.
    let fp = known
        .split('"')
        .find(|p| p.len() == 64)
        .unwrap()
        .to_string();
    let wrong: String = fp.chars().rev().collect();
    std::fs::write(cfgdir.join("known_hosts.toml"), known.replace(&fp, &wrong)).unwrap();
    let out = fvfsc(&["ls", "/"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "a changed certificate must be refused"
    );
    assert!(err.contains(&wrong) && err.contains(&fp), "{err}");
    d.stop();
}
