//! A smoke test of the `fvfsc` binary against a running daemon: skipped unless
//! `FVFSD_TEST_URL` is set (token from `FVFSD_TEST_TOKEN`, else `FVFS_TOKEN`). It works in
//! a fresh directory `/fvfsc-smoke-<pid>-<time>` and removes what it created.

use std::io::Write;
use std::process::{Command, Output, Stdio};

struct Env {
    url: String,
    token: Option<String>,
    config: tempfile::TempDir,
}

impl Env {
    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fvfsc"));
        cmd.arg("--url")
            .arg(&self.url)
            .args(args)
            .env("FVFSC_CONFIG_DIR", self.config.path())
            .env_remove("FVFSD_URL")
            .env_remove("VFSD_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match &self.token {
            Some(t) => cmd.env("FVFS_TOKEN", t),
            None => cmd.env_remove("FVFS_TOKEN"),
        };
        let mut child = cmd.spawn().expect("run fvfsc");
        if let Some(mut w) = child.stdin.take() {
            if let Some(data) = stdin {
                w.write_all(data).expect("stdin");
            }
        }
        child.wait_with_output().expect("fvfsc output")
    }

    fn ok(&self, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "fvfsc {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

#[test]
fn smoke_against_a_running_daemon() {
    let Some(url) = std::env::var("FVFSD_TEST_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: FVFSD_TEST_URL is not set");
        return;
    };
    let token = std::env::var("FVFSD_TEST_TOKEN")
        .or_else(|_| std::env::var("FVFS_TOKEN"))
        .ok();
    let env = Env {
        url,
        token,
        config: tempfile::tempdir().expect("config dir"),
    };
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = format!("/fvfsc-smoke-{}-{secs}", std::process::id());
    let sub = format!("{dir}/sub dir");
    let file = format!("{sub}/f é.txt");

    env.ok(&["status"], None);
    env.ok(&["mkdir", "-p", &sub], None);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let st: serde_json::Value =
        serde_json::from_slice(&env.ok(&["--json", "put", "-", &file], Some(&data)))
            .expect("put --json");
    assert_eq!(st["size"], 300_000);
    assert_eq!(env.ok(&["cat", &file], None), data);
    assert_eq!(
        env.ok(&["cat", &file, "--range", "1000-1099"], None),
        &data[1000..1100]
    );
    let ls: serde_json::Value =
        serde_json::from_slice(&env.ok(&["--json", "ls", &sub], None)).expect("ls --json");
    assert_eq!(ls["entries"].as_array().map(Vec::len), Some(1));
    let moved = format!("{sub}/g.txt");
    env.ok(&["mv", &file, &moved], None);
    let out = env.run(&["stat", &file], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    env.ok(&["rm", &moved], None);
    env.ok(&["rm", &sub], None);
    env.ok(&["rm", &dir], None);
}
