//! `fvfsd serve`: the daemon, one process. With no configuration it uses the embedded
//! default (an SQLite database and a block directory under the data dir, formatted on
//! first run). It runs the engine and its workers, the FUSE mount (`[daemon] mount_path`,
//! default `~/fvfs`), the HTTP API on TCP (bearer tokens; HTTPS with the state dir's
//! certificate), the Unix control socket and the mDNS advertisement, until SIGTERM/SIGINT
//! or an external unmount.
//!
//! Invariants: a listener beyond loopback (a wildcard included) serves TLS unless
//! `[daemon] insecure_http = true` says otherwise (logged as a warning); plain HTTP beyond
//! loopback is never chosen silently (see `fvfs_api::listen::transport`); the mDNS TXT `tls`/`fp` say what
//! the listener serves. The mount lock is held for the whole life of the process (a
//! second serve or mount of the same SQLite filesystem is refused); exactly one stdout
//! line starts with `api ` (`api <scheme>://<ip>:<port>`, also written to
//! `<state>/fvfsd.url`), printed once the listeners are bound; no secret or credential is
//! logged. Stop order: listeners stop accepting → requests in flight finish (bounded) →
//! the FUSE mount ends (no write can arrive after the final flush) → final flush, workers
//! stop (bounded) → the session row goes → the metadata store and then the lock drop.

use super::mount::{self, MountArgs};
use super::token;
use crate::config::{Config, DaemonExt};
use anyhow::{Context, Result};
use fvfs_api::auth::{guard, Access, SeenFn};
use fvfs_api::listen::{api_url, Transport};
use fvfs_api::ApiState;
use fvfs_engine::hsm::HsmRunning;
use fvfs_engine::paths::{data_dir, default_cache_dir, default_meta_url, home, state_dir};
use fvfs_engine::{redact, MountLock, Running, DEFAULT_CACHE_SIZE};
use fvfs_types::{CdcParams, Compression};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// `GET /v1/music/search` over the index of this filesystem and its search index.
struct HttpMusicSearch(fvfs_engine::music_control::IndexSearch);

impl fvfs_api::MusicSearch for HttpMusicSearch {
    fn search(
        &self,
        query: &str,
        limit: usize,
    ) -> std::result::Result<Vec<fvfs_types::api::MusicHit>, fvfs_api::MusicSearchError> {
        use fvfs_api::MusicSearchError as E;
        use fvfs_engine::music_control::api::ControlError as C;
        let found = self.0.search(query, limit).map_err(|e| match e {
            C::BadQuery { .. } => E::BadQuery(e.to_string()),
            C::Unavailable(m) => E::Unavailable(m),
            other => E::Failed(other.to_string()),
        })?;
        Ok(found
            .into_iter()
            .map(|r| fvfs_types::api::MusicHit {
                track: r.track,
                path: r.path,
                origin: r.origin,
                origin_path: r.origin_path,
                artist: r.artist,
                album: r.album,
                title: r.title,
                score: r.score,
            })
            .collect())
    }
}

/// The music search of the API, when the filesystem has music origins.
fn music_search(meta_url: &str) -> Option<Arc<dyn fvfs_api::MusicSearch>> {
    let opened = super::music::search_index(meta_url).and_then(|idx| {
        Ok(fvfs_engine::music_control::IndexSearch::open(
            meta_url, idx,
        )?)
    });
    match opened {
        Ok(Some(s)) => Some(Arc::new(HttpMusicSearch(s))),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "music search is off: its index cannot be opened");
            None
        }
    }
}

/// How long requests in flight may run on after a stop signal.
const DRAIN: Duration = Duration::from_secs(30);
/// How long an unmount may be refused (busy mount) before it is detached lazily.
const UNMOUNT_RETRY: Duration = Duration::from_secs(10);
/// How long the FUSE session may take to end once unmounted.
const FUSE_END_WAIT: Duration = Duration::from_secs(10);

