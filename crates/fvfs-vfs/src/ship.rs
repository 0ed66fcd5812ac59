//! Continuous metadata shipping: the metadata follows the data to the durable tier within
//! seconds, as Litestream ships SQLite's write-ahead log.
//!
//! Owns the object layout of shipped metadata in a tier and the [`MetaShipper`] (with its
//! [`MetaShipWorker`]):
//! - a *generation* starts with a base, `meta/gen/<gen>/base.db.zst`: one zstd frame of
//!   the raw database file right after a full checkpoint (`AdminStore::begin_log_shipping`);
//! - its *log* follows as immutable segments,
//!   `meta/gen/<gen>/log-<index:08x>-<start:012x>-<end:012x>-<stamp>.wal.zst`: bytes
//!   `[start, end)` of the generation's shipped log number `index` (a log starts at 0
//!   with its header; a new one follows when one passes [`SHIPPED_LOG_BYTES`]),
//!   zstd-compressed; each segment merges the commits taken since the previous one, across
//!   SQLite's own log restarts, into one transaction holding the last image of every page
//!   they wrote (fvfs-meta `ship_batch`), so the segments of a log concatenate into a
//!   valid WAL; `stamp` (UTC, seconds rounded up) is not before any commit the segment
//!   holds;
//! - `<gen>` is `<UTC stamp of the base>-<8 hex>`: generations sort by time.
//!
//! Invariants:
//! - segments are uploaded in log order and only after their generation's base, so a
//!   generation on the tier is always a base plus a gap-free prefix of its log;
//! - every commit is taken from the store within a second and uploaded within
//!   `max_lag` (while the tier answers); at most one PUT per half `max_lag`, or sooner
//!   when a batch reaches [`SEGMENT_BYTES`] (it holds one image per page, so memory
//!   stays bounded by the database's size whatever the commit rate);
//! - a lost position (`MetaError::LogGap`), a local backlog over [`MAX_PENDING`] or a log
//!   grown past its base start a new generation: its base holds everything, so nothing is
//!   lost but the points in time between;
//! - pruning keeps the current generation and every generation needed to restore any
//!   point within the retention.

use crate::worker::{Worker, WorkerState};
use crate::{Result, VfsError};
use bytes::Bytes;
use futures::future::BoxFuture;
use fvfs_chunk::ChunkError;
use fvfs_meta::sqlite::ship_batch::ShipLog;
use fvfs_meta::{LogFrames, MetaError, MetaStore};
use fvfs_tier::Tier;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Prefix of every shipped generation.
pub const GEN_PREFIX: &str = "meta/gen/";
/// How often committed frames are taken from the store.
const TAKE_EVERY: Duration = Duration::from_secs(1);
/// Local backlog (frames not uploaded) past which shipping starts a new generation
/// instead of holding more in memory.
pub const MAX_PENDING: u64 = 256 << 20;
/// A batch this large is uploaded at once, whatever its age.
pub const SEGMENT_BYTES: u64 = 32 << 20;
/// Takes one step makes at most (each reads at most `MAX_TAKE` of log).
const TAKES_PER_STEP: usize = 16;
/// A shipped log this large is followed by a new one (restore holds one log in memory).
pub const SHIPPED_LOG_BYTES: u64 = 64 << 20;

/// How shipping runs (`[backup]` in the config).
#[derive(Clone, Debug)]
pub struct ShipConfig {
    /// Whether a mount ships at all (`[backup] enabled`); off, a host loss loses the
    /// metadata unless it is backed up otherwise.
    pub enabled: bool,
    /// Committed changes reach the tier within this time.
    pub max_lag: Duration,
    /// A new generation (a new base) at least this often.
    pub base_every: Duration,
    /// Points in time restorable for at least this long.
    pub retention: Duration,
}

