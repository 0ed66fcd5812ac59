//! End to end over the network face: the real `fvfsd serve` (HTTP API on 127.0.0.1 port 0,
//! no FUSE mount of its own) on the S3 test server, driven by the real `fvfsc` binary
//! (every command, `login` over HTTPS with certificate pinning) and by `fvfsc mount`.
//! Raw HTTP and bad input are in `api_http.rs`.

mod common;

use common::api::{fvfsc_bin, ApiDaemon as Daemon};
use common::{data, Fixture};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
fn fvfsc_mount_reads_and_writes_through_the_api() {
    let Some(f) = Fixture::new() else { return };
    let d = Daemon::start(&f, &[]);
    let mnt = f.dir.path().join("cmnt");
    let cache = f.dir.path().join("ccache");
    std::fs::create_dir_all(&mnt).unwrap();
    let mount = |d: &Daemon| mount_client(d, &mnt, &cache);
    let unmount = |c: Child| unmount_client(&mnt, c);

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

    // truncate(2) right after a close: the kernel sends the release (which uploads the
    // closed copy) after close returns, so it may run between the daemon's stat and the
    // mount's reply to the truncate; the reply, which the kernel caches, must show the
    // new size (pjdfstest truncate::shrink_not_empty once saw the old one).
    let t = mnt.join("a/t.bin");
    let path = std::ffi::CString::new(t.as_os_str().as_encoded_bytes()).unwrap();
    for i in 0..200 {
        std::fs::write(&t, [i as u8; 12345]).unwrap();
        // SAFETY: a NUL-terminated path that lives across the call.
        assert_eq!(unsafe { libc::truncate(path.as_ptr(), 23456) }, 0);
        let len = std::fs::symlink_metadata(&t).unwrap().len();
        assert_eq!(len, 23456, "size after truncate, round {i}");
    }
    let back = std::fs::read(&t).unwrap();
    assert_eq!(back.len(), 23456);
    assert!(back[..12345].iter().all(|&b| b == 199) && back[12345..].iter().all(|&b| b == 0));
    std::fs::remove_file(&t).unwrap();
    unmount(c);

    // The block cache survived the client's restart: blocks are on disk, and a second
    // mount reads the file identically.
    let mut files = Vec::new();
    common::walk(&cache, &mut files);
    let cached = files.len();
    assert!(cached > 0, "the client cache holds blocks");
    let c = mount(&d);
    assert!(std::fs::read(mnt.join("a/big.bin")).unwrap() == want);
    unmount(c);
    d.stop();
}

