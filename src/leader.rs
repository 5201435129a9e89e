//! Leader election through a `coordination.k8s.io/v1` Lease: only the replica holding it writes to
//! the cluster. Built on the `kube-lease-manager` crate (server-side apply with conflict detection);
//! this module adds Stowage's settings, the `stowage_leader{lease}` gauge, restarts after failures
//! and the release on shutdown.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseCreateMode, LeaseManagerBuilder};
use prometheus::{IntGaugeVec, Opts};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::StorageControllerConfig;
use crate::metrics::{Metrics, MetricsError};
use crate::shutdown::Shutdown;

/// Errors of the election; each is retried after `retry_period`.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be read, created or written.
    #[error("cannot take part in the election for Lease {namespace}/{lease}")]
    Lease {
        namespace: String,
        lease: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
    /// The background task of the lease manager ended abnormally.
    #[error("the election task for Lease {lease} ended abnormally")]
    Task {
        lease: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

impl LeaderError {
    /// Metrics and log label.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Lease { .. } => "lease",
            Self::Task { .. } => "task",
        }
    }
}

/// Who competes for which Lease, and how fast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's `holderIdentity`: unique among the replicas.
    pub identity: String,
    /// Validity of the Lease after a renewal (whole seconds).
    pub lease_duration: Duration,
    /// Renewal happens this long after the previous one (below `lease_duration`).
    pub renew_deadline: Duration,
    /// Pause before the election starts again after a failure.
    pub retry_period: Duration,
}

impl ElectionSettings {
    /// Settings from `storage.controller`; the identity is the pod (host) name plus a random
    /// suffix, so a restarted pod never mistakes its predecessor's Lease for its own.
    pub fn from_config(config: &StorageControllerConfig) -> Self {
        Self {
            namespace: config.namespace.clone(),
            lease_name: config.lease_name.clone(),
            identity: default_identity(),
            lease_duration: config.lease_duration,
            renew_deadline: config.renew_deadline,
            retry_period: config.retry_period,
        }
    }

    /// Whole seconds the Lease lasts, at least 2 (the crate needs a grace below the duration).
    fn duration_seconds(&self) -> u64 {
        self.lease_duration.as_secs().max(2)
    }

    /// Seconds before expiry at which the leader renews, at least 1, below the duration.
    fn grace_seconds(&self) -> u64 {
        let duration = self.duration_seconds();
        duration
            .saturating_sub(self.renew_deadline.as_secs())
            .clamp(1, duration - 1)
    }
}

/// `$POD_NAME` or `$HOSTNAME` (else `stowage`), a dash, and a random UUID.
pub fn default_identity() -> String {
    let base = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "stowage".to_owned());
    format!("{base}-{}", uuid::Uuid::new_v4())
}

/// The `stowage_leader{lease}` gauge: 1 while this replica holds the Lease.
#[derive(Clone)]
pub struct LeaderMetrics {
    leader: IntGaugeVec,
}

impl LeaderMetrics {
    /// Creates the gauge and registers it with `metrics`.
    pub fn register(metrics: &Metrics) -> Result<Self, MetricsError> {
        let this = Self::unregistered()?;
        metrics.register(Box::new(this.leader.clone()))?;
        Ok(this)
    }

    /// The gauge without a registry (tests, and callers that register it themselves).
    pub fn unregistered() -> Result<Self, MetricsError> {
        let leader = IntGaugeVec::new(
            Opts::new(
                "leader",
                "1 while this replica holds the leader Lease, 0 otherwise, by Lease name.",
            ),
            &["lease"],
        )
        .map_err(|source| MetricsError::Register {
            name: format!("{}_leader", crate::metrics::NAMESPACE),
            source,
        })?;
        Ok(Self { leader })
    }

    fn set(&self, lease: &str, leading: bool) {
        self.leader
            .with_label_values(&[lease])
            .set(i64::from(leading));
    }
}