impl Default for ShipConfig {
    fn default() -> Self {
        ShipConfig {
            enabled: true,
            max_lag: Duration::from_secs(10),
            base_every: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What shipping reports (`fvfsd status`, `/v1/status`).
pub type ShipStatus = fvfs_types::api::MetaShipping;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn now_secs_ceil() -> i64 {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_secs() as i64 + i64::from(d.subsec_nanos() > 0)
}

/// The key of a generation's base.
pub fn base_key(gen: &str) -> String {
    format!("{GEN_PREFIX}{gen}/base.db.zst")
}

/// The key of a log segment.
pub fn log_key(gen: &str, index: u32, start: u64, end: u64, stamp: &str) -> String {
    format!("{GEN_PREFIX}{gen}/log-{index:08x}-{start:012x}-{end:012x}-{stamp}.wal.zst")
}

/// One log segment on the tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub key: String,
    pub index: u32,
    pub start: u64,
    pub end: u64,
    /// UTC `yyyymmddTHHMMSSZ`, not before any commit in the segment.
    pub stamp: String,
}

/// One generation on the tier.
#[derive(Clone, Debug, Default)]
pub struct Generation {
    pub id: String,
    /// UTC stamp of the base (from the id).
    pub stamp: String,
    /// The base's key and stored size, if uploaded.
    pub base: Option<(String, u64)>,
    /// Segments in log order.
    pub log: Vec<Segment>,
}

impl Generation {
    /// The segments that restore a gap-free prefix of the log, up to `at` (a UTC stamp;
    /// `None`: all), and the first gap found (`(index, offset)` where bytes are missing).
    pub fn restorable(&self, at: Option<&str>) -> (Vec<&Segment>, Option<(u32, u64)>) {
        let mut out = Vec::new();
        let (mut index, mut end) = (0u32, 0u64);
        for s in &self.log {
            if at.is_some_and(|t| s.stamp.as_str() > t) {
                break;
            }
            let continues = s.index == index && s.start == end;
            let next_log = s.index == index + 1 && s.start == 0 && end > 0;
            if !(continues || next_log) {
                return (out, Some((index, end)));
            }
            index = s.index;
            end = s.end;
            out.push(s);
        }
        (out, None)
    }
}

fn parse_segment(gen: &str, key: &str) -> Option<Segment> {
    let name = key
        .strip_prefix(GEN_PREFIX)?
        .strip_prefix(gen)?
        .strip_prefix("/log-")?
        .strip_suffix(".wal.zst")?;
    let mut parts = name.splitn(4, '-');
    let index = u32::from_str_radix(parts.next()?, 16).ok()?;
    let start = u64::from_str_radix(parts.next()?, 16).ok()?;
    let end = u64::from_str_radix(parts.next()?, 16).ok()?;
    let stamp = parts.next()?.to_string();
    (end > start && stamp.len() == 16).then(|| Segment {
        key: key.to_string(),
        index,
        start,
        end,
        stamp,
    })
}

/// Every generation on the tier, oldest first, each with its segments in log order.
pub async fn list_generations(tier: &Tier) -> Result<Vec<Generation>> {
    let mut gens: std::collections::BTreeMap<String, Generation> = Default::default();
    for (key, len) in tier.list(GEN_PREFIX).await.map_err(tier_err)? {
        let Some((gen, _)) = key
            .strip_prefix(GEN_PREFIX)
            .and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        let Some(stamp) = gen.split_once('-').map(|(s, _)| s.to_string()) else {
            continue;
        };
        let g = gens.entry(gen.to_string()).or_insert_with(|| Generation {
            id: gen.to_string(),
            stamp,
            ..Generation::default()
        });
        if key == base_key(gen) {
            g.base = Some((key.clone(), len));
        } else if let Some(s) = parse_segment(gen, &key) {
            g.log.push(s);
        }
    }
    let mut out: Vec<Generation> = gens.into_values().collect();
    for g in &mut out {
        g.log.sort_by_key(|s| (s.index, s.start));
    }
    Ok(out)
}

/// Generations the retention no longer needs: all but `current` and those needed to
/// restore any point since `horizon` (a UTC stamp): the newest generation started at
/// or before the horizon, and every later one.
fn doomed<'a>(gens: &'a [Generation], current: &str, horizon: &str) -> Vec<&'a Generation> {
    let with_base: Vec<&Generation> = gens.iter().filter(|g| g.base.is_some()).collect();
    let keep_from = with_base
        .iter()
        .rev()
        .find(|g| g.stamp.as_str() <= horizon)
        .map(|g| g.id.as_str());
    gens.iter()
        .filter(|g| g.id != current)
        .filter(|g| match keep_from {
            Some(first) => g.id.as_str() < first,
            None => false,
        })
        .collect()
}

