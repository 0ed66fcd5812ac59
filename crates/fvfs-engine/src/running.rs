//! The life cycle of the process that serves a filesystem (a mount, `serve`, an import):
//! a runtime, the opened engine, the writeback spool replayed, this process's session
//! row, and the background workers.
//!
//! Order at start: sessions of dead processes of this host ended → the engine (which
//! purges the orphans no live session owns) → write journal replay, then spool replay
//! (writes a previous run acknowledged or could not store, before anything else touches
//! the files) → this session registered → sweep of unfinished uploads of sessions that
//! are gone → workers started (the session worker heartbeats and reaps the sessions of
//! other hosts that stopped heartbeating).
//! Order at stop: buffered writes committed (retried for a bounded time, the rest
//! spooled) → workers stopped (bounded) → session row removed (its locks with it) and
//! the orphans it owned purged. The caller holds the mount lock (shared between the
//! mounts of a PostgreSQL filesystem) for the whole life of a [`Running`] and stops it
//! once nothing writes.

use crate::error::{EngineError, Result};
use crate::open::{Engine, EngineOpts};
use crate::paths::{scratch_dir, spool_dir};
use fvfs_vfs::worker::Workers;
use fvfs_vfs::{
    EvictorWorker, GcWorker, MetaShipper, ReplicatorWorker, ScrubWorker, SessionInfo,
    SessionWorker, Spool, TierEventsWorker, TrashWorker, Vfs, WritebackWorker,
};
use std::sync::Arc;
use std::time::Duration;

/// How long the workers get to stop.
const WORKER_SHUTDOWN: Duration = Duration::from_secs(10);
/// How long a clean stop waits for queued block copies to reach their tiers.
const STOP_REPLICATION: Duration = Duration::from_secs(120);
/// How long a clean stop waits for the metadata to reach the durable tier.
const STOP_SHIPPING: Duration = Duration::from_secs(60);

/// The engine as a serving process runs it.
pub struct Running {
    pub engine: Engine,
    pub vfs: Arc<Vfs>,
    pub workers: Arc<Workers>,
    /// Continuous metadata shipping to the durable tier.
    /// None when `[backup] enabled = false`.
    pub shipper: Option<Arc<MetaShipper>>,
    spool: Spool,
    /// Last: dropped after everything that may still use it.
    pub rt: tokio::runtime::Runtime,
}

