//! The one shape of background work. A [`Worker`] does a step of work at a time and says
//! whether more is waiting; [`Workers`] runs each on its own task with a name, a status,
//! exponential backoff after errors (100 ms doubling, capped at 5 min), cancellation
//! through one token and a bounded shutdown.

use futures::future::BoxFuture;
use parking_lot::Mutex;
use std::collections::BTreeMap;
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
    fn name(&self) -> String;
    /// One step of work.
    fn work(&mut self) -> BoxFuture<'_, crate::Result<WorkerState>>;
    /// Resolves when work may be ready (a signal or a timer).
    fn wait_for_work(&mut self) -> BoxFuture<'_, ()>;
}

/// A worker's status as shown by `fvfsd status`.
#[derive(Clone, Debug, Default)]
pub struct WorkerStatus {
    pub state: String,
    pub errors: u64,
    pub consecutive_errors: u64,
    pub last_error: Option<String>,
}

#[derive(Default)]
pub struct Workers {
    cancel: CancellationToken,
    tasks: Mutex<Vec<(String, JoinHandle<()>)>>,
    status: Arc<Mutex<BTreeMap<String, WorkerStatus>>>,
}

fn backoff(consecutive: u64) -> Duration {
    let ms = 100u64.saturating_mul(1 << consecutive.min(12));
    Duration::from_millis(ms.min(300_000))
}

impl Workers {
    pub fn new() -> Workers {
        Workers::default()
    }

    pub fn token(&self) -> CancellationToken {
        self.cancel.clone()
    }

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
                            _ = tokio::time::sleep(backoff(n.saturating_sub(1))) => {}
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

    /// Cancels every worker and waits up to `deadline` for them to stop.
    pub async fn shutdown(&self, deadline: Duration) {
        self.cancel.cancel();
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for (name, t) in tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(deadline, t).await.is_err() {
                tracing::warn!(worker = %name, "worker did not stop in time; aborted");
                abort.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(40), Duration::from_secs(300));
    }
}