/// Bytes of merged log waiting for upload.
fn pending_bytes(st: &State) -> u64 {
    st.pending
        .as_ref()
        .filter(|p| !p.log.is_empty())
        .map_or(0, |p| p.log.batch_bytes())
}

/// Salts of a new shipped log: different for every log of every process.
fn salt() -> u32 {
    let ns = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u32;
    ns ^ std::process::id().rotate_left(16)
}

/// Adds frames taken from the store to the batch (the generation's first frames begin
/// the store's log, with its header, and start shipped log 0).
fn absorb(st: &mut State, f: &LogFrames, now: Instant) -> std::result::Result<(), MetaError> {
    let p = match &mut st.pending {
        Some(p) => p,
        None => st.pending.insert(Pending {
            log: ShipLog::new(0, ShipLog::page_size_of(f)?, salt()),
            since: None,
        }),
    };
    p.log.absorb(f)?;
    p.since.get_or_insert(now);
    Ok(())
}

fn tier_err(e: fvfs_tier::TierError) -> VfsError {
    VfsError::Chunk(ChunkError::from(e))
}

/// The shipped log of the current generation: its batch of frames not uploaded yet,
/// merged (`ShipLog`), and when the oldest of them was taken.
struct Pending {
    log: ShipLog,
    since: Option<Instant>,
}

impl Pending {
    fn waiting(&self) -> Option<Instant> {
        self.since.filter(|_| !self.log.is_empty())
    }
}

struct CurrentGen {
    id: String,
    started: Instant,
    base_bytes: u64,
    log_bytes: u64,
    /// The base file while its upload has not succeeded.
    base_file: Option<PathBuf>,
}

#[derive(Default)]
struct State {
    gen: Option<CurrentGen>,
    /// The shipped log being written (None until the generation's first frames).
    pending: Option<Pending>,
    /// Start a new generation at the next step.
    renew: bool,
    /// The store ships no log (not SQLite): shipping is off.
    unsupported: bool,
}

/// Ships the metadata log of a store to a tier (see the module comment).
pub struct MetaShipper {
    meta: Arc<dyn MetaStore>,
    tier: Tier,
    scratch: PathBuf,
    cfg: ShipConfig,
    state: tokio::sync::Mutex<State>,
    status: Mutex<ShipStatus>,
    /// A flush was asked for: the next worker step uploads at once.
    forced: AtomicBool,
}

impl MetaShipper {
    pub fn new(
        meta: Arc<dyn MetaStore>,
        tier: Tier,
        scratch: PathBuf,
        cfg: ShipConfig,
    ) -> Arc<MetaShipper> {
        Arc::new(MetaShipper {
            meta,
            tier,
            scratch,
            cfg,
            state: Default::default(),
            status: Default::default(),
            forced: AtomicBool::new(false),
        })
    }

    pub fn status(&self) -> ShipStatus {
        self.status.lock().clone()
    }

    pub fn config(&self) -> &ShipConfig {
        &self.cfg
    }

    /// Asks the worker to upload everything at its next step (within a second), as
    /// [`MetaShipper::flush`] does, for a flush requested from outside the process.
    pub fn request_flush(&self) {
        self.forced.store(true, Ordering::Relaxed);
    }

