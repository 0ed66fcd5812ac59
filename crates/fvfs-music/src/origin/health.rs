//! The health of an origin ([`OriginHealth`]) and the periodic check that keeps it
//! current ([`HealthCheck`], one [`fvfs_worker::Worker`] per origin).
//!
//! Invariants:
//! - an origin starts Healthy (nothing is known against it; a spec never fails for an
//!   origin that does not answer) and flips on evidence only: a failed check, a failed
//!   read whose error is the origin's ([`super::OriginError::marks_unhealthy`]), a check
//!   or a read that succeeds;
//! - the last error and its time are kept after the origin recovers (for status);
//! - each origin is checked every `check_interval` of its spec, the first time as soon
//!   as its worker starts; a check never takes longer than the origin's check timeout,
//!   and one slow origin never delays another's check (one worker each).

use std::time::SystemTime;

use futures::future::BoxFuture;
use futures::FutureExt;
use fvfs_worker::{Worker, WorkerState};

use super::error::OriginError;
use super::set::OriginSet;

/// Whether an origin is taken to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthState {
    Healthy,
    Unhealthy,
}

/// An origin's health as known now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginHealth {
    pub state: HealthState,
    /// When `state` last changed (the set's creation at first).
    pub since: SystemTime,
    /// The last failure of a check or a read that was the origin's.
    pub last_error: Option<String>,
    pub last_error_at: Option<SystemTime>,
    /// When the last check finished.
    pub last_check: Option<SystemTime>,
}

impl OriginHealth {
    pub(crate) fn new() -> OriginHealth {
        OriginHealth {
            state: HealthState::Healthy,
            since: SystemTime::now(),
            last_error: None,
            last_error_at: None,
            last_check: None,
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.state == HealthState::Healthy
    }

    /// The value of `musicfs_origin_health{origin=…}`: 1 healthy, 0 unhealthy.
    pub fn gauge(&self) -> u8 {
        u8::from(self.is_healthy())
    }

    fn set(&mut self, state: HealthState) {
        if self.state != state {
            self.state = state;
            self.since = SystemTime::now();
        }
    }

    /// The origin answered (a check, or a read).
    pub(crate) fn record_ok(&mut self, check: bool) {
        self.set(HealthState::Healthy);
        if check {
            self.last_check = Some(SystemTime::now());
        }
    }

    /// The origin failed (a check, or a read whose error is the origin's).
    pub(crate) fn record_err(&mut self, e: &OriginError, check: bool) {
        let now = SystemTime::now();
        self.set(HealthState::Unhealthy);
        self.last_error = Some(e.to_string());
        self.last_error_at = Some(now);
        if check {
            self.last_check = Some(now);
        }
    }
}

/// The periodic check of one origin of a set: one step checks it and records the
/// outcome (a failed check is health, not a worker error: the step always succeeds),
/// then the worker sleeps for the origin's check interval.
pub struct HealthCheck {
    set: OriginSet,
    index: usize,
}

impl HealthCheck {
    pub(crate) fn new(set: OriginSet, index: usize) -> HealthCheck {
        HealthCheck { set, index }
    }
}

impl Worker for HealthCheck {
    type Error = std::convert::Infallible;

    fn name(&self) -> String {
        format!("origin-health-{}", self.set.origin_at(self.index).id())
    }

    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState, Self::Error>> {
        async move {
            let _ = self.set.check_at(self.index).await;
            Ok(WorkerState::Idle)
        }
        .boxed()
    }

    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        let every = self.set.origin_at(self.index).spec().check_interval;
        tokio::time::sleep(every).boxed()
    }
}
