//! Shared fixtures: start an emulator, build a client, small object builders and timeouts.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use stowage_emulator::{Emulator, EmulatorConfig, RunningEmulator};

/// Every async step in these tests is bounded.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s waiting for {what}"),
    }
}

pub async fn start() -> (RunningEmulator, kube::Client) {
    start_with(EmulatorConfig::default()).await
}

pub async fn start_with(config: EmulatorConfig) -> (RunningEmulator, kube::Client) {
    let emu = Emulator::start(config).await.expect("emulator starts");
    let client = client_for(&emu);
    (emu, client)
}

pub fn client_for(emu: &RunningEmulator) -> kube::Client {
    let config = kube::Config::new(emu.url().parse().expect("valid url"));
    kube::Client::try_from(config).expect("client builds")
}

pub fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

pub fn labelled(mut cm: ConfigMap, labels: &[(&str, &str)]) -> ConfigMap {
    cm.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    cm
}

pub async fn create_namespace(client: &kube::Client, name: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    let api: kube::Api<Namespace> = kube::Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    api.create(&Default::default(), &ns)
        .await
        .expect("namespace created");
}

pub fn is_status(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == code)
}
