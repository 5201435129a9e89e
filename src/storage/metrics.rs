//! The storage controller's Prometheus collectors (names fixed by the dashboards and alerts in
//! `deploy/`), registered through [`Metrics::register`], which adds the `stowage_` prefix.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

use crate::metrics::{Metrics, MetricsError, creation_error};

/// An operation counted in `stowage_storage_operations_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Provision,
    Delete,
    Expand,
    Bind,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Provision => "provision",
            Self::Delete => "delete",
            Self::Expand => "expand",
            Self::Bind => "bind",
        }
    }
}

/// Cheap to clone; clones share the collectors.
#[derive(Clone)]
pub struct StorageMetrics {
    /// `storage_provision_duration_seconds{class}`: from starting to provision a claim to its PV
    /// being created.
    provision_duration: HistogramVec,
    /// `storage_operations_total{operation,class,outcome,reason}`.
    operations: IntCounterVec,
    /// `storage_claims{phase,class}`: claims by phase and class (recomputed from the cache).
    claims: IntGaugeVec,
    /// `storage_expansion_blocked_total{class}`: growth asked on a class that cannot expand.
    expansion_blocked: IntCounterVec,
    /// `storage_reconcile_errors_total{reason}`: failed reconciles by error category.
    reconcile_errors: IntCounterVec,
}

impl StorageMetrics {
    /// Creates the collectors and registers them with `metrics`.
    pub fn register(metrics: &Metrics) -> Result<Self, MetricsError> {
        let this = Self::unregistered()?;
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(this.provision_duration.clone()),
            Box::new(this.operations.clone()),
            Box::new(this.claims.clone()),
            Box::new(this.expansion_blocked.clone()),
            Box::new(this.reconcile_errors.clone()),
        ];
        metrics.register_all(collectors)?;
        Ok(this)
    }

    /// The collectors without a registry (unit tests).
    pub fn unregistered() -> Result<Self, MetricsError> {
        let buckets = vec![
            0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
        ];
        Ok(Self {
            provision_duration: HistogramVec::new(
                HistogramOpts::new(
                    "storage_provision_duration_seconds",
                    "Time to provision a volume for a claim (storage created, PV written), in seconds.",
                )
                .buckets(buckets),
                &["class"],
            )
            .map_err(creation_error("storage_provision_duration_seconds"))?,
            operations: IntCounterVec::new(
                Opts::new(
                    "storage_operations_total",
                    "Storage operations (provision, delete, expand, bind) by class, outcome and reason.",
                ),
                &["operation", "class", "outcome", "reason"],
            )
            .map_err(creation_error("storage_operations_total"))?,
            claims: IntGaugeVec::new(
                Opts::new(
                    "storage_claims",
                    "PersistentVolumeClaims by phase and storage class.",
                ),
                &["phase", "class"],
            )
            .map_err(creation_error("storage_claims"))?,
            expansion_blocked: IntCounterVec::new(
                Opts::new(
                    "storage_expansion_blocked_total",
                    "Claims that asked to grow on a class that does not allow expansion.",
                ),
                &["class"],
            )
            .map_err(creation_error("storage_expansion_blocked_total"))?,
            reconcile_errors: IntCounterVec::new(
                Opts::new(
                    "storage_reconcile_errors_total",
                    "Failed reconciles of the storage controller, by error category.",
                ),
                &["reason"],
            )
            .map_err(creation_error("storage_reconcile_errors_total"))?,
        })
    }

    /// Counts a successful operation (`reason` empty).
    pub fn succeeded(&self, operation: Operation, class: &str) {
        self.operations
            .with_label_values(&[operation.as_str(), class, "success", ""])
            .inc();
    }

    /// Counts a failed operation with the error category as `reason`.
    pub fn failed(&self, operation: Operation, class: &str, reason: &str) {
        self.operations
            .with_label_values(&[operation.as_str(), class, "failure", reason])
            .inc();
    }

    /// Records how long provisioning a volume of `class` took.
    pub fn provisioned_in(&self, class: &str, elapsed: Duration) {
        self.provision_duration
            .with_label_values(&[class])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a growth refused because the class does not allow expansion.
    pub fn expansion_blocked(&self, class: &str) {
        self.expansion_blocked.with_label_values(&[class]).inc();
    }

    /// Counts a failed reconcile.
    pub fn reconcile_error(&self, reason: &str) {
        self.reconcile_errors.with_label_values(&[reason]).inc();
    }

    /// Exports zero-valued series for a class, so dashboards and `rate()` show 0 rather than no
    /// data before the first operation: successes of every operation, and blocked expansions.
    pub fn initialize_class(&self, class: &str) {
        for operation in [
            Operation::Provision,
            Operation::Delete,
            Operation::Expand,
            Operation::Bind,
        ] {
            self.operations
                .with_label_values(&[operation.as_str(), class, "success", ""]);
        }
        self.expansion_blocked.with_label_values(&[class]);
    }

    /// Exports zero-valued reconcile error series for the given categories.
    pub fn initialize_reconcile_errors(&self, reasons: &[&str]) {
        for reason in reasons {
            self.reconcile_errors.with_label_values(&[reason]);
        }
    }

    /// Replaces `storage_claims` with `counts` ((phase, class) → claims).
    pub fn set_claims(&self, counts: &BTreeMap<(String, String), i64>) {
        self.claims.reset();
        for ((phase, class), count) in counts {
            self.claims
                .with_label_values(&[phase.as_str(), class.as_str()])
                .set(*count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_labels() -> Result<(), MetricsError> {
        let metrics = Metrics::new()?;
        let storage = StorageMetrics::register(&metrics)?;
        storage.succeeded(Operation::Provision, "nfs");
        storage.failed(Operation::Delete, "local-path", "helper-timeout");
        storage.provisioned_in("nfs", Duration::from_millis(30));
        storage.expansion_blocked("fixed");
        storage.reconcile_error("api");
        storage.set_claims(&BTreeMap::from([(("Bound".into(), "nfs".into()), 3)]));
        storage.initialize_class("longhorn");
        storage.initialize_reconcile_errors(&["conflict"]);
        let text = metrics.encode()?;
        for line in [
            "stowage_storage_operations_total{class=\"nfs\",operation=\"provision\",outcome=\"success\",reason=\"\"} 1",
            "stowage_storage_operations_total{class=\"local-path\",operation=\"delete\",outcome=\"failure\",reason=\"helper-timeout\"} 1",
            "stowage_storage_provision_duration_seconds_count{class=\"nfs\"} 1",
            "stowage_storage_expansion_blocked_total{class=\"fixed\"} 1",
            "stowage_storage_reconcile_errors_total{reason=\"api\"} 1",
            "stowage_storage_claims{class=\"nfs\",phase=\"Bound\"} 3",
            "stowage_storage_operations_total{class=\"longhorn\",operation=\"expand\",outcome=\"success\",reason=\"\"} 0",
            "stowage_storage_expansion_blocked_total{class=\"longhorn\"} 0",
            "stowage_storage_reconcile_errors_total{reason=\"conflict\"} 0",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        Ok(())
    }
}