    /// One step: a new generation when due, then the frames committed since the last
    /// step, then an upload when the oldest waiting frames are half `max_lag` old (or
    /// always with `force`). Returns whether frames are still waiting.
    pub async fn step(&self, force: bool) -> Result<bool> {
        let r = self.step_locked(force).await;
        self.status.lock().last_error = r.as_ref().err().map(|e| e.to_string());
        r
    }

    async fn step_locked(&self, force: bool) -> Result<bool> {
        let mut st = self.state.lock().await;
        let r = self.step_with(&mut st, force).await;
        // Published on errors too: an outage shows as a growing lag.
        self.publish(&st);
        r
    }

    async fn step_with(&self, st: &mut State, force: bool) -> Result<bool> {
        if st.unsupported {
            return Ok(false);
        }
        let due = match &st.gen {
            None => true,
            Some(g) => {
                st.renew
                    || g.started.elapsed() >= self.cfg.base_every
                    || g.log_bytes > 4 * g.base_bytes + (64 << 20)
            }
        };
        if due && !self.begin_generation(st).await? {
            return Ok(false);
        }
        // Every commit finished before this instant is in the base or taken below. Taking
        // comes first so that a tier that refuses the base cannot let frames pile up
        // unbounded in the store (they count against MAX_PENDING here).
        let taken_at = now_ms();
        let caught_up = self.take(st).await?;
        self.upload_base(st).await?;
        let ripe = st
            .pending
            .as_ref()
            .and_then(Pending::waiting)
            .is_some_and(|t| t.elapsed() >= self.cfg.max_lag / 2);
        // A batch holds one image per page, so its size is bounded by the database's;
        // past SEGMENT_BYTES it goes up at once instead of growing further.
        let big = pending_bytes(st) >= SEGMENT_BYTES;
        if force || ripe || big {
            self.upload_log(st).await?;
        }
        let waiting = !caught_up || st.pending.as_ref().is_some_and(|p| !p.log.is_empty());
        if !waiting && !st.renew {
            self.status.lock().synced_at_ms = Some(taken_at);
        }
        Ok(waiting)
    }

