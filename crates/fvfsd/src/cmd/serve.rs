//! `fvfsd serve`: the daemon, one process. With no configuration it uses the embedded
//! default (an SQLite database and a block directory under the data dir, formatted on
//! first run). It runs the engine and its workers, the FUSE mount (`[daemon] mount_path`,
//! default `~/fvfs`), the HTTP API on TCP (bearer tokens; HTTPS with the state dir's
//! certificate), the Unix control socket and the mDNS advertisement, until SIGTERM/SIGINT
//! or an external unmount.
//!
//! Invariants: a listener beyond loopback (a wildcard included) serves TLS unless
//! `[daemon] insecure_http = true` says otherwise (logged as a warning); plain HTTP beyond
//! loopback is never chosen silently (see [`transport`]); the mDNS TXT `tls`/`fp` say what
//! the listener serves. The mount lock is held for the whole life of the process (a
//! second serve or mount of the same SQLite filesystem is refused); exactly one stdout
//! line starts with `api ` (`api <scheme>://<ip>:<port>`, also written to
//! `<state>/fvfsd.url`), printed once the listeners are bound; no secret or credential is
//! logged. Stop order: listeners stop accepting → requests in flight finish (bounded) →
//! the FUSE mount ends (no write can arrive after the final flush) → final flush, workers
//! stop (bounded) → the session row goes → the metadata store and then the lock drop.

use super::format::{self, FormatArgs};
use super::mount::{self, MountArgs, Running};
use super::token;
use crate::config::Config;
use crate::engine::{data_dir, home, MountLock, DEFAULT_CACHE_SIZE};
use anyhow::{Context, Result};
use fvfs_api::auth::{guard, Access, SeenFn};
use fvfs_api::ApiState;
use fvfs_meta::MetaUrl;
use fvfs_types::{CdcParams, Compression};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

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

/// How the API listens, from its address and `[daemon] tls` / `insecure_http`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Tls,
    /// Plain HTTP on loopback only.
    Http,
    /// Plain HTTP beyond loopback, allowed by `insecure_http = true`.
    InsecureHttp,
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The TLS rule: `tls` (`--tls` or `[daemon] tls`) set to true wins; on loopback the
/// default is plain HTTP; beyond loopback (a wildcard included) TLS is the default, and
/// plain HTTP needs `insecure_http` (asked for with `tls = false` without it: an error
/// that names the ways out).
fn transport(bind: IpAddr, tls: Option<bool>, insecure_http: bool) -> Result<Transport> {
    Ok(match tls {
        Some(true) => Transport::Tls,
        _ if is_loopback(bind) => Transport::Http,
        _ if insecure_http => Transport::InsecureHttp,
        None => Transport::Tls,
        Some(false) => anyhow::bail!(
            "`[daemon] tls = false` would serve the API on {bind}, beyond loopback, over plain \
             HTTP, where tokens cross the network in the clear; either remove `tls = false` \
             (TLS is the default beyond loopback) or set `[daemon] insecure_http = true` to \
             accept plain HTTP (or listen on loopback only: `http_bind = \"127.0.0.1\"`)"
        ),
    })
}

