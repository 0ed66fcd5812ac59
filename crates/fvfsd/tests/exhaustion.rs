//! A full descriptor table loses no byte (issue 8, item 4). `fvfsd serve` runs with its
//! FUSE mount over a durable tier that is a local directory (the README's default), so
//! every block upload opens a file; the test lowers the daemon's RLIMIT_NOFILE with
//! prlimit(2) until no new descriptor can be opened (every slot below the limit in use),
//! writes,
//! closes, fsyncs and PUTs, raises the limit again and checks the exact bytes, before and
//! after a restart. A stop while the table is still full spools the writes, and the next
//! start commits them.

mod common;

use common::{data, http, Daemon, Fixture};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::IntoRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A filesystem whose durable tier is the directory `hot` (writes land there), with a
/// second directory `nas` that keeps a copy of every block (replication), and a config
/// for `fvfsd serve` (mount at the fixture's mountpoint, API on 127.0.0.1, replication
/// only on request).
fn fixture() -> Option<Fixture> {
    if !common::privileged() {
        return None;
    }
    let base = tempfile::Builder::new()
        .prefix("fvfs-exhaust-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let hot = format!("hot={},durable", base.path().join("hot").display());
    let nas = format!("nas={},keep-copy", base.path().join("nas").display());
    let mut f = Fixture::with_format_args(&["--tier", &hot, "--tier", &nas])?;
    let cfg = f.dir.path().join("serve.toml");
    std::fs::write(
        &cfg,
        format!(
            "[daemon]\nmdns = false\nmount_path = \"{}\"\ncache_dir = \"{}\"\n\
             [upload]\nflush_size_mb = 4096\nflush_interval_secs = 86400\n",
            f.mnt.display(),
            f.cache.display()
        ),
    )
    .unwrap();
    f.config = Some(cfg);
    f.extra_dirs.push(base);
    Some(f)
}

fn start(f: &Fixture) -> Daemon {
    let d = f.serve(&["--port", "0"]);
    f.wait_until(30, "the mount is live", |f| common::is_mounted(&f.mnt));
    d
}

fn stop(d: &mut Daemon) {
    let st = d.stop(120);
    assert!(st.success(), "fvfsd serve exited with {st}");
}

/// The lowest descriptor number the process does not use: with RLIMIT_NOFILE set to it,
/// every slot below the limit is taken and no descriptor can be opened.
fn lowest_free_fd(pid: u32) -> u64 {
    let used: std::collections::BTreeSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|n| !used.contains(n)).unwrap()
}

/// The spool's reserve descriptor: the first one open on /dev/null after the spool
/// directory's (both are opened at start, one after the other).
fn reserve_fd(pid: u32, spool: &Path) -> u64 {
    let link = |n: u64| std::fs::read_link(format!("/proc/{pid}/fd/{n}")).ok();
    let dir = (0..4096)
        .find(|&n| link(n).as_deref() == Some(spool))
        .expect("the daemon holds its spool directory open");
    (dir + 1..dir + 64)
        .find(|&n| link(n).as_deref() == Some(Path::new("/dev/null")))
        .expect("the reserve descriptor follows the spool directory's")
}

/// Sets the soft RLIMIT_NOFILE of `pid` (the hard limit stays); returns the old soft one.
fn set_nofile(pid: u32, soft: u64) -> u64 {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit reads `cur` only and writes `old`, both valid for the call.
    let rc = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0, "prlimit get: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    let rc = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit set: {}", std::io::Error::last_os_error());
    old.rlim_cur
}

/// Fills the daemon's descriptor table: the limit drops to just above the spool's
/// reserve descriptor, opened at start; every slot below is in use by then, and the
/// descriptors opened later (connections, the FUSE device, block files being closed) sit
/// above it, so closing one of them frees no usable slot. Returns the soft limit to
/// restore.
fn exhaust(f: &Fixture, d: &Daemon) -> u64 {
    let pid = d.child.id();
    let reserve = reserve_fd(pid, &spool_dir(f));
    assert!(lowest_free_fd(pid) > reserve, "a hole below the reserve");
    let old = set_nofile(pid, reserve + 1);
    eprintln!("daemon {pid}: RLIMIT_NOFILE {old} -> {}", reserve + 1);
    old
}

/// A keep-alive HTTP/1.1 connection, accepted by the daemon before its table is full.
struct Conn {
    r: BufReader<TcpStream>,
    host: String,
    token: String,
}

impl Conn {
    fn open(url: &str, token: &str) -> Conn {
        let host = url.strip_prefix("http://").unwrap().to_string();
        let s = TcpStream::connect(&host).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut c = Conn {
            r: BufReader::new(s),
            host,
            token: token.to_string(),
        };
        assert_eq!(c.request("GET", "/v1/status", b"").0, 200);
        c
    }

    /// One request; the response body is read by its Content-Length.
    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
            self.host,
            self.token,
            body.len()
        );
        let s = self.r.get_mut();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut status = String::new();
        self.r.read_line(&mut status).unwrap();
        let code: u16 = status.split(' ').nth(1).unwrap().parse().unwrap();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            self.r.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0u8; len];
        self.r.read_exact(&mut body).unwrap();
        (code, body)
    }
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

