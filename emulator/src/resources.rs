//! Resource types the emulator serves: the built-in kinds and those that CRDs add at run time.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

/// Where a type's objects live. Types that share storage (core and events.k8s.io Events, every served
/// version of a CRD) have the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey {
    pub group: String,
    pub plural: String,
}

/// One served group/version/resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `/status` subresource (status is written separately from the rest).
    pub status: bool,
    /// Has a `/scale` subresource.
    pub scale: bool,
    /// Built into the server (strategic merge patch is allowed) rather than defined by a CRD.
    pub builtin: bool,
    pub storage: StorageKey,
    /// CRD `additionalPrinterColumns`, kept for Table output.
    pub printer_columns: Vec<Value>,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether this type writes its objects in a different shape than it stores them.
    pub fn converts(&self) -> bool {
        self.group == "events.k8s.io"
    }

    fn discovery_entry(&self) -> Vec<Value> {
        let mut verbs = vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        if self.kind == "Namespace" {
            verbs.retain(|v| *v != "deletecollection");
        }
        let mut entry = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
        });
        if !self.short_names.is_empty() {
            entry["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            entry["categories"] = json!(self.categories);
        }
        let mut out = vec![entry];
        if self.status {
            out.push(json!({"name": format!("{}/status", self.plural), "singularName": "", "namespaced": self.namespaced,
                "kind": self.kind, "verbs": ["get", "patch", "update"]}));
        }
        if self.scale {
            out.push(json!({"name": format!("{}/scale", self.plural), "singularName": "", "namespaced": self.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
        out
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    scale: bool,
}

#[allow(clippy::too_many_arguments)] // a table row, read positionally
const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    scale: bool,
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        namespaced,
        short,
        status,
        scale,
    }
}

const BUILTINS: &[Builtin] = &[
    b(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        true,
        false,
    ),
    b("", "v1", "Node", "nodes", false, &["no"], true, false),
    b("", "v1", "Pod", "pods", true, &["po"], true, false),
    b("", "v1", "Service", "services", true, &["svc"], true, false),
    b(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        true,
        &["ep"],
        false,
        false,
    ),
    b(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        true,
        &["cm"],
        false,
        false,
    ),
    b("", "v1", "Secret", "secrets", true, &[], false, false),
    b(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        false,
        false,
    ),
    b("", "v1", "Event", "events", true, &["ev"], false, false),
    b(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        false,
        &["pv"],
        true,
        false,
    ),
    b(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        &["pvc"],
        true,
        false,
    ),
    b(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        true,
        &["rc"],
        true,
        true,
    ),
    b(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        &["deploy"],
        true,
        true,
    ),
    b(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        &["sts"],
        true,
        true,
    ),
    b(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        true,
        &["ds"],
        true,
        false,
    ),
    b(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        true,
        &["rs"],
        true,
        true,
    ),
    b("batch", "v1", "Job", "jobs", true, &[], true, false),
    b(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        true,
        &["cj"],
        true,
        false,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
        true,
        false,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        &["netpol"],
        false,
        false,
    ),
    b(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        false,
        &["sc"],
        false,
        false,
    ),
    b(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        true,
        &[],
        false,
        false,
    ),
    b(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        true,
        &["ev"],
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
        false,
        false,
    ),
    b(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["pdb"],
        true,
        false,
    ),
    b(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        true,
        false,
    ),
];

/// All served types, by group → version → plural.
#[derive(Debug, Clone)]
pub struct Registry {
    types: BTreeMap<String, BTreeMap<String, BTreeMap<String, Arc<ResourceType>>>>,
}

impl Registry {
    pub fn builtin() -> Self {
        let mut reg = Registry {
            types: BTreeMap::new(),
        };
        for bt in BUILTINS {
            // events.k8s.io Events are stored with the core ones.
            let storage_group = if bt.group == "events.k8s.io" {
                ""
            } else {
                bt.group
            };
            let categories = match bt.kind {
                "Pod"
                | "Service"
                | "Deployment"
                | "StatefulSet"
                | "DaemonSet"
                | "ReplicaSet"
                | "Job"
                | "CronJob"
                | "ReplicationController" => vec!["all".to_string()],
                _ => vec![],
            };
            reg.insert(ResourceType {
                group: bt.group.into(),
                version: bt.version.into(),
                kind: bt.kind.into(),
                plural: bt.plural.into(),
                singular: bt.kind.to_lowercase(),
                namespaced: bt.namespaced,
                short_names: bt.short.iter().map(|s| s.to_string()).collect(),
                categories,
                status: bt.status,
                scale: bt.scale,
                builtin: true,
                storage: StorageKey {
                    group: storage_group.into(),
                    plural: bt.plural.into(),
                },
                printer_columns: vec![],
            });
        }
        reg
    }

    pub fn insert(&mut self, rt: ResourceType) {
        self.types
            .entry(rt.group.clone())
            .or_default()
            .entry(rt.version.clone())
            .or_default()
            .insert(rt.plural.clone(), Arc::new(rt));
    }

    /// Removes every version of a group/plural (a deleted CRD).
    pub fn remove(&mut self, group: &str, plural: &str) {
        if let Some(versions) = self.types.get_mut(group) {
            for resources in versions.values_mut() {
                resources.remove(plural);
            }
            versions.retain(|_, r| !r.is_empty());
            if versions.is_empty() {
                self.types.remove(group);
            }
        }
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types.get(group)?.get(version)?.get(plural).cloned()
    }

    /// The type to use when a stored object of `kind` in `group` is addressed by kind (e.g. owner references).
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.types
            .get(group)?
            .values()
            .flat_map(|r| r.values())
            .find(|rt| rt.kind == kind)
            .cloned()
    }

    /// `APIResourceList` for one group/version.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let resources = self.types.get(group)?.get(version)?;
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let items: Vec<Value> = resources
            .values()
            .flat_map(|rt| rt.discovery_entry())
            .collect();
        Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": items}),
        )
    }

    /// `APIGroupList` of every named group.
    pub fn group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .types
            .iter()
            .filter(|(g, _)| !g.is_empty())
            .map(|(group, versions)| {
                let vs: Vec<Value> = sort_versions(versions.keys())
                    .into_iter()
                    .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
                    .collect();
                json!({"name": group, "versions": vs, "preferredVersion": vs[0]})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }
}

