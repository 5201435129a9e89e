//! Stowage's custom resources and the CRD manifests generated from them (`stowage crd`).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every Stowage resource.
pub const GROUP: &str = "stowage.io";

/// Errors from rendering CRD manifests.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// A CRD could not be serialized.
    #[error("cannot render CRD {name} as YAML")]
    Render {
        name: String,
        #[source]
        source: serde_yaml::Error,
    },
}

/// Mirrors every object of one kind from the cluster into Stowage's store.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "stowage.io",
    version = "v1alpha1",
    kind = "ResourceMirror",
    plural = "resourcemirrors",
    shortname = "rm",
    status = "ResourceMirrorStatus",
    doc = "Mirrors every object of one Kubernetes kind into Stowage's store.",
    printcolumn = r#"{"name": "Kind", "type": "string", "jsonPath": ".spec.kind"}"#,
    printcolumn = r#"{"name": "Synced", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name": "Objects", "type": "integer", "jsonPath": ".status.objects"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMirrorSpec {
    /// API group of the mirrored kind; empty for the core group (pods, secrets, ...).
    #[serde(default)]
    pub group: String,
    /// API version of the mirrored kind, e.g. `v1`.
    pub version: String,
    /// Kind to mirror, e.g. `Pod`.
    pub kind: String,
    /// Plural resource name; found through discovery when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plural: Option<String>,
    /// Whether the kind is namespaced; found through discovery when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaced: Option<bool>,
    /// Extra JSON paths (e.g. `.status.images`) dropped from every object before it is stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prune: Vec<String>,
    /// Store Secret `data`/`stringData` values as they are; by default each value is replaced with
    /// `<redacted>` (the keys are kept).
    #[serde(default)]
    pub keep_secret_data: bool,
    /// Fields extracted into their own store columns for querying.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnSpec>,
    /// Set to false to stop mirroring this kind; what was stored for it is removed.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// One extracted column.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ColumnSpec {
    /// Column name in the store.
    pub name: String,
    /// JSON path of the value, e.g. `.status.phase`.
    pub path: String,
    /// How the value is stored.
    #[serde(rename = "type", default)]
    pub column_type: ColumnType,
    /// Whether the store indexes the column.
    #[serde(default)]
    pub index: bool,
}

/// Storage type of an extracted column.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    #[default]
    String,
    Integer,
    Boolean,
    Json,
}

/// Observed state of a ResourceMirror.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMirrorStatus {
    /// Current conditions, e.g. `Synced`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Objects currently held in the store for this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<i64>,
    /// When the last watch event was applied (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_time: Option<String>,
    /// The most recent error, cleared once mirroring recovers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A standard Kubernetes condition.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Synced`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// CamelCase reason for the last transition.
    #[serde(default)]
    pub reason: String,
    /// Human-readable details.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The `metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Value of [`Condition::status`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// Every CRD Stowage defines, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![ResourceMirror::crd()]
}

/// The file under `crds/` that holds `crd`, e.g. `resourcemirror.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.spec.names.kind.to_ascii_lowercase())
}

/// One CRD as a YAML document, exactly as committed under `crds/`.
pub fn render(crd: &CustomResourceDefinition) -> Result<String, CrdError> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let body = serde_yaml::to_string(crd).map_err(|source| CrdError::Render { name, source })?;
    Ok(format!(
        "# Generated by `stowage crd` from src/crd.rs; do not edit. Regenerate with `make crds`.\n---\n{body}"
    ))
}

/// Every CRD as one multi-document YAML stream (`stowage crd`).
pub fn render_all() -> Result<String, CrdError> {
    all().iter().map(render).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_mirror_is_cluster_scoped_with_status() {
        let crd = ResourceMirror::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("resourcemirrors.stowage.io")
        );
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.names.short_names, Some(vec!["rm".to_owned()]));
        let version = &crd.spec.versions[0];
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let columns: Vec<_> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(columns, ["Kind", "Synced", "Objects", "Age"]);
    }

    #[test]
    fn enabled_defaults_to_true() -> Result<(), serde_json::Error> {
        let spec: ResourceMirrorSpec =
            serde_json::from_value(serde_json::json!({"version": "v1", "kind": "Pod"}))?;
        assert!(spec.enabled);
        assert_eq!(spec.group, "");
        Ok(())
    }
}
