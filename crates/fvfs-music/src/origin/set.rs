//! [`OriginSet`]: the configured origins with their health, and reads that pick among
//! the origins holding the same file ([`OriginSet::read_range_any`]).
//!
//! The failover rule, exactly:
//! 1. Candidates are tried in this order: Healthy before Unhealthy, then lower
//!    priority first, then the caller's order.
//! 2. A Healthy candidate gets up to four attempts: after a retryable failure (the
//!    origin did not answer, [`OriginError::is_retryable`]) it waits 100 ms, 500 ms,
//!    then 2 s (the seed's backoff, [`RETRY_BACKOFF`]) before the next attempt. Once its
//!    attempts are spent it is marked Unhealthy and the next candidate is tried. It
//!    stops early when another read or a check marks it Unhealthy meanwhile.
//! 3. An Unhealthy candidate gets exactly one attempt, capped at
//!    [`UNHEALTHY_ATTEMPT_TIMEOUT`], with no wait before or after it.
//! 4. A file-level failure (not found, changed, a directory) moves to the next
//!    candidate at once and leaves the origin's health alone; a refusal (denied) moves
//!    on at once and marks the origin Unhealthy.
//! 5. A read that succeeds marks its origin Healthy.
//!
//! So with every candidate Unhealthy a read costs one attempt per candidate and no
//! backoff: it fails as fast as the origins refuse (bounded by 2 s per candidate when
//! they do not answer at all), never 2.6 s of retries against an origin known down.
//!
//! Invariants: the members and their order are fixed at construction (ids unique);
//! health changes only through `OriginHealth::record_ok` / `record_err` under the
//! member's lock, never held across an await.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fvfs_worker::Workers;
use parking_lot::Mutex;

use super::error::OriginError;
use super::handle::Origin;
use super::health::{HealthCheck, OriginHealth};
use super::spec::OriginSpec;

/// Waits between the attempts at one Healthy origin (seed NFR-7.3).
pub const RETRY_BACKOFF: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
];

/// Bound of the single attempt at an Unhealthy origin.
pub const UNHEALTHY_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

struct Member {
    origin: Origin,
    health: Mutex<OriginHealth>,
}

impl Member {
    fn is_healthy(&self) -> bool {
        self.health.lock().is_healthy()
    }
}

/// The origins of a library. Cheap to clone (shared).
#[derive(Clone)]
pub struct OriginSet {
    members: Arc<Vec<Member>>,
}

impl std::fmt::Debug for OriginSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.members.iter().map(|m| m.origin.display()))
            .finish()
    }
}

