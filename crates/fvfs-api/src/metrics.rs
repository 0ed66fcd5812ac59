//! Prometheus figures: the process-wide recorder ([`install`]), the request middleware
//! ([`track`]) and `/metrics` ([`serve`]), which refreshes the engine's figures (tier
//! bytes, replication queue, cache and repair counters) at scrape time. Figures other
//! crates record through the `metrics` facade in this process (the music mount's
//! `musicfs_*`, fvfs-music `metrics.rs`) show up here too; histograms get buckets here.
//!
//! Invariants: the route label is the matched route pattern (`/v1/files/{*path}`), never
//! the raw path, and the method label is one of a fixed set, so label cardinality stays
//! bounded whatever clients send. The recorder is installed once per process.

use crate::ApiState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Buckets of `fvfs_http_request_duration_seconds` (seconds).
const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// Buckets of the music mount's `musicfs_fuse_latency_seconds` (seconds): from a cached
/// lookup (tens of µs) to a read waiting out an origin's retries (seconds).
const FUSE_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// Installs the global Prometheus recorder (once per process) and returns its handle.
/// If another recorder was installed first, the handle renders only what reaches ours
/// (nothing): a warning says so.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let http = Matcher::Full("fvfs_http_request_duration_seconds".into());
            let fuse = Matcher::Full("musicfs_fuse_latency_seconds".into());
            let builder = match PrometheusBuilder::new()
                .set_buckets_for_metric(http, &DURATION_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(fuse, &FUSE_BUCKETS))
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "histogram buckets refused; using summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %e, "another metrics recorder is installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Middleware: counts requests by route, method and status, and times them (until the
/// response head; a streamed body continues after).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method());
    let start = Instant::now();
    let resp = next.run(req).await;
    metrics::counter!(
        "fvfs_http_requests_total",
        "route" => route.clone(),
        "method" => method,
        "status" => resp.status().as_u16().to_string()
    )
    .increment(1);
    metrics::histogram!("fvfs_http_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// Sets the engine's figures: tier bytes, queue depth, cache and durable counters.
fn refresh(st: &ApiState) {
    for (t, bytes, _) in st.vfs.tiering().tier_report() {
        metrics::gauge!("fvfs_tier_bytes", "tier" => t.name).set(bytes as f64);
    }
    match st.vfs.queue(0) {
        Ok((_, pending)) => metrics::gauge!("fvfs_wal_pending").set(pending as f64),
        Err(e) => tracing::warn!(error = %e, "reading the replication queue for /metrics failed"),
    }
    let cache = st.vfs.cache_stats();
    metrics::counter!("fvfs_cache_hits_total").absolute(cache.hits);
    metrics::counter!("fvfs_cache_misses_total").absolute(cache.misses);
    let counters = match st.vfs.counters() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "reading the engine counters for /metrics failed");
            Vec::new()
        }
    };
    let get = |name: &str| {
        counters
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| (*v).max(0) as u64)
    };
    metrics::counter!("fvfs_evicted_bytes_total").absolute(get("evicted_bytes"));
    metrics::counter!("fvfs_evicted_blocks_total").absolute(get("blocks_evicted"));
    metrics::counter!("fvfs_corruptions_repaired_total").absolute(get("corruptions_repaired"));
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "admin",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn serve(State((st, handle)): State<(Arc<ApiState>, PrometheusHandle)>) -> Response {
    refresh(&st);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}
