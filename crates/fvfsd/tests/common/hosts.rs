//! Several hosts of one filesystem whose metadata is on PostgreSQL: the fixture's own
//! mount is host A, [`Host`] is another mount of the same filesystem with its own
//! mountpoint, cache directory and log (in tests: another process on this machine, as a
//! second host would run it).

use super::Fixture;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A fixture on its own PostgreSQL schema, whatever FVFS_TEST_META says. `None` (skip)
/// outside CI without a server; in CI a missing server fails (`pg_server`).
pub fn on_postgres() -> Option<Fixture> {
    let server = fvfs_meta::testing::pg_server()?;
    std::env::set_var("FVFS_TEST_META", "postgres");
    std::env::set_var("FVFS_TEST_PG", &server);
    let f = Fixture::new()?;
    assert!(f.meta_url.starts_with("postgres://"), "{}", f.meta_url);
    Some(f)
}

/// Another mount of the fixture's filesystem.
pub struct Host {
    pub mnt: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Fixture {
    /// Mounts the filesystem again as host `name` and waits until the mount is live.
    pub fn mount_host(&self, name: &str) -> Host {
        let mnt = self.dir.path().join(format!("mnt-{name}"));
        std::fs::create_dir_all(&mnt).unwrap();
        let log = self.dir.path().join(format!("mount-{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut child = self
            .fvfsd()
            .args([
                "mount",
                "--foreground",
                "--meta",
                &self.meta_url,
                "--cache-dir",
            ])
            .arg(self.dir.path().join(format!("cache-{name}")))
            .arg(&mnt)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !super::is_mounted(&mnt) {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "host {name} did not mount ({st}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "host {name} did not mount in 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Host {
            mnt,
            log,
            child: Some(child),
        }
    }
}

impl Host {
    pub fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    /// kill -9 of the mount process, then detach the dead mount.
    pub fn kill9(&mut self) {
        super::kill9_mount(self.child.take(), &self.mnt);
    }

    /// Clean unmount; waits for the daemon to exit (60 s at most).
    pub fn unmount(&mut self) {
        let st = Command::new("umount").arg(&self.mnt).status().unwrap();
        assert!(st.success(), "umount {} failed", self.mnt.display());
        if let Some(mut c) = self.child.take() {
            super::wait_exit(&mut c, "a host's mount");
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log_text();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "---- {} (last lines) ----\n{}",
                self.log.display(),
                lines[lines.len().saturating_sub(30)..].join("\n")
            );
        }
        if self.child.is_some() {
            self.kill9();
        }
    }
}
