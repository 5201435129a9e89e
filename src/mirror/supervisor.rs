//! The supervisor follows the registry's resolutions: it starts one pipeline task per served kind,
//! stops (and unregisters) kinds that went away, restarts kinds whose spec changed, reports kinds
//! the cluster does not serve, and then publishes the mirrored kinds to the REST API.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tracing::{info, instrument, warn};

use crate::config::ListMode;
use crate::mirror::batcher::bounded;
use crate::mirror::breaker::Breaker;
use crate::mirror::health::{MirrorHealth, SyncState};
use crate::mirror::kind::KindSpec;
use crate::mirror::metrics::MirrorMetrics;
use crate::mirror::pipeline::{AbortOnDrop, Epochs, KindContext, PipelineSettings, run_kind};
use crate::mirror::registry::Kinds;
use crate::mirror::resolve::Resolution;
use crate::mirror::tracker::KindTracker;
use crate::store::Store;

/// What to do to get from the running kinds to the wanted ones.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// No longer wanted: stop and unregister.
    pub stop: Vec<String>,
    /// Spec changed: stop, unregister (stored objects were shaped by the old spec), start again.
    pub restart: Vec<KindSpec>,
    pub start: Vec<KindSpec>,
}

/// Compares running kinds with wanted ones.
pub fn plan(running: &BTreeMap<String, KindSpec>, wanted: &Kinds) -> Plan {
    let mut plan = Plan::default();
    for id in running.keys() {
        if wanted.by_id(id).is_none() {
            plan.stop.push(id.clone());
        }
    }
    for spec in wanted.all() {
        match running.get(&spec.id()) {
            None => plan.start.push(spec.clone()),
            Some(current) if current != spec => plan.restart.push(spec.clone()),
            Some(_) => {}
        }
    }
    plan
}

/// Whether initial lists should be streaming lists, given `mirror.list` and the API server's
/// minor version (`/version`'s `minor`, e.g. `"33"` or `"33+"`).
pub fn use_streaming(mode: ListMode, minor: Option<&str>) -> bool {
    match mode {
        ListMode::Streaming => true,
        ListMode::Paged => false,
        ListMode::Auto => minor
            .map(|m| m.trim_end_matches(|c: char| !c.is_ascii_digit()))
            .and_then(|m| m.parse::<u32>().ok())
            .is_some_and(|minor| minor >= 32),
    }
}

struct Running {
    spec: KindSpec,
    /// Aborted when dropped, so aborting the supervisor stops every kind.
    task: AbortOnDrop,
}

/// Runs kinds as the registry says.
pub struct Supervisor {
    pub client: kube::Client,
    pub store: Arc<dyn Store>,
    pub health: MirrorHealth,
    pub metrics: MirrorMetrics,
    pub breaker: Breaker,
    pub settings: PipelineSettings,
    pub list_mode: ListMode,
    pub kinds: watch::Sender<Arc<Kinds>>,
    pub epochs: Arc<Epochs>,
}

impl Supervisor {
    /// Applies every resolution until the registry goes away, then stops all kinds.
    #[instrument(name = "supervisor", skip_all)]
    pub async fn run(self, mut resolutions: watch::Receiver<Arc<Resolution>>) {
        let mut running: BTreeMap<String, Running> = BTreeMap::new();
        let mut streaming: Option<bool> = None;
        loop {
            let resolution = resolutions.borrow_and_update().clone();
            if resolution.complete {
                self.apply(&resolution, &mut running, &mut streaming).await;
            }
            if resolutions.changed().await.is_err() {
                break;
            }
        }
        for (_, kind) in std::mem::take(&mut running) {
            kind.task.stop().await;
        }
    }

