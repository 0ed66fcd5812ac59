//! `fvfsd serve` as one daemon process: the API on TCP with bearer tokens, `fvfsd token`
//! against the running daemon, the control socket, `fvfsd status`, the FUSE mount beside
//! the API, and the ordered stop on SIGTERM. Real binary, real S3 server on 127.0.0.1.

mod common;

use common::{http, unix_http, Fixture};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A config for the daemon: no mDNS (tests need no multicast), the cache in the fixture,
/// and the mount where the fixture wants it (or none).
fn config(f: &mut Fixture, mount: bool) {
    let p = f.dir.path().join("serve.toml");
    let mount_path = if mount {
        f.mnt.display().to_string()
    } else {
        String::new()
    };
    std::fs::write(
        &p,
        format!(
            "[daemon]\nmdns = false\nmount_path = \"{mount_path}\"\ncache_dir = \"{}\"\n",
            f.cache.display()
        ),
    )
    .unwrap();
    f.config = Some(p);
}

#[test]
fn api_tokens_socket_status_and_stop() {
    let Some(mut f) = Fixture::new() else { return };
    config(&mut f, false);
    let state = f.dir.path().to_path_buf();
    // Set up at format time: tokens (hashes only), admin.token, the certificate.
    let admin = f.admin_token();
    assert!(admin.starts_with("fvfs_") && admin.len() == 45);
    assert_eq!(mode(&state.join("admin.token")), 0o600);
    assert_eq!(mode(&state.join("tokens.json")), 0o600);
    assert_eq!(mode(&state.join("tls/key.pem")), 0o600);
    let tokens = std::fs::read_to_string(state.join("tokens.json")).unwrap();
    assert!(
        !tokens.contains(&admin[5..]),
        "the token file holds no secret"
    );

    let mut d = f.serve(&["--no-mount", "--port", "0"]);
    assert!(d.url.starts_with("http://127.0.0.1:"), "{}", d.url);
    assert_eq!(d.stdout.iter().filter(|l| l.starts_with("api ")).count(), 1);
    let url_file = state.join("fvfsd.url");
    assert_eq!(std::fs::read_to_string(&url_file).unwrap().trim(), d.url);
    let status = format!("{}/v1/status", d.url);

    // No token, a wrong one, the admin one.
    let (code, headers, body) = http("GET", &status, None, b"");
    assert_eq!(code, 401);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "www-authenticate" && v == "Bearer"));
    let e: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(e["error"]["code"], "unauthorized");
    assert_eq!(http("GET", &status, Some("fvfs_0000"), b"").0, 401);
    let (code, _, body) = http("GET", &status, Some(&admin), b"");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let st: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st["name"], "fvfs");

    // A file through the API.
    let file = format!("{}/v1/files/hello.txt", d.url);
    let (code, _, body) = http("PUT", &file, Some(&admin), b"hello api");
    assert!(
        code == 201 || code == 200,
        "{code} {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(http("GET", &file, Some(&admin), b"").2, b"hello api");

    // `fvfsd token` against the running daemon: no restart needed either way.
    let secret = f.ok(&["token", "create", "laptop"]).trim().to_string();
    assert!(secret.starts_with("fvfs_"), "{secret}");
    assert_eq!(http("GET", &status, Some(&secret), b"").0, 200);
    let ro = f
        .ok(&["token", "create", "viewer", "--read-only"])
        .trim()
        .to_string();
    assert_eq!(http("GET", &file, Some(&ro), b"").0, 200);
    let (code, _, body) = http("PUT", &file, Some(&ro), b"nope");
    assert_eq!(code, 403);
    assert!(String::from_utf8_lossy(&body).contains("forbidden"));
    let list = f.ok(&["token", "list", "--json"]);
    let names: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&list)
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["admin", "laptop", "viewer"]);
    assert!(!list.contains(&secret[5..]));
    f.ok(&["token", "revoke", "laptop"]);
    assert_eq!(http("GET", &status, Some(&secret), b"").0, 401);
    assert_eq!(http("GET", &status, Some(&admin), b"").0, 200);

    // The control socket: mode 0600, no token needed.
    let sock = state.join("fvfsd.sock");
    assert_eq!(mode(&sock), 0o600);
    let (code, _, body) = unix_http(&sock, "GET", "/v1/status", b"");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let (code, _, body) = unix_http(&sock, "GET", "/v1/devices", b"");
    assert_eq!(code, 200);
    let devices = String::from_utf8_lossy(&body);
    assert!(
        devices.contains("it-test") && devices.contains("admin"),
        "{devices}"
    );

    // `fvfsd status` asks the daemon.
    let out = f.ok(&["status"]);
    assert!(out.contains("daemon") && out.contains("API only"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&f.ok(&["status", "--json"])).unwrap();
    assert_eq!(json["uuid"], st["uuid"]);

    // A second daemon (or mount) of the same SQLite filesystem is refused.
    let out = f.run(&["serve", "--no-mount", "--port", "0", "--meta", &f.meta_url]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already mounted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(http("GET", &status, Some(&admin), b"").0, 200);

    // SIGTERM: a clean exit, socket and URL file gone, the API closed.
    let t = Instant::now();
    let st = d.stop(60);
    assert!(st.success(), "exit status {st}");
    assert!(t.elapsed() < Duration::from_secs(60));
    assert!(!sock.exists(), "the control socket is removed at stop");
    assert!(!url_file.exists());
    let addr = d.url.strip_prefix("http://").unwrap().to_string();
    assert!(std::net::TcpStream::connect(addr).is_err());
    // The offline status works again, and no session row is left.
    let out = f.ok(&["status"]);
    assert!(out.contains("sessions     none"), "{out}");
    // The data written through the API is there after the stop.
    assert!(f.ok(&["stat", "/hello.txt"]).contains('9'));
}

#[test]
fn api_beside_the_fuse_mount() {
    let Some(mut f) = Fixture::new() else { return };
    config(&mut f, true);
    let admin = f.admin_token();
    let mut d = f.serve(&["--port", "0"]);
    assert!(
        common::is_mounted(&f.mnt),
        "the api line comes once mounted"
    );
    let data = common::data(300_000, 7);
    std::fs::write(f.path("via-fuse.bin"), &data).unwrap();
    let (code, _, body) = http(
        "GET",
        &format!("{}/v1/files/via-fuse.bin", d.url),
        Some(&admin),
        b"",
    );
    assert_eq!(code, 200);
    assert!(body == data, "the API reads what FUSE wrote");
    // And the other way round.
    let (code, _, _) = http(
        "PUT",
        &format!("{}/v1/files/via-api.txt", d.url),
        Some(&admin),
        b"from the api",
    );
    assert!(code == 201 || code == 200);
    assert_eq!(
        std::fs::read(f.path("via-api.txt")).unwrap(),
        b"from the api"
    );
    let (_, _, body) = unix_http(&f.dir.path().join("fvfsd.sock"), "GET", "/v1/status", b"");
    let st: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(st["mount"].as_str().is_some(), "{st}");
    let st = d.stop(60);
    assert!(st.success(), "exit status {st}");
    assert!(!common::is_mounted(&f.mnt), "SIGTERM unmounts");
    assert!(!f.dir.path().join("fvfsd.sock").exists());
}

#[test]
fn external_umount_stops_the_daemon() {
    let Some(mut f) = Fixture::new() else { return };
    config(&mut f, true);
    let admin = f.admin_token();
    let mut d = f.serve(&["--port", "0"]);
    std::fs::write(f.path("a.txt"), b"kept").unwrap();
    let st = std::process::Command::new("umount")
        .arg(&f.mnt)
        .status()
        .unwrap();
    assert!(st.success());
    let status = common::wait_exit(&mut d.child, "the daemon did not stop after umount");
    assert!(status.success(), "{status}");
    assert!(std::net::TcpStream::connect(d.url.strip_prefix("http://").unwrap()).is_err());
    let _ = admin;
    // The write made before the umount was committed: the metadata has its 4 bytes.
    let stat = f.ok(&["stat", "/a.txt"]);
    let size = stat.lines().find(|l| l.starts_with("size ")).unwrap_or("");
    assert!(size.ends_with(" (4 bytes)"), "{stat}");
}

#[test]
fn tls_and_loopback_without_tokens() {
    let Some(mut f) = Fixture::new() else { return };
    config(&mut f, false);
    let state = f.dir.path().to_path_buf();
    let log = state.join("mount.log");

    // HTTPS with the certificate made at format time; the printed pin is its SHA-256.
    let mut d = f.serve(&["--no-mount", "--port", "0", "--tls"]);
    assert!(d.url.starts_with("https://127.0.0.1:"), "{}", d.url);
    let fp_line = d
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("tls        sha256 "))
        .expect("the tls line")
        .to_string();
    let (_, fp) = fvfs_api::tls::load(&state).unwrap();
    assert_eq!(fp_line, fp);
    // Plain HTTP on the TLS port gets no HTTP answer.
    let addr = d.url.strip_prefix("https://").unwrap().to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        !buf.starts_with(b"HTTP/1.1 200"),
        "no plain answer on the TLS port"
    );
    assert!(d.stop(60).success());

    // Without any token, the API listens on loopback only and says why (no `--bind`).
    f.ok(&["token", "revoke", "admin"]);
    assert!(!state.join("admin.token").exists());
    let child = f.serve_child(&["--no-mount", "--port", "0"], &[], &log);
    let mut d = common::wait_for_api(child, &log);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("127.0.0.1 only"), "{text}");
    assert!(text.contains("listen=127.0.0.1:"), "{text}");
    assert!(d.stop(60).success());
}
