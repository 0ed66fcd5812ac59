//! `fvfsd`: the storage host's binary. Parses arguments and runs one subcommand; the work
//! lives in the library crates (`cmd/` holds one module per subcommand).

/// A line on stderr that a long-running daemon prints (start-up banners, the final error).
/// Unlike `eprintln!` it never panics: a daemon whose log file is on a full disk, or whose
/// terminal went away, keeps serving.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
/// The same for stdout (the serve banner that scripts read).
macro_rules! say_out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod cmd;
mod config;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use cmd::tiers::TierCmd;
use cmd::token::TokenCmd;
use config::{parse_size, Config, DaemonExt};
use fvfs_engine::paths::data_dir;
use fvfs_engine::DEFAULT_CACHE_SIZE;
use fvfs_types::{CdcParams, Compression};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "fvfsd",
    version,
    about = "fvfs: one tiered filesystem over local disk, NAS and S3"
)]
struct Cli {
    /// TOML configuration file (see config.example.toml).
    #[arg(long, global = true, env = "FVFS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a filesystem: settings, root directory, storage check.
    Format {
        /// Metadata URL, e.g. sqlite:///var/lib/fvfs/meta.db
        #[arg(long)]
        meta: Option<String>,
        /// Storage location (repeatable, hottest first; the last is durable): /dir or
        /// s3://bucket/prefix?endpoint=…&region=…&path_style=true
        #[arg(long = "storage")]
        storage: Vec<String>,
        /// A tier (repeatable, hottest first): NAME=LOCATION[,durable][,keep-copy][,high=SIZE][,low=SIZE]
        #[arg(long = "tier")]
        tier: Vec<String>,
        #[arg(long, value_parser = parse_compression)]
        compression: Option<Compression>,
        /// FastCDC sizes (e.g. 256KiB, 1MiB, 4MiB).
        #[arg(long, value_parser = parse_size)]
        block_min: Option<u64>,
        #[arg(long, value_parser = parse_size)]
        block_avg: Option<u64>,
        #[arg(long, value_parser = parse_size)]
        block_max: Option<u64>,
        #[arg(long, default_value = "fvfs")]
        name: String,
        /// Daemon state directory (tokens, certificate, control socket); default: the
        /// directory of the SQLite database.
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Mount read-write at MOUNTPOINT.
    Mount {
        mountpoint: PathBuf,
        #[arg(long)]
        meta: Option<String>,
        /// Stay in the foreground (otherwise detach and log to a file).
        #[arg(long)]
        foreground: bool,
        /// Local block cache directory.
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Local block cache limit (0 disables the disk cache).
        #[arg(long, value_parser = parse_size)]
        cache_size: Option<u64>,
        /// FUSE worker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Mount over a directory that has files (they are hidden while mounted).
        #[arg(long)]
        allow_non_empty: bool,
        /// Log file when running in the background.
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Serve the filesystem: FUSE mount, HTTP API, control socket, mDNS (embedded default
    /// when nothing is configured).
    Serve {
        #[arg(long)]
        meta: Option<String>,
        /// FUSE worker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// API port (overrides [daemon] http_port; 0 = any free port).
        #[arg(long)]
        port: Option<u16>,
        /// No FUSE mount: serve the API only.
        #[arg(long)]
        no_mount: bool,
        /// Serve the API over HTTPS (as [daemon] tls = true; the default beyond loopback).
        #[arg(long)]
        tls: bool,
        /// API listen address (overrides [daemon] http_bind).
        #[arg(long, value_name = "IP")]
        bind: Option<std::net::IpAddr>,
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// The running daemon's status (over its control socket), else settings, space,
    /// inodes, blocks, dedup ratio and sessions from the metadata.
    Status {
        #[arg(long)]
        meta: Option<String>,
        /// Print the daemon's status as JSON.
        #[arg(long)]
        json: bool,
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// API tokens: create, list, revoke (takes effect on a running daemon at once).
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
        #[arg(long, global = true)]
        meta: Option<String>,
        #[arg(long, global = true)]
        state_dir: Option<PathBuf>,
    },
    /// In-place tiering of native directories (stubs recalled on access).
    Hsm {
        #[command(subcommand)]
        cmd: cmd::hsm::HsmCmd,
        #[arg(long, global = true)]
        meta: Option<String>,
    },
    /// The music view's library: origins, scans, views (templates over audio tags).
    Music {
        #[command(subcommand)]
        cmd: cmd::music::MusicCmd,
        #[arg(long, global = true)]
        meta: Option<String>,
    },
    /// Write the namespace and the HSM catalog as Parquet files (namespace.parquet,
    /// hsm.parquet) into DIR; only reads, so it runs beside a live mount or daemon.
    Export {
        #[arg(long, value_name = "DIR")]
        parquet: PathBuf,
        #[arg(long)]
        meta: Option<String>,
    },
    /// Check blocks, refcounts, link counts and entries.
    Fsck {
        #[arg(long)]
        meta: Option<String>,
        /// Fix what can be fixed safely.
        #[arg(long)]
        repair: bool,
    },
    /// Write the whole metadata as one JSON document (docs/FORMAT.md, "Metadata dump");
    /// runs beside a mount. FILE "-" writes to standard output.
    Dump {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[arg(long)]
        meta: Option<String>,
    },
    /// Fill an empty metadata store (a new SQLite path, or an empty database) from a dump.
    Load {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[arg(long)]
        meta: Option<String>,
    },
    /// Back the metadata up to the durable tier now, as one standalone object (the mount
    /// ships its metadata continuously; see `restore --list`).
    Backup {
        #[arg(long)]
        meta: Option<String>,
    },
    /// Rebuild the metadata database from a storage location alone: the shipped metadata
    /// (newest point, or --at), or a backup.
    Restore {
        /// Storage location holding the metadata (meta/… objects): the durable tier.
        #[arg(long)]
        from: String,
        /// List the restorable points and stop.
        #[arg(long)]
        list: bool,
        /// Restore the newest point not after this UTC time (2026-12-01T10:00:00Z or
        /// @<unix seconds>).
        #[arg(long, conflicts_with = "backup")]
        at: Option<String>,
        /// Where to install the database, e.g. sqlite:///var/lib/fvfs/meta.db
        #[arg(long)]
        meta: Option<String>,
        /// A backup name (meta/backup-….db.zst); default: the latest.
        #[arg(long)]
        backup: Option<String>,
        /// Replace an existing database.
        #[arg(long)]
        force: bool,
    },
    /// List, add or change the tiers.
    Tier {
        #[command(subcommand)]
        cmd: TierCmd,
        #[arg(long, global = true)]
        meta: Option<String>,
    },
    /// Show the replication queue: pending copies, attempts and last errors.
    Wal {
        #[arg(long)]
        meta: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Replicate every queued block copy now (in this process), then put every metadata
    /// commit on the durable tier (through the running mount, else here); exit 1 when
    /// something is left.
    Flush {
        #[arg(long)]
        meta: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// A file's size, blocks and tiers.
    Stat {
        path: PathBuf,
        #[arg(long)]
        meta: Option<String>,
    },
    /// Keep a file or tree on the hot tier.
    Pin {
        path: PathBuf,
        #[arg(long)]
        meta: Option<String>,
    },
    /// Let a file or tree be evicted again.
    Unpin {
        path: PathBuf,
        #[arg(long)]
        meta: Option<String>,
    },
    /// Fetch a file or tree into the hot tier.
    Warmup {
        path: PathBuf,
        #[arg(long)]
        meta: Option<String>,
    },
    /// Merge the slices of a fragmented file (or of every file of a tree); safe beside
    /// live mounts.
    Compact {
        path: PathBuf,
        #[arg(long)]
        meta: Option<String>,
    },
    /// Delete garbage blocks (no longer referenced) from every tier; needs no mount.
    Gc {
        #[arg(long)]
        meta: Option<String>,
        /// Only blocks unreferenced, and objects written, longer than this ago (seconds).
        #[arg(long, default_value_t = 7200)]
        grace_secs: u64,
        /// List what would be deleted and delete nothing (runs beside a mount too).
        #[arg(long)]
        dry_run: bool,
    },
    /// Import existing directory trees into the filesystem (no mount; resumable).
    Migrate {
        #[arg(long)]
        meta: Option<String>,
        /// Import DIR under <dest>/local/<basename DIR> (repeatable).
        #[arg(long = "local-src", value_name = "DIR")]
        local_src: Vec<PathBuf>,
        /// Import DIR under <dest>/nas/<basename DIR> (repeatable).
        #[arg(long = "nas-src", value_name = "DIR")]
        nas_src: Vec<PathBuf>,
        /// Import DIR at an explicit path inside the filesystem (repeatable).
        #[arg(long = "src", value_name = "DIR:/PATH")]
        src: Vec<String>,
        /// Where --local-src and --nas-src trees go.
        #[arg(long, default_value = "/")]
        dest: String,
        /// Files copied concurrently.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
    },
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    s.parse()
}

fn default_meta() -> String {
    fvfs_engine::paths::default_meta_url()
}

fn main() {
    // Everything the daemon creates (state, database, blocks, cache, backups, the control
    // socket) is owner-only: file contents and names must not leak to other local users.
    // SAFETY: umask only sets the process's file mode creation mask.
    unsafe {
        libc::umask(0o077);
    }
    let nofile = fvfs_api::server::raise_nofile();
    // Few malloc arenas: the data path allocates block buffers on many threads, and
    // per-thread arenas would keep freed buffers as resident memory.
    // SAFETY: mallopt only tunes the allocator; called before any other thread starts.
    // And a fixed mmap threshold: buffers of 1 MiB and more (blocks, write buffers) are
    // mapped and unmapped, so freed ones leave the resident set at once. glibc's default
    // raises the threshold up to 32 MiB after the first frees, after which block buffers
    // come from the heap and stay resident after a big copy.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("FVFS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log write that fails (disk full) is dropped; the default reports it with
        // `eprintln!`, which panics on the same full disk and took the mount down.
        .log_internal_errors(false)
        .init();
    match nofile {
        Ok((before, after)) => tracing::debug!(before, after, "open-file limit (RLIMIT_NOFILE)"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            say!(
                "fvfsd: error: {}",
                fvfs_types::error::error_line(e.as_ref())
            );
            std::process::exit(1);
        }
    }
}

fn run() -> Result<i32> {
    let cli = Cli::parse();
    let cfg = match &cli.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if !matches!(
        cli.cmd,
        None | Some(Cmd::Mount { .. }) | Some(Cmd::Serve { .. })
    ) {
        // Report commands end quietly when their reader goes away (`fvfsd wal | head`).
        // SAFETY: restoring the default disposition of a signal; no handler is involved.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let meta_or = |m: Option<String>| m.or_else(|| cfg.meta_url()).unwrap_or_else(default_meta);
    let state_or = |s: Option<PathBuf>, meta: &str| {
        fvfs_engine::paths::state_dir(s.as_deref().or(cfg.daemon.state_dir.as_deref()), meta)
    };
    match cli.cmd.unwrap_or(Cmd::Serve {
        meta: None,
        threads: 2,
        port: None,
        no_mount: false,
        tls: false,
        bind: None,
        state_dir: None,
    }) {
        Cmd::Format {
            meta,
            storage,
            tier,
            compression,
            block_min,
            block_avg,
            block_max,
            name,
            state_dir,
        } => {
            let tiers = if !tier.is_empty() {
                tier.iter()
                    .map(|t| cmd::format::parse_tier_spec(t))
                    .collect::<Result<Vec<_>>>()?
            } else if !storage.is_empty() {
                fvfs_engine::tiers_from_locations(&storage)
            } else {
                cfg.tier_settings()?
            };
            let compression = match (compression, &cfg.format.compression) {
                (Some(c), _) => c,
                (None, Some(s)) => s.parse().map_err(anyhow::Error::msg)?,
                (None, None) => Compression::Zstd,
            };
            let d = CdcParams::default();
            let pick =
                |cli: Option<u64>, file: Option<config::ByteSize>, def: u32| -> Result<u32> {
                    let v = cli.or(file.map(|b| b.0)).unwrap_or(def as u64);
                    u32::try_from(v).context("block size too large")
                };
            let cdc = CdcParams {
                min: pick(block_min, cfg.format.block_min, d.min)?,
                avg: pick(block_avg, cfg.format.block_avg, d.avg)?,
                max: pick(block_max, cfg.format.block_max, d.max)?,
            };
            let meta_url = meta_or(meta);
            let rt = tokio::runtime::Runtime::new()?;
            let spec = fvfs_engine::FormatSpec {
                name,
                tiers,
                compression,
                cdc,
            };
            let s = rt.block_on(fvfs_engine::format(&meta_url, spec))?;
            println!("formatted {} ({}) at {meta_url}", s.name, s.uuid);
            let state = state_or(state_dir, &meta_url);
            let setup = cmd::token::init_state(&state)?;
            println!("state        {}", state.display());
            cmd::token::announce(&setup);
            println!("tls sha256   {}", setup.fingerprint);
            Ok(0)
        }
        Cmd::Mount {
            mountpoint,
            meta,
            foreground,
            cache_dir,
            cache_size,
            threads,
            allow_non_empty,
            log,
        } => {
            let args = cmd::mount::MountArgs {
                meta_url: meta_or(meta),
                mountpoint,
                cache_dir: cache_dir.or(cfg.daemon.cache_dir.clone()),
                cache_size: cache_size
                    .or(cfg.daemon.cache_size.map(|b| b.0))
                    .unwrap_or(DEFAULT_CACHE_SIZE),
                threads,
                allow_non_empty,
                policy: cfg.policy(),
                config: cli.config.clone(),
                flags: cfg.daemon.mount_flags(),
            };
            if foreground {
                cmd::mount::foreground(args)?;
            } else {
                let log = log.unwrap_or_else(|| data_dir().join("mount.log"));
                cmd::mount::background(args, &log)?;
            }
            Ok(0)
        }
        Cmd::Serve {
            meta,
            threads,
            port,
            no_mount,
            tls,
            bind,
            state_dir,
        } => {
            cmd::serve::run(
                &cfg,
                cmd::serve::ServeArgs {
                    meta,
                    threads,
                    port,
                    no_mount,
                    tls,
                    bind,
                    state_dir,
                },
            )?;
            Ok(0)
        }
        Cmd::Status {
            meta,
            json,
            state_dir,
        } => {
            let url = meta_or(meta);
            let state = state_or(state_dir, &url);
            let socket = cfg
                .daemon
                .socket_path
                .clone()
                .unwrap_or_else(|| state.join("fvfsd.sock"));
            if cmd::status::from_daemon(&socket, &state, json)? {
                return Ok(0);
            }
            if json {
                anyhow::bail!("no daemon answers on {}", socket.display());
            }
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(cmd::status::run(
                &url,
                &state,
                cfg.policy().meta_ship.enabled,
            ))?;
            Ok(0)
        }
        Cmd::Token {
            cmd: tc,
            meta,
            state_dir,
        } => {
            let meta_url = meta_or(meta);
            let state = state_or(state_dir, &meta_url);
            match tc {
                TokenCmd::Create {
                    name,
                    read_only,
                    admin,
                    uid,
                    gid,
                } => {
                    let new = fvfs_api::auth::NewToken {
                        read_only,
                        admin,
                        identity: uid.zip(gid),
                    };
                    cmd::token::create(&state, &meta_url, &name, new)?
                }
                TokenCmd::List { json } => cmd::token::list(&state, json)?,
                TokenCmd::Revoke { name_or_id } => cmd::token::revoke(&state, &name_or_id)?,
            }
            Ok(0)
        }
        Cmd::Tier { cmd: tc, meta } => {
            let url = meta_or(meta);
            let rt = tokio::runtime::Runtime::new()?;
            match tc {
                TierCmd::List => rt.block_on(cmd::tiers::list(&url))?,
                TierCmd::Add {
                    name,
                    location,
                    position,
                    high,
                    low,
                    durable,
                    keep_copy,
                } => {
                    let t = fvfs_types::TierSettings {
                        name,
                        location,
                        high_watermark: high,
                        low_watermark: low,
                        durable,
                        keep_copy,
                    };
                    rt.block_on(cmd::tiers::add(&url, t, position))?
                }
                TierCmd::Set {
                    name,
                    high,
                    low,
                    durable,
                    keep_copy,
                    location,
                } => {
                    let c = fvfs_engine::tiers::TierChange {
                        high,
                        low,
                        durable,
                        keep_copy,
                        location,
                    };
                    rt.block_on(cmd::tiers::set(&url, &name, c))?
                }
            }
            Ok(0)
        }
        Cmd::Gc {
            meta,
            grace_secs,
            dry_run,
        } => {
            let rt = tokio::runtime::Runtime::new()?;
            let grace = std::time::Duration::from_secs(grace_secs);
            rt.block_on(cmd::fsck::gc(&meta_or(meta), grace, dry_run))?;
            Ok(0)
        }
        Cmd::Migrate {
            meta,
            local_src,
            nas_src,
            src,
            dest,
            jobs,
        } => cmd::migrate::run(fvfs_engine::import::ImportArgs {
            meta_url: meta_or(meta),
            sources: cmd::migrate::plan(&local_src, &nas_src, &src, &dest)?,
            jobs,
            policy: cfg.policy(),
        }),
        Cmd::Wal { meta, limit } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(cmd::tiers::wal(&meta_or(meta), limit))?;
            Ok(0)
        }
        Cmd::Flush { meta, timeout } => {
            let rt = tokio::runtime::Runtime::new()?;
            let left = rt.block_on(cmd::tiers::flush(
                &meta_or(meta),
                cfg.policy().meta_ship,
                std::time::Duration::from_secs(timeout),
            ))?;
            Ok(if left == 0 { 0 } else { 1 })
        }
        Cmd::Stat { path, meta } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(cmd::files::stat(&meta_or(meta), &path))?;
            Ok(0)
        }
        Cmd::Pin { path, meta } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(cmd::files::pin(&meta_or(meta), &path, true))?;
            Ok(0)
        }
        Cmd::Unpin { path, meta } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(cmd::files::pin(&meta_or(meta), &path, false))?;
            Ok(0)
        }
        Cmd::Warmup { path, meta } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(cmd::files::warmup(&meta_or(meta), &path))?;
            Ok(0)
        }
        Cmd::Compact { path, meta } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(cmd::files::compact(&meta_or(meta), &path))?;
            Ok(0)
        }
        Cmd::Hsm { cmd, meta } => cmd::hsm::run(&cfg, &meta_or(meta), cmd),
        Cmd::Music { cmd, meta } => cmd::music::run(&cfg, &meta_or(meta), cmd),
        Cmd::Export { parquet, meta } => cmd::export::run(&meta_or(meta), &parquet),
        Cmd::Fsck { meta, repair } => {
            let rt = tokio::runtime::Runtime::new()?;
            let clean = rt.block_on(cmd::fsck::run(&meta_or(meta), repair))?;
            Ok(if clean { 0 } else { 1 })
        }
        Cmd::Dump { file, meta } => cmd::dump::dump(&meta_or(meta), &file),
        Cmd::Load { file, meta } => cmd::dump::load(&meta_or(meta), &file),
        Cmd::Backup { meta } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(cmd::restore::backup(&meta_or(meta)))?;
            Ok(0)
        }
        Cmd::Restore {
            from,
            list,
            at,
            meta,
            backup,
            force,
        } => {
            let rt = tokio::runtime::Runtime::new()?;
            if list {
                rt.block_on(cmd::restore::list(&from))?;
                return Ok(0);
            }
            let clean = rt.block_on(cmd::restore::restore(cmd::restore::RestoreArgs {
                from,
                meta_url: meta_or(meta),
                backup,
                at,
                force,
            }))?;
            Ok(if clean { 0 } else { 1 })
        }
    }
}