/// The workers that move blocks between tiers (tier events, replication, eviction):
/// what a bulk import runs so that it does not fill the hot tier. Call inside a runtime.
pub fn spawn_tiering(workers: &Workers, vfs: &Arc<Vfs>) {
    workers.spawn(TierEventsWorker::new(vfs.tiering()));
    workers.spawn(ReplicatorWorker::new(vfs.tiering()));
    workers.spawn(EvictorWorker::new(vfs.tiering()));
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Running {
    /// Opens the engine, ends the sessions of dead processes of this host, registers
    /// this one (as `label`) and starts every worker. The caller holds the mount lock.
    pub fn start(opts: EngineOpts, label: &str) -> Result<Running> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .thread_name("fvfs-rt")
            .enable_all()
            .build()
            .map_err(EngineError::io("cannot start the runtime"))?;
        crate::startup::mark("runtime");
        let meta_url = opts.meta_url.clone();
        let ship_cfg = opts.policy.meta_ship.clone();
        let engine = rt.block_on(Engine::open(opts))?;
        crate::startup::mark("engine opened");
        let host = hostname();
        // Sessions of processes on this host that died without a clean stop (kill -9,
        // power loss) are over; other hosts' sessions are the reaper's (session.rs).
        for old in engine.meta.sessions()? {
            let alive = std::path::Path::new(&format!("/proc/{}", old.pid)).exists();
            if old.host == host && !alive {
                engine.meta.end_session(old.id)?;
            }
        }
        let vfs = engine.vfs()?;
        crate::startup::mark("vfs");
        // The journal goes first: a spool entry of the same file was written later.
        let stored = rt.block_on(vfs.replay_journal())?;
        if stored > 0 {
            tracing::info!(
                files = stored,
                "stored the write journal of the previous run"
            );
        }
        let spool = Spool::open(&spool_dir(&meta_url, vfs.settings()))?;
        let replayed = rt.block_on(vfs.replay_spool(&spool))?;
        if replayed > 0 {
            tracing::info!(entries = replayed, dir = %spool.dir().display(), "committed the writeback spool");
        }
        let info = SessionInfo {
            host,
            pid: std::process::id(),
            label: label.to_string(),
        };
        let session_id =
            engine
                .meta
                .register_session(&info.host, info.pid, &info.label, fvfs_vfs::now_ns())?;
        vfs.set_session(session_id);
        crate::startup::mark("session registered");
        // Upload temporaries of sessions that are gone belong to uploads that can never
        // finish; those of live sessions (other hosts) are theirs.
        match vfs.sweep_uploads() {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed unfinished uploads of a previous run"),
            Err(e) => tracing::warn!(error = %e, "cannot sweep unfinished uploads"),
        }
        crate::startup::mark("spool replayed, uploads swept");
        let timeout = engine.policy.session_timeout;
        let workers = Arc::new(Workers::new());
        let shipper = if ship_cfg.enabled {
            Some(MetaShipper::new(
                engine.meta.clone(),
                engine.store.tier().clone(),
                scratch_dir(&meta_url),
                ship_cfg,
            ))
        } else {
            crate::shipping::forget_status(&meta_url);
            tracing::warn!(
                "metadata shipping is off ([backup] enabled = false): losing this host loses \
                 the metadata, whatever the durable tier holds"
            );
            None
        };
        {
            let _guard = rt.enter();
            spawn_tiering(&workers, &vfs);
            workers.spawn(GcWorker::new(vfs.tiering()));
            workers.spawn(ScrubWorker::new(vfs.tiering()));
            workers.spawn(SessionWorker::new(&vfs, info, timeout));
            workers.spawn(WritebackWorker::new(&vfs));
            workers.spawn(TrashWorker::new(&vfs));
            if let Some(shipper) = &shipper {
                workers.spawn(crate::shipping::worker(&meta_url, &vfs, shipper));
            }
        }
        crate::startup::mark("workers started");
        Ok(Running {
            rt,
            engine,
            vfs,
            workers,
            shipper,
            spool,
        })
    }

    /// The durable tier, as shown to users.
    pub fn durable_display(&self) -> String {
        self.engine.store.tier().display()
    }

    /// At a clean stop: the queued block copies, then the metadata, reach the durable tier
    /// (each bounded in time); what is left is said, with where it waits.
    async fn leave_durable_tier_complete(&self) {
        let tier = self.durable_display();
        match self.vfs.queue_due_now() {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(
                    copies = n,
                    "replicating queued block copies before stopping"
                );
                // Progress every 5 s while it lasts.
                let vfs = self.vfs.clone();
                let ticker = tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                        if let Ok((_, left)) = vfs.queue(0) {
                            tracing::info!(copies = left, "still replicating before stopping");
                        }
                    }
                });
                let replicated = self.vfs.tiering().replicate_all(STOP_REPLICATION).await;
                ticker.abort();
                match replicated {
                    Ok(0) => {}
                    Ok(left) => tracing::warn!(
                        left,
                        "block copies still queued at stop (in the metadata's replication \
                         queue, `fvfsd wal`); they are copied at the next start"
                    ),
                    Err(e) => tracing::warn!(error = %e, "replication at stop failed"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the replication queue"),
        }
        let Some(shipper) = &self.shipper else { return };
        match shipper.flush(STOP_SHIPPING).await {
            Ok(0) => tracing::info!(tier = %tier, "metadata shipped to the durable tier"),
            Ok(left) => tracing::warn!(
                bytes = left,
                tier = %tier,
                "metadata log not shipped at stop (the local database has it; the next \
                 start ships a new base)"
            ),
            Err(e) => tracing::warn!(error = %e, tier = %tier, "metadata shipping at stop failed"),
        }
    }

    /// Commits what is buffered, stops the workers (bounded) and removes the session row.
    /// Call once nothing writes any more (unmounted, listeners drained).
    pub fn stop(self) {
        self.rt.block_on(async {
            let spool = Some(&self.spool);
            if let Err(e) = self.vfs.stop_writeback(spool, fvfs_vfs::STOP_RETRY).await {
                tracing::error!(error = %e, "final flush failed");
            }
            self.leave_durable_tier_complete().await;
            self.workers.shutdown(WORKER_SHUTDOWN).await;
        });
        // The session worker may have registered a new session: end the current one.
        if let Err(e) = self.engine.meta.end_session(self.vfs.session()) {
            tracing::warn!(error = %e, "could not remove the session row");
        }
        match self.vfs.purge_unowned_orphans() {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "freed the unlinked files that were open"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot free unlinked files at stop: the next start does")
            }
        }
    }
}
