//! `GET /api/v1/stats/overview`: object counts by kind and namespace, pods by phase and workload
//! replicas. The handler samples the store per kind; [`aggregate`] folds the samples without I/O.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::ApiState;
use super::error::ApiError;
use crate::mirror::kind::{ColumnType, KindSpec};
use crate::store::{GroupBy, Revision, Store, StoreError};

/// Kinds whose `replicas` / `replicas_ready` integer columns are summed as workloads.
pub const WORKLOAD_KINDS: [&str; 4] = ["Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"];
/// Desired replicas column of a workload kind.
pub const REPLICAS: &str = "replicas";
/// Ready replicas column of a workload kind.
pub const REPLICAS_READY: &str = "replicas_ready";
/// The Pod column grouped for `podsByPhase`.
pub const PHASE: &str = "phase";

/// What the store said about one kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindSample {
    /// [`KindSpec::id`].
    pub id: String,
    pub kind: String,
    pub plural: String,
    pub objects: usize,
    /// Objects per namespace (empty for cluster-scoped kinds).
    pub by_namespace: BTreeMap<String, usize>,
    /// Pods per phase, for the Pod kind only.
    pub phases: Option<BTreeMap<String, usize>>,
    /// Replica sums, for workload kinds only.
    pub replicas: Option<Replicas>,
}

/// Desired and ready replicas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Replicas {
    pub desired: i64,
    pub ready: i64,
}

/// One kind's line of the overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindCount {
    pub kind: String,
    pub plural: String,
    pub objects: usize,
}

/// The overview document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    /// Store revision when the overview was taken.
    pub revision: Revision,
    /// Objects of all kinds.
    pub objects: usize,
    /// By [`KindSpec::id`].
    pub by_kind: BTreeMap<String, KindCount>,
    /// Objects of all namespaced kinds per namespace.
    pub by_namespace: BTreeMap<String, usize>,
    /// Pods per phase (`Unknown` for pods without one); empty when Pod is not mirrored.
    pub pods_by_phase: BTreeMap<String, usize>,
    /// Replica sums per workload kind name.
    pub workloads: BTreeMap<String, Replicas>,
    /// Replica sums over all workload kinds.
    pub workloads_total: Replicas,
}

/// Whether `spec` is core Pod with a `phase` column.
pub fn is_pod_kind(spec: &KindSpec) -> bool {
    spec.group.is_empty() && spec.kind == "Pod" && spec.column(PHASE).is_some()
}

/// Whether `spec` is a workload kind defining integer `replicas` and `replicas_ready` columns.
pub fn is_workload(spec: &KindSpec) -> bool {
    let integer = |name: &str| {
        spec.column(name)
            .is_some_and(|c| c.column_type == ColumnType::Integer)
    };
    WORKLOAD_KINDS.contains(&spec.kind.as_str()) && integer(REPLICAS) && integer(REPLICAS_READY)
}

/// Folds per-kind samples into the overview.
pub fn aggregate(revision: Revision, samples: &[KindSample]) -> Overview {
    let mut overview = Overview {
        revision,
        objects: 0,
        by_kind: BTreeMap::new(),
        by_namespace: BTreeMap::new(),
        pods_by_phase: BTreeMap::new(),
        workloads: BTreeMap::new(),
        workloads_total: Replicas::default(),
    };
    for sample in samples {
        overview.objects += sample.objects;
        overview.by_kind.insert(
            sample.id.clone(),
            KindCount {
                kind: sample.kind.clone(),
                plural: sample.plural.clone(),
                objects: sample.objects,
            },
        );
        for (namespace, count) in &sample.by_namespace {
            *overview.by_namespace.entry(namespace.clone()).or_default() += count;
        }
        for (phase, count) in sample.phases.iter().flatten() {
            let phase = if phase.is_empty() {
                "Unknown"
            } else {
                phase.as_str()
            };
            *overview.pods_by_phase.entry(phase.to_string()).or_default() += count;
        }
        if let Some(replicas) = sample.replicas {
            let entry = overview.workloads.entry(sample.kind.clone()).or_default();
            entry.desired += replicas.desired;
            entry.ready += replicas.ready;
            overview.workloads_total.desired += replicas.desired;
            overview.workloads_total.ready += replicas.ready;
        }
    }
    overview
}

