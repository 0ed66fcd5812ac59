//! A real SFTP server for tests: [`SftpServer`] runs Debian's OpenSSH `sshd` on
//! 127.0.0.1 with a configuration of its own in a temporary directory (a generated host
//! key, one generated client key allowed for the current user, `internal-sftp`), in the
//! foreground (`-D -e`), and can stop and serve again on the same port.
//!
//! Needs root (sshd's privilege separation; the test logs in as root with the key only)
//! and the `sshd`, `ssh-keygen` binaries (`openssh-server`, `openssh-client`); clients
//! such as OpenDAL's sftp service also need `ssh`. [`SftpServer::start`] fails with
//! `ErrorKind::NotFound` when sshd is missing, so a test can skip.
//!
//! Invariants:
//! - the server listens on one port for its whole life ([`SftpServer::restart`] binds it
//!   again);
//! - [`SftpServer::stop`] ends the listener *and* every per-connection sshd process it
//!   forked (they would otherwise keep serving open sessions and hide the outage);
//! - nothing outside the temporary directory is touched except `/run/sshd` (created if
//!   missing: sshd's privilege separation directory).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An sshd serving SFTP on `127.0.0.1:port` until dropped or stopped.
pub struct SftpServer {
    pub port: u16,
    /// The user clients log in as (the current user).
    pub user: String,
    /// The private key clients authenticate with.
    pub key_file: PathBuf,
    dir: tempfile::TempDir,
    sshd: PathBuf,
    child: Mutex<Option<Child>>,
}

fn find_sshd() -> io::Result<PathBuf> {
    // sshd refuses to re-exec itself unless started by absolute path.
    ["/usr/sbin/sshd", "/usr/bin/sshd", "/sbin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "sshd not found (apt-get install openssh-server openssh-client)",
            )
        })
}

fn run(cmd: &mut Command) -> io::Result<String> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn keygen(path: &Path) -> io::Result<()> {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "fvfs-test", "-f"])
        .arg(path))
    .map(|_| ())
}

fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Every process whose parent chain leads to `root` (read from /proc).
fn descendants(root: u32) -> Vec<u32> {
    let mut parent = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces and parentheses.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid this server started (or one of its children).
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

impl SftpServer {
    /// Generates the keys and configuration and starts sshd on a free port.
    pub fn start() -> io::Result<SftpServer> {
        let sshd = find_sshd()?;
        let dir = tempfile::Builder::new().prefix("fvfs-sftp").tempdir()?;
        let user = run(Command::new("id").arg("-un"))?;
        keygen(&dir.path().join("host_ed25519"))?;
        let key_file = dir.path().join("client_ed25519");
        keygen(&key_file)?;
        std::fs::copy(
            dir.path().join("client_ed25519.pub"),
            dir.path().join("authorized_keys"),
        )?;
        std::fs::create_dir_all("/run/sshd")?;
        let port = free_port()?;
        let d = dir.path().display();
        let config = format!(
            "Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {d}/host_ed25519\n\
             PidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             UsePAM no\n\
             StrictModes no\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             AllowUsers {user}\n\
             MaxStartups 200\n\
             MaxSessions 200\n\
             Subsystem sftp internal-sftp\n"
        );
        std::fs::write(dir.path().join("sshd_config"), config)?;
        let server = SftpServer {
            port,
            user,
            key_file,
            dir,
            sshd,
            child: Mutex::new(None),
        };
        server.restart()?;
        Ok(server)
    }

    /// The directory holding the keys, configuration and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The music origin line for `root` on this server (`ID=` excluded): host key
    /// accepted, the generated client key.
    pub fn location(&self, root: &Path) -> String {
        format!(
            "sftp://{}@127.0.0.1:{}{}?key_file={}&known_hosts=accept",
            self.user,
            self.port,
            root.display(),
            self.key_file.display()
        )
    }

    /// Whether sshd is running.
    pub fn is_running(&self) -> bool {
        let mut g = self.child.lock().unwrap_or_else(|p| p.into_inner());
        matches!(g.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Serves again on the same port after [`SftpServer::stop`] (no-op when running);
    /// returns once the port accepts connections.
    pub fn restart(&self) -> io::Result<()> {
        let mut g = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(g.as_mut().map(|c| c.try_wait()), Some(Ok(None))) {
            return Ok(());
        }
        let log = std::fs::File::create(self.dir.path().join("sshd.log"))?;
        let mut child = Command::new(&self.sshd)
            .args(["-D", "-e", "-f"])
            .arg(self.dir.path().join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                let log =
                    std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default();
                return Err(io::Error::other(format!("sshd exited ({status}): {log}")));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(format!(
                    "sshd did not listen on port {} within 10 s",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        *g = Some(child);
        Ok(())
    }

    /// Stops sshd and every session process it started ("the server is down").
    /// Idempotent.
    pub fn stop(&self) {
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut child) = child {
            // Stopped first, so it forks no new session while its tree is collected.
            signal(child.id(), libc::SIGSTOP);
            for pid in descendants(child.id()) {
                signal(pid, libc::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SftpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
