//! `status`, `devices` and the maintenance routes (`admin/evict`, `admin/flush`,
//! `admin/wal`): the same figures and actions as `fvfsd status`, `fvfsd wal` and
//! `fvfsd flush`, on the running engine.
//!
//! Invariant: locations are shown with credentials removed (`TierRow::location`).

use super::extract::ApiQuery;
use super::on_vfs;
use super::who::Who;
use super::AppState;
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::Json;
use fvfs_types::api::{
    Devices, ErrorBody, EvictResult, FlushResult, Status, TierStatus, Wal, WalItem,
};
use serde::Deserialize;
use std::time::Duration;

/// The longest `admin/flush` replicates before answering.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(600);
/// Devices seen within this window are listed.
const DEVICE_WINDOW_SECS: i64 = 86_400;

/// Daemon health, tiers and totals, and the identity the caller acts as: the engine's
/// status model (`Vfs::status`, also printed by `fvfsd status`) and the daemon's own.
#[utoipa::path(get, path = "/v1/status", tag = "admin",
    responses((status = 200, body = Status), (status = 500, body = ErrorBody)))]
pub async fn status(State(st): State<AppState>, who: Who) -> ApiResult<Json<Status>> {
    let report = on_vfs(&st, |v| Ok(v.status()?)).await?;
    let tiers = report
        .tiers
        .iter()
        .map(|t| TierStatus {
            name: t.settings.name.clone(),
            location: t.location(),
            bytes: t.usage.bytes,
            high_watermark: t.settings.high_watermark,
            low_watermark: t.settings.low_watermark,
            durable: t.settings.durable,
            healthy: t.reachable,
            last_error: t.last_error.clone(),
        })
        .collect();
    let workers = st
        .workers
        .as_ref()
        .map(|w| {
            w.statuses()
                .into_iter()
                .map(|(name, s)| {
                    let state = match (&s.last_error, s.consecutive_errors) {
                        (Some(e), n) if n > 0 => format!("error: {e}"),
                        _ => s.state,
                    };
                    (name, state)
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uuid: report.uuid,
        name: report.name,
        uptime_secs: st.started.elapsed().as_secs(),
        tiers,
        wal_pending: report.queue_pending,
        workers,
        mount: st.mount.as_ref().map(|m| m.display().to_string()),
        files: report.stats.inodes,
        bytes: report.stats.logical_bytes,
        caller: Some(who.info()),
        meta_shipping: report.meta_shipping,
    }))
}

/// Clients seen in the last 24 hours.
#[utoipa::path(get, path = "/v1/devices", tag = "admin",
    responses((status = 200, body = Devices)))]
pub async fn devices(State(st): State<AppState>, who: Who) -> ApiResult<Json<Devices>> {
    who.need_admin("the list of clients")?;
    Ok(Json(Devices {
        devices: st.devices.recent(DEVICE_WINDOW_SECS),
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EvictQuery {
    /// Tier name (default: every tier with a watermark).
    pub tier: Option<String>,
    /// Evict down to the low watermark even when under the high one.
    pub force: Option<bool>,
}

/// Evicts blocks from tiers over their watermarks.
#[utoipa::path(post, path = "/v1/admin/evict", tag = "admin", params(EvictQuery),
    responses((status = 200, body = EvictResult), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn evict(
    State(st): State<AppState>,
    who: Who,
    ApiQuery(q): ApiQuery<EvictQuery>,
) -> ApiResult<Json<EvictResult>> {
    who.need_admin("eviction")?;
    let report = st.vfs.tiering().tier_report();
    let picked: Vec<usize> = match &q.tier {
        Some(name) => {
            let i = report
                .iter()
                .position(|(t, ..)| &t.name == name)
                .ok_or_else(|| ApiError::not_found(format!("no tier named {name:?}")))?;
            vec![i]
        }
        None => report
            .iter()
            .enumerate()
            .filter(|(_, (t, ..))| t.high_watermark.is_some() && !t.durable)
            .map(|(i, _)| i)
            .collect(),
    };
    let mut evicted_bytes = 0u64;
    for i in picked {
        let before = st.vfs.tier_usage()?[i].bytes;
        st.vfs
            .tiering()
            .evict_tier(i, q.force.unwrap_or(false))
            .await?;
        let after = st.vfs.tier_usage()?[i].bytes;
        evicted_bytes += before.saturating_sub(after);
    }
    Ok(Json(EvictResult { evicted_bytes }))
}

/// Stores the files closed into the write journal as blocks, then replicates every
/// queued block copy now (at most 10 minutes).
#[utoipa::path(post, path = "/v1/admin/flush", tag = "admin",
    responses((status = 200, body = FlushResult), (status = 500, body = ErrorBody)))]
pub async fn flush(State(st): State<AppState>, who: Who) -> ApiResult<Json<FlushResult>> {
    who.need_admin("replicating the queue")?;
    // A file that cannot be stored now stays retained (and journaled): the replication
    // of what is stored goes on.
    if let Err(e) = st.vfs.writeback_pass().await {
        tracing::warn!(error = %e, "flush: some closed files could not be stored as blocks yet");
    }
    let queued = on_vfs(&st, |v| Ok(v.queue_due_now()?)).await?;
    let pending = st.vfs.tiering().replicate_all(FLUSH_DEADLINE).await?;
    Ok(Json(FlushResult {
        replicated: queued.saturating_sub(pending),
        pending,
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WalQuery {
    /// Entries to list (default 100, at most 10000).
    pub limit: Option<usize>,
}

/// The replication queue.
#[utoipa::path(get, path = "/v1/admin/wal", tag = "admin", params(WalQuery),
    responses((status = 200, body = Wal), (status = 400, body = ErrorBody)))]
pub async fn wal(
    State(st): State<AppState>,
    who: Who,
    ApiQuery(q): ApiQuery<WalQuery>,
) -> ApiResult<Json<Wal>> {
    who.need_admin("the replication queue")?;
    let limit = q.limit.unwrap_or(100).min(10_000);
    let names = st.vfs.settings().tier_names();
    let (entries, pending) = on_vfs(&st, move |v| Ok(v.queue(limit)?)).await?;
    let entries = entries
        .into_iter()
        .map(|e| WalItem {
            id: e.id,
            block: e.block.to_hex(),
            tier: names
                .get(e.tier as usize)
                .cloned()
                .unwrap_or_else(|| format!("#{}", e.tier)),
            due_ns: e.due,
            attempts: e.attempts,
            last_error: e.last_error,
        })
        .collect();
    Ok(Json(Wal { pending, entries }))
}