/// `fvfsd serve` flags (they win over the config file).
#[derive(Debug, Default)]
pub struct ServeArgs {
    pub meta: Option<String>,
    pub threads: usize,
    pub port: Option<u16>,
    pub no_mount: bool,
    pub tls: bool,
    /// Listen address (wins over `[daemon] http_bind`).
    pub bind: Option<IpAddr>,
    pub state_dir: Option<PathBuf>,
}

/// Formats the embedded default (or the configured tiers) on first run.
fn format_if_new(cfg: &Config, meta_url: &str, state: &Path) -> Result<()> {
    if !fvfs_engine::is_new(meta_url)? {
        return Ok(());
    }
    let mut tiers = cfg.tier_settings()?;
    if tiers.is_empty() {
        tiers =
            fvfs_engine::tiers_from_locations(&[data_dir().join("blocks").display().to_string()]);
    }
    let rt = tokio::runtime::Runtime::new()?;
    let spec = fvfs_engine::FormatSpec {
        name: "fvfs".into(),
        tiers,
        compression: Compression::Zstd,
        cdc: CdcParams::default(),
    };
    let s = rt.block_on(fvfs_engine::format(meta_url, spec))?;
    println!("formatted a new filesystem {} ({})", s.name, s.uuid);
    let setup = token::init_state(state)?;
    token::announce(&setup);
    Ok(())
}

pub fn run(cfg: &Config, a: ServeArgs) -> Result<()> {
    let meta_url = a
        .meta
        .clone()
        .or_else(|| cfg.meta_url())
        .unwrap_or_else(default_meta_url);
    let state = state_dir(
        a.state_dir.as_deref().or(cfg.daemon.state_dir.as_deref()),
        &meta_url,
    );
    token::ensure_state_dir(&state)?;
    format_if_new(cfg, &meta_url, &state)?;
    let mountpoint = match &cfg.daemon.mount_path {
        _ if a.no_mount => None,
        Some(p) if p.as_os_str().is_empty() => None,
        Some(p) => Some(p.clone()),
        None => Some(home().join("fvfs")),
    };
    let mp = match &mountpoint {
        Some(p) => {
            std::fs::create_dir_all(p)
                .with_context(|| format!("cannot create the mountpoint {}", p.display()))?;
            Some(mount::check_mountpoint(p, false)?)
        }
        None => None,
    };
    let _lock = MountLock::acquire_mount(&meta_url, mp.as_deref().unwrap_or(&state))?;
    let settings = fvfs_engine::read_settings(&meta_url)?;
    let cache_dir = cfg
        .daemon
        .cache_dir
        .clone()
        .unwrap_or_else(|| default_cache_dir(&settings));
    println!("metadata   {}", redact(&meta_url));
    for loc in &settings.storage {
        println!("storage    {}", redact(loc));
    }
    println!("cache      {}", cache_dir.display());
    println!("state      {}", state.display());
    match &mp {
        Some(p) => println!("mount      {}", p.display()),
        None => println!("mount      none"),
    }
    let margs = MountArgs {
        meta_url: meta_url.clone(),
        mountpoint: mp.clone().unwrap_or_default(),
        cache_dir: Some(cache_dir),
        cache_size: cfg
            .daemon
            .cache_size
            .map(|b| b.0)
            .unwrap_or(DEFAULT_CACHE_SIZE),
        threads: a.threads,
        allow_non_empty: false,
        policy: cfg.policy(),
        config: None,
        flags: cfg.daemon.mount_flags(),
    };
    let label = match &mp {
        Some(p) => p.display().to_string(),
        None => "(api only)".to_string(),
    };
    let run = Running::start(margs.engine_opts(), &label)?;
    // The HSM listener is up (every stub watched) before anything else is served.
    let hsm = match cfg.hsm.dirs.is_empty() {
        true => None,
        false => match HsmRunning::start(&run, &cfg.hsm, super::hsm::keeper_command()) {
            Ok(h) => Some(h),
            Err(e) => {
                run.stop();
                return Err(e.into());
            }
        },
    };
    let result = serve(cfg, &a, &state, &settings, mp.as_deref(), &run);
    if let Some(h) = hsm {
        h.stop();
    }
    run.stop();
    tracing::info!("stopped");
    result
}

