//! `fvfsc`: the LAN client of fvfs. Parses the command line, finds the daemon (flags,
//! environment, stored login, mDNS, default; see `fvfs_client::config`) and runs one
//! command against the `/v1` API: file commands in `files.rs`, daemon and login commands
//! in `admin.rs`, the FUSE mount in `mount.rs`, human output in `format.rs`.
//!
//! Invariants: a failure prints one line `fvfsc: <error>` on stderr and exits 1 (no
//! backtrace, never the token); `--json` prints the API's JSON model of the answer on
//! stdout. It links neither SQLite nor any storage SDK, and must stay that way.

mod admin;
mod files;
mod format;
mod mount;

use clap::{Parser, Subcommand};
use fvfs_client::config::{self, Origin, Overrides};
use fvfs_client::{Client, ClientError};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "fvfsc", version, about = "fvfs LAN client")]
pub struct Cli {
    /// Daemon URL (http://host:port or https://host:port); else FVFSD_URL, VFSD_URL, the
    /// stored login, mDNS discovery, http://localhost:7734.
    #[arg(long, global = true, value_name = "URL")]
    url: Option<String>,
    /// Bearer token; else FVFS_TOKEN, else the stored login.
    #[arg(long, global = true, value_name = "TOKEN")]
    token: Option<String>,
    /// Print the API's JSON model instead of human output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// List a directory (like `ls -l`).
    Ls {
        #[arg(default_value = "/")]
        path: String,
        /// Names only, one per line.
        #[arg(short = '1')]
        one: bool,
    },
    /// Write a file's bytes to stdout.
    Cat {
        path: String,
        /// Bytes A to B inclusive (`A-B`) or from A to the end (`A-`).
        #[arg(long, conflicts_with_all = ["offset", "length"])]
        range: Option<String>,
        #[arg(long)]
        offset: Option<u64>,
        #[arg(long)]
        length: Option<u64>,
    },
    /// Upload SRC (a file, or `-` for stdin) as DEST; atomic on the daemon.
    Put {
        src: String,
        /// Destination path; ending in `/` puts SRC's name in that directory.
        dest: String,
        /// Create missing parent directories.
        #[arg(short, long)]
        parents: bool,
        /// Permission bits in octal (default 644).
        #[arg(long, value_parser = format::parse_mode)]
        mode: Option<u32>,
    },
    /// Remove a file, symlink or empty directory.
    Rm { path: String },
    /// Show a path's metadata.
    Stat { path: String },
    /// Create a directory.
    Mkdir {
        path: String,
        /// Create missing parents; an existing directory is not an error.
        #[arg(short, long)]
        parents: bool,
        /// Permission bits in octal (default 755).
        #[arg(long, value_parser = format::parse_mode)]
        mode: Option<u32>,
    },
    /// Rename FROM to TO (POSIX rules).
    Mv {
        from: String,
        to: String,
        /// Fail instead of replacing TO.
        #[arg(short = 'n', long)]
        no_clobber: bool,
    },
    /// Daemon summary: tiers, replication queue, workers.
    Status,
    /// Queued replications.
    Wal {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Clients seen in the last 24 h.
    Devices,
    /// Replicate everything queued now.
    Flush,
    /// Evict blocks from tiers above their watermark.
    Evict {
        /// Only this tier (default: every tier with a watermark).
        #[arg(long)]
        tier: Option<String>,
    },
    /// Store a daemon URL and token (token from --token, FVFS_TOKEN or one line of stdin);
    /// over HTTPS pins the daemon's certificate on first use (a stored pin is kept).
    Login {
        url: Option<String>,
        /// Accept a new certificate for this host: its SHA-256 as `fvfsd status` prints it
        /// on the host. The token is sent only if the daemon presents exactly that one.
        #[arg(long, value_name = "SHA256")]
        replace_pin: Option<String>,
    },
    /// Browse the LAN (mDNS) for daemons.
    Discover {
        /// Wait the whole timeout and list every daemon found.
        #[arg(long)]
        all: bool,
        /// Seconds to browse (default FVFSC_DISCOVERY_TIMEOUT or 10).
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// Mount the daemon's filesystem through the API (FUSE).
    Mount {
        mountpoint: PathBuf,
        /// Block cache directory (default: ~/.cache/fvfsc).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Block cache size in bytes (suffixes K, M, G, T).
        #[arg(long, value_parser = format::parse_size)]
        cache_size: Option<u64>,
        /// Stay in the foreground (otherwise run in the background once mounted).
        #[arg(long)]
        foreground: bool,
    },
    /// Closed files a mount could not upload yet (kept in the cache's spool); needs no
    /// daemon.
    Pending {
        /// Block cache directory the mount uses (default: ~/.cache/fvfsc).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
}

impl Cli {
    fn overrides(&self) -> Overrides {
        Overrides {
            url: self.url.clone(),
            token: self.token.clone(),
        }
    }
}

/// Resolves the endpoint (see `fvfs_client::config`) and builds a client.
pub async fn connect(cli: &Cli) -> anyhow::Result<Client> {
    let r = config::resolve(&cli.overrides()).await?;
    if r.origin == Origin::Discovered {
        eprintln!("using fvfsd at {} (found over mDNS)", r.endpoint.url);
    }
    Ok(Client::new(r.endpoint)?)
}

/// Prints `v` as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// A hint added to errors the user can act on.
fn hint(e: &anyhow::Error) -> Option<&'static str> {
    match e.downcast_ref::<ClientError>()? {
        ClientError::Api { status: 401, .. } => {
            Some("give a token with --token or FVFS_TOKEN, or run `fvfsc login`")
        }
        ClientError::Api { status: 403, .. } => Some("this token is read-only"),
        ClientError::Connect { msg, .. } if !msg.contains("fvfsc login") => {
            Some("is fvfsd running? set --url or FVFSD_URL, or run `fvfsc login URL`")
        }
        _ => None,
    }
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.cmd {
        Cmd::Ls { .. }
        | Cmd::Cat { .. }
        | Cmd::Put { .. }
        | Cmd::Rm { .. }
        | Cmd::Stat { .. }
        | Cmd::Mkdir { .. }
        | Cmd::Mv { .. } => files::run(cli).await,
        _ => admin::run(cli).await,
    }
}

fn main() {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string().replace('\n', " ");
        eprintln!("fvfsc: internal error: {msg}");
    }));
    let cli = Cli::parse();
    // Logs (mostly the mount's) go to stderr; RUST_LOG selects them, default warnings.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log write that fails (disk full) is dropped: the default `eprintln!` report
        // would panic on the same full disk and take the mount down.
        .log_internal_errors(false)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fvfsc: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = if let Cmd::Pending { cache_dir } = &cli.cmd {
        mount::pending(cli.json, cache_dir.as_deref())
    } else if matches!(cli.cmd, Cmd::Mount { .. }) {
        // The mount blocks and runs its own runtime: resolve here, serve off this runtime.
        let client = rt.block_on(mount::prepare(&cli));
        rt.shutdown_timeout(std::time::Duration::from_millis(100));
        client.and_then(|c| mount::serve(&cli, c))
    } else {
        let r = rt.block_on(run(&cli));
        // Pending background work (an mDNS thread, an idle connection) must not delay exit.
        rt.shutdown_timeout(std::time::Duration::from_millis(100));
        r
    };
    if let Err(e) = result {
        let mut line = fvfs_types::error::error_line(e.as_ref());
        if let Some(h) = hint(&e) {
            line.push_str(" (");
            line.push_str(h);
            line.push(')');
        }
        eprintln!("fvfsc: {line}");
        std::process::exit(1);
    }
}