/// The URL clients use for a listener bound at `addr` (a wildcard becomes loopback).
fn api_url(tls: bool, addr: SocketAddr) -> String {
    let scheme = if tls { "https" } else { "http" };
    let ip = match addr.ip() {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

/// Formats the embedded default (or the configured tiers) on first run.
fn format_if_new(cfg: &Config, meta_url: &str, state: &Path) -> Result<()> {
    let fresh = match MetaUrl::parse(meta_url)? {
        MetaUrl::Sqlite(p) => !p.exists(),
        MetaUrl::Postgres(_) => false,
    };
    if !fresh {
        return Ok(());
    }
    let mut tiers = cfg.tier_settings()?;
    if tiers.is_empty() {
        tiers = format::tiers_from_locations(&[data_dir().join("blocks").display().to_string()]);
    }
    let rt = tokio::runtime::Runtime::new()?;
    let s = rt.block_on(format::run(FormatArgs {
        meta_url: meta_url.to_string(),
        tiers,
        compression: Compression::Zstd,
        cdc: CdcParams::default(),
        name: "fvfs".into(),
    }))?;
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
        .unwrap_or_else(|| format!("sqlite://{}", data_dir().join("meta.db").display()));
    let state = crate::engine::state_dir(
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
    let _lock = MountLock::acquire(&meta_url, mp.as_deref().unwrap_or(&state))?;
    let settings = crate::engine::open_meta(&meta_url)?.settings()?;
    let cache_dir = cfg
        .daemon
        .cache_dir
        .clone()
        .unwrap_or_else(|| crate::engine::default_cache_dir(&settings));
    println!("metadata   {}", fvfs_tier::redact(&meta_url));
    for loc in &settings.storage {
        println!("storage    {}", fvfs_tier::redact(loc));
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
        policy: crate::engine::policy(cfg),
        config: None,
        flags: cfg.daemon.mount_flags(),
    };
    let label = match &mp {
        Some(p) => p.display().to_string(),
        None => "(api only)".to_string(),
    };
    let run = Running::start(&margs, &label)?;
    let result = serve(cfg, &a, &state, &settings, mp.as_deref(), &run);
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
    let transport = transport(bind, tls_cfg, insecure)?;
    let tls_on = transport == Transport::Tls;
    let (tls, fingerprint) = if tls_on {
        let loaded = fvfs_api::tls::ensure(state, &fvfs_api::mdns::hostname())
            .and_then(|_| fvfs_api::tls::load(state));
        match loaded {
            Ok((c, fp)) => (Some(c), Some(fp)),
            Err(e) if tls_cfg.is_none() => {
                return Err(e).with_context(|| {
                    format!(
                        "the API listens on {bind}, beyond loopback, so it needs TLS, and the \
                         certificate in {} is unusable; repair or remove it (a new one is made \
                         at start), or set `[daemon] insecure_http = true` to serve plain HTTP",
                        state.join("tls").display()
                    )
                })
            }
            Err(e) => return Err(e).context("cannot serve TLS"),
        }
    } else {
        (None, None)
    };
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
    println!("socket     {}", socket_path.display());
    if let Some(fp) = &fingerprint {
        println!("tls        sha256 {fp}");
    }
    tracing::info!(listen = %local, "API listening");
    println!("api {url}");
    let _ = std::io::stdout().flush();
    eprintln!(
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
        stop_fuse(unmounter, thread, mp);
    }
    Ok(())
}

/// Unmounts (retrying while busy, then lazily) and waits for the FUSE thread (bounded).
fn stop_fuse(
    mut unmounter: fuser::SessionUnmounter,
    thread: std::thread::JoinHandle<()>,
    mp: &Path,
) {
    if !thread.is_finished() {
        if let Err(e) = unmounter.unmount() {
            tracing::warn!(error = %e, "unmount refused; retrying");
            let deadline = Instant::now() + UNMOUNT_RETRY;
            while mount::is_mounted(mp) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
                let _ = nix::mount::umount(mp);
            }
            if mount::is_mounted(mp) {
                tracing::warn!(mountpoint = %mp.display(), "mount still busy: detaching it lazily");
                if let Err(e) = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH) {
                    tracing::error!(error = %e, "lazy unmount failed");
                }
            }
        }
    }
    let deadline = Instant::now() + FUSE_END_WAIT;
    while !thread.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if thread.is_finished() {
        let _ = thread.join();
        tracing::info!("unmounted");
    } else {
        tracing::error!("the FUSE session did not end in time; stopping anyway");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_beyond_loopback() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let t = |b: &str, tls, insecure| transport(ip(b), tls, insecure).map_err(|e| e.to_string());
        for lo in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(t(lo, None, false), Ok(Transport::Http), "{lo}");
            assert_eq!(t(lo, Some(false), false), Ok(Transport::Http), "{lo}");
            assert_eq!(t(lo, Some(true), false), Ok(Transport::Tls), "{lo}");
        }
        for wide in ["0.0.0.0", "::", "192.168.1.5", "::ffff:10.0.0.1"] {
            assert_eq!(t(wide, None, false), Ok(Transport::Tls), "{wide}");
            assert_eq!(t(wide, Some(true), true), Ok(Transport::Tls), "{wide}");
            assert_eq!(t(wide, None, true), Ok(Transport::InsecureHttp), "{wide}");
            assert_eq!(
                t(wide, Some(false), true),
                Ok(Transport::InsecureHttp),
                "{wide}"
            );
            let e = t(wide, Some(false), false).unwrap_err();
            assert!(
                e.contains("remove `tls = false`") && e.contains("insecure_http = true"),
                "{e}"
            );
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            api_url(false, "0.0.0.0:7734".parse().unwrap()),
            "http://127.0.0.1:7734"
        );
        assert_eq!(api_url(true, "[::]:1".parse().unwrap()), "https://[::1]:1");
        assert_eq!(
            api_url(false, "192.168.1.2:80".parse().unwrap()),
            "http://192.168.1.2:80"
        );
    }
}