impl OriginSet {
    /// A set of opened origins, every one Healthy until found otherwise. Ids must be
    /// unique.
    pub fn new(origins: Vec<Origin>) -> Result<OriginSet, OriginError> {
        let mut ids: Vec<&str> = origins.iter().map(|o| o.id()).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(OriginError::Spec(format!(
                "origin id {:?} is used twice",
                w[0]
            )));
        }
        let members = origins
            .into_iter()
            .map(|origin| Member {
                origin,
                health: Mutex::new(OriginHealth::new()),
            })
            .collect();
        Ok(OriginSet {
            members: Arc::new(members),
        })
    }

    /// Opens every spec with default options (no I/O) and makes a set of them.
    pub fn open(specs: &[OriginSpec]) -> Result<OriginSet, OriginError> {
        let origins = specs.iter().map(Origin::open).collect::<Result<_, _>>()?;
        OriginSet::new(origins)
    }

    /// The origins, in the order given at construction.
    pub fn origins(&self) -> impl Iterator<Item = &Origin> {
        self.members.iter().map(|m| &m.origin)
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.origin.id() == id)
    }

    pub(crate) fn origin_at(&self, index: usize) -> &Origin {
        &self.members[index].origin
    }

    /// The origin with this id.
    pub fn get(&self, id: &str) -> Option<&Origin> {
        self.index(id).map(|i| self.origin_at(i))
    }

    /// The origin's health now.
    pub fn health(&self, id: &str) -> Option<OriginHealth> {
        self.index(id)
            .map(|i| self.members[i].health.lock().clone())
    }

    /// `musicfs_origin_health{origin=id}` for every origin: 1 healthy, 0 not.
    pub fn health_gauges(&self) -> Vec<(String, u8)> {
        self.members
            .iter()
            .map(|m| (m.origin.id().to_string(), m.health.lock().gauge()))
            .collect()
    }

    /// Checks one origin now and records the outcome.
    pub async fn check(&self, id: &str) -> Result<(), OriginError> {
        let i = self
            .index(id)
            .ok_or_else(|| OriginError::UnknownOrigin(id.to_string()))?;
        self.check_at(i).await
    }

    pub(crate) async fn check_at(&self, index: usize) -> Result<(), OriginError> {
        let m = &self.members[index];
        let r = m.origin.check().await;
        match &r {
            Ok(()) => m.health.lock().record_ok(true),
            Err(e) => {
                tracing::warn!(origin = m.origin.id(), error = %e, "origin health check failed");
                m.health.lock().record_err(e, true);
            }
        }
        r
    }

    /// Checks every origin now, concurrently; the outcome per origin, in set order.
    pub async fn check_all(&self) -> Vec<(String, Result<(), OriginError>)> {
        let checks = (0..self.members.len())
            .map(|i| async move { (self.origin_at(i).id().to_string(), self.check_at(i).await) });
        futures::future::join_all(checks).await
    }

    /// Starts the periodic health check of every origin on `workers` (one worker
    /// each, named `origin-health-ID`); they stop with `workers.shutdown`.
    pub fn spawn_health_checks(&self, workers: &Workers) {
        for i in 0..self.members.len() {
            workers.spawn(HealthCheck::new(self.clone(), i));
        }
    }

    /// Reads `[offset, offset + len)` of a file held by several origins, each
    /// candidate an `(origin id, path on that origin)`, following the failover rule of
    /// the module docs. An unknown origin id is a failed candidate.
    pub async fn read_range_any<A, B>(
        &self,
        candidates: &[(A, B)],
        offset: u64,
        len: u64,
    ) -> Result<Bytes, OriginError>
    where
        A: AsRef<str>,
        B: AsRef<str>,
    {
        let Some((_, first)) = candidates.first() else {
            return Err(OriginError::NoCandidate);
        };
        let mut errors = Vec::new();
        let mut order = Vec::new();
        for (pos, (id, path)) in candidates.iter().enumerate() {
            match self.index(id.as_ref()) {
                Some(i) => {
                    let m = &self.members[i];
                    let key = (!m.is_healthy(), m.origin.spec().priority, pos);
                    order.push((key, i, path.as_ref()));
                }
                None => errors.push(OriginError::UnknownOrigin(id.as_ref().to_string())),
            }
        }
        order.sort_by_key(|(key, _, _)| *key);
        for (_, i, path) in order {
            match self.read_from(&self.members[i], path, offset, len).await {
                Ok(b) => return Ok(b),
                Err(e) => errors.push(e),
            }
        }
        tracing::debug!(path = first.as_ref(), "no origin could serve the read");
        Err(OriginError::AllFailed(errors))
    }

    /// Rules 2–5 for one candidate.
    async fn read_from(
        &self,
        m: &Member,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, OriginError> {
        let healthy = m.is_healthy();
        let mut waits = if healthy { &RETRY_BACKOFF[..] } else { &[][..] };
        loop {
            let attempt = m.origin.read_range(path, offset, len);
            let r = if healthy {
                attempt.await
            } else {
                match tokio::time::timeout(UNHEALTHY_ATTEMPT_TIMEOUT, attempt).await {
                    Ok(r) => r,
                    Err(_) => Err(OriginError::Unavailable {
                        origin: m.origin.id().to_string(),
                        source: format!("no answer within {UNHEALTHY_ATTEMPT_TIMEOUT:?}").into(),
                    }),
                }
            };
            let e = match r {
                Ok(b) => {
                    m.health.lock().record_ok(false);
                    return Ok(b);
                }
                Err(e) => e,
            };
            if e.is_retryable() {
                if let Some((wait, rest)) = waits.split_first() {
                    tracing::debug!(origin = m.origin.id(), error = %e, ?wait, "origin read failed; retrying");
                    tokio::time::sleep(*wait).await;
                    waits = rest;
                    if m.is_healthy() {
                        continue;
                    }
                }
            }
            if e.marks_unhealthy() {
                tracing::warn!(origin = m.origin.id(), error = %e, "origin read failed; failing over");
                m.health.lock().record_err(&e, false);
            }
            return Err(e);
        }
    }
}
