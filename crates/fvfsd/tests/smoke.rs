//! A smoke test of the `fvfsc` binary against a real `fvfsd serve` that the test starts
//! itself: a fresh filesystem on a local block directory, the API on 127.0.0.1 (port 0,
//! plain HTTP on loopback, no mount, no mDNS), the admin token written at format. It needs
//! neither root nor FUSE, so it runs in every `cargo test`. Outputs are compared exactly.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

mod common;

fn fvfsd_bin() -> PathBuf {
    PathBuf::from(common::FVFSD)
}

fn fvfsc() -> PathBuf {
    common::api::fvfsc_bin()
}

/// A running `fvfsd serve` (killed on drop) and how `fvfsc` reaches it.
struct Daemon {
    child: Child,
    url: String,
    token: String,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let meta = format!("sqlite://{}/meta.db", dir.path().display());
        let fvfsd = |args: &[&str]| {
            let mut c = Command::new(fvfsd_bin());
            c.args(args)
                .args(["--meta", &meta])
                .env("FVFS_CONFIG", dir.path().join("fvfs.toml"))
                .env("FVFS_HOME", dir.path().join("home"))
                .env("FVFS_LOG", "warn");
            c
        };
        // Without the trash: the test checks that `rm` brings the file count back.
        std::fs::write(
            dir.path().join("fvfs.toml"),
            "[daemon]\nmdns = false\n[trash]\ndays = 0\n",
        )
        .unwrap();
        let blocks = dir.path().join("blocks");
        let out = fvfsd(&["format", "--storage", blocks.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut child = fvfsd(&["serve", "--no-mount", "--bind", "127.0.0.1", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("api ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => url,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("fvfsd serve printed no api line: {e}");
            }
        };
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let token = std::fs::read_to_string(dir.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_string();
        Daemon {
            child,
            url,
            token,
            dir,
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(fvfsc());
        cmd.arg("--url")
            .arg(&self.url)
            .args(args)
            .env("FVFS_TOKEN", &self.token)
            .env("FVFSC_CONFIG_DIR", self.dir.path().join("fvfsc"))
            .env_remove("FVFSD_URL")
            .env_remove("VFSD_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run fvfsc");
        if let Some(mut w) = child.stdin.take() {
            if let Some(data) = stdin {
                w.write_all(data).expect("stdin");
            }
        }
        child.wait_with_output().expect("fvfsc output")
    }

    /// Runs fvfsc, asserts success and an empty stderr, returns stdout.
    fn ok(&self, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "fvfsc {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "fvfsc {args:?}");
        out.stdout
    }

    fn json(&self, args: &[&str], stdin: Option<&[u8]>) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend(args);
        serde_json::from_slice(&self.ok(&all, stdin)).expect("JSON")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn smoke_against_a_daemon_of_its_own() {
    let d = Daemon::start();
    let dir = "/fvfsc-smoke";
    let sub = format!("{dir}/sub dir");
    let file = format!("{sub}/f é.txt");

    let st = d.json(&["status"], None);
    assert_eq!(st["name"], "fvfs");
    let files = st["files"].as_u64().unwrap();
    assert_eq!(st["tiers"].as_array().map(Vec::len), Some(1));

    assert_eq!(d.ok(&["mkdir", "-p", &sub], None), b"");
    assert_eq!(d.json(&["stat", &sub], None)["kind"], "dir");
    assert_eq!(d.json(&["status"], None)["files"], files + 2);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let st = d.json(&["put", "-", &file], Some(&data));
    assert_eq!(
        (&st["path"], &st["kind"], &st["size"], &st["mode"]),
        (
            &serde_json::json!(file),
            &serde_json::json!("file"),
            &serde_json::json!(300_000),
            &serde_json::json!(0o644)
        ),
        "{st}"
    );
    let small = format!("{sub}/small");
    assert_eq!(
        String::from_utf8(d.ok(&["put", "-", &small], Some(b"tiny\n"))).unwrap(),
        format!("{small} 5 bytes\n")
    );
    assert_eq!(d.ok(&["cat", &file], None), data);
    assert_eq!(
        d.ok(&["cat", &file, "--range", "1000-1099"], None),
        &data[1000..1100]
    );
    assert_eq!(d.ok(&["cat", &small], None), b"tiny\n");
    assert_eq!(
        String::from_utf8(d.ok(&["ls", "-1", &sub], None)).unwrap(),
        "f é.txt\nsmall\n"
    );
    let ls = d.json(&["ls", &sub], None);
    let entries = ls["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{ls}");
    assert_eq!(entries[0]["size"], 300_000);

    let moved = format!("{sub}/g.txt");
    assert_eq!(d.ok(&["mv", &file, &moved], None), b"");
    assert_eq!(d.ok(&["cat", &moved], None), data);
    let out = d.run(&["stat", &file], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!("fvfsc: {file}: ")) && err.ends_with(" (NotFound, HTTP 404)\n"),
        "{err:?}"
    );
    assert_eq!(err.lines().count(), 1, "{err:?}");

    // No token: 401, with the hint.
    let out = Command::new(fvfsc())
        .args(["--url", &d.url, "ls", "/"])
        .env("FVFSC_CONFIG_DIR", d.dir.path().join("none"))
        .env_remove("FVFS_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.ends_with(
            "(Unauthorized, HTTP 401) (give a token with --token or FVFS_TOKEN, or run `fvfsc login`)\n"
        ),
        "{err:?}"
    );

    for p in [moved.as_str(), small.as_str(), sub.as_str(), dir] {
        assert_eq!(d.ok(&["rm", p], None), b"", "rm {p}");
    }
    assert_eq!(d.ok(&["ls", "-1", "/"], None), b"");
    assert_eq!(d.json(&["status"], None)["files"], files);
}