/// A running election. [`Election::leading`] says whether this replica leads right now.
pub struct Election {
    leading: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Election {
    /// Starts competing for the Lease in the background until `shutdown` fires; then the Lease
    /// is released (when held) so another replica takes over at once.
    pub fn start(
        client: Client,
        settings: ElectionSettings,
        metrics: LeaderMetrics,
        shutdown: Shutdown,
    ) -> Self {
        let (sender, leading) = watch::channel(false);
        metrics.set(&settings.lease_name, false);
        let task = tokio::spawn(run(client, settings, metrics, sender, shutdown));
        Self { leading, task }
    }

    /// A receiver of "this replica leads"; `changed()` wakes on every transition.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Whether this replica leads right now.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Waits for the election task, which ends after `shutdown` fired and the Lease was
    /// released.
    pub async fn stopped(self) {
        if let Err(err) = self.task.await {
            warn!(error = %err, "the election task ended abnormally");
        }
    }
}

/// Competes, restarting the lease manager after failures, until `shutdown`.
async fn run(
    client: Client,
    settings: ElectionSettings,
    metrics: LeaderMetrics,
    sender: watch::Sender<bool>,
    shutdown: Shutdown,
) {
    loop {
        // Not cancelled by shutdown: `compete` watches it itself, so that it can release the Lease.
        let result = compete(&client, &settings, &metrics, &sender, &shutdown).await;
        publish(&settings, &metrics, &sender, false);
        match result {
            Ok(()) if shutdown.is_triggered() => return,
            Ok(()) => {}
            Err(err) => warn!(
                error = %crate::report::chain(&err),
                category = err.category(),
                retry_in = ?settings.retry_period,
                "leader election failed"
            ),
        }
        tokio::select! {
            () = tokio::time::sleep(settings.retry_period) => {}
            () = shutdown.wait() => return,
        }
    }
}

/// One life of the lease manager: forwards its state until shutdown (then releases) or until it
/// fails.
async fn compete(
    client: &Client,
    settings: &ElectionSettings,
    metrics: &LeaderMetrics,
    sender: &watch::Sender<bool>,
    shutdown: &Shutdown,
) -> Result<(), LeaderError> {
    let lease_error = |source| LeaderError::Lease {
        namespace: settings.namespace.clone(),
        lease: settings.lease_name.clone(),
        source,
    };
    let builder = LeaseManagerBuilder::new(client.clone(), settings.lease_name.clone())
        .with_namespace(settings.namespace.clone())
        .with_create_mode(LeaseCreateMode::AutoCreate)
        .with_identity(settings.identity.clone())
        // Conflicts are detected per field manager, so each replica needs its own.
        .with_field_manager(format!("stowage-leader-{}", settings.identity))
        .with_duration(settings.duration_seconds())
        .with_grace(settings.grace_seconds());
    let manager = tokio::select! {
        built = builder.build() => built.map_err(lease_error)?,
        // Nothing held yet: nothing to release.
        () = shutdown.wait() => return Ok(()),
    };
    let (mut state, task) = manager.watch().await;
    let stopping = loop {
        tokio::select! {
            changed = state.changed() => {
                if changed.is_err() {
                    // The manager's task ended (it failed); its result says why.
                    break false;
                }
                let leading = *state.borrow_and_update();
                publish(settings, metrics, sender, leading);
            }
            () = shutdown.wait() => break true,
        }
    };
    // Stop publishing "leading" before the Lease is released, then let the manager release it.
    publish(settings, metrics, sender, false);
    drop(state);
    let ended = task.await.map_err(|source| LeaderError::Task {
        lease: settings.lease_name.clone(),
        source,
    })?;
    match ended {
        Ok(_) if stopping => {
            info!(lease = %settings.lease_name, "left the leader election");
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(source) => Err(lease_error(source)),
    }
}

fn publish(
    settings: &ElectionSettings,
    metrics: &LeaderMetrics,
    sender: &watch::Sender<bool>,
    leading: bool,
) {
    metrics.set(&settings.lease_name, leading);
    let changed = sender.send_if_modified(|current| {
        let changed = *current != leading;
        *current = leading;
        changed
    });
    if changed {
        info!(
            lease = %settings.lease_name,
            identity = %settings.identity,
            leading,
            "leadership changed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(duration: u64, renew: u64) -> ElectionSettings {
        ElectionSettings {
            namespace: "stowage".into(),
            lease_name: "l".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(duration),
            renew_deadline: Duration::from_secs(renew),
            retry_period: Duration::from_secs(1),
        }
    }

    #[test]
    fn grace_is_the_time_left_after_the_renew_deadline() {
        assert_eq!(settings(15, 10).grace_seconds(), 5);
        assert_eq!(settings(2, 1).grace_seconds(), 1);
        // Out-of-range values (validation refuses them) still give the crate usable numbers.
        assert_eq!(settings(1, 5).duration_seconds(), 2);
        assert_eq!(settings(1, 5).grace_seconds(), 1);
    }

    #[test]
    fn identities_are_unique() {
        assert_ne!(default_identity(), default_identity());
    }
}
