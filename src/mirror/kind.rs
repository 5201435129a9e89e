//! What a mirrored kind is: data, not code. A [`KindSpec`] says where a kind lives in the API, what is
//! pruned or redacted before storing, and which typed columns are extracted for queries.

use serde::{Deserialize, Serialize};

pub use crate::crd::{ColumnSpec, ColumnType};

/// One mirrored kind, fully resolved (plural and scope known).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindSpec {
    /// API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    pub version: String,
    pub kind: String,
    /// Plural resource name, e.g. `pods`; the REST API's `{plural}`.
    pub plural: String,
    pub namespaced: bool,
    /// Extra dotted paths dropped from every object (`metadata.managedFields` and the
    /// last-applied annotation are always dropped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prune: Vec<String>,
    /// Keep Secret `data`/`stringData`; redacted otherwise.
    #[serde(default)]
    pub keep_secret_data: bool,
    /// Typed columns extracted by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnSpec>,
}

impl KindSpec {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Stable identity used as map keys, metrics label and log field: `core/v1/Pod`, `apps/v1/Deployment`.
    pub fn id(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group.as_str()
        };
        format!("{group}/{}/{}", self.version, self.kind)
    }

    /// `k8s_{group}_{version}_{kind}`, lower-case, core group written `core`, dots as `_`.
    pub fn table_name(&self) -> String {
        let group = if self.group.is_empty() {
            "core".to_string()
        } else {
            self.group.replace(['.', '-'], "_")
        };
        format!("k8s_{group}_{}_{}", self.version, self.kind).to_lowercase()
    }

    /// Whether this kind is core/v1 Secret (redacted unless `keep_secret_data`).
    pub fn is_secret(&self) -> bool {
        self.group.is_empty() && self.kind == "Secret"
    }

    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(group: &str, version: &str, kind: &str) -> KindSpec {
        KindSpec {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: String::new(),
            namespaced: true,
            prune: vec![],
            keep_secret_data: false,
            columns: vec![],
        }
    }

    #[test]
    fn table_names_follow_the_seed_layout() {
        assert_eq!(spec("", "v1", "Pod").table_name(), "k8s_core_v1_pod");
        assert_eq!(
            spec("apps", "v1", "Deployment").table_name(),
            "k8s_apps_v1_deployment"
        );
        assert_eq!(
            spec("networking.k8s.io", "v1", "Ingress").table_name(),
            "k8s_networking_k8s_io_v1_ingress"
        );
        assert_eq!(spec("", "v1", "Pod").id(), "core/v1/Pod");
    }
}
