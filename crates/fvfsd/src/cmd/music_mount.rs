//! `fvfsd music mount`: serves the read-only music view in the foreground until
//! SIGINT/SIGTERM or an external unmount. It holds the filesystem's mount lock and runs
//! the engine's workers (the cache's blocks live in its tiers), the origins' health
//! checks and the control socket.
//!
//! Order at stop: the kernel session ends → pending cache LRU updates are written →
//! workers stop (bounded) → the lock drops.

use anyhow::{Context, Result};
use fvfs_engine::music_control::api as fvfs_music_control;
use fvfs_engine::music_control::MusicService;
use fvfs_engine::music_mount::{DeferredSearch, SearchError, TrackSearch};
use fvfs_engine::music_mount::{MusicMountOpts, MusicRunning};
use fvfs_engine::{startup, EngineOpts, MountLock, Running};
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `fvfsd music mount`.
#[derive(Clone, Debug)]
pub struct MusicMountArgs {
    pub engine: EngineOpts,
    pub mountpoint: PathBuf,
    pub allow_non_empty: bool,
    pub threads: usize,
    /// The JSON-RPC control socket.
    pub control: PathBuf,
    pub opts: MusicMountOpts,
}

/// Serves the view in this process until it is unmounted.
pub fn foreground(args: MusicMountArgs) -> Result<()> {
    let mp = super::mount::check_mountpoint(&args.mountpoint, args.allow_non_empty)?;
    startup::mark("arguments parsed");
    let _lock = MountLock::acquire(&args.engine.meta_url, &mp)?;
    let run = Running::start(args.engine.clone(), &format!("music {}", mp.display()))?;
    // The search index opens beside the mount: the view goes live without it.
    let search = {
        let url = args.engine.meta_url.clone();
        DeferredSearch::start(move || {
            let ix = super::music::search_index(&url)
                .map_err(|e| SearchError::Index(format!("{e:#}")))?;
            Ok(ix as Arc<dyn TrackSearch>)
        })
        .context("cannot start opening the search index")?
    };
    let music = Arc::new(MusicRunning::start(
        &run,
        &args.opts,
        Some(Arc::new(search)),
    )?);
    let service = MusicService::new(
        music.clone(),
        &args.engine.meta_url,
        Some(mp.display().to_string()),
        args.opts.view.as_deref(),
    )?;
    let listener = fvfs_music_control::bind(&args.control)?;
    startup::mark("control socket bound");
    let cancel = tokio_util::sync::CancellationToken::new();
    let control = {
        let (path, cancel) = (args.control.clone(), cancel.clone());
        run.rt.spawn(async move {
            if let Err(e) =
                fvfs_music_control::serve_listener(listener, &path, Arc::new(service), cancel).await
            {
                tracing::error!(error = %e, "the control socket stopped");
            }
        })
    };
    let cfg = fvfs_fuse::MountConfig {
        fsname: "fvfs-music".into(),
        threads: args.threads,
        flags: fvfs_fuse::MountFlags::default(),
        read_only: true,
    };
    let mut session = fvfs_fuse::session(music.fs.clone(), &mp, &cfg)
        .with_context(|| format!("cannot mount at {}", mp.display()))?;
    startup::mark("mounted");
    fvfs_fuse::unmount_on_signals(run.rt.handle(), &mut session);
    tracing::info!(mountpoint = %mp.display(), "music view mounted");
    say!(
        "music view mounted at {} (pid {})",
        mp.display(),
        std::process::id()
    );
    let served = session.run();
    cancel.cancel();
    let _ = run.rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(10), control).await
    });
    if let Err(e) = music.cache.flush_touches() {
        tracing::warn!(error = %e, "cannot record the music cache's last reads");
    }
    drop(music);
    run.stop();
    tracing::info!("music view unmounted");
    served.context("the FUSE session ended with an error")
}