    /// Takes and uploads everything committed so far, retrying until `timeout`. Returns
    /// the bytes still waiting (0: the tier has the metadata as of this call).
    pub async fn flush(&self, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        let mut delay = Duration::from_millis(100);
        loop {
            match self.step(true).await {
                Ok(false) => return Ok(0),
                Ok(true) => {}
                Err(e) if Instant::now() + delay >= deadline => return Err(e),
                Err(e) => tracing::warn!(error = %e, "metadata shipping failed; retrying"),
            }
            if Instant::now() + delay >= deadline {
                return Ok(self.status().pending_bytes);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    fn publish(&self, st: &State) {
        let mut s = self.status.lock();
        // A base not uploaded yet holds commits too: they wait since it was made.
        let base_wait = st
            .gen
            .as_ref()
            .filter(|g| g.base_file.is_some())
            .map_or(0.0, |g| g.started.elapsed().as_secs_f64());
        s.lag_secs = st
            .pending
            .as_ref()
            .and_then(Pending::waiting)
            .map_or(0.0, |t| t.elapsed().as_secs_f64())
            .max(base_wait);
        s.pending_bytes = pending_bytes(st);
        s.generation = st
            .gen
            .as_ref()
            .filter(|g| g.base_file.is_none())
            .map(|g| g.id.clone());
    }

    /// Starts a generation: a base from the store (kept as a local file until uploaded).
    /// Returns false when the store ships no log.
    async fn begin_generation(&self, st: &mut State) -> Result<bool> {
        if let Some(old) = st.gen.take() {
            if let Some(f) = old.base_file {
                let _ = std::fs::remove_file(f);
            }
        }
        let stamp = crate::utc_stamp(now_secs_ceil());
        let id = format!("{stamp}-{}", crate::backup::random8());
        let meta = self.meta.clone();
        let scratch = self.scratch.clone();
        let tmp_id = id.clone();
        let begun = tokio::task::spawn_blocking(move || -> Result<Option<(PathBuf, u64)>> {
            std::fs::create_dir_all(&scratch).map_err(|e| io_err(&scratch, e))?;
            // One shipper per filesystem (the mount lock): older base files are leftovers
            // of a killed process.
            if let Ok(rd) = std::fs::read_dir(&scratch) {
                for e in rd.flatten() {
                    if e.file_name()
                        .to_string_lossy()
                        .starts_with(".fvfs-meta-base-")
                    {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            let plain = scratch.join(format!(".fvfs-meta-base-{tmp_id}.db"));
            let _ = std::fs::remove_file(&plain);
            let Some(_page) = meta.begin_log_shipping(&plain)? else {
                return Ok(None);
            };
            let z = scratch.join(format!(".fvfs-meta-base-{tmp_id}.db.zst"));
            let size = fvfs_chunk::compress_file(&plain, &z);
            let _ = std::fs::remove_file(&plain);
            let size = size.inspect_err(|_| {
                let _ = std::fs::remove_file(&z);
            })?;
            Ok(Some((z, size)))
        })
        .await
        .map_err(|e| VfsError::Internal(format!("metadata base task: {e}")))??;
        let Some((file, size)) = begun else {
            tracing::info!("the metadata store has no log to ship; continuous shipping is off");
            st.unsupported = true;
            return Ok(false);
        };
        // Frames taken for the previous generation are inside this base.
        st.pending = None;
        st.renew = false;
        st.gen = Some(CurrentGen {
            id,
            started: Instant::now(),
            base_bytes: size,
            log_bytes: 0,
            base_file: Some(file),
        });
        Ok(true)
    }

    async fn upload_base(&self, st: &mut State) -> Result<()> {
        let Some(g) = st.gen.as_mut() else {
            return Ok(());
        };
        let Some(file) = g.base_file.clone() else {
            return Ok(());
        };
        let key = base_key(&g.id);
        self.tier
            .put_object_from_file(&key, &file)
            .await
            .map_err(tier_err)?;
        let _ = std::fs::remove_file(&file);
        g.base_file = None;
        tracing::info!(key = %key, bytes = g.base_bytes, tier = %self.tier.display(), "metadata generation started");
        self.status.lock().bases += 1;
        let gen = g.id.clone();
        if let Err(e) = self.prune(&gen).await {
            tracing::warn!(error = %e, "pruning old metadata generations failed");
        }
        Ok(())
    }

    /// Takes what the store committed and merges it into the batch. A take reads at most
    /// `MAX_TAKE` of log; while takes come back that full, the log is ahead (a burst of
    /// commits) and taking goes on, a bounded number of times per step. Returns whether
    /// the last take reached the end of the store's log (false: more is waiting there).
    async fn take(&self, st: &mut State) -> Result<bool> {
        for _ in 0..TAKES_PER_STEP {
            let meta = self.meta.clone();
            let taken = tokio::task::spawn_blocking(move || meta.take_log())
                .await
                .map_err(|e| VfsError::Internal(format!("metadata log task: {e}")))?;
            let frames = match taken {
                Ok(frames) => frames,
                Err(MetaError::LogGap(why)) => {
                    tracing::warn!(%why, "metadata log shipping starts a new generation");
                    st.renew = true;
                    return Ok(false);
                }
                Err(e) => return Err(e.into()),
            };
            let now = Instant::now();
            let mut got = 0u64;
            for f in frames {
                got += f.bytes.len() as u64;
                if let Err(e) = absorb(st, &f, now) {
                    tracing::warn!(error = %e, "metadata log shipping starts a new generation");
                    st.renew = true;
                    return Ok(false);
                }
            }
            let bytes = pending_bytes(st);
            if bytes > MAX_PENDING {
                tracing::warn!(
                    bytes,
                    "metadata log backlog too large to hold; a new generation will include it"
                );
                st.renew = true;
                return Ok(false);
            }
            // A take that read less than half its limit reached the log's end.
            if got < fvfs_meta::sqlite::ship::MAX_TAKE / 2 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Uploads the waiting batch as one segment.
    async fn upload_log(&self, st: &mut State) -> Result<()> {
        let Some(gen) = st.gen.as_ref().filter(|g| g.base_file.is_none()) else {
            return Ok(());
        };
        let gen = gen.id.clone();
        let Some(p) = st.pending.as_ref().filter(|p| !p.log.is_empty()) else {
            return Ok(());
        };
        let mut sealed = p.log.seal();
        let stamp = crate::utc_stamp(now_secs_ceil());
        let key = log_key(&gen, sealed.index, sealed.start, sealed.end, &stamp);
        let plain = std::mem::take(&mut sealed.bytes);
        let z = tokio::task::spawn_blocking(move || fvfs_chunk::compress_bytes(&plain))
            .await
            .map_err(|e| VfsError::Internal(format!("metadata log task: {e}")))??;
        let zlen = z.len() as u64;
        self.tier
            .put_object(&key, Bytes::from(z))
            .await
            .map_err(tier_err)?;
        let p = st.pending.as_mut().expect("still there");
        p.log.shipped(&sealed);
        p.since = None;
        // Restore reads a shipped log whole: a large one is followed by a new one.
        if p.log.shipped_bytes() >= SHIPPED_LOG_BYTES {
            p.log = p.log.roll(salt());
        }
        if let Some(g) = st.gen.as_mut() {
            g.log_bytes += zlen;
        }
        let mut s = self.status.lock();
        s.shipped_bytes += sealed.end - sealed.start;
        s.segments += 1;
        Ok(())
    }

    async fn prune(&self, current: &str) -> Result<usize> {
        let gens = list_generations(&self.tier).await?;
        let horizon_secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(self.cfg.retention)
            .as_secs() as i64;
        let horizon = crate::utc_stamp(horizon_secs);
        let mut deleted = 0;
        for g in doomed(&gens, current, &horizon) {
            for s in &g.log {
                self.tier.delete_object(&s.key).await.map_err(tier_err)?;
            }
            if let Some((k, _)) = &g.base {
                self.tier.delete_object(k).await.map_err(tier_err)?;
            }
            deleted += 1;
        }
        if deleted > 0 {
            tracing::info!(deleted, "old metadata generations pruned");
        }
        Ok(deleted)
    }
}

fn io_err(path: &std::path::Path, e: std::io::Error) -> VfsError {
    VfsError::Chunk(ChunkError::Io {
        context: format!("metadata shipping scratch {}", path.display()),
        source: Arc::new(e),
    })
}

/// Called around every step of a [`MetaShipWorker`] (the daemon publishes the status
/// and picks up flush requests of other processes with it).
pub type ShipHook = Box<dyn FnMut(&MetaShipper) + Send>;

/// Runs [`MetaShipper::step`] every second.
pub struct MetaShipWorker {
    shipper: Arc<MetaShipper>,
    hook: Option<ShipHook>,
}

impl MetaShipWorker {
    pub fn new(shipper: Arc<MetaShipper>, hook: Option<ShipHook>) -> MetaShipWorker {
        MetaShipWorker { shipper, hook }
    }
}

impl Worker for MetaShipWorker {
    type Error = VfsError;
    fn name(&self) -> String {
        "meta-ship".into()
    }
    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState>> {
        Box::pin(async move {
            if let Some(hook) = self.hook.as_mut() {
                hook(&self.shipper);
            }
            let force = self.shipper.forced.swap(false, Ordering::Relaxed);
            let r = self.shipper.step(force).await;
            if r.is_err() && force {
                self.shipper.request_flush();
            }
            if let Some(hook) = self.hook.as_mut() {
                hook(&self.shipper);
            }
            r?;
            Ok(WorkerState::Idle)
        })
    }
    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(TAKE_EVERY))
    }
    /// An outage only grows the lag: the tier is tried again within the lag.
    fn max_backoff(&self) -> Duration {
        self.shipper.cfg.max_lag.max(TAKE_EVERY)
    }
}

#[cfg(test)]
#[path = "ship_tests.rs"]
mod tests;
