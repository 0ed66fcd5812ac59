//! `fvfsd music …`: the music face from the command line. Origins (read-only sources of
//! audio files) are registered in the metadata, `rescan` reads their tags into the index
//! and rebuilds every view, and `ls` shows a directory of a view as a mount will.

use anyhow::Result;
use clap::Subcommand;
use fvfs_engine::music::{self, Node};

#[derive(Subcommand)]
pub enum MusicCmd {
    /// Read-only sources of audio files.
    Origin {
        #[command(subcommand)]
        cmd: OriginCmd,
    },
    /// Views: path templates (beets syntax) over the library.
    View {
        #[command(subcommand)]
        cmd: ViewCmd,
    },
    /// The names in a directory of a view (the root without PATH).
    Ls {
        view: String,
        #[arg(default_value = "")]
        path: String,
    },
    /// What the running mount reports (origins' health, cache, uptime) through its
    /// control socket; what the index holds when no mount answers.
    Status {
        /// The mount's control socket (default: beside the metadata, `music.sock`).
        #[arg(long)]
        control: Option<std::path::PathBuf>,
    },
    /// Import a beets library (`library.db`): its items' tags, for files under a
    /// directory origin; a later rescan keeps them while the files do not change.
    ImportBeets { library: std::path::PathBuf },
    /// Mount the read-only view at MOUNTPOINT and serve it in the foreground until
    /// unmounted (SIGINT/SIGTERM or `umount`).
    Mount {
        mountpoint: std::path::PathBuf,
        /// The view shown at the root; without it every view is a top directory.
        #[arg(long)]
        view: Option<String>,
        /// Serve FLAC and MP3 files with the index's tags in front of their audio.
        #[arg(long)]
        overlay: bool,
        /// Bytes the content cache may hold (suffixes K, M, G, T).
        #[arg(long, value_parser = parse_size)]
        cache_limit: Option<u64>,
        /// Bytes fetched from an origin per cache miss (default 4M; at least 64K).
        #[arg(long, value_parser = parse_size)]
        cache_window: Option<u64>,
        /// Do not fetch ahead of sequential reads.
        #[arg(long)]
        no_prefetch: bool,
        #[arg(long)]
        allow_non_empty: bool,
        #[arg(long, default_value_t = 4)]
        threads: usize,
        /// The JSON-RPC control socket (default: beside the metadata, `music.sock`).
        #[arg(long)]
        control: Option<std::path::PathBuf>,
        /// The engine's local block cache (default: the daemon's).
        #[arg(long)]
        cache_dir: Option<std::path::PathBuf>,
    },
    /// Saved searches shown as directories under `/.collections`.
    Collection {
        #[command(subcommand)]
        cmd: CollectionCmd,
    },
    /// Search the running mount's library (prefix and typo-tolerant words; `field:word`).
    Search {
        query: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The mount's control socket (default: beside the metadata).
        #[arg(long)]
        control: Option<std::path::PathBuf>,
    },
    /// The running mount's content cache.
    Cache {
        #[command(subcommand)]
        cmd: CacheCmd,
        #[arg(long, global = true)]
        control: Option<std::path::PathBuf>,
    },
    /// One JSON-RPC call on the running mount's control socket; prints the result.
    Rpc {
        method: String,
        #[arg(default_value = "{}")]
        params: String,
        #[arg(long)]
        control: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum CacheCmd {
    /// Hits, misses, size and dedup of the cache.
    Stats,
    /// Drop the cached blocks of one origin's tracks (`--origin ID`), or of all.
    Clear {
        #[arg(long)]
        origin: Option<String>,
    },
}

/// A call on the control socket at `control` (the default one of `meta_url` if None).
/// The JSON-RPC `status` of a running mount, as lines.
fn print_mount_status(v: &serde_json::Value) {
    let s = |k: &str| v[k].as_str().unwrap_or("-").to_string();
    let views: Vec<&str> = v["views"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str())
        .collect();
    println!(
        "mounted at {} for {} s (fvfsd {}): {} tracks, views {}",
        s("mountpoint"),
        v["uptime_secs"],
        s("version"),
        v["tracks"],
        views.join(", ")
    );
    for o in v["origins"].as_array().into_iter().flatten() {
        let health = if o["health"] == 1 { "up" } else { "DOWN" };
        let err = o["last_error"]
            .as_str()
            .map(|e| format!(" (last error: {e})"))
            .unwrap_or_default();
        println!(
            "origin {} [{}] {health}, priority {}, {} tracks{err}",
            o["id"].as_str().unwrap_or("-"),
            o["kind"].as_str().unwrap_or("-"),
            o["priority"],
            o["tracks"]
        );
    }
    let c = &v["cache"];
    println!(
        "cache {} of {} bytes, hit rate {:.3} ({} hits, {} misses), {} bytes fetched from origins",
        c["size_bytes"],
        c["limit_bytes"],
        c["hit_rate"].as_f64().unwrap_or(0.0),
        c["hits"],
        c["misses"],
        c["origin_bytes"]
    );
}

fn rpc(
    meta_url: &str,
    control: Option<std::path::PathBuf>,
    method: &str,
    params: serde_json::Value,
) -> Result<serde_json::Value> {
    let path = control.unwrap_or_else(|| default_socket(meta_url));
    Ok(fvfs_engine::music_control::api::call(
        &path,
        method,
        params,
        std::time::Duration::from_secs(600),
    )?)
}

#[derive(Subcommand)]
pub enum CollectionCmd {
    /// Save QUERY (the search syntax) as collection NAME, or change its query.
    Add {
        name: String,
        query: String,
    },
    List,
    Remove {
        name: String,
    },
}

use crate::config::parse_size;

/// The search index of the filesystem at `meta_url` (derived data beside the metadata,
/// rebuilt from the index when missing).
pub fn search_index(meta_url: &str) -> Result<std::sync::Arc<fvfs_search::SearchIndex>> {
    let dir = fvfs_engine::paths::state_dir(None, meta_url).join("music-search");
    Ok(std::sync::Arc::new(fvfs_search::SearchIndex::open(&dir)?))
}

/// Brings the search index up to date after a change of the music index.
fn refresh_search(meta_url: &str) -> Result<()> {
    let idx = search_index(meta_url)?;
    music::refresh_search(meta_url, idx.as_ref())?;
    Ok(())
}

/// The control socket of the music mount of the filesystem at `meta_url`.
pub fn default_socket(meta_url: &str) -> std::path::PathBuf {
    fvfs_engine::paths::state_dir(None, meta_url).join("music.sock")
}

fn fvfs_music_window() -> u64 {
    fvfs_engine::music_mount::MusicMountOpts::default().cache_window
}

#[derive(Subcommand)]
pub enum OriginCmd {
    /// Register an origin: `ID=/path`, `ID=s3://bucket/prefix?endpoint=…`,
    /// `ID=sftp://user@host:port/root?key_file=…`, `ID=webdav://host/path`; options
    /// `priority=N` (lower is preferred), `check_interval=30s`. Secrets are never given
    /// here (S3 keys come from the environment).
    Add { spec: String },
    /// The origins, by priority, with their number of files.
    List,
    /// Forget an origin and its files in the index (the files are not touched).
    Remove { id: String },
    /// Read new and changed files' tags into the index (every origin without ID), then
    /// rebuild the views.
    Rescan { id: Option<String> },
}

#[derive(Subcommand)]
pub enum ViewCmd {
    /// Add a view (or change its template) and build it, e.g.
    /// `fvfsd music view add artists '$albumartist/$album%aunique{}/$track $title.$format'`.
    Add { name: String, template: String },
    /// The views and their templates.
    List,
}

pub fn run(cfg: &fvfs_engine::config::Config, meta_url: &str, cmd: MusicCmd) -> Result<i32> {
    match cmd {
        MusicCmd::Mount {
            mountpoint,
            view,
            overlay,
            cache_limit,
            cache_window,
            no_prefetch,
            allow_non_empty,
            threads,
            control,
            cache_dir,
        } => {
            let engine = fvfs_engine::EngineOpts {
                meta_url: meta_url.to_string(),
                cache_dir: cache_dir.or(cfg.daemon.cache_dir.clone()),
                cache_size: cfg
                    .daemon
                    .cache_size
                    .map(|b| b.0)
                    .unwrap_or(fvfs_engine::DEFAULT_CACHE_SIZE),
                check_tier: true,
                // A read-only view: nothing is deleted through it.
                policy: fvfs_vfs::TierPolicy {
                    trash_days: 0,
                    ..cfg.policy()
                },
            };
            super::music_mount::foreground(super::music_mount::MusicMountArgs {
                engine,
                mountpoint,
                allow_non_empty,
                threads,
                control: control.unwrap_or_else(|| default_socket(meta_url)),
                opts: fvfs_engine::music_mount::MusicMountOpts {
                    view,
                    overlay,
                    cache_limit: cache_limit.unwrap_or(fvfs_engine::music_mount::DEFAULT_LIMIT),
                    cache_window: cache_window.unwrap_or(fvfs_music_window()),
                    prefetch: !no_prefetch,
                },
            })?;
        }
        MusicCmd::Rpc {
            method,
            params,
            control,
        } => {
            let params: serde_json::Value = serde_json::from_str(&params)
                .map_err(|e| anyhow::anyhow!("the params are not JSON: {e}"))?;
            let v = rpc(meta_url, control, &method, params)?;
            println!("{v}");
        }
        MusicCmd::Search {
            query,
            limit,
            control,
        } => {
            let v = rpc(
                meta_url,
                control,
                "search",
                serde_json::json!({"query": query, "limit": limit}),
            )?;
            for r in v.as_array().into_iter().flatten() {
                match r["path"].as_str() {
                    Some(p) => println!("{p}"),
                    None => println!(
                        "{}:{}",
                        r["origin"].as_str().unwrap_or_default(),
                        r["origin_path"].as_str().unwrap_or_default()
                    ),
                }
            }
        }
        MusicCmd::Cache {
            cmd: CacheCmd::Stats,
            control,
        } => {
            let v = rpc(meta_url, control, "cache.stats", serde_json::json!({}))?;
            println!(
                "{} bytes of {} in {} blocks ({} distinct), {} hits, {} misses (hit rate {:.3}), {} bytes fetched from origins",
                v["size_bytes"], v["limit_bytes"], v["chunks_stored"], v["chunks_unique"],
                v["hits"], v["misses"], v["hit_rate"].as_f64().unwrap_or(0.0), v["origin_bytes"]
            );
        }
        MusicCmd::Cache {
            cmd: CacheCmd::Clear { origin },
            control,
        } => {
            let params = match &origin {
                Some(o) => serde_json::json!({ "origin": o }),
                None => serde_json::json!({}),
            };
            let v = rpc(meta_url, control, "cache.clear", params)?;
            println!("dropped {} bytes of {} tracks", v["bytes"], v["tracks"]);
        }
        MusicCmd::Collection {
            cmd: CollectionCmd::Add { name, query },
        } => {
            music::collection_add(meta_url, &name, &query)?;
            println!("collection {name} saved: {query}");
        }
        MusicCmd::Collection {
            cmd: CollectionCmd::List,
        } => {
            for c in music::collections(meta_url)? {
                println!("{}\t{}", c.name, c.query);
            }
        }
        MusicCmd::Collection {
            cmd: CollectionCmd::Remove { name },
        } => {
            if !music::collection_remove(meta_url, &name)? {
                eprintln!("no collection {name:?}");
                return Ok(1);
            }
            println!("collection {name} removed");
        }
        MusicCmd::Origin {
            cmd: OriginCmd::Add { spec },
        } => {
            let spec = music::origin_add(meta_url, &spec)?;
            println!("origin {} added: {}", spec.id, spec.display());
            println!("next: fvfsd music origin rescan {}", spec.id);
        }
        MusicCmd::Origin {
            cmd: OriginCmd::List,
        } => {
            for (o, files) in music::origins(meta_url)? {
                println!(
                    "{}\tpriority {}\t{files} files\t{}",
                    o.id, o.priority, o.spec
                );
            }
        }
        MusicCmd::Origin {
            cmd: OriginCmd::Remove { id },
        } => {
            if !music::origin_remove(meta_url, &id)? {
                eprintln!("no music origin {id:?}");
                return Ok(1);
            }
            refresh_search(meta_url)?;
            println!("origin {id} removed");
        }
        MusicCmd::Origin {
            cmd: OriginCmd::Rescan { id },
        } => {
            let (scans, views) = music::rescan(meta_url, id.as_deref())?;
            refresh_search(meta_url)?;
            let mut failed = false;
            for (id, r) in scans {
                match r {
                    Ok(s) => println!(
                        "{id}: {} audio files: {} added, {} updated, {} unchanged, {} removed, {} unreadable, {} failed ({} bytes read)",
                        s.seen, s.added, s.updated, s.unchanged, s.removed, s.unreadable, s.failed, s.fetched_bytes
                    ),
                    Err(e) => {
                        failed = true;
                        eprintln!("{id}: {e}");
                    }
                }
            }
            for (v, s) in views {
                println!(
                    "view {}: {} files in {} directories",
                    v.name, s.tracks, s.dirs
                );
            }
            return Ok(if failed { 1 } else { 0 });
        }
        MusicCmd::View {
            cmd: ViewCmd::Add { name, template },
        } => {
            let (v, s) = music::view_add(meta_url, &name, &template)?;
            println!(
                "view {}: {} files in {} directories",
                v.name, s.tracks, s.dirs
            );
        }
        MusicCmd::View { cmd: ViewCmd::List } => {
            for v in music::views(meta_url)? {
                println!("{}\t{}", v.name, v.template);
            }
        }
        MusicCmd::Ls { view, path } => {
            for (e, at) in music::ls(meta_url, &view, &path)? {
                match (e.node, at) {
                    (Node::Dir(_), _) => println!("{}/", e.name),
                    (Node::Track(_), Some((origin, p))) => println!("{}\t{origin}:{p}", e.name),
                    (Node::Track(t), None) => println!("{}\t(track {t} gone)", e.name),
                }
            }
        }
        MusicCmd::ImportBeets { library } => {
            let (s, views) = music::import_beets(meta_url, &library)?;
            refresh_search(meta_url)?;
            println!(
                "{} items: {} imported, {} outside every directory origin, {} with their file missing",
                s.items, s.imported, s.outside, s.missing
            );
            for (v, s) in views {
                println!(
                    "view {}: {} files in {} directories",
                    v.name, s.tracks, s.dirs
                );
            }
        }
        MusicCmd::Status { control } => {
            let socket = control.unwrap_or_else(|| default_socket(meta_url));
            if socket.exists() {
                match rpc(
                    meta_url,
                    Some(socket.clone()),
                    "status",
                    serde_json::json!({}),
                ) {
                    Ok(v) => {
                        print_mount_status(&v);
                        return Ok(0);
                    }
                    Err(e) => say!("no mount answers on {}: {e:#}", socket.display()),
                }
            }
            let origins = music::origins(meta_url)?;
            let files: u64 = origins.iter().map(|(_, n)| n).sum();
            println!(
                "{} origins, {files} files indexed, {} views",
                origins.len(),
                music::views(meta_url)?.len()
            );
        }
    }
    Ok(0)
}
