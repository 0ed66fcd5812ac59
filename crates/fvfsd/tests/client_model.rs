//! The reference model (`fvfs_testkit::model`) run on the LAN client's filesystem,
//! `fvfs_client::mount::ClientFs`, with no root and no FUSE: the face is called directly
//! (as the kernel would call it through the adapter) and talks real HTTP over loopback to
//! the API router (`fvfs_api::routes::router`, served by `serve_tcp` on 127.0.0.1 port
//! 0) in front of a real engine on a temporary directory. Every operation's outcome
//! (success or errno) must match the model's, and after every operation every listing,
//! every file's bytes, size and link count must match too, exactly as for the engine
//! (`crates/fvfs-vfs/tests/model.rs`).
//!
//! Reopen drops the client whole (its block cache, spool and inode table, on a fresh
//! cache directory), stops the server, reopens the engine from its metadata, serves it on
//! a new port and builds a new client.
//!
//! The client face relies on the kernel's VFS checks (documented in
//! `fvfs-client/src/mount/meta.rs`: the API's DELETE removes a file or an empty directory
//! alike), so the adapter makes them first, as the kernel would (`Face::kernel_checks`:
//! an unlink or rmdir victim's kind, an existing name for create, mkdir and link, link of
//! a directory, rename's kinds and subtree rule); the engine's model runs without them.
//!
//! No operation is skipped: the client offers hard links (`POST /v1/link`) and keeps the bytes
//! of a file unlinked while open (a handle reads through the manifest it fetched at open,
//! or its local copy).
//!
//! Cases per run: `FVFS_CLIENT_MODEL_CASES` (default 1,000 sequences of up to 23 operations,
//! about 50 s on 2 cores). A failing sequence is shrunk and its seed kept in
//! `tests/client_model.proptest-regressions` (committed), replayed first by every run.

use fvfs_api::server::{serve_tcp, ServerLimits};
use fvfs_api::{ApiState, Limits};
use fvfs_client::client::Endpoint;
use fvfs_client::mount::{open_fs, ClientFs, MountOptions};
use fvfs_client::Client;
use fvfs_testkit::model::{self, Face, OnOps};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The engine behind the API, the server and the client in front of it.
struct Env {
    dir: tempfile::TempDir,
    rt: tokio::runtime::Handle,
    meta_url: String,
    /// Reopens so far (each gets a fresh client cache directory).
    generation: u32,
    server: Option<(
        CancellationToken,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
    fs: Option<ClientFs>,
}

impl Env {
    fn new(rt: tokio::runtime::Handle) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let tier = dir.path().join("tier");
        std::fs::create_dir_all(&tier).unwrap();
        let meta_url = format!("sqlite://{}", dir.path().join("meta.db").display());
        fvfs_engine::format_unchecked(&meta_url, fvfs_engine::FormatSpec::local("model", &tier))
            .unwrap();
        let mut env = Env {
            dir,
            rt,
            meta_url,
            generation: 0,
            server: None,
            fs: None,
        };
        env.start();
        env
    }

    /// Opens the engine, serves the API over it on a new port and builds a client.
    fn start(&mut self) {
        let opts = fvfs_engine::EngineOpts::direct(&self.meta_url, false);
        let vfs = fvfs_engine::Engine::open_unchecked(opts)
            .unwrap()
            .vfs()
            .unwrap();
        let state = Arc::new(ApiState {
            vfs,
            workers: None,
            started: Instant::now(),
            mount: None,
            devices: Default::default(),
            limits: Limits::default(),
            allow_devices: false,
            music: None,
        });
        let app = fvfs_api::routes::router(state);
        let listener = self
            .rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let task = self.rt.spawn(serve_tcp(
            listener,
            app,
            None,
            cancel.clone(),
            Duration::from_secs(5),
            ServerLimits::default(),
        ));
        self.server = Some((cancel, task));
        let client = Client::new(Endpoint {
            url: format!("http://{addr}"),
            token: None,
            fingerprint: None,
        })
        .unwrap();
        let cache: PathBuf = self.dir.path().join(format!("client-{}", self.generation));
        let opts = MountOptions {
            mountpoint: self.dir.path().join("unused"),
            cache_dir: Some(cache),
            cache_size: None,
        };
        self.fs = Some(open_fs(client, self.rt.clone(), &opts).unwrap());
    }

    /// Drops the client, stops the server (the engine goes with it).
    fn stop(&mut self) {
        self.fs = None;
        if let Some((cancel, task)) = self.server.take() {
            cancel.cancel();
            self.rt.block_on(task).unwrap().unwrap();
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Face for Env {
    type Ops = ClientFs;
    fn ops(&self) -> &ClientFs {
        self.fs.as_ref().unwrap()
    }
    fn kernel_checks(&self) -> bool {
        true
    }
    fn reopen(&mut self) {
        self.stop();
        self.generation += 1;
        self.start();
    }
}

#[test]
fn the_client_matches_the_model() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cases = model::cases("FVFS_CLIENT_MODEL_CASES", 1000);
    model::run("client model", cases, file!(), || {
        OnOps::new(Env::new(rt.handle().clone()))
    });
}
