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
