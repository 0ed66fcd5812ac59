//! The one shape of background work, for the engine (fvfs-vfs: gc, replicator, writeback...)
//! and the LAN client (fvfs-client: the uploads worker) alike. It owns the [`Worker`]
//! trait, the [`Workers`] runner, the status a runner keeps per worker and the one backoff
//! policy ([`backoff`]). It links no fvfs crate and no storage: only the async runtime.
//!
//! Invariants:
//! - A [`Worker`] does one step at a time (`work`) and says whether more is waiting; a
//!   step's error is any `Display` type, and the status keeps its text.
//! - After `n` consecutive errors the runner waits [`backoff`]`(n)`: 100 ms, doubling,
//!   capped at 5 min (or the worker's `max_backoff`). A step that succeeds resets the count (the error total stays).
//! - Every worker of a [`Workers`] stops through one cancellation token: at a wait
//!   (`wait_for_work`, a backoff) or by dropping its step in progress. [`Workers::shutdown`]
//!   waits for all of them at most its deadline in total, then aborts what is left.

use futures::future::BoxFuture;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What a worker reports after one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerState {
    /// More work is ready: call `work` again.
    Busy,
    /// Nothing to do: wait for `wait_for_work`.
    Idle,
    /// Finished for good.
    Done,
}

pub trait Worker: Send + 'static {
    /// What a failed step returns; its text goes into the status and the log.
    type Error: Display + Send + 'static;
    fn name(&self) -> String;
    /// One step of work. Dropping the future cancels the step.
    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, Self::Error>>;
    /// Resolves when work may be ready (a signal or a timer).
    fn wait_for_work(&mut self) -> BoxFuture<'_, ()>;
    /// The longest wait after errors: a worker that promises a bounded delay (metadata
    /// shipping within its lag) retries at least this often.
    fn max_backoff(&self) -> Duration {
        BACKOFF_MAX
    }
}

/// A worker's status as shown by `fvfsd status` and `/v1/status`.
#[derive(Clone, Debug, Default)]
pub struct WorkerStatus {
    /// busy, idle, backoff or stopped.
    pub state: String,
    /// Errors since the worker started.
    pub errors: u64,
    /// Errors since the last step that succeeded.
    pub consecutive_errors: u64,
    /// The text of the last error (kept after the worker recovers).
    pub last_error: Option<String>,
}

/// The first wait after an error.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait after errors.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The one backoff policy: the wait after `errors` consecutive errors (1 for the first),
/// [`BACKOFF_MIN`] doubling per error, capped at [`BACKOFF_MAX`].
pub fn backoff(errors: u64) -> Duration {
    let doublings = errors.saturating_sub(1).min(16) as u32;
    BACKOFF_MIN.saturating_mul(1 << doublings).min(BACKOFF_MAX)
}

/// Runs workers, each on its own task, with their statuses and one cancellation token.
#[derive(Default)]
pub struct Workers {
    cancel: CancellationToken,
    tasks: Mutex<Vec<(String, JoinHandle<()>)>>,
    status: Arc<Mutex<BTreeMap<String, WorkerStatus>>>,
}

impl Workers {
    pub fn new() -> Workers {
        Workers::default()
    }

    /// The token [`Workers::shutdown`] cancels: a worker whose step runs long (a blocking
    /// pass) checks it to end the step early.
    pub fn token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Starts `w` on a task of the current tokio runtime (panics outside one).
    pub fn spawn<W: Worker>(&self, mut w: W) {
        let name = w.name();
        let cancel = self.cancel.clone();
        let status = self.status.clone();
        let key = name.clone();
        // Applies `f` to this worker's status; returns its consecutive error count.
        let set = move |f: &dyn Fn(&mut WorkerStatus)| -> u64 {
            let mut m = status.lock();
            let s = m.entry(key.clone()).or_default();
            f(s);
            s.consecutive_errors
        };
        let handle = tokio::spawn(async move {
            loop {
                set(&|s| s.state = "busy".into());
                let step = tokio::select! {
                    _ = cancel.cancelled() => break,
                    r = w.work() => r,
                };
                match step {
                    Ok(WorkerState::Busy) => {
                        set(&|s| s.consecutive_errors = 0);
                        tokio::task::yield_now().await;
                    }
                    Ok(WorkerState::Idle) => {
                        set(&|s| {
                            s.consecutive_errors = 0;
                            s.state = "idle".into();
                        });
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = w.wait_for_work() => {}
                        }
                    }
                    Ok(WorkerState::Done) => break,
                    Err(e) => {
                        tracing::error!(worker = %w.name(), error = %e, "background work failed");
                        let msg = e.to_string();
                        let n = set(&|s| {
                            s.errors += 1;
                            s.consecutive_errors += 1;
                            s.last_error = Some(msg.clone());
                            s.state = "backoff".into();
                        });
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(backoff(n).min(w.max_backoff())) => {}
                        }
                    }
                }
            }
            set(&|s| s.state = "stopped".into());
        });
        self.tasks.lock().push((name, handle));
    }

    pub fn statuses(&self) -> BTreeMap<String, WorkerStatus> {
        self.status.lock().clone()
    }

    /// Cancels every worker and waits up to `deadline` (in all) for them to stop; aborts
    /// those still running then. Returns whether all stopped in time (a worker that
    /// panicked stopped: it is logged).
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        self.cancel.cancel();
        let until = tokio::time::Instant::now() + deadline;
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        let mut all = true;
        for (name, t) in tasks {
            let abort = t.abort_handle();
            match tokio::time::timeout_at(until, t).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(worker = %name, error = %e, "the worker panicked"),
                Err(_) => {
                    tracing::warn!(worker = %name, "worker did not stop in time; aborted");
                    abort.abort();
                    all = false;
                }
            }
        }
        all
    }
}

#[cfg(test)]
mod tests;
