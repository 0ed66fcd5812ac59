//! Network namespaces for tests that need an interface other than the host's: created
//! with iproute2 (`ip netns add`), `lo` up with multicast, deleted on drop. Processes run
//! inside with [`Netns::cmd`]; code of the test itself with [`Netns::run_in`] (a thread
//! that joins the namespace), so nothing a test does there reaches a real network.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;

/// A network namespace, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    /// `fvfs-<tag>-<pid>`, with `lo` up, multicast on, and the multicast route on `lo`.
    pub fn new(tag: &str) -> Netns {
        let name = format!("fvfs-{tag}-{}", std::process::id());
        // A namespace left by a killed run of this pid (usually none: quiet).
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns(name);
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns.exec_ok(&["ip", "link", "set", "lo", "multicast", "on"]);
        ns.exec_ok(&["ip", "route", "add", "224.0.0.0/4", "dev", "lo"]);
        ns
    }

    /// Adds a veth pair `name` / `name-p` (both ends inside) with `cidr` (e.g.
    /// `10.77.0.1/24`) on `name`, both up: an address beyond loopback that leads nowhere.
    pub fn add_veth(&self, name: &str, cidr: &str) {
        let peer = format!("{name}-p");
        self.exec_ok(&[
            "ip", "link", "add", name, "type", "veth", "peer", "name", &peer,
        ]);
        self.exec_ok(&["ip", "addr", "add", cidr, "dev", name]);
        self.exec_ok(&["ip", "link", "set", name, "up"]);
        self.exec_ok(&["ip", "link", "set", &peer, "up"]);
    }

    /// `prog` run inside the namespace.
    pub fn cmd(&self, prog: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).arg(prog);
        c
    }

    pub fn exec_ok(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", &self.0];
        all.extend(args);
        sh(&all);
    }

    /// Runs `f` on a thread that has joined the namespace (setns affects that thread only).
    pub fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap();
            // SAFETY: a valid namespace descriptor; joins the calling thread only.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Whether `ip` (iproute2) is here; panics under FVFS_REQUIRE_PRIVILEGED=1 if not.
pub fn have_ip() -> bool {
    if Command::new("ip").arg("-V").output().is_ok() {
        return true;
    }
    if std::env::var("FVFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("this test needs `ip` (iproute2) for its network namespace");
    }
    eprintln!("SKIP: no `ip` command");
    false
}

fn sh(args: &[&str]) {
    let st = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(st.success(), "{args:?} failed");
}
