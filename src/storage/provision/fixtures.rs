//! Test builders for claims, classes and provision requests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::json;

use super::ProvisionRequest;
use crate::storage::class::ClassKind;

/// A 1Gi RWO claim `ns/name` with uid `uid-<name>`.
pub fn claim(namespace: &str, name: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}")},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "fast"
        }
    }))
    .expect("claim")
}

/// Class `fast` of `provisioner` with `parameters`.
pub fn class(provisioner: &str, parameters: &[(&str, &str)]) -> StorageClass {
    let parameters: BTreeMap<String, String> = parameters
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": "fast"},
        "provisioner": provisioner,
        "parameters": parameters,
        "reclaimPolicy": "Delete",
        "mountOptions": ["nfsvers=4.1"]
    }))
    .expect("class")
}

/// A request for `claim` of `class` as `pvc-1`.
pub fn request(
    claim: PersistentVolumeClaim,
    class: StorageClass,
    kind: ClassKind,
    selected_node: Option<&str>,
) -> ProvisionRequest {
    ProvisionRequest {
        claim,
        class,
        kind,
        pv_name: "pvc-1".to_string(),
        selected_node: selected_node.map(str::to_string),
    }
}

/// Runs a test body with a deadline, so a hung test fails instead of blocking the suite.
pub async fn within<T>(body: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(30), body)
        .await
        .expect("test timed out after 30 s")
}

/// An emulator over HTTP with a kube client, the `stowage` namespace and helper settings.
pub struct Cluster {
    pub emulator: stowage_emulator::RunningEmulator,
    pub client: kube::Client,
}

impl Cluster {
    /// Starts an emulator with `config`.
    pub async fn start(config: stowage_emulator::EmulatorConfig) -> Self {
        let emulator = stowage_emulator::Emulator::start(config)
            .await
            .expect("emulator");
        let uri = emulator.url().parse().expect("url");
        let client = kube::Client::try_from(kube::Config::new(uri)).expect("client");
        emulator
            .insert(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "stowage"}}),
            )
            .expect("namespace");
        Self { emulator, client }
    }

    /// Adds a Node, Ready or not, with optional annotations.
    pub fn node(&self, name: &str, ready: bool, annotations: &[(&str, &str)]) {
        let annotations: BTreeMap<String, String> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.emulator
            .insert(json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {"kubernetes.io/hostname": name},
                    "annotations": annotations
                },
                "status": {"conditions": [
                    {"type": "Ready", "status": if ready { "True" } else { "False" }}
                ]}
            }))
            .expect("node");
    }

    /// Names of the pods in the helper namespace.
    pub async fn helper_pods(&self) -> Vec<String> {
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(self.client.clone(), "stowage");
        let list = pods
            .list(&kube::api::ListParams::default())
            .await
            .expect("list pods");
        list.items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect()
    }

    /// Polls until no helper pod is left (deadline: the caller's `within`).
    pub async fn until_no_helper_pods(&self) {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
        loop {
            tick.tick().await;
            if self.helper_pods().await.is_empty() {
                return;
            }
        }
    }

    /// Polls until a pod named `name` exists in the helper namespace.
    pub async fn until_pod_exists(&self, name: &str) {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
        loop {
            tick.tick().await;
            if self.helper_pods().await.iter().any(|p| p == name) {
                return;
            }
        }
    }

    pub async fn stop(self) {
        self.emulator.shutdown().await;
    }
}
