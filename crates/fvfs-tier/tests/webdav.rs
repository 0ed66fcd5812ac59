//! A WebDAV tier against a real WebDAV server on 127.0.0.1 (wsgidav, from PyPI; the test
//! script installs it). Without wsgidav the test is skipped, unless
//! FVFS_REQUIRE_PRIVILEGED=1 (CI), where a skip is a failure.

use bytes::Bytes;
use fvfs_tier::{Tier, TierSpec};
use fvfs_types::BlockId;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(root: &std::path::Path) -> Option<(Server, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port_s = port.to_string();
    let args = [
        "--host",
        "127.0.0.1",
        "--port",
        &port_s,
        "--auth",
        "anonymous",
    ];
    let spawn = |cmd: &mut Command| {
        cmd.args(args)
            .arg("--root")
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    // The console script, or the module when pip put the script off PATH.
    let child = spawn(&mut Command::new("wsgidav")).or_else(|_| {
        let ok = Command::new("python3")
            .args(["-c", "import wsgidav, cheroot"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(std::io::Error::other("python3 has no wsgidav/cheroot"));
        }
        spawn(Command::new("python3").args(["-m", "wsgidav.server.server_cli"]))
    });
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("FVFS_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
                panic!("wsgidav is required here (pip install wsgidav cheroot): {e}");
            }
            eprintln!("SKIP: wsgidav not found ({e})");
            return None;
        }
    };
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((server, port));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("wsgidav did not listen on port {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_round_trip_through_a_webdav_share() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, port)) = start(dir.path()) else {
        return;
    };
    let spec = TierSpec::parse(&format!("webdav://127.0.0.1:{port}/fvfs")).unwrap();
    let tier = Tier::open(&spec).unwrap();
    tier.check().await.expect("probe write/read/delete");
    let data = Bytes::from_static(b"a block stored on the NAS over WebDAV");
    let id = BlockId(*blake3::hash(&data).as_bytes());
    assert!(!tier.block_exists(&id).await.unwrap());
    tier.put_block(&id, data.clone()).await.unwrap();
    assert!(tier.block_exists(&id).await.unwrap());
    assert_eq!(tier.get_block(&id).await.unwrap(), data);
    // The object is a plain file under the share, at the documented key.
    let on_disk = dir.path().join("fvfs").join(Tier::block_key(&id));
    assert_eq!(std::fs::read(on_disk).unwrap(), &data[..]);
    tier.delete_block(&id).await.unwrap();
    assert!(!tier.block_exists(&id).await.unwrap());
    assert!(tier.get_block(&id).await.unwrap_err().is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_webdav_share_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tier =
        Tier::open(&TierSpec::parse(&format!("webdav://127.0.0.1:{port}/x")).unwrap()).unwrap();
    let e = tier.check().await.unwrap_err();
    assert!(e.is_unreachable(), "{e}");
}
