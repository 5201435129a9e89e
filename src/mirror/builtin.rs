//! The built-in kinds Stowage mirrors by default, with their typed columns: data only.

use crate::mirror::kind::{ColumnSpec, ColumnType, KindSpec};

/// A column of a built-in kind.
fn col(name: &str, path: &str, column_type: ColumnType) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        path: path.into(),
        column_type,
        index: false,
    }
}

fn indexed(name: &str, path: &str, column_type: ColumnType) -> ColumnSpec {
    ColumnSpec {
        index: true,
        ..col(name, path, column_type)
    }
}

fn kind(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    columns: Vec<ColumnSpec>,
) -> KindSpec {
    KindSpec {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
        prune: Vec::new(),
        keep_secret_data: false,
        columns,
    }
}

/// `spec` and `status` as JSON columns.
fn spec_status() -> [ColumnSpec; 2] {
    [
        col("spec", ".spec", ColumnType::Json),
        col("status", ".status", ColumnType::Json),
    ]
}

/// `replicas` from `.spec.replicas` and `replicas_ready` from `.status.readyReplicas`.
fn replicas() -> Vec<ColumnSpec> {
    use ColumnType::Integer;
    vec![
        col("replicas", ".spec.replicas", Integer),
        col("replicas_ready", ".status.readyReplicas", Integer),
    ]
}

/// Every built-in kind, in a stable order.
pub fn kinds() -> Vec<KindSpec> {
    use ColumnType::{Integer, Json, String};
    let [spec, status] = spec_status();
    vec![
        kind(
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            vec![col("phase", ".status.phase", String)],
        ),
        kind("", "v1", "Node", "nodes", false, vec![]),
        kind(
            "",
            "v1",
            "Pod",
            "pods",
            true,
            vec![
                col("phase", ".status.phase", String),
                col("node_name", ".spec.nodeName", String),
                spec.clone(),
                status.clone(),
            ],
        ),
        kind(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            vec![
                col("replicas", ".spec.replicas", Integer),
                col("replicas_available", ".status.availableReplicas", Integer),
                col("replicas_ready", ".status.readyReplicas", Integer),
                col("replicas_updated", ".status.updatedReplicas", Integer),
                col("strategy", ".spec.strategy.type", String),
                spec.clone(),
                status.clone(),
            ],
        ),
        kind("apps", "v1", "ReplicaSet", "replicasets", true, replicas()),
        kind(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            replicas(),
        ),
        kind(
            "apps",
            "v1",
            "DaemonSet",
            "daemonsets",
            true,
            vec![
                col("replicas", ".status.desiredNumberScheduled", Integer),
                col("replicas_ready", ".status.numberReady", Integer),
            ],
        ),
        kind(
            "",
            "v1",
            "Service",
            "services",
            true,
            vec![
                indexed("type", ".spec.type", String),
                col("cluster_ip", ".spec.clusterIP", String),
                col("ports", ".spec.ports", Json),
                spec,
                status,
            ],
        ),
        kind(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            true,
            vec![],
        ),
        kind(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            vec![
                col("data", ".data", Json),
                col("binary_data", ".binaryData", Json),
            ],
        ),
        kind(
            "",
            "v1",
            "Secret",
            "secrets",
            true,
            vec![
                indexed("type", ".type", String),
                col("data", ".data", Json),
                col("string_data", ".stringData", Json),
            ],
        ),
        kind(
            "",
            "v1",
            "Event",
            "events",
            true,
            vec![
                col("reason", ".reason", String),
                col("type", ".type", String),
            ],
        ),
        kind("batch", "v1", "Job", "jobs", true, vec![]),
        kind("batch", "v1", "CronJob", "cronjobs", true, vec![]),
        kind(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            vec![
                col("phase", ".status.phase", String),
                col("storage_class", ".spec.storageClassName", String),
                col("volume_name", ".spec.volumeName", String),
            ],
        ),
        kind(
            "",
            "v1",
            "PersistentVolume",
            "persistentvolumes",
            false,
            vec![
                col("phase", ".status.phase", String),
                col("storage_class", ".spec.storageClassName", String),
            ],
        ),
        kind(
            "storage.k8s.io",
            "v1",
            "StorageClass",
            "storageclasses",
            false,
            vec![col("provisioner", ".provisioner", String)],
        ),
    ]
}

/// Kind names of the built-in kinds (what `mirror.exclude` accepts).
pub fn kind_names() -> Vec<&'static str> {
    vec![
        "Namespace",
        "Node",
        "Pod",
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Service",
        "Ingress",
        "ConfigMap",
        "Secret",
        "Event",
        "Job",
        "CronJob",
        "PersistentVolumeClaim",
        "PersistentVolume",
        "StorageClass",
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_kinds() {
        let names: Vec<String> = kinds().into_iter().map(|k| k.kind).collect();
        assert_eq!(names, kind_names());
    }

    #[test]
    fn every_column_path_parses_and_names_are_unique() {
        for spec in kinds() {
            for (index, column) in spec.columns.iter().enumerate() {
                assert!(
                    crate::mirror::path::parse(&column.path).is_ok(),
                    "{} {}",
                    spec.id(),
                    column.path
                );
                assert!(
                    !spec.columns[..index].iter().any(|c| c.name == column.name),
                    "{} {}",
                    spec.id(),
                    column.name
                );
            }
        }
    }

    #[test]
    fn columns_follow_the_documented_table() {
        let all = kinds();
        let find = |kind: &str| {
            all.iter()
                .find(|k| k.kind == kind)
                .cloned()
                .unwrap_or_else(|| panic!("{kind}"))
        };
        let deployment = find("Deployment");
        assert_eq!(deployment.group, "apps");
        let replicas = deployment
            .column("replicas")
            .map(|c| (c.path.as_str(), c.column_type));
        assert_eq!(replicas, Some((".spec.replicas", ColumnType::Integer)));
        assert_eq!(find("Service").column("type").map(|c| c.index), Some(true));
        assert_eq!(
            find("Secret")
                .column("type")
                .map(|c| (c.path.as_str(), c.index)),
            Some((".type", true))
        );
        assert_eq!(
            find("DaemonSet")
                .column("replicas")
                .map(|c| c.path.as_str()),
            Some(".status.desiredNumberScheduled")
        );
        assert!(find("Node").columns.is_empty());
        assert!(!find("PersistentVolume").namespaced);
        assert_eq!(find("Ingress").plural, "ingresses");
    }
}
