//! Test builders for claims, classes and provision requests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::json;

use super::ProvisionRequest;
use super::shim::ClassKind;

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
