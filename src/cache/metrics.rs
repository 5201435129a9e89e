//! The cache's Prometheus collectors (names get the `stowage_` prefix from
//! [`Metrics::register`]).

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts};

use crate::metrics::{Metrics, MetricsError, creation_error};

/// Cheap to clone; clones share the collectors.
#[derive(Clone)]
pub struct CacheMetrics {
    /// `cache_requests_total{tier,family,result}`: lookups per tier, `hit` or `miss`.
    pub requests: IntCounterVec,
    /// `cache_evictions_total{tier}`: entries removed to respect the size bounds.
    pub evictions: IntCounterVec,
    /// `cache_l1_entries`.
    pub l1_entries: IntGauge,
    /// `cache_l1_bytes`: keys and values held by L1.
    pub l1_bytes: IntGauge,
    /// `cache_redis_errors_total{operation}`: failed or timed-out Redis calls.
    pub redis_errors: IntCounterVec,
    /// `cache_redis_duration_seconds{operation}`.
    pub redis_duration: HistogramVec,
    /// `cache_redis_up`: 1 while Redis answers (breaker closed), else 0.
    pub redis_up: IntGauge,
    /// `cache_store_queries_total{family}`: reads that went to the store (L3).
    pub store_queries: IntCounterVec,
    /// `cache_invalidations_total`: changes turned into invalidations by this replica.
    pub invalidations: IntCounter,
}

impl CacheMetrics {
    /// Creates the collectors and registers them with `metrics`.
    pub fn register(metrics: &Metrics) -> Result<Self, MetricsError> {
        let this = Self::unregistered()?;
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(this.requests.clone()),
            Box::new(this.evictions.clone()),
            Box::new(this.l1_entries.clone()),
            Box::new(this.l1_bytes.clone()),
            Box::new(this.redis_errors.clone()),
            Box::new(this.redis_duration.clone()),
            Box::new(this.redis_up.clone()),
            Box::new(this.store_queries.clone()),
            Box::new(this.invalidations.clone()),
        ];
        metrics.register_all(collectors)?;
        Ok(this)
    }

    /// The collectors without a registry (tests, benchmarks, a cache built without metrics).
    pub fn unregistered() -> Result<Self, MetricsError> {
        let redis_buckets = vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ];
        Ok(Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "cache_requests_total",
                    "Cache lookups by tier (l1, l2), key family and result (hit, miss).",
                ),
                &["tier", "family", "result"],
            )
            .map_err(creation_error("cache_requests_total"))?,
            evictions: IntCounterVec::new(
                Opts::new(
                    "cache_evictions_total",
                    "Cache entries evicted to stay within the size bounds, by tier.",
                ),
                &["tier"],
            )
            .map_err(creation_error("cache_evictions_total"))?,
            l1_entries: IntGauge::new("cache_l1_entries", "Entries held by the in-process cache.")
                .map_err(creation_error("cache_l1_entries"))?,
            l1_bytes: IntGauge::new(
                "cache_l1_bytes",
                "Bytes of keys and values held by the in-process cache.",
            )
            .map_err(creation_error("cache_l1_bytes"))?,
            redis_errors: IntCounterVec::new(
                Opts::new(
                    "cache_redis_errors_total",
                    "Redis calls that failed or timed out, by operation.",
                ),
                &["operation"],
            )
            .map_err(creation_error("cache_redis_errors_total"))?,
            redis_duration: HistogramVec::new(
                HistogramOpts::new(
                    "cache_redis_duration_seconds",
                    "Time Redis calls took, by operation, in seconds.",
                )
                .buckets(redis_buckets),
                &["operation"],
            )
            .map_err(creation_error("cache_redis_duration_seconds"))?,
            redis_up: IntGauge::new(
                "cache_redis_up",
                "1 while the Redis cache tier answers, 0 when it is disabled or unreachable.",
            )
            .map_err(creation_error("cache_redis_up"))?,
            store_queries: IntCounterVec::new(
                Opts::new(
                    "cache_store_queries_total",
                    "REST reads the cache could not answer and sent to the store, by key family.",
                ),
                &["family"],
            )
            .map_err(creation_error("cache_store_queries_total"))?,
            invalidations: IntCounter::new(
                "cache_invalidations_total",
                "Store changes this replica turned into cache invalidations.",
            )
            .map_err(creation_error("cache_invalidations_total"))?,
        })
    }
}
