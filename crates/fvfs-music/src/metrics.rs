//! The music face's Prometheus figures (seed 5.2), recorded through the `metrics`
//! facade: whoever serves `/metrics` installs the recorder (fvfs-api's `metrics::install`
//! in `fvfsd serve`); without one, these calls cost next to nothing and record nothing.
//!
//! | function | metric | kind |
//! |---|---|---|
//! | [`fuse_op`] | `musicfs_fuse_ops_total{op}`, `musicfs_fuse_latency_seconds{op}` | counter, histogram |
//! | [`cache_hit`] / [`cache_miss`] | `musicfs_cache_hits_total` / `musicfs_cache_misses_total` | counters |
//! | [`cache_size`] | `musicfs_cache_size_bytes` | gauge |
//! | [`origin_health`], [`origin_health_all`] | `musicfs_origin_health{origin}` (1 up, 0 down) | gauge |
//! | [`sync_files_changed`] | `musicfs_sync_files_changed{origin}`: files the last scan added, updated or removed | gauge |
//! | [`bytes_read`] | `musicfs_read_bytes_total`: bytes the mount served to readers | counter |
//!
//! Invariants: label values come from a fixed set (`op` is a `&'static str` naming a
//! FUSE operation) or from configuration (origin ids), never from paths or user input,
//! so cardinality stays bounded. The histogram's buckets are set where the recorder is
//! built (fvfs-api `metrics.rs`); without them the exporter renders a summary.

use std::time::Duration;

use crate::origin::OriginSet;

pub const FUSE_OPS: &str = "musicfs_fuse_ops_total";
pub const FUSE_LATENCY: &str = "musicfs_fuse_latency_seconds";
pub const CACHE_HITS: &str = "musicfs_cache_hits_total";
pub const CACHE_MISSES: &str = "musicfs_cache_misses_total";
pub const CACHE_SIZE: &str = "musicfs_cache_size_bytes";
pub const ORIGIN_HEALTH: &str = "musicfs_origin_health";
pub const SYNC_FILES_CHANGED: &str = "musicfs_sync_files_changed";
pub const READ_BYTES: &str = "musicfs_read_bytes_total";

/// One FUSE operation (`"read"`, `"readdir"`, `"lookup"`, `"getattr"`, `"open"`…) that
/// took `elapsed`.
pub fn fuse_op(op: &'static str, elapsed: Duration) {
    metrics::counter!(FUSE_OPS, "op" => op).increment(1);
    metrics::histogram!(FUSE_LATENCY, "op" => op).record(elapsed.as_secs_f64());
}

/// A read served from the content cache.
pub fn cache_hit() {
    metrics::counter!(CACHE_HITS).increment(1);
}

/// A read that had to go to an origin.
pub fn cache_miss() {
    metrics::counter!(CACHE_MISSES).increment(1);
}

/// The content cache holds `bytes` now.
pub fn cache_size(bytes: u64) {
    metrics::gauge!(CACHE_SIZE).set(bytes as f64);
}

/// An origin's health now.
pub fn origin_health(origin: &str, up: bool) {
    metrics::gauge!(ORIGIN_HEALTH, "origin" => origin.to_string()).set(if up { 1.0 } else { 0.0 });
}

/// Every origin's health now ([`OriginSet::health_gauges`]).
pub fn origin_health_all(set: &OriginSet) {
    for (id, up) in set.health_gauges() {
        metrics::gauge!(ORIGIN_HEALTH, "origin" => id).set(f64::from(up));
    }
}

/// The last scan of `origin` changed `n` files (added, updated or removed).
pub fn sync_files_changed(origin: &str, n: u64) {
    metrics::gauge!(SYNC_FILES_CHANGED, "origin" => origin.to_string()).set(n as f64);
}

/// The mount served `n` bytes to a reader.
pub fn bytes_read(n: u64) {
    metrics::counter!(READ_BYTES).increment(n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    #[test]
    fn every_figure_is_rendered_under_its_seed_name() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            fuse_op("read", Duration::from_millis(4));
            fuse_op("read", Duration::from_millis(2));
            fuse_op("readdir", Duration::from_micros(300));
            cache_hit();
            cache_hit();
            cache_miss();
            cache_size(5_368_709_120);
            origin_health("local", true);
            origin_health("s3", false);
            sync_files_changed("local", 15);
            bytes_read(4096);
            bytes_read(100);
        });
        let text = handle.render();
        for line in [
            "musicfs_fuse_ops_total{op=\"read\"} 2",
            "musicfs_fuse_ops_total{op=\"readdir\"} 1",
            "musicfs_fuse_latency_seconds_count{op=\"read\"} 2",
            "musicfs_cache_hits_total 2",
            "musicfs_cache_misses_total 1",
            "musicfs_cache_size_bytes 5368709120",
            "musicfs_origin_health{origin=\"local\"} 1",
            "musicfs_origin_health{origin=\"s3\"} 0",
            "musicfs_sync_files_changed{origin=\"local\"} 15",
            "musicfs_read_bytes_total 4196",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing from:\n{text}"
            );
        }
    }
}