/// Orders versions as Kubernetes does: GA before beta before alpha, higher numbers first.
fn sort_versions<'a>(versions: impl Iterator<Item = &'a String>) -> Vec<String> {
    fn rank(v: &str) -> (u8, u32, u32) {
        let rest = v.trim_start_matches('v');
        let (major, tail) = rest.split_at(
            rest.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len()),
        );
        let major: u32 = major.parse().unwrap_or(0);
        let (stage, minor) = if let Some(m) = tail.strip_prefix("beta") {
            (1, m.parse().unwrap_or(0))
        } else if let Some(m) = tail.strip_prefix("alpha") {
            (2, m.parse().unwrap_or(0))
        } else if tail.is_empty() {
            (0, 0)
        } else {
            (3, 0)
        };
        (stage, u32::MAX - major, u32::MAX - minor)
    }
    let mut out: Vec<String> = versions.cloned().collect();
    out.sort_by_key(|v| rank(v));
    out
}

/// Builds the served types of a CRD object, or explains why it is invalid.
pub fn types_from_crd(crd: &Value) -> Result<Vec<ResourceType>, String> {
    let spec = crd.get("spec").ok_or("spec is required")?;
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .ok_or("spec.group is required")?;
    let names = spec.get("names").ok_or("spec.names is required")?;
    let plural = names
        .get("plural")
        .and_then(Value::as_str)
        .ok_or("spec.names.plural is required")?;
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("spec.names.kind is required")?;
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let namespaced = match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => {
            return Err(format!(
                "spec.scope must be Namespaced or Cluster, got {other:?}"
            ));
        }
    };
    let expected = format!("{plural}.{group}");
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name != expected {
        return Err(format!(
            "metadata.name must be spec.names.plural+\".\"+spec.group: {expected}"
        ));
    }
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("spec.versions is required")?;
    let mut out = Vec::new();
    for v in versions {
        if !v.get("served").and_then(Value::as_bool).unwrap_or(false) {
            continue;
        }
        let version = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or("spec.versions[].name is required")?;
        let subresources = v.get("subresources");
        out.push(ResourceType {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: singular.clone(),
            namespaced,
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            status: subresources.and_then(|s| s.get("status")).is_some(),
            scale: subresources.and_then(|s| s.get("scale")).is_some(),
            builtin: false,
            storage: StorageKey {
                group: group.into(),
                plural: plural.into(),
            },
            printer_columns: v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_kubernetes() {
        let vs: Vec<String> = ["v1alpha1", "v1", "v2beta1", "v1beta2", "v2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            sort_versions(vs.iter()),
            vec!["v2", "v1", "v2beta1", "v1beta2", "v1alpha1"]
        );
    }

    #[test]
    fn events_share_storage() {
        let reg = Registry::builtin();
        let core = reg.get("", "v1", "events").expect("core events");
        let new = reg
            .get("events.k8s.io", "v1", "events")
            .expect("events.k8s.io");
        assert_eq!(core.storage, new.storage);
        assert!(new.converts());
    }

    #[test]
    fn crd_types_need_matching_name() {
        let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}]}});
        let types = types_from_crd(&crd).expect("valid");
        assert_eq!(types.len(), 1);
        assert!(types[0].status && types[0].namespaced && !types[0].builtin);
        let mut bad = crd.clone();
        bad["metadata"]["name"] = json!("other.example.com");
        assert!(types_from_crd(&bad).is_err());
    }
}