    async fn apply(
        &self,
        resolution: &Resolution,
        running: &mut BTreeMap<String, Running>,
        streaming: &mut Option<bool>,
    ) {
        let specs: BTreeMap<String, KindSpec> = running
            .iter()
            .map(|(id, r)| (id.clone(), r.spec.clone()))
            .collect();
        let plan = plan(&specs, &resolution.kinds);
        for id in &plan.stop {
            if let Some(kind) = running.remove(id) {
                info!(kind = %id, "no longer mirrored");
                self.stop(kind).await;
            }
        }
        for spec in &plan.restart {
            if let Some(kind) = running.remove(&spec.id()) {
                info!(kind = %spec.id(), "spec changed; mirroring it afresh");
                self.stop(kind).await;
            }
        }
        for missing in &resolution.not_served {
            if running.contains_key(&missing.id) {
                continue;
            }
            let reason = missing.reason.clone();
            self.health.update(&missing.id, &missing.plural, |h| {
                h.state = SyncState::NotServed;
                h.last_error = Some(reason);
            });
        }
        for stale in self.health.kinds() {
            let wanted = resolution.kinds.by_id(&stale.kind).is_some()
                || resolution.not_served.iter().any(|n| n.id == stale.kind);
            if !wanted && !running.contains_key(&stale.kind) {
                self.health.remove(&stale.kind);
            }
        }
        let to_start: Vec<&KindSpec> = plan.start.iter().chain(&plan.restart).collect();
        if !to_start.is_empty() && streaming.is_none() {
            *streaming = self.detect_streaming().await;
        }
        for spec in to_start {
            info!(kind = %spec.id(), plural = %spec.plural, "mirroring");
            // Register before publishing so the REST API never sees an unregistered kind; a
            // failure is retried by the kind's own task.
            if let Err(err) = bounded(self.store.register(spec)).await {
                warn!(kind = %spec.id(), error = %crate::report::chain(&err), "cannot register kind yet");
            }
            let tracker = KindTracker::new(
                spec.id(),
                spec.plural.clone(),
                self.health.clone(),
                self.metrics.clone(),
            );
            let settings = PipelineSettings {
                streaming: streaming.unwrap_or(false),
                ..self.settings
            };
            let context = KindContext {
                spec: spec.clone(),
                client: self.client.clone(),
                store: self.store.clone(),
                breaker: self.breaker.clone(),
                metrics: self.metrics.clone(),
                tracker,
                settings,
                epochs: self.epochs.clone(),
            };
            running.insert(
                spec.id(),
                Running {
                    spec: spec.clone(),
                    task: AbortOnDrop(tokio::spawn(run_kind(context))),
                },
            );
        }
        self.kinds.send_if_modified(|current| {
            if **current == resolution.kinds {
                return false;
            }
            *current = Arc::new(resolution.kinds.clone());
            true
        });
    }

    async fn stop(&self, kind: Running) {
        kind.task.stop().await;
        let id = kind.spec.id();
        if let Err(err) = bounded(self.store.unregister(&kind.spec)).await {
            warn!(kind = %id, error = %crate::report::chain(&err), "cannot unregister kind from the store");
        }
        self.health.remove(&id);
        self.metrics.forget(&id);
    }

    /// Asks `/version` once to choose between streaming and paged lists (`mirror.list: auto`);
    /// `None` when the API server did not answer (paged lists are used meanwhile).
    async fn detect_streaming(&self) -> Option<bool> {
        if self.list_mode != ListMode::Auto {
            return Some(use_streaming(self.list_mode, None));
        }
        match tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.client.apiserver_version(),
        )
        .await
        {
            Ok(Ok(version)) => {
                let streaming = use_streaming(self.list_mode, Some(&version.minor));
                info!(version = %version.git_version, streaming, "chose how to list");
                Some(streaming)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::builtin;

    #[test]
    fn plans_starts_stops_and_restarts() {
        let all = builtin::kinds();
        let pick = |kind: &str| {
            all.iter()
                .find(|k| k.kind == kind)
                .cloned()
                .unwrap_or_else(|| panic!("{kind}"))
        };
        let running: BTreeMap<String, KindSpec> = [pick("Pod"), pick("Node"), pick("Secret")]
            .into_iter()
            .map(|s| (s.id(), s))
            .collect();
        let mut secret = pick("Secret");
        secret.keep_secret_data = true;
        let wanted = Kinds::new([pick("Pod"), secret.clone(), pick("Event")]);
        let got = plan(&running, &wanted);
        assert_eq!(
            got,
            Plan {
                stop: vec!["core/v1/Node".into()],
                restart: vec![secret],
                start: vec![pick("Event")]
            }
        );
        assert_eq!(
            plan(&running, &Kinds::new(running.values().cloned())),
            Plan::default()
        );
    }

    #[test]
    fn streaming_lists_from_1_32_in_auto_mode() {
        let cases = [
            (ListMode::Auto, Some("33"), true),
            (ListMode::Auto, Some("32+"), true),
            (ListMode::Auto, Some("31"), false),
            (ListMode::Auto, Some("x"), false),
            (ListMode::Auto, None, false),
            (ListMode::Streaming, Some("20"), true),
            (ListMode::Paged, Some("33"), false),
        ];
        for (mode, minor, want) in cases {
            assert_eq!(use_streaming(mode, minor), want, "{mode:?} {minor:?}");
        }
    }
}
