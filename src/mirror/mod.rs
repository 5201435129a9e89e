//! Mirroring: a registry of kinds (data), one watcher per kind, a batching pipeline into the store,
//! and the health the REST API and `/readyz` report.
//!
//! [`Mirror::start`] wires it up: the registry ([`sources`]) resolves built-in, configured and
//! `ResourceMirror` kinds against API discovery; the [`supervisor`] runs one [`pipeline`] per
//! served kind behind a shared [`breaker`]; [`status`] keeps `ResourceMirror` statuses current.

pub mod batcher;
pub mod breaker;
pub mod builtin;
pub mod health;
pub mod kind;
pub mod metrics;
pub mod object;
pub mod path;
pub mod pipeline;
pub mod registry;
pub mod resolve;
pub mod sources;
pub mod status;
pub mod supervisor;
pub mod tracker;
pub mod wire;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::MirrorConfig;
use crate::metrics::{Metrics, MetricsError};
use crate::mirror::batcher::BatchSettings;
use crate::mirror::breaker::Breaker;
use crate::mirror::health::MirrorHealth;
use crate::mirror::metrics::MirrorMetrics;
use crate::mirror::pipeline::{Epochs, PipelineSettings};
use crate::mirror::registry::{Kinds, KindsReceiver};
use crate::mirror::resolve::Resolution;
use crate::mirror::supervisor::Supervisor;
use crate::store::Store;

/// Errors from starting the mirror.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("cannot register the mirror's metrics")]
    Metrics {
        #[source]
        source: MetricsError,
    },
}

impl MirrorError {
    /// Metrics label.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Metrics { .. } => "metrics",
        }
    }
}

/// The running mirror. What the REST API needs is [`Mirror::store`], [`Mirror::kinds`] and
/// [`Mirror::health`]; dropping the handle does not stop it, [`Mirror::shutdown`] does.
pub struct Mirror {
    store: Arc<dyn Store>,
    kinds: KindsReceiver,
    health: MirrorHealth,
    resolutions: watch::Receiver<Arc<Resolution>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Mirror {
    /// [`Mirror::start_with_leader`] for a process that is the only writer of `ResourceMirror`
    /// statuses (tests, benchmarks, a single replica).
    pub fn start(
        client: kube::Client,
        config: &MirrorConfig,
        store: Arc<dyn Store>,
        metrics: &Metrics,
    ) -> Result<Self, MirrorError> {
        Self::start_with_leader(client, config, store, metrics, watch::channel(true).1)
    }

    /// Starts the registry, the supervisor and the status writer (nothing when
    /// `mirror.enabled` is false). Every replica mirrors and serves; only the one `leading`
    /// (the Lease holder) writes `ResourceMirror` statuses. Needs a Tokio runtime.
    pub fn start_with_leader(
        client: kube::Client,
        config: &MirrorConfig,
        store: Arc<dyn Store>,
        metrics: &Metrics,
        leading: watch::Receiver<bool>,
    ) -> Result<Self, MirrorError> {
        let health = MirrorHealth::new(store.backend());
        let mirror_metrics =
            MirrorMetrics::register(metrics).map_err(|source| MirrorError::Metrics { source })?;
        let (kinds_tx, kinds) = watch::channel(Arc::new(Kinds::default()));
        let (resolution_tx, resolutions) = watch::channel(Arc::new(Resolution::default()));
        let mut tasks = Vec::new();
        if !config.enabled {
            tracing::info!("mirroring is disabled (mirror.enabled: false)");
            resolution_tx.send_replace(Arc::new(Resolution {
                complete: true,
                ..Resolution::default()
            }));
            return Ok(Self {
                store,
                kinds,
                health,
                resolutions,
                tasks,
            });
        }
        let breaker = Breaker::new(&config.breaker, health.clone(), mirror_metrics.clone());
        let supervisor = Supervisor {
            client: client.clone(),
            store: store.clone(),
            health: health.clone(),
            metrics: mirror_metrics,
            breaker,
            settings: PipelineSettings {
                batch: BatchSettings {
                    batch_size: config.batch_size.max(1),
                    batch_interval: config.batch_interval,
                },
                queue_capacity: config.queue_capacity,
                streaming: false,
            },
            list_mode: config.list,
            kinds: kinds_tx,
            epochs: Arc::new(Epochs::default()),
        };
        tasks.push(tokio::spawn(supervisor.run(resolution_tx.subscribe())));
        tasks.push(tokio::spawn(status::run(
            client.clone(),
            health.clone(),
            resolution_tx.subscribe(),
            leading,
        )));
        tasks.push(tokio::spawn(sources::run(
            client,
            config.clone(),
            resolution_tx,
        )));
        Ok(Self {
            store,
            kinds,
            health,
            resolutions,
            tasks,
        })
    }

    /// The store everything is mirrored into.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The mirrored kinds, updated as the registry changes (only registered kinds appear).
    pub fn kinds(&self) -> KindsReceiver {
        self.kinds.clone()
    }

    pub fn health(&self) -> MirrorHealth {
        self.health.clone()
    }

    /// `Ok` once the registry resolved its kinds and every mirrored kind finished its initial
    /// sync; otherwise what is still awaited.
    pub fn initial_sync(&self) -> Result<(), String> {
        let resolution = self.resolutions.borrow().clone();
        initial_sync(&resolution, &self.kinds.borrow(), &self.health)
    }

    /// Stops every task.
    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Readiness of the mirror: the registry resolved, the supervisor published what it resolved,
/// and each published kind completed its initial list.
pub fn initial_sync(
    resolution: &Resolution,
    published: &Kinds,
    health: &MirrorHealth,
) -> Result<(), String> {
    if !resolution.complete {
        return Err("resolving the kinds to mirror".into());
    }
    if !resolution.pending.is_empty() {
        return Err(format!(
            "waiting for API discovery of {}",
            resolution.pending.join(", ")
        ));
    }
    if published != &resolution.kinds {
        return Err("starting the mirrored kinds".into());
    }
    let waiting: Vec<String> = published
        .all()
        .map(|spec| spec.id())
        .filter(|id| !health.kind(id).is_some_and(|h| h.initial_sync_done))
        .collect();
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "initial sync of {} kind(s) in progress: {}",
            waiting.len(),
            waiting.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::builtin;

    #[test]
    fn ready_only_when_every_published_kind_synced() {
        let health = MirrorHealth::new("memory");
        let kinds = Kinds::new(builtin::kinds().into_iter().filter(|k| k.kind == "Pod"));
        let mut resolution = Resolution::default();
        let waiting = |r: &Resolution, published: &Kinds| initial_sync(r, published, &health);
        assert_eq!(
            waiting(&resolution, &kinds),
            Err("resolving the kinds to mirror".into())
        );
        resolution.complete = true;
        resolution.pending = vec!["example.com/v1/Widget".into()];
        assert!(waiting(&resolution, &kinds).is_err_and(|e| e.contains("discovery")));
        resolution.pending.clear();
        resolution.kinds = kinds.clone();
        assert_eq!(
            waiting(&resolution, &Kinds::default()),
            Err("starting the mirrored kinds".into())
        );
        assert!(waiting(&resolution, &kinds).is_err_and(|e| e.contains("core/v1/Pod")));
        health.update("core/v1/Pod", "pods", |h| h.initial_sync_done = true);
        assert_eq!(waiting(&resolution, &kinds), Ok(()));
    }
}
