//! A real WebDAV server for tests: [`WebDavServer`] runs wsgidav (PyPI `wsgidav` +
//! `cheroot`) on 127.0.0.1, anonymous, serving a directory, and can stop and serve
//! again on the same port.
//!
//! [`WebDavServer::start`] fails with `ErrorKind::NotFound` when wsgidav is not
//! installed, so a test can skip.
//!
//! Invariants: the server listens on one port for its whole life; `start` and
//! `restart` return once the port accepts connections; `stop` kills the one process
//! (wsgidav serves from threads) and waits for it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// wsgidav serving `root` on `127.0.0.1:port` until dropped or stopped.
pub struct WebDavServer {
    pub port: u16,
    root: PathBuf,
    child: Mutex<Option<Child>>,
}

impl WebDavServer {
    /// Serves `root` (which must exist) on a free port.
    pub fn start(root: &Path) -> io::Result<WebDavServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let server = WebDavServer {
            port,
            root: root.to_path_buf(),
            child: Mutex::new(None),
        };
        server.restart()?;
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&self) -> io::Result<Child> {
        let port = self.port.to_string();
        let args = [
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--auth",
            "anonymous",
        ];
        let spawn = |cmd: &mut Command| {
            cmd.args(args)
                .arg("--root")
                .arg(&self.root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        // The console script, or the module when pip put the script off PATH.
        spawn(&mut Command::new("wsgidav")).or_else(|_| {
            let ok = Command::new("python3")
                .args(["-c", "import wsgidav, cheroot"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "wsgidav not found (pip install wsgidav cheroot)",
                ));
            }
            spawn(Command::new("python3").args(["-m", "wsgidav.server.server_cli"]))
        })
    }

    /// Serves again on the same port after [`WebDavServer::stop`] (no-op when running).
    pub fn restart(&self) -> io::Result<()> {
        let mut g = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(g.as_mut().map(|c| c.try_wait()), Some(Ok(None))) {
            return Ok(());
        }
        let mut child = self.spawn()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!("wsgidav exited: {status}")));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(format!(
                    "wsgidav did not listen on port {} within 20 s",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        *g = Some(child);
        Ok(())
    }

    /// Stops the server. Idempotent.
    pub fn stop(&self) {
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for WebDavServer {
    fn drop(&mut self) {
        self.stop();
    }
}
