//! Test harness: an in-process S3 server on 127.0.0.1 (s3s-fs), the real `fvfsd` binary
//! formatting a filesystem on it, and a real FUSE mount run as a child process.
//!
//! Tests that need root and /dev/fuse are skipped (with a message) when those are missing,
//! unless FVFS_REQUIRE_PRIVILEGED=1, when a skip is a failure.
#![allow(dead_code)]

pub mod api;
pub mod hosts;
pub mod music;
pub mod netns;
pub mod tls;
pub mod who;

use fvfs_testkit::S3Server;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const FVFSD: &str = env!("CARGO_BIN_EXE_fvfsd");

/// Whether privileged tests can run here; panics if they must and cannot.
pub fn privileged() -> bool {
    let ok = unsafe { libc::geteuid() } == 0 && Path::new("/dev/fuse").exists();
    if !ok {
        if std::env::var("FVFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("FVFS_REQUIRE_PRIVILEGED=1 but this test needs root and /dev/fuse");
        }
        eprintln!("SKIP: needs root and /dev/fuse");
    }
    ok
}

/// Waits (at most 60 s) for `child` to exit; panics with `what` when it does not.
pub fn wait_exit(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// kill -9 of a mount process (if any), then a lazy unmount of its dead mount.
pub fn kill9_mount(child: Option<Child>, mnt: &Path) {
    if let Some(mut c) = child {
        // SAFETY: sends a signal to our own child process.
        unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
        let _ = c.wait();
    }
    let _ = Command::new("umount").arg("-l").arg(mnt).status();
}

pub fn is_mounted(path: &Path) -> bool {
    let Ok(canon) = path.canonicalize() else {
        return false;
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = canon.to_string_lossy().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub rt: tokio::runtime::Runtime,
    pub s3: S3Server,
    pub prefix: String,
    pub meta_url: String,
    pub mnt: PathBuf,
    pub cache: PathBuf,
    /// Other temporary directories owned by the fixture (tiers).
    pub extra_dirs: Vec<tempfile::TempDir>,
    /// Config file handed to mounts (FVFS_CONFIG).
    pub config: Option<PathBuf>,
    /// The filesystem's uuid.
    pub uuid: String,
    child: Option<Child>,
}

impl Fixture {
    /// A fresh S3 server and a formatted filesystem on it (not mounted). None = skip.
    pub fn new() -> Option<Fixture> {
        Self::with_format_args(&[])
    }

    pub fn with_format_args(args: &[&str]) -> Option<Fixture> {
        if !privileged() {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("fvfs-it-")
            .tempdir_in("/var/tmp")
            .unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let s3root = dir.path().join("s3");
        std::fs::create_dir_all(&s3root).unwrap();
        let s3 = rt.block_on(S3Server::start(&s3root, "fvfs")).unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let f = Fixture {
            meta_url: fvfs_meta::testing::meta_url(dir.path()),
            cache: dir.path().join("cache"),
            prefix: "fs".into(),
            config: None,
            uuid: String::new(),
            extra_dirs: Vec::new(),
            mnt,
            dir,
            rt,
            s3,
            child: None,
        };
        let mut cmd = vec!["format", "--meta", &f.meta_url];
        let loc = f.location();
        let s3tier = format!("s3={loc}");
        if args.contains(&"--tier") {
            cmd.extend(args);
            cmd.extend(["--tier", s3tier.as_str()]);
        } else {
            cmd.extend(["--storage", loc.as_str()]);
            cmd.extend(args);
        }
        let out = f.run(&cmd);
        assert!(
            out.status.success(),
            "format failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // "formatted NAME (UUID) at URL"
        let said = String::from_utf8_lossy(&out.stdout);
        let uuid = said
            .split_once('(')
            .and_then(|(_, r)| r.split_once(')'))
            .map(|(u, _)| u.to_string())
            .unwrap_or_default();
        let mut f = f;
        f.uuid = uuid;
        Some(f)
    }

    /// Three tiers: `local` (a directory, with watermarks), `nas` (a second directory that
    /// keeps a copy of everything) and the durable `s3`; replication every 200 ms,
    /// eviction checks every second.
    pub fn three_tiers(high: &str, low: &str) -> Option<Fixture> {
        if !privileged() {
            return None;
        }
        let base = tempfile::Builder::new()
            .prefix("fvfs-tiers-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let local = base.path().join("local");
        let nas = base.path().join("nas");
        let l = format!("local={},high={high},low={low}", local.display());
        let n = format!("nas={},keep-copy", nas.display());
        let mut f = Self::with_format_args(&["--tier", &l, "--tier", &n])?;
        let cfg = f.dir.path().join("fvfs.toml");
        std::fs::write(
            &cfg,
            "[upload]\nflush_size_mb = 1\nflush_interval_secs = 0\n[eviction]\ninterval_secs = 1\n",
        )
        .unwrap();
        f.config = Some(cfg);
        f.extra_dirs.push(base);
        Some(f)
    }

    pub fn tier_dir(&self, name: &str) -> PathBuf {
        let base = self.extra_dirs.first().expect("three_tiers fixture");
        base.path().join(name)
    }

    /// Waits (bounded) until `cond` holds; panics with `what` otherwise.
    pub fn wait_until(&self, secs: u64, what: &str, mut cond: impl FnMut(&Fixture) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if cond(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out after {secs} s waiting for: {what}");
    }

    /// A number from the metadata database.
    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    pub fn location(&self) -> String {
        self.s3.location(&self.prefix)
    }

    /// A `fvfsd` command with the S3 credentials in its environment.
    pub fn fvfsd(&self) -> Command {
        let mut c = Command::new(FVFSD);
        c.env_remove("AWS_CA_BUNDLE");
        for (k, v) in self.s3.env() {
            c.env(k, v);
        }
        c.env(
            "FVFS_LOG",
            std::env::var("FVFS_LOG").unwrap_or_else(|_| "info".into()),
        );
        if let Some(cfg) = &self.config {
            c.env("FVFS_CONFIG", cfg);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.fvfsd().args(args).output().unwrap()
    }

    /// Runs `fvfsd ARGS --meta <this filesystem>`, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--meta", &self.meta_url]);
        self.ok_raw(&all)
    }

    /// Runs `fvfsd ARGS` as given (they name their own `--meta`), asserts success,
    /// returns stdout.
    pub fn ok_raw(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "fvfsd {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `fvfsd fsck` of this filesystem (unmounted) finds nothing.
    pub fn assert_fsck_clean(&self, what: &str) {
        let fsck = self.run(&["fsck", "--meta", &self.meta_url]);
        assert!(
            fsck.status.success(),
            "fsck {what}: {}{}",
            String::from_utf8_lossy(&fsck.stdout),
            String::from_utf8_lossy(&fsck.stderr)
        );
    }

    /// Mounts in a child process and waits until the mount is live.
    /// Appends `text` to the config file the mounts read (made if there is none).
    pub fn add_config(&mut self, text: &str) {
        let path = self
            .config
            .clone()
            .unwrap_or_else(|| self.dir.path().join("fvfs.toml"));
        let mut all = std::fs::read_to_string(&path).unwrap_or_default();
        all.push_str(text);
        std::fs::write(&path, all).unwrap();
        self.config = Some(path);
    }

    /// Deletions free their blocks at once (no `/.trash`): for tests that measure them.
    pub fn trash_off(&mut self) {
        self.add_config("\n[trash]\ndays = 0\n");
    }

    pub fn mount(&mut self) {
        let err = self.try_mount();
        assert!(err.is_none(), "mount failed: {}", err.unwrap_or_default());
    }

    /// Starts a mount; Some(stderr) if it did not come up.
    pub fn try_mount(&mut self) -> Option<String> {
        let log = self.dir.path().join("mount.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = self
            .fvfsd()
            .args([
                "mount",
                "--foreground",
                "--meta",
                &self.meta_url,
                "--cache-dir",
            ])
            .arg(&self.cache)
            .arg(&self.mnt)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if is_mounted(&self.mnt) {
                self.child = Some(child);
                return None;
            }
            if let Ok(Some(_)) = child.try_wait() {
                let _ = child.wait();
                return Some(std::fs::read_to_string(&log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Some("timed out".into())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Clean unmount; waits for the daemon to exit.
    pub fn unmount(&mut self) {
        let st = Command::new("umount").arg(&self.mnt).status().unwrap();
        assert!(st.success(), "umount failed");
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if c.try_wait().unwrap().is_some() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "daemon did not exit after umount"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// kill -9 of the mount process, then detach the dead mount.
    pub fn kill9(&mut self) {
        kill9_mount(self.child.take(), &self.mnt);
    }

    /// Remount with an empty local cache, so reads come from S3.
    pub fn remount_cold(&mut self) {
        self.unmount();
        let _ = std::fs::remove_dir_all(&self.cache);
        self.mount();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    /// Block objects stored in the S3 bucket.
    pub fn s3_objects(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let root = self
            .s3
            .root()
            .join(&self.s3.bucket)
            .join(&self.prefix)
            .join("blocks");
        walk(&root, &mut out);
        out
    }

    pub fn stats(&self) -> fvfs_meta::Stats {
        fvfs_meta::open(&self.meta_url, false)
            .unwrap()
            .stats()
            .unwrap()
    }

    pub fn db(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.dir.path().join("meta.db")).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c
    }
}

/// Every file below `dir` (S3 server metadata files excluded).
pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if !p.to_string_lossy().contains(".s3s") {
            out.push(p);
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // An HSM keeper outlives its daemon while stubs are left (fvfs-hsm keeper.rs).
        if !self.uuid.is_empty() {
            let _ = Command::new("pkill")
                .args(["-f", &format!("hsm keep --fs {}", self.uuid)])
                .status();
        }
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("mount.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "---- mount log (last {} lines) ----\n{}",
                tail.len(),
                tail.join("\n")
            );
        }
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("umount").arg(&self.mnt).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no big fixtures.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// One HTTP/1.1 request over TCP (`Connection: close`): `url` is `http://host:port/path`.
/// Returns (status, headers with lowercase names, body); chunked bodies are decoded.
pub fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http:// URL: {url}"));
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let s = std::net::TcpStream::connect(host).unwrap();
    http_on(s, method, host, path, token, body)
}

/// The same request over a Unix socket (the daemon's control socket).
pub fn unix_http(
    socket: &Path,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    http_on(s, method, "localhost", path, None, body)
}

fn http_on<S: std::io::Read + std::io::Write>(
    mut s: S,
    method: &str,
    host: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\nx-fvfs-device: it-test\r\n",
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    s.flush().unwrap();
    read_response(&mut s)
}

/// Reads one whole response (the daemon closes the connection: `Connection: close`).
/// Returns (status, headers with lowercase names, body); chunked bodies are decoded.
pub fn read_response<S: std::io::Read>(s: &mut S) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut raw = Vec::new();
    // Bounded by the daemon closing the connection (Connection: close).
    std::io::Read::read_to_end(s, &mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = text.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
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
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = String::from_utf8_lossy(&b[..eol]).to_string();
        let n = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        b = &b[eol + 2..];
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[..n]);
        b = &b[n + 2..];
    }
}

/// A running `fvfsd serve` child (stderr in the fixture's mount.log).
pub struct Daemon {
    pub child: Child,
    /// The URL of the `api` line.
    pub url: String,
    /// Every stdout line read up to the `api` line.
    pub stdout: Vec<String>,
}

impl Fixture {
    /// Starts `fvfsd serve ARGS --meta <this filesystem>` and waits (60 s) for its `api`
    /// line. Panics with the log if it exits first.
    pub fn serve(&self, args: &[&str]) -> Daemon {
        self.serve_with(args, &[], &self.dir.path().join("mount.log"))
    }

    /// `serve` with extra environment variables and the daemon's stderr appended to `log`.
    /// The API listens on 127.0.0.1 (plain HTTP unless `--tls`) unless `args` has `--bind`.
    pub fn serve_with(&self, args: &[&str], env: &[(&str, &str)], log: &Path) -> Daemon {
        let mut args = args.to_vec();
        if !args.contains(&"--bind") {
            args.extend(["--bind", "127.0.0.1"]);
        }
        let child = self.serve_child(&args, env, log);
        wait_for_api(child, log)
    }

    /// `fvfsd serve ARGS --meta <this filesystem>` as a child, stdout piped, stderr
    /// appended to `log` (no `--bind` added).
    pub fn serve_child(&self, args: &[&str], env: &[(&str, &str)], log: &Path) -> Child {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        self.fvfsd()
            .arg("serve")
            .args(args)
            .args(["--meta", &self.meta_url])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .unwrap()
    }
}

/// Waits (60 s) for the `api` line of a `serve` child; panics with `log` if it exits first.
pub fn wait_for_api(mut child: Child, log: &Path) -> Daemon {
    use std::io::BufRead;
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stdout = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                let api = line.strip_prefix("api ").map(str::to_string);
                stdout.push(line);
                if let Some(url) = api {
                    return Daemon { child, url, stdout };
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(st)) = child.try_wait() {
                    panic!(
                        "fvfsd serve exited ({st}) before its api line; stdout {stdout:?}; log:\n{}",
                        std::fs::read_to_string(log).unwrap_or_default()
                    );
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.wait();
                panic!(
                    "fvfsd serve closed stdout before its api line; stdout {stdout:?}; log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("no api line within 60 s; stdout {stdout:?}");
}

impl Fixture {
    /// The admin token written at format time.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Daemon {
    /// SIGTERM; waits up to `secs` for the exit status.
    pub fn stop(&mut self, secs: u64) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "fvfsd serve did not exit within {secs} s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