/// Reads one kind's numbers from the store.
async fn sample(store: &dyn Store, spec: &KindSpec) -> Result<KindSample, StoreError> {
    let objects = store.count(spec).await?;
    let by_namespace = if spec.namespaced {
        store.group_count(spec, &GroupBy::Namespace).await?
    } else {
        BTreeMap::new()
    };
    let phases = if is_pod_kind(spec) {
        Some(
            store
                .group_count(spec, &GroupBy::Column(PHASE.to_string()))
                .await?,
        )
    } else {
        None
    };
    let replicas = if is_workload(spec) {
        let sums = store
            .column_sums(spec, &[REPLICAS.to_string(), REPLICAS_READY.to_string()])
            .await?;
        let sum = |name: &str| sums.get(name).copied().unwrap_or_default();
        Some(Replicas {
            desired: sum(REPLICAS),
            ready: sum(REPLICAS_READY),
        })
    } else {
        None
    };
    Ok(KindSample {
        id: spec.id(),
        kind: spec.kind.clone(),
        plural: spec.plural.clone(),
        objects,
        by_namespace,
        phases,
        replicas,
    })
}

/// `GET /api/v1/stats/overview`. A kind the store has not registered yet counts as empty.
pub async fn overview(State(state): State<ApiState>) -> Result<Json<Overview>, ApiError> {
    let kinds = state.kinds.borrow().clone();
    let revision = state.store.revision().await?;
    let mut samples = Vec::with_capacity(kinds.all().len());
    for spec in kinds.all() {
        match sample(state.store.as_ref(), spec).await {
            Ok(sample) => samples.push(sample),
            Err(StoreError::UnknownKind(_)) => samples.push(KindSample {
                id: spec.id(),
                kind: spec.kind.clone(),
                plural: spec.plural.clone(),
                ..KindSample::default()
            }),
            Err(err) => return Err(err.into()),
        }
    }
    Ok(Json(aggregate(revision, &samples)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::kind::ColumnSpec;

    fn sample(id: &str, objects: usize, namespaces: &[(&str, usize)]) -> KindSample {
        let kind = id.rsplit('/').next().unwrap_or_default().to_string();
        KindSample {
            id: id.into(),
            plural: format!("{}s", kind.to_lowercase()),
            kind,
            objects,
            by_namespace: namespaces
                .iter()
                .map(|(ns, n)| (ns.to_string(), *n))
                .collect(),
            ..KindSample::default()
        }
    }

    #[test]
    fn sums_kinds_namespaces_phases_and_replicas() {
        let pods = KindSample {
            phases: Some(BTreeMap::from([
                ("Running".into(), 3),
                ("Pending".into(), 1),
                (String::new(), 1),
            ])),
            ..sample("core/v1/Pod", 5, &[("shop", 4), ("data", 1)])
        };
        let deployments = KindSample {
            replicas: Some(Replicas {
                desired: 5,
                ready: 4,
            }),
            ..sample("apps/v1/Deployment", 2, &[("shop", 2)])
        };
        let statefulsets = KindSample {
            replicas: Some(Replicas {
                desired: 3,
                ready: 3,
            }),
            ..sample("apps/v1/StatefulSet", 1, &[("data", 1)])
        };
        let nodes = sample("core/v1/Node", 3, &[]);

        let overview = aggregate(17, &[pods, deployments, statefulsets, nodes]);
        assert_eq!(overview.revision, 17);
        assert_eq!(overview.objects, 11);
        assert_eq!(overview.by_kind["core/v1/Node"].objects, 3);
        assert_eq!(overview.by_kind["core/v1/Pod"].plural, "pods");
        assert_eq!(
            overview.by_namespace,
            BTreeMap::from([("data".into(), 2), ("shop".into(), 6)])
        );
        assert_eq!(
            overview.pods_by_phase,
            BTreeMap::from([
                ("Pending".into(), 1),
                ("Running".into(), 3),
                ("Unknown".into(), 1)
            ])
        );
        assert_eq!(
            overview.workloads["Deployment"],
            Replicas {
                desired: 5,
                ready: 4
            }
        );
        assert_eq!(
            overview.workloads_total,
            Replicas {
                desired: 8,
                ready: 7
            }
        );
    }

    #[test]
    fn empty_registry_gives_an_empty_overview() {
        let overview = aggregate(0, &[]);
        assert_eq!(overview.objects, 0);
        assert!(overview.by_kind.is_empty() && overview.workloads.is_empty());
    }

    #[test]
    fn workloads_need_integer_replica_columns() {
        let column = |name: &str, column_type| ColumnSpec {
            name: name.into(),
            path: format!(".status.{name}"),
            column_type,
            index: false,
        };
        let mut spec = KindSpec {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
            namespaced: true,
            prune: vec![],
            keep_secret_data: false,
            columns: vec![
                column(REPLICAS, ColumnType::Integer),
                column(REPLICAS_READY, ColumnType::Integer),
            ],
        };
        assert!(is_workload(&spec));
        spec.columns[1].column_type = ColumnType::String;
        assert!(!is_workload(&spec));
        spec.columns[1].column_type = ColumnType::Integer;
        spec.kind = "Job".into();
        assert!(!is_workload(&spec));
        assert!(!is_pod_kind(&spec));
    }
}