/// The committed size of `name` (in the root directory) in the metadata.
fn committed_size(f: &Fixture, name: &str) -> i64 {
    f.db()
        .query_row(
            "SELECT i.size FROM inodes i JOIN dentries d ON d.ino = i.ino \
             WHERE d.parent = 1 AND d.name = CAST(?1 AS BLOB)",
            [name],
            |r| r.get(0),
        )
        .unwrap()
}

fn spool_dir(f: &Fixture) -> PathBuf {
    f.dir.path().join("meta.db.spool")
}

fn spool_entries(f: &Fixture) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(spool_dir(f))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn close_errno(file: std::fs::File) -> Option<i32> {
    // SAFETY: the descriptor is ours and closed exactly once.
    let rc = unsafe { libc::close(file.into_raw_fd()) };
    (rc != 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap())
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn full_descriptor_table_loses_no_written_byte() {
    let Some(f) = fixture() else { return };
    let token = f.admin_token();
    let mut d = start(&f);
    let url = d.url.clone();
    let file = |name: &str| format!("{url}/v1/files/{name}");

    // Before: a file the API will fail to replace, and committed blocks whose copy to
    // `nas` waits in the replication queue.
    let (code, _, body) = http("PUT", &file("old"), Some(&token), b"old content");
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    let queued = data(3 << 20, 7);
    std::fs::write(f.path("queued"), &queued).unwrap();
    let waiting = f.count("SELECT COUNT(*) FROM wal_pending");
    assert!(waiting > 0, "replication waits for a request");
    let mut conn = Conn::open(&url, &token);
    let big = data(6 << 20, 8);

    let restore = exhaust(&f, &d);

    // `echo data > small`: bash ignores close's error; the bytes are retained.
    let st = std::process::Command::new("bash")
        .arg("-c")
        .arg("echo data > small")
        .current_dir(&f.mnt)
        .status()
        .unwrap();
    assert!(st.success());
    // A bigger write: close returns EIO, the bytes stay readable.
    let mut w = std::fs::File::create(f.path("big")).unwrap();
    w.write_all(&big).unwrap();
    assert_eq!(close_errno(w), Some(libc::EIO), "close of big");
    // fsync of a small tail succeeds while the table is full: the hottest tier is local,
    // so its bytes are made durable in the write journal (in the metadata database,
    // whose files are open), not in a block.
    let mut synced = std::fs::File::create(f.path("synced")).unwrap();
    synced.write_all(b"fsync me").unwrap();
    synced.sync_all().unwrap();
    assert_eq!(
        f.count("SELECT COALESCE(SUM(length(data)), 0) FROM write_journal"),
        (b"data\n".len() + b"fsync me".len()) as i64,
        "the journal holds small and synced"
    );
    // Nothing is committed, everything is readable.
    assert_eq!(committed_size(&f, "synced"), 0);
    assert_eq!(committed_size(&f, "small"), 0);
    assert_eq!(committed_size(&f, "big"), 0);
    assert_eq!(read(&f.path("small")), b"data\n");
    assert_eq!(std::fs::metadata(f.path("big")).unwrap().len(), 6 << 20);
    assert!(read(&f.path("big")) == big, "big reads back while retained");
    // Replication fails and keeps every entry.
    let (code, body) = conn.request("POST", "/v1/admin/flush", b"");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        json(&body)["pending"],
        waiting,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        f.count("SELECT COUNT(*) FROM wal_pending WHERE attempts > 0"),
        waiting
    );
    // An API PUT fails with a 5xx and leaves the old content.
    let (code, body) = conn.request("PUT", "/v1/files/old", b"new content");
    assert_eq!(code, 500, "{}", String::from_utf8_lossy(&body));
    assert_eq!(common::api::error_code(&body), "internal");

    set_nofile(d.child.id(), restore);

    // fsync succeeds once the descriptors are back.
    synced.sync_all().unwrap();
    drop(synced);
    f.wait_until(60, "the retained writes are committed", |f| {
        committed_size(f, "small") == 5
            && committed_size(f, "big") == 6 << 20
            && committed_size(f, "synced") == 8
    });
    assert_eq!(f.count("SELECT COUNT(*) FROM write_journal"), 0);
    let (code, _, body) = http("GET", &file("small"), Some(&token), b"");
    assert_eq!((code, body.as_slice()), (200, &b"data\n"[..]));
    let (code, _, body) = http("GET", &file("old"), Some(&token), b"");
    assert_eq!((code, body.as_slice()), (200, &b"old content"[..]));
    // Replication catches up: every live block has its copy on `nas` (tier bit 1).
    let (code, _, body) = http("POST", &format!("{url}/v1/admin/flush"), Some(&token), b"");
    assert_eq!(code, 200);
    assert_eq!(
        json(&body)["pending"],
        0,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(f.count("SELECT COUNT(*) FROM wal_pending"), 0);
    assert_eq!(
        f.count("SELECT COUNT(*) FROM blocks WHERE refcount > 0 AND tiers & 2 = 0"),
        0
    );
    stop(&mut d);
    assert!(spool_entries(&f).is_empty(), "{:?}", spool_entries(&f));

    // After a restart: the bytes were stored, not just held in memory.
    let mut d = start(&f);
    assert_eq!(read(&f.path("small")), b"data\n");
    assert!(read(&f.path("big")) == big, "big after restart");
    assert_eq!(read(&f.path("synced")), b"fsync me");
    assert!(read(&f.path("queued")) == queued);
    let old = format!("{}/v1/files/old", d.url);
    let (code, _, body) = http("GET", &old, Some(&token), b"");
    assert_eq!((code, body.as_slice()), (200, &b"old content"[..]));
    stop(&mut d);
}

#[test]
fn a_stop_with_a_full_table_spools_and_the_next_start_commits() {
    let Some(f) = fixture() else { return };
    let mut d = start(&f);
    let content = data((5 << 20) + 123, 9);
    exhaust(&f, &d);
    let mut w = std::fs::File::create(f.path("spooled")).unwrap();
    w.write_all(&content).unwrap();
    assert_eq!(close_errno(w), Some(libc::EIO));
    let ino = std::fs::metadata(f.path("spooled")).unwrap();
    let ino = std::os::unix::fs::MetadataExt::ino(&ino);
    // The table stays full while the daemon stops (closing the listeners and the FUSE
    // device frees no usable slot): the bounded retry fails, the bytes go to the spool
    // through the reserve descriptor, fsynced, and the spool file is named at ERROR level.
    let t = Instant::now();
    stop(&mut d);
    eprintln!("stop took {:?}", t.elapsed());
    let entries = spool_entries(&f);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let name = entries[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with(&format!("{ino}-")) && name.ends_with(".spool"),
        "{name}"
    );
    let spooled = read(&entries[0]);
    let split = spooled.windows(6).position(|w| w == b"\ndata\n").unwrap() + 6;
    let header = String::from_utf8(spooled[..split].to_vec()).unwrap();
    let lines: Vec<&str> = header.lines().collect();
    assert_eq!(lines[0], "fvfs-spool 1");
    assert_eq!(lines[1], format!("ino {ino}"));
    assert_eq!(lines[2], format!("size {}", content.len()));
    assert!(lines[3].starts_with("mtime_ns "), "{header}");
    assert_eq!(
        lines[4],
        format!(
            "extent 0 {} {}",
            content.len(),
            fvfs_chunk::codec::block_id(&content)
        )
    );
    assert_eq!(lines[5], "data");
    assert!(spooled[split..] == content[..], "the spooled bytes");
    let log = std::fs::read_to_string(f.dir.path().join("mount.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains(entries[0].to_str().unwrap())),
        "no ERROR line names the spool file"
    );
    assert_eq!(committed_size(&f, "spooled"), 0);

    // The next start commits the entry before serving, and removes it.
    let mut d = start(&f);
    assert_eq!(committed_size(&f, "spooled"), content.len() as i64);
    assert!(spool_entries(&f).is_empty(), "{:?}", spool_entries(&f));
    assert!(
        read(&f.path("spooled")) == content,
        "spooled content after restart"
    );
    stop(&mut d);
}

/// A daemon whose log goes to a full disk keeps serving: every log line (debug level, so
/// every operation logs) and the start-up banner fail with ENOSPC, and the mount still
/// writes, reads and unmounts cleanly with exit status 0. (The tracing layer used to report
/// a failed log write with `eprintln!`, which panicked on the same full disk.)
#[test]
fn a_full_log_disk_does_not_stop_the_mount() {
    let Some(mut f) = common::Fixture::new() else {
        return;
    };
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let mut child = f
        .fvfsd()
        .env("FVFS_LOG", "debug")
        .args([
            "mount",
            "--foreground",
            "--meta",
            &f.meta_url,
            "--cache-dir",
        ])
        .arg(&f.cache)
        .arg(&f.mnt)
        .stdin(std::process::Stdio::null())
        .stdout(full())
        .stderr(full())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !common::is_mounted(&f.mnt) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the daemon exited before mounting"
        );
        assert!(Instant::now() < deadline, "the mount did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let payload = data(3 << 20, 7);
    for i in 0..5 {
        let p = f.path(&format!("f{i}"));
        std::fs::write(&p, &payload).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), payload);
        // A failing operation logs too.
        assert!(std::fs::read(f.path("missing")).is_err());
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the daemon died while its log disk was full"
    );
    let st = std::process::Command::new("umount")
        .arg(&f.mnt)
        .status()
        .unwrap();
    assert!(st.success());
    let status = common::wait_exit(&mut child, "the daemon did not stop");
    assert!(status.success(), "exit status {status}");
    // What the mount wrote is committed: a fresh mount reads it back.
    f.mount();
    assert_eq!(std::fs::read(f.path("f4")).unwrap(), payload);
    f.unmount();
}
