//! The mirror's Prometheus collectors, registered once through [`Metrics::register`] (which adds
//! the `stowage_` prefix).

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts};

use crate::metrics::{Metrics, MetricsError, creation_error};

/// Cheap to clone; clones share the collectors.
#[derive(Clone)]
pub struct MirrorMetrics {
    /// `mirror_events_total{kind,type}`: watch events by type (`listed`, `applied`, `deleted`,
    /// `malformed`, `error`).
    pub events: IntCounterVec,
    /// `mirror_objects{kind}`: objects stored per kind.
    pub objects: IntGaugeVec,
    /// `mirror_sync_lag_seconds{kind}`: from receiving an event to committing it to the store.
    pub sync_lag: HistogramVec,
    /// `mirror_batch_size{kind}`: operations per store write.
    pub batch_size: HistogramVec,
    /// `store_write_duration_seconds{kind}`.
    pub write_duration: HistogramVec,
    /// `store_errors_total{kind,category}`.
    pub store_errors: IntCounterVec,
    /// `store_breaker_state`: 0 closed, 1 half-open, 2 open.
    pub breaker_state: IntGauge,
    /// `mirror_reconnects_total{kind}`: watches restarted without a relist.
    pub reconnects: IntCounterVec,
    /// `mirror_relists_total{kind}`: full lists, the initial one included.
    pub relists: IntCounterVec,
    /// `mirror_queue_depth{kind}`: events waiting between watcher and batcher.
    pub queue_depth: IntGaugeVec,
    /// `mirror_resyncs_total{kind}`: buffered writes dropped (buffer full or kind lost by the
    /// store), to be replaced by a full relist once the store takes writes.
    pub resyncs: IntCounterVec,
    /// `mirror_synced{kind}`: 1 while the kind is `Synced`, 0 while `Pending`, `Syncing` or
    /// `Degraded` (the "kind not synced for N minutes" alert reads it).
    pub synced: IntGaugeVec,
}

impl MirrorMetrics {
    /// Creates the collectors and registers them with `metrics`.
    pub fn register(metrics: &Metrics) -> Result<Self, MetricsError> {
        let this = Self::unregistered()?;
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(this.events.clone()),
            Box::new(this.objects.clone()),
            Box::new(this.sync_lag.clone()),
            Box::new(this.batch_size.clone()),
            Box::new(this.write_duration.clone()),
            Box::new(this.store_errors.clone()),
            Box::new(this.breaker_state.clone()),
            Box::new(this.reconnects.clone()),
            Box::new(this.relists.clone()),
            Box::new(this.queue_depth.clone()),
            Box::new(this.resyncs.clone()),
            Box::new(this.synced.clone()),
        ];
        metrics.register_all(collectors)?;
        Ok(this)
    }

    /// The collectors without a registry (unit tests).
    pub fn unregistered() -> Result<Self, MetricsError> {
        let lag_buckets = vec![
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let size_buckets = vec![1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0];
        Ok(Self {
            events: IntCounterVec::new(
                Opts::new(
                    "mirror_events_total",
                    "Watch events received, by kind and type.",
                ),
                &["kind", "type"],
            )
            .map_err(creation_error("mirror_events_total"))?,
            objects: IntGaugeVec::new(
                Opts::new("mirror_objects", "Objects held in the store, by kind."),
                &["kind"],
            )
            .map_err(creation_error("mirror_objects"))?,
            sync_lag: HistogramVec::new(
                HistogramOpts::new(
                    "mirror_sync_lag_seconds",
                    "Time from receiving a watch event to committing it to the store, in seconds.",
                )
                .buckets(lag_buckets),
                &["kind"],
            )
            .map_err(creation_error("mirror_sync_lag_seconds"))?,
            batch_size: HistogramVec::new(
                HistogramOpts::new("mirror_batch_size", "Operations per store write batch.")
                    .buckets(size_buckets),
                &["kind"],
            )
            .map_err(creation_error("mirror_batch_size"))?,
            write_duration: HistogramVec::new(
                HistogramOpts::new(
                    "store_write_duration_seconds",
                    "Time one store write batch took, in seconds.",
                ),
                &["kind"],
            )
            .map_err(creation_error("store_write_duration_seconds"))?,
            store_errors: IntCounterVec::new(
                Opts::new(
                    "store_errors_total",
                    "Failed store calls, by kind and error category.",
                ),
                &["kind", "category"],
            )
            .map_err(creation_error("store_errors_total"))?,
            breaker_state: IntGauge::new(
                "store_breaker_state",
                "State of the circuit breaker around store writes: 0 closed, 1 half-open, 2 open.",
            )
            .map_err(creation_error("store_breaker_state"))?,
            reconnects: IntCounterVec::new(
                Opts::new(
                    "mirror_reconnects_total",
                    "Watches restarted without a full relist, by kind.",
                ),
                &["kind"],
            )
            .map_err(creation_error("mirror_reconnects_total"))?,
            relists: IntCounterVec::new(
                Opts::new(
                    "mirror_relists_total",
                    "Full lists of a kind, the initial one included.",
                ),
                &["kind"],
            )
            .map_err(creation_error("mirror_relists_total"))?,
            queue_depth: IntGaugeVec::new(
                Opts::new(
                    "mirror_queue_depth",
                    "Watch events queued between watcher and batcher, by kind.",
                ),
                &["kind"],
            )
            .map_err(creation_error("mirror_queue_depth"))?,
            resyncs: IntCounterVec::new(
                Opts::new(
                    "mirror_resyncs_total",
                    "Times buffered writes of a kind were dropped and a full relist was scheduled.",
                ),
                &["kind"],
            )
            .map_err(creation_error("mirror_resyncs_total"))?,
            synced: IntGaugeVec::new(
                Opts::new(
                    "mirror_synced",
                    "1 while a kind is synced, 0 while it is pending, (re)listing or degraded.",
                ),
                &["kind"],
            )
            .map_err(creation_error("mirror_synced"))?,
        })
    }

    /// Drops the per-kind gauges of a kind that is no longer mirrored (counters stay).
    pub fn forget(&self, kind: &str) {
        let _ = self.objects.remove_label_values(&[kind]);
        let _ = self.queue_depth.remove_label_values(&[kind]);
        let _ = self.synced.remove_label_values(&[kind]);
    }
}
