//! The HTTP face: REST `/v1` over the engine, `/metrics`, the OpenAPI spec, bearer-token
//! auth, TLS and the mDNS advertisement. A handler is a thin adapter: parse and check the
//! request (paths through `path.rs`), call one `Vfs` method, map the result (`error.rs`
//! holds THE table from errors to HTTP status).
//!
//! Layout: `routes/` one file per family of routes (files, ns, admin), `auth.rs` tokens
//! and the auth layer, `devices.rs` clients seen, `server.rs` TCP/TLS/Unix listeners and
//! graceful shutdown, `tls.rs` the self-signed certificate, `mdns.rs` registration,
//! `metrics.rs` Prometheus figures, `openapi.rs` the spec.
//!
//! Invariants: every request over TCP carries a valid bearer token (the Unix control
//! socket is guarded by its file mode instead); a read-only token can only GET/HEAD;
//! a request acts as its token's identity (`routes/who.rs`), checked by the engine;
//! a PUT becomes visible atomically, complete and hash-checked, or not at all.

pub mod auth;
pub mod control;
pub mod devices;
pub mod error;
pub mod listen;
pub mod mdns;
pub mod metrics;
pub mod openapi;
pub mod path;
pub mod routes;
pub mod server;
pub mod tls;

pub use error::{ApiError, ApiResult};
pub use routes::music::{MusicSearch, MusicSearchError};

use fvfs_vfs::worker::Workers;
use fvfs_vfs::Vfs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Size limits of request bodies.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest file a PUT may upload (bytes).
    pub max_upload: u64,
    /// Largest JSON body (bytes).
    pub max_json: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_upload: 1 << 40,
            max_json: 64 << 10,
        }
    }
}

/// Everything a handler may reach.
pub struct ApiState {
    pub vfs: Arc<Vfs>,
    /// The daemon's background workers (for `/v1/status`), if it runs them.
    pub workers: Option<Arc<Workers>>,
    pub started: Instant,
    /// The daemon's own FUSE mount, if any.
    pub mount: Option<PathBuf>,
    pub devices: devices::DeviceTable,
    pub limits: Limits,
    /// `[daemon] allow_devices`: admin tokens may create device nodes and set-id files.
    pub allow_devices: bool,
    /// The music face's search, when the daemon runs the music mount
    /// (`GET /v1/music/search`; none answers 404).
    pub music: Option<Arc<dyn routes::music::MusicSearch>>,
}
