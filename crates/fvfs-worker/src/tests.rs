use super::*;
use std::time::Instant as StdInstant;
use tokio::time::Instant;

#[test]
fn backoff_doubles_from_100ms_and_caps_at_5min() {
    let ms = |n| backoff(n).as_millis() as u64;
    let got: Vec<u64> = (1..=13).map(ms).collect();
    assert_eq!(
        got,
        [
            100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 51_200, 102_400, 204_800,
            300_000
        ]
    );
    assert_eq!(ms(0), 100, "no error yet counts as the first");
    assert_eq!(ms(40), 300_000);
    assert_eq!(ms(u64::MAX), 300_000);
}

/// Fails its first `fails` steps ("failure N"), then succeeds; records when each step ran.
struct Flaky {
    fails: u32,
    calls: Arc<Mutex<Vec<Instant>>>,
}

impl Worker for Flaky {
    type Error = String;
    fn name(&self) -> String {
        "flaky".into()
    }
    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, String>> {
        Box::pin(async move {
            let n = {
                let mut c = self.calls.lock();
                c.push(Instant::now());
                c.len()
            };
            if n as u32 <= self.fails {
                Err(format!("failure {n}"))
            } else {
                Ok(WorkerState::Idle)
            }
        })
    }
    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(futures::future::pending())
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_worker_counts_errors_backs_off_and_recovers() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let workers = Workers::new();
    let start = Instant::now();
    workers.spawn(Flaky {
        fails: 3,
        calls: calls.clone(),
    });
    // The clock is paused: it moves only to the next timer, so the times are exact.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = &workers.statuses()["flaky"];
    assert_eq!(
        (s.state.as_str(), s.errors, s.consecutive_errors),
        ("backoff", 1, 1)
    );
    assert_eq!(s.last_error.as_deref(), Some("failure 1"));
    tokio::time::sleep(Duration::from_millis(200)).await; // t = 250 ms: second backoff
    let s = &workers.statuses()["flaky"];
    assert_eq!((s.errors, s.consecutive_errors), (2, 2));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = &workers.statuses()["flaky"];
    assert_eq!(
        (s.state.as_str(), s.errors, s.consecutive_errors),
        ("idle", 3, 0),
        "recovered: the total stays, the run of errors ends"
    );
    assert_eq!(s.last_error.as_deref(), Some("failure 3"));
    let at: Vec<u128> = calls
        .lock()
        .iter()
        .map(|t| (*t - start).as_millis())
        .collect();
    assert_eq!(at, [0, 100, 300, 700], "steps after 100, 200 and 400 ms");
    assert!(workers.shutdown(Duration::from_secs(1)).await);
    assert_eq!(workers.statuses()["flaky"].state, "stopped");
}

/// A step that takes `step` (async, cancellable) or blocks its thread for `step`.
struct Slow {
    name: &'static str,
    step: Duration,
    blocking: bool,
}

impl Worker for Slow {
    type Error = std::io::Error;
    fn name(&self) -> String {
        self.name.into()
    }
    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, std::io::Error>> {
        Box::pin(async move {
            if self.blocking {
                tokio::task::block_in_place(|| std::thread::sleep(self.step));
            } else {
                tokio::time::sleep(self.step).await;
            }
            Ok(WorkerState::Busy)
        })
    }
    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(futures::future::pending())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancellation_stops_workers_within_the_bounded_shutdown() {
    let workers = Workers::new();
    workers.spawn(Slow {
        name: "long-step",
        step: Duration::from_secs(3600),
        blocking: false,
    });
    workers.spawn(Flaky {
        fails: 0,
        calls: Default::default(),
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = StdInstant::now();
    assert!(workers.shutdown(Duration::from_secs(10)).await);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    for (name, s) in workers.statuses() {
        assert_eq!(s.state, "stopped", "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_gives_up_on_stuck_workers_after_its_deadline_in_all() {
    let workers = Workers::new();
    for name in ["stuck-a", "stuck-b"] {
        workers.spawn(Slow {
            name,
            step: Duration::from_millis(1500),
            blocking: true,
        });
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = StdInstant::now();
    assert!(!workers.shutdown(Duration::from_millis(300)).await);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(550),
        "one deadline for all the workers: {took:?}"
    );
}
