//! The mount's session row: registered at start, heartbeat every 12 s, removed at a clean
//! stop. `fvfsd status` lists sessions; a later multi-host store uses heartbeats to find
//! dead sessions.

use crate::worker::{Worker, WorkerState};
use crate::{now_ns, Result};
use futures::future::BoxFuture;
use fvfs_meta::MetaStore;
use std::sync::Arc;
use std::time::Duration;

pub const HEARTBEAT: Duration = Duration::from_secs(12);

pub struct SessionWorker {
    meta: Arc<dyn MetaStore>,
    id: u64,
}

impl SessionWorker {
    pub fn new(meta: Arc<dyn MetaStore>, id: u64) -> SessionWorker {
        SessionWorker { meta, id }
    }
}

impl Worker for SessionWorker {
    type Error = crate::VfsError;
    fn name(&self) -> String {
        "session".into()
    }
    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState>> {
        Box::pin(async move {
            self.meta.heartbeat(self.id, now_ns())?;
            Ok(WorkerState::Idle)
        })
    }
    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(HEARTBEAT))
    }
}