/// Everything between the engine start and its stop.
fn serve(
    cfg: &Config,
    a: &ServeArgs,
    state: &Path,
    settings: &fvfs_types::Settings,
    mp: Option<&Path>,
    run: &Running,
) -> Result<()> {
    let tokens = Arc::new(token::store(state)?);
    let bind = match a.bind.or(cfg.daemon.http_bind) {
        Some(ip) => ip,
        None if tokens.any() => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        None => {
            tracing::warn!(
                "no API token exists, so the API listens on 127.0.0.1 only; create one with \
                 `fvfsd token create NAME` (then it listens on every interface), or set \
                 [daemon] http_bind"
            );
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
    };
    let tls_cfg = if a.tls { Some(true) } else { cfg.daemon.tls };
    let insecure = cfg.daemon.insecure_http.unwrap_or(false);
    let sec = fvfs_api::listen::security(bind, tls_cfg, insecure, state)?;
    let (transport, tls, fingerprint) = (sec.transport, sec.tls, sec.fingerprint);
    let tls_on = transport == Transport::Tls;
    if transport == Transport::InsecureHttp {
        tracing::warn!(
            listen = %bind,
            "insecure_http = true: the API listens beyond loopback over plain HTTP, so tokens \
             and data cross the network in the clear; remove insecure_http to serve TLS"
        );
    }
    let port = a
        .port
        .or(cfg.daemon.http_port)
        .unwrap_or(fvfs_types::api::DEFAULT_PORT);
    let socket_path = cfg
        .daemon
        .socket_path
        .clone()
        .unwrap_or_else(|| state.join("fvfsd.sock"));

    let api_state = Arc::new(ApiState {
        vfs: run.vfs.clone(),
        workers: Some(run.workers.clone()),
        started: Instant::now(),
        mount: mp.map(Path::to_path_buf),
        devices: Default::default(),
        limits: fvfs_api::Limits {
            max_upload: cfg
                .daemon
                .max_upload_gb
                .map(|g| g.saturating_mul(1 << 30))
                .unwrap_or(fvfs_api::Limits::default().max_upload),
            ..Default::default()
        },
        allow_devices: cfg.daemon.allow_devices.unwrap_or(false),
        music: music_search(run.engine.meta_url()),
    });
    let seen: SeenFn = {
        let st = api_state.clone();
        Arc::new(move |d, addr, t, ua| st.devices.seen(d, addr, t, ua))
    };

    let rt = &run.rt;
    // Watched before anything is announced: a stop signal from then on is a clean stop.
    let (mut term, mut int) = {
        let _g = rt.enter();
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        )
    };
    let (listener, unix) = rt.block_on(async {
        let l = tokio::net::TcpListener::bind(SocketAddr::new(bind, port))
            .await
            .with_context(|| format!("cannot listen on {}", SocketAddr::new(bind, port)))?;
        let u = fvfs_api::server::bind_unix(&socket_path).with_context(|| {
            format!("cannot create the control socket {}", socket_path.display())
        })?;
        anyhow::Ok((l, u))
    })?;
    let local = listener.local_addr()?;
    let url = api_url(tls_on, local);

    let app = fvfs_api::routes::router(api_state.clone());
    let tcp_app = guard(app.clone(), Access::Tokens(tokens), Some(seen.clone()));
    let unix_app = guard(app, Access::Local, Some(seen));
    let cancel = CancellationToken::new();
    let tcp_task = rt.spawn(fvfs_api::server::serve_tcp(
        listener,
        tcp_app,
        tls,
        cancel.clone(),
        DRAIN,
        cfg.daemon.server_limits()?,
    ));
    let sp = socket_path.clone();
    let c2 = cancel.clone();
    let unix_task = rt.spawn(async move {
        fvfs_api::server::serve_unix_listener(unix, &sp, unix_app, c2, DRAIN).await
    });

    let advert = if cfg.daemon.mdns.unwrap_or(true) {
        let txt = fvfs_api::mdns::Txt {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uuid: settings.uuid.to_string(),
            tls: tls_on,
            fingerprint: fingerprint.clone(),
        };
        match fvfs_api::mdns::register(&settings.name, local.port(), bind, &txt) {
            Ok(ad) => {
                tracing::info!(service = %ad.fullname(), "advertised over mDNS");
                Some(ad)
            }
            Err(e) => {
                tracing::warn!(error = %e, "mDNS advertisement failed; clients need the URL");
                None
            }
        }
    } else {
        None
    };

    // The FUSE session runs on its own thread; its end (external umount) stops the daemon.
    let (fuse_done_tx, mut fuse_done) = tokio::sync::oneshot::channel::<std::io::Result<()>>();
    let mut fuse = None;
    if let Some(mp) = mp {
        let fs = Arc::new(fvfs_vfs::EngineOps::new(
            run.vfs.clone(),
            rt.handle().clone(),
        ));
        let config = mount::engine_mount(a.threads, cfg.daemon.mount_flags());
        let mut session = match fvfs_fuse::session(fs, mp, &config) {
            Ok(s) => s,
            Err(e) => {
                cancel.cancel();
                drop(advert);
                let _ = rt.block_on(async { tokio::join!(tcp_task, unix_task) });
                return Err(e).with_context(|| format!("cannot mount at {}", mp.display()));
            }
        };
        let unmounter = session.unmount_callable();
        let thread = std::thread::Builder::new()
            .name("fvfs-fuse".into())
            .spawn(move || {
                let r = session.run();
                let _ = fuse_done_tx.send(r);
            })?;
        tracing::info!(mountpoint = %mp.display(), "mounted");
        fuse = Some((unmounter, thread));
    }
    let url_file = state.join("fvfsd.url");
    // Only a hint for local tools (the stdout line is the contract): not worth a stop.
    if let Err(e) = std::fs::write(&url_file, format!("{url}\n")) {
        tracing::warn!(path = %url_file.display(), error = %e, "cannot write the URL file");
    }
    say_out!("socket     {}", socket_path.display());
    if let Some(fp) = &fingerprint {
        say_out!("tls        sha256 {fp}");
    }
    tracing::info!(listen = %local, "API listening");
    say_out!("api {url}");
    let _ = std::io::stdout().flush();
    say!(
        "fvfsd serving (pid {}); stop with Ctrl-C or SIGTERM",
        std::process::id()
    );

    let why = rt.block_on(async {
        let fuse_ended = async {
            if fuse.is_some() {
                (&mut fuse_done).await.ok()
            } else {
                std::future::pending().await
            }
        };
        let why = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
            r = fuse_ended => {
                if let Some(Err(e)) = r {
                    tracing::error!(error = %e, "the FUSE session ended with an error");
                }
                "the mount ended (unmounted from outside)"
            }
        };
        why
    });
    tracing::info!(reason = why, "stopping");

    cancel.cancel();
    drop(advert);
    rt.block_on(async {
        for (name, t) in [("tcp", tcp_task), ("unix", unix_task)] {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(listener = name, error = %e, "listener failed"),
                Err(e) => tracing::error!(listener = name, error = %e, "listener task failed"),
            }
        }
    });
    let _ = std::fs::remove_file(&url_file);
    if let (Some((unmounter, thread)), Some(mp)) = (fuse, mp) {
        if fvfs_fuse::unmount_and_wait(unmounter, thread, mp, UNMOUNT_RETRY, FUSE_END_WAIT) {
            tracing::info!("unmounted");
        } else {
            tracing::error!("the FUSE session did not end in time; stopping anyway");
        }
    }
    Ok(())
}
