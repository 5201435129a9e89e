//! The columns the real API server prints per built-in kind (`-o wide` ones at priority 1).

use serde_json::{Value, json};

use super::cells::{
    access_modes, age, containers, data_count, deploy_ready, event_last_seen, event_object, n,
    name, node_roles, node_status, or_none, pod_ready, pod_restarts, pod_status, pv_claim, s,
    selector, svc_ports,
};
use super::human_age;
use crate::resources::ResourceType;

/// One printed column: its Table definition and how to compute a row's cell.
pub(super) struct Column {
    pub(super) name: &'static str,
    pub(super) kind: &'static str,
    /// 0 = default, 1 = only with `-o wide`.
    pub(super) priority: u8,
    pub(super) cell: fn(&Value) -> Value,
}

const fn col(
    name: &'static str,
    kind: &'static str,
    priority: u8,
    cell: fn(&Value) -> Value,
) -> Column {
    Column {
        name,
        kind,
        priority,
        cell,
    }
}

/// The columns of a built-in kind; Name and Age for everything else.
pub(super) fn columns(rt: &ResourceType) -> Vec<Column> {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Pod") => vec![
            col("Name", "string", 0, name),
            col("Ready", "string", 0, pod_ready),
            col("Status", "string", 0, pod_status),
            col("Restarts", "string", 0, pod_restarts),
            col("Age", "string", 0, age),
            col("IP", "string", 1, |v| or_none(s(v, "/status/podIP"))),
            col("Node", "string", 1, |v| or_none(s(v, "/spec/nodeName"))),
        ],
        ("apps", "Deployment") => vec![
            col("Name", "string", 0, name),
            col("Ready", "string", 0, deploy_ready),
            col("Up-to-date", "integer", 0, |v| {
                json!(n(v, "/status/updatedReplicas"))
            }),
            col("Available", "integer", 0, |v| {
                json!(n(v, "/status/availableReplicas"))
            }),
            col("Age", "string", 0, age),
            col("Containers", "string", 1, |v| containers(v, "name")),
            col("Images", "string", 1, |v| containers(v, "image")),
            col("Selector", "string", 1, selector),
        ],
        ("apps", "ReplicaSet") => vec![
            col("Name", "string", 0, name),
            col("Desired", "integer", 0, |v| json!(n(v, "/spec/replicas"))),
            col("Current", "integer", 0, |v| json!(n(v, "/status/replicas"))),
            col("Ready", "integer", 0, |v| {
                json!(n(v, "/status/readyReplicas"))
            }),
            col("Age", "string", 0, age),
        ],
        ("apps", "StatefulSet") => {
            vec![
                col("Name", "string", 0, name),
                col("Ready", "string", 0, deploy_ready),
                col("Age", "string", 0, age),
            ]
        }
        ("apps", "DaemonSet") => vec![
            col("Name", "string", 0, name),
            col("Desired", "integer", 0, |v| {
                json!(n(v, "/status/desiredNumberScheduled"))
            }),
            col("Current", "integer", 0, |v| {
                json!(n(v, "/status/currentNumberScheduled"))
            }),
            col("Ready", "integer", 0, |v| {
                json!(n(v, "/status/numberReady"))
            }),
            col("Up-to-date", "integer", 0, |v| {
                json!(n(v, "/status/updatedNumberScheduled"))
            }),
            col("Available", "integer", 0, |v| {
                json!(n(v, "/status/numberAvailable"))
            }),
            col("Age", "string", 0, age),
        ],
        ("", "Service") => vec![
            col("Name", "string", 0, name),
            col("Type", "string", 0, |v| json!(s(v, "/spec/type"))),
            col("Cluster-IP", "string", 0, |v| {
                or_none(s(v, "/spec/clusterIP"))
            }),
            col("External-IP", "string", 0, |v| {
                or_none(s(v, "/status/loadBalancer/ingress/0/ip"))
            }),
            col("Port(s)", "string", 0, svc_ports),
            col("Age", "string", 0, age),
            col("Selector", "string", 1, selector),
        ],
        ("", "Node") => vec![
            col("Name", "string", 0, name),
            col("Status", "string", 0, node_status),
            col("Roles", "string", 0, node_roles),
            col("Age", "string", 0, age),
            col("Version", "string", 0, |v| {
                json!(s(v, "/status/nodeInfo/kubeletVersion"))
            }),
        ],
        ("", "Namespace") => {
            vec![
                col("Name", "string", 0, name),
                col("Status", "string", 0, |v| json!(s(v, "/status/phase"))),
                col("Age", "string", 0, age),
            ]
        }
        ("", "ConfigMap") => vec![
            col("Name", "string", 0, name),
            col("Data", "integer", 0, data_count),
            col("Age", "string", 0, age),
        ],
        ("", "Secret") => vec![
            col("Name", "string", 0, name),
            col("Type", "string", 0, |v| json!(s(v, "/type"))),
            col("Data", "integer", 0, data_count),
            col("Age", "string", 0, age),
        ],
        ("", "PersistentVolumeClaim") => vec![
            col("Name", "string", 0, name),
            col("Status", "string", 0, |v| json!(s(v, "/status/phase"))),
            col("Volume", "string", 0, |v| json!(s(v, "/spec/volumeName"))),
            col("Capacity", "string", 0, |v| {
                json!(s(v, "/status/capacity/storage"))
            }),
            col("Access Modes", "string", 0, |v| {
                access_modes(v, "/status/accessModes")
            }),
            col("StorageClass", "string", 0, |v| {
                or_none(s(v, "/spec/storageClassName"))
            }),
            col("Age", "string", 0, age),
            col("VolumeMode", "string", 1, |v| {
                json!(s(v, "/spec/volumeMode"))
            }),
        ],
        ("", "PersistentVolume") => vec![
            col("Name", "string", 0, name),
            col("Capacity", "string", 0, |v| {
                json!(s(v, "/spec/capacity/storage"))
            }),
            col("Access Modes", "string", 0, |v| {
                access_modes(v, "/spec/accessModes")
            }),
            col("Reclaim Policy", "string", 0, |v| {
                json!(s(v, "/spec/persistentVolumeReclaimPolicy"))
            }),
            col("Status", "string", 0, |v| json!(s(v, "/status/phase"))),
            col("Claim", "string", 0, pv_claim),
            col("StorageClass", "string", 0, |v| {
                json!(s(v, "/spec/storageClassName"))
            }),
            col("Reason", "string", 0, |v| json!(s(v, "/status/reason"))),
            col("Age", "string", 0, age),
        ],
        ("storage.k8s.io", "StorageClass") => vec![
            col("Name", "string", 0, name),
            col("Provisioner", "string", 0, |v| json!(s(v, "/provisioner"))),
            col("ReclaimPolicy", "string", 0, |v| {
                json!(s(v, "/reclaimPolicy"))
            }),
            col("VolumeBindingMode", "string", 0, |v| {
                json!(s(v, "/volumeBindingMode"))
            }),
            col("AllowVolumeExpansion", "string", 0, |v| {
                json!(
                    v.get("allowVolumeExpansion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        .to_string()
                )
            }),
            col("Age", "string", 0, age),
        ],
        ("", "Event") => vec![
            col("Last Seen", "string", 0, event_last_seen),
            col("Type", "string", 0, |v| json!(s(v, "/type"))),
            col("Reason", "string", 0, |v| json!(s(v, "/reason"))),
            col("Object", "string", 0, event_object),
            col("Message", "string", 0, |v| json!(s(v, "/message"))),
        ],
        ("batch", "Job") => vec![
            col("Name", "string", 0, name),
            col("Completions", "string", 0, |v| {
                json!(format!(
                    "{}/{}",
                    n(v, "/status/succeeded"),
                    v.pointer("/spec/completions")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ))
            }),
            col("Age", "string", 0, age),
        ],
        ("batch", "CronJob") => vec![
            col("Name", "string", 0, name),
            col("Schedule", "string", 0, |v| json!(s(v, "/spec/schedule"))),
            col("Suspend", "boolean", 0, |v| {
                json!(
                    v.pointer("/spec/suspend")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                )
            }),
            col("Active", "integer", 0, |v| {
                json!(
                    v.pointer("/status/active")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                )
            }),
            col("Last Schedule", "string", 0, |v| {
                or_none(
                    s(v, "/status/lastScheduleTime")
                        .is_empty()
                        .then(String::new)
                        .unwrap_or_else(|| human_age(&s(v, "/status/lastScheduleTime"))),
                )
            }),
            col("Age", "string", 0, age),
        ],
        ("networking.k8s.io", "Ingress") => vec![
            col("Name", "string", 0, name),
            col("Class", "string", 0, |v| {
                or_none(s(v, "/spec/ingressClassName"))
            }),
            col("Hosts", "string", 0, |v| {
                let hosts = v
                    .pointer("/spec/rules")
                    .and_then(Value::as_array)
                    .map(|rs| {
                        rs.iter()
                            .filter_map(|r| r["host"].as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                json!(if hosts.is_empty() {
                    "*".to_string()
                } else {
                    hosts
                })
            }),
            col("Address", "string", 0, |v| {
                json!(s(v, "/status/loadBalancer/ingress/0/ip"))
            }),
            col("Ports", "string", 0, |v| {
                json!(if v.pointer("/spec/tls").is_some() {
                    "80, 443"
                } else {
                    "80"
                })
            }),
            col("Age", "string", 0, age),
        ],
        _ => vec![col("Name", "string", 0, name), col("Age", "string", 0, age)],
    }
}
