//! Shared pieces of the storage controller's end-to-end tests: an emulator with a client, object
//! builders, and polling with a deadline (never a sleep as synchronisation).

pub mod builders;

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::core::ObjectMeta;
use stowage_emulator::{Emulator, EmulatorConfig, RunningEmulator};

/// Upper bound of every test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a condition is looked at.
const POLL: Duration = Duration::from_millis(20);

/// An emulator and a kube client for it.
pub struct Cluster {
    pub emulator: RunningEmulator,
    pub client: kube::Client,
}

impl Cluster {
    /// Starts an emulator with the namespaces `namespaces` created.
    pub async fn start(config: EmulatorConfig, namespaces: &[&str]) -> Self {
        let emulator = Emulator::start(config).await.expect("start the emulator");
        let client = stowage::sandbox::client_for(&emulator.url()).expect("client");
        let api: Api<Namespace> = Api::all(client.clone());
        for name in namespaces {
            let namespace = Namespace {
                metadata: ObjectMeta {
                    name: Some((*name).to_owned()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            };
            match api.create(&PostParams::default(), &namespace).await {
                Ok(_) => {}
                Err(kube::Error::Api(err)) if err.code == 409 => {}
                Err(err) => panic!("create namespace {name}: {err}"),
            }
        }
        Self { emulator, client }
    }

    /// An emulator with default settings and the `stowage` namespace.
    pub async fn plain() -> Self {
        Self::start(EmulatorConfig::default(), &["stowage"]).await
    }

    pub async fn stop(self) {
        self.emulator.shutdown().await;
    }
}

/// Calls `check` until it returns `Some`, or panics with `what` and the last observation after
/// `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let last = match check().await {
            Ok(value) => return value,
            Err(observed) => observed,
        };
        if tokio::time::Instant::now() >= deadline {
            panic!("{what}: not within {within:?}; last seen: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The storage controller (with its election) running against a [`Cluster`].
pub struct Controller {
    pub metrics: stowage::metrics::Metrics,
    shutdown: stowage::shutdown::Shutdown,
    election: Option<stowage::leader::Election>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Controller {
    /// Starts the controller in the mode `config.storage.binder` says, and waits until it leads.
    pub async fn start(cluster: &Cluster, config: &stowage::config::Config) -> Self {
        use stowage::leader::{Election, ElectionSettings, LeaderMetrics};
        use stowage::storage::controller::{self, ControllerSettings};
        let metrics = stowage::metrics::Metrics::new().expect("metrics");
        let shutdown = stowage::shutdown::Shutdown::new();
        let mut election_settings = ElectionSettings::from_config(&config.storage.controller);
        election_settings.lease_duration = Duration::from_secs(2);
        election_settings.renew_deadline = Duration::from_secs(1);
        let election = Election::start(
            cluster.client.clone(),
            election_settings.clone(),
            LeaderMetrics::register(&metrics).expect("leader metrics"),
            shutdown.clone(),
        );
        let settings = ControllerSettings::from_config(config, election_settings.identity);
        let task = tokio::spawn(controller::run(
            cluster.client.clone(),
            settings,
            stowage::storage::metrics::StorageMetrics::register(&metrics).expect("storage metrics"),
            election.leading(),
            shutdown.clone(),
        ));
        let mut leading = election.leading();
        tokio::time::timeout(Duration::from_secs(10), leading.wait_for(|leads| *leads))
            .await
            .expect("the controller leads within 10s")
            .expect("election running");
        Self {
            metrics,
            shutdown,
            election: Some(election),
            task: Some(task),
        }
    }

    /// The controller's metrics in the text format.
    pub fn metrics_text(&self) -> String {
        self.metrics.encode().expect("encode metrics")
    }

    /// Stops the controller and waits for it (and the Lease release).
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(task) = self.task.take() {
            task.await.expect("controller task");
        }
        if let Some(election) = self.election.take() {
            election.stopped().await;
        }
    }
}

/// A binder-mode configuration (helper pods and NFS as `configure` sets them).
pub fn binder_config() -> stowage::config::Config {
    let mut config = stowage::config::Config::default();
    config.storage.binder = true;
    config
}

/// Waits up to `within` for an Event with `reason` about the object `name` in `namespace` whose
/// message contains `needle`; returns the message. Earlier Events with the same reason but another
/// message (a decision made before a cache caught up) are skipped.
pub async fn event_for(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    reason: &str,
    needle: &str,
    within: Duration,
) -> String {
    use k8s_openapi::api::core::v1::Event;
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    eventually(
        within,
        &format!("event {reason} ({needle:?}) for {name}"),
        || async {
            let list = events
                .list(&kube::api::ListParams::default())
                .await
                .map_err(|err| err.to_string())?;
            let mut seen = Vec::new();
            for event in &list.items {
                if event.reason.as_deref() == Some(reason)
                    && event.involved_object.name.as_deref() == Some(name)
                {
                    let message = event.message.clone().unwrap_or_default();
                    if message.contains(needle) {
                        return Ok(message);
                    }
                    seen.push(message);
                }
            }
            Err(format!("{reason} events seen: {seen:?}"))
        },
    )
    .await
}