/// `fvfsc mount --foreground` of `d` at `mnt` with its block cache (and spool) in `cache`,
/// once the mount is up.
fn mount_client(d: &Daemon, mnt: &std::path::Path, cache: &std::path::Path) -> Child {
    let mut c = d
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
    while !common::is_mounted(mnt) {
        assert!(
            c.try_wait().unwrap().is_none(),
            "fvfsc mount exited before mounting"
        );
        assert!(Instant::now() < deadline, "fvfsc mount did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    c
}

/// `umount` of a client mount, then its process must exit (bounded).
fn unmount_client(mnt: &std::path::Path, mut c: Child) {
    let st = Command::new("umount").arg(mnt).status().unwrap();
    assert!(st.success(), "umount of the client mount");
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "fvfsc mount did not exit after umount"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Entries (`.json`) in a client's spool of pending uploads.
fn spooled(cache: &std::path::Path) -> usize {
    std::fs::read_dir(cache.join("pending"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
            })
            .count()
        })
        .unwrap_or(0)
}

/// close(2) of `f`, with its result (dropping a `File` ignores it).
fn close(f: std::fs::File) -> std::io::Result<()> {
    use std::os::fd::IntoRawFd;
    // SAFETY: the descriptor is owned by `f`, which is consumed: nothing else closes it.
    if unsafe { libc::close(f.into_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[test]
fn fvfsc_mount_keeps_closed_writes_while_the_daemon_is_away() {
    let Some(f) = Fixture::new() else { return };
    let d = Daemon::start(&f, &[]);
    let port = d.port();
    let mnt = f.dir.path().join("cmnt");
    let cache = f.dir.path().join("ccache");
    std::fs::create_dir_all(&mnt).unwrap();
    let src = f.dir.path().join("old.txt");
    std::fs::write(&src, b"old content").unwrap();
    d.ok(&["put", "--parents", src.to_str().unwrap(), "/p/a.txt"]);
    let c = mount_client(&d, &mnt, &cache);
    // Opens p/a.txt for writing while the daemon is there, then stops the daemon and
    // writes `text`: the open file is returned, to be synced or closed without it.
    let write_while_away = |d: Daemon, text: &[u8]| {
        let mut fh = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(mnt.join("p/a.txt"))
            .unwrap();
        d.stop();
        fh.write_all(text).unwrap();
        fh
    };

    // The daemon goes away between open and close: the close still succeeds, the content
    // waits in the spool, and reaches the daemon once it is back (same address).
    let fh = write_while_away(d, b"written while fvfsd was away");
    let err = fh
        .sync_all()
        .expect_err("fsync cannot succeed without the daemon");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    close(fh).expect("close succeeds: the content is safe in the spool");
    assert_eq!(
        spooled(&cache),
        1,
        "the closed file's content is in the spool"
    );
    // `fvfsc pending` reads the spool alone: no daemon, no URL.
    let pending = || -> serde_json::Value {
        let out = Command::new(fvfsc_bin())
            .args(["--json", "pending", "--cache-dir", cache.to_str().unwrap()])
            .env_remove("FVFSD_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let p = pending();
    assert_eq!(p.as_array().unwrap().len(), 1, "{p}");
    assert_eq!(p[0]["path"], "p/a.txt");
    assert_eq!(p[0]["retrying"], true, "{p}");
    assert_eq!(
        std::fs::read(p[0]["data"].as_str().unwrap()).unwrap(),
        b"written while fvfsd was away"
    );
    let d = Daemon::start_on(&f, port, &[]);
    let deadline = Instant::now() + Duration::from_secs(90);
    while d.run(&["cat", "/p/a.txt"]).stdout != b"written while fvfsd was away" {
        assert!(
            Instant::now() < deadline,
            "the pending upload never reached the daemon"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while spooled(&cache) != 0 {
        assert!(Instant::now() < deadline, "the spool entry stayed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read(mnt.join("p/a.txt")).unwrap(),
        b"written while fvfsd was away"
    );

    // The client is killed while an upload is pending: the next mount uploads it first.
    close(write_while_away(d, b"second version")).expect("close with the daemon away");
    let mut c = c;
    c.kill().unwrap();
    c.wait().unwrap();
    let st = Command::new("umount").arg("-l").arg(&mnt).status().unwrap();
    assert!(st.success(), "lazy umount of the dead client mount");
    assert_eq!(spooled(&cache), 1);
    let p = pending();
    assert_eq!(
        (p[0]["path"].as_str(), p[0]["retrying"].as_bool()),
        (Some("p/a.txt"), Some(false)),
        "{p}"
    );
    let d = Daemon::start_on(&f, port, &[]);
    let c = mount_client(&d, &mnt, &cache);
    assert_eq!(d.ok(&["cat", "/p/a.txt"]), "second version");
    assert_eq!(spooled(&cache), 0);
    assert_eq!(pending(), serde_json::json!([]));
    assert_eq!(
        std::fs::read(mnt.join("p/a.txt")).unwrap(),
        b"second version"
    );

    // A clean unmount while the daemon is away: the entry stays for the next mount.
    close(write_while_away(d, b"third version")).expect("close with the daemon away");
    unmount_client(&mnt, c);
    assert_eq!(spooled(&cache), 1);
    let d = Daemon::start_on(&f, port, &[]);
    let c = mount_client(&d, &mnt, &cache);
    assert_eq!(d.ok(&["cat", "/p/a.txt"]), "third version");
    assert_eq!(spooled(&cache), 0);
    unmount_client(&mnt, c);
    d.stop();
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
