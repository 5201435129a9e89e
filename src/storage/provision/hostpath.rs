//! The hostPath provisioner (`stowage.io/hostpath`): picks the node and its allowed base path,
//! has a helper pod create or remove the volume's directory there, and builds PVs pinned to the
//! node. Deciding (node, directory, PV) is pure; only `HostPathProvisioner` talks to the API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    PersistentVolume, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::error::ProvisionError;
use super::helper_pod::{DEFAULT_MODE, HelperAction, HelperPodParams, helper_pod};
use super::helper_run::{remove_orphaned_helper_pods, run_helper_pod};
use super::volume::{check_claim, claim_key, class_name, new_volume, relative_inside};
use super::{DeleteOutcome, ProvisionRequest, Provisioner};
use crate::storage::class::ClassKind;
use crate::storage::pattern::{DEFAULT_PATTERN, PatternVars, expand_pattern, join_under};

/// Node label the PV's node affinity selects on.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// PV annotation naming the node that holds the directory (the affinity holds its hostname label).
pub const ANN_NODE: &str = "stowage.io/hostpath-node";

/// Configuration of the hostPath provisioner (`storage.controller.*`, `storage.hostpath.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPathSettings {
    /// Namespace of the helper pods.
    pub namespace: String,
    /// Image of the helper pods (needs `/bin/sh`, `mkdir`, `rm`).
    pub helper_image: String,
    /// How long a helper pod may take before it is deleted and the attempt fails.
    pub helper_timeout: Duration,
    /// Base paths of every node not listed in `node_paths`.
    pub default_paths: Vec<PathBuf>,
    /// Base paths per node name; an empty list refuses the node.
    pub node_paths: BTreeMap<String, Vec<PathBuf>>,
}

impl HostPathSettings {
    /// The allowed base paths of `node`, first = where new volumes go.
    pub fn paths_for(&self, node: &str) -> &[PathBuf] {
        self.node_paths.get(node).unwrap_or(&self.default_paths)
    }

    /// The first allowed base path of `node`, checked to be absolute.
    pub fn base_for(&self, node: &str) -> Result<&Path, ProvisionError> {
        let base = self
            .paths_for(node)
            .first()
            .ok_or_else(|| ProvisionError::NoAllowedPath {
                node: node.to_string(),
            })?;
        if !base.is_absolute() || relative_inside(Path::new("/"), base).is_none() {
            let key = if self.node_paths.contains_key(node) {
                format!("storage.hostpath.node_paths.{node}")
            } else {
                "storage.hostpath.default_paths".to_string()
            };
            return Err(ProvisionError::PathNotAllowed {
                message: format!(
                    "base path {} of node {node} must be an absolute directory below /: fix {key}",
                    base.display()
                ),
            });
        }
        Ok(base)
    }
}

/// True when the node's `Ready` condition is `True` and it is neither cordoned nor being deleted.
pub fn node_is_usable(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let cordoned = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    ready && !cordoned && node.metadata.deletion_timestamp.is_none()
}

/// True when the class's `allowedTopologies` (if any) admit the node: one term whose every
/// expression's key is a node label with one of the listed values.
pub fn node_allowed_by_class(node: &Node, class: &StorageClass) -> bool {
    let Some(terms) = class.allowed_topologies.as_ref().filter(|t| !t.is_empty()) else {
        return true;
    };
    let labels = node.labels();
    terms.iter().any(|term| {
        term.match_label_expressions.iter().flatten().all(|expr| {
            labels
                .get(&expr.key)
                .is_some_and(|value| expr.values.contains(value))
        })
    })
}

/// For an Immediate class: the first node by name that is usable, admitted by the class and has
/// an allowed base path.
pub fn pick_node<'a>(
    nodes: &'a [Node],
    settings: &HostPathSettings,
    class: &StorageClass,
) -> Result<&'a Node, ProvisionError> {
    let mut sorted: Vec<&Node> = nodes.iter().collect();
    sorted.sort_by_key(|n| n.name_any());
    sorted
        .into_iter()
        .find(|n| {
            node_is_usable(n)
                && node_allowed_by_class(n, class)
                && !settings.paths_for(&n.name_any()).is_empty()
        })
        .ok_or_else(|| ProvisionError::NoNode {
            message: format!(
                "no Ready, schedulable node of {} allowed by storage class {} has a hostPath base \
                 path: add a node under storage.hostpath.node_paths or set \
                 storage.hostpath.default_paths, or use volumeBindingMode WaitForFirstConsumer",
                nodes.len(),
                class.name_any()
            ),
        })
}

/// The node's `kubernetes.io/hostname` label, or its name when unlabelled.
pub fn hostname_of(node: &Node) -> String {
    node.labels()
        .get(HOSTNAME_LABEL)
        .cloned()
        .unwrap_or_else(|| node.name_any())
}

/// Base path and the volume's directory relative to it (from `pathPattern`, default
/// `${namespace}-${pvc}-${pv}`), checked never to leave the base.
pub fn volume_dir(
    request: &ProvisionRequest,
    path_pattern: Option<&str>,
    node: &str,
    base: &Path,
) -> Result<(PathBuf, PathBuf), ProvisionError> {
    let pattern = path_pattern.unwrap_or(DEFAULT_PATTERN);
    let vars = PatternVars::for_claim(&request.claim, &request.pv_name, Some(node));
    let unsafe_path = |source| ProvisionError::UnsafePath {
        context: format!(
            "storage class {}, claim {}",
            class_name(request),
            claim_key(&request.claim)
        ),
        source,
    };
    let relative = expand_pattern(pattern, &vars).map_err(unsafe_path)?;
    let full = join_under(base, &relative).map_err(unsafe_path)?;
    Ok((full, relative))
}

/// The PV: the common fields plus `hostPath { path, DirectoryOrCreate }`, node affinity
/// `kubernetes.io/hostname In [hostname]` and the [`ANN_NODE`] annotation.
pub fn hostpath_volume(
    request: &ProvisionRequest,
    node: &str,
    hostname: &str,
    path: &Path,
) -> PersistentVolume {
    let mut pv = new_volume(request);
    pv.annotations_mut()
        .insert(ANN_NODE.to_string(), node.to_string());
    if let Some(spec) = pv.spec.as_mut() {
        spec.host_path = Some(HostPathVolumeSource {
            path: path.display().to_string(),
            type_: Some("DirectoryOrCreate".to_string()),
        });
        spec.node_affinity = Some(VolumeNodeAffinity {
            required: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: HOSTNAME_LABEL.to_string(),
                        operator: "In".to_string(),
                        values: Some(vec![hostname.to_string()]),
                    }]),
                    match_fields: None,
                }],
            }),
        });
    }
    pv
}

/// Where an existing hostPath PV keeps its data: node name and absolute path.
pub fn volume_location(volume: &PersistentVolume) -> Result<(String, PathBuf), ProvisionError> {
    let invalid = |message: &str| ProvisionError::InvalidVolume {
        volume: volume.name_any(),
        message: message.to_string(),
    };
    let spec = volume.spec.as_ref().ok_or_else(|| invalid("has no spec"))?;
    let path = spec
        .host_path
        .as_ref()
        .map(|h| PathBuf::from(&h.path))
        .ok_or_else(|| invalid("is not a hostPath volume: delete its data and the PV by hand"))?;
    let from_affinity = || {
        spec.node_affinity
            .as_ref()?
            .required
            .as_ref()?
            .node_selector_terms
            .iter()
            .flat_map(|t| t.match_expressions.iter().flatten())
            .find(|e| e.key == HOSTNAME_LABEL && e.operator == "In")
            .and_then(|e| e.values.as_ref()?.first().cloned())
    };
    let node = volume
        .annotations()
        .get(ANN_NODE)
        .cloned()
        .or_else(from_affinity)
        .ok_or_else(|| {
            invalid(
                "names no node (annotation stowage.io/hostpath-node or a kubernetes.io/hostname \
                 node affinity): delete its data and the PV by hand",
            )
        })?;
    Ok((node, path))
}

/// The allowed base path of `node` that holds `path` (the longest one) and `path` relative to
/// it; refuses paths that are not strictly inside an allowed base.
pub fn locate_under_base(
    settings: &HostPathSettings,
    volume: &str,
    node: &str,
    path: &Path,
) -> Result<(PathBuf, PathBuf), ProvisionError> {
    settings
        .paths_for(node)
        .iter()
        .filter(|base| base.is_absolute())
        .filter_map(|base| Some((base.clone(), relative_inside(base, path)?)))
        .max_by_key(|(base, _)| base.components().count())
        .ok_or_else(|| ProvisionError::PathNotAllowed {
            message: format!(
                "volume {volume}: {} is not inside an allowed base path of node {node}, so Stowage \
                 will not remove it: add its base path to storage.hostpath.node_paths.{node} (or \
                 storage.hostpath.default_paths), or remove the data by hand and delete the PV",
                path.display()
            ),
        })
}

/// The hostPath provisioner.
pub struct HostPathProvisioner {
    client: Client,
    settings: HostPathSettings,
}

impl HostPathProvisioner {
    /// A provisioner writing helper pods through `client`.
    pub fn new(client: Client, settings: HostPathSettings) -> Self {
        Self { client, settings }
    }

    /// Deletes helper pods left behind by an earlier leader (finished, or older than twice the
    /// helper timeout); call when becoming leader. Returns their names.
    pub async fn remove_orphaned_helper_pods(&self) -> Result<Vec<String>, ProvisionError> {
        let s = &self.settings;
        remove_orphaned_helper_pods(&self.client, &s.namespace, s.helper_timeout).await
    }

    fn helper(
        &self,
        action: HelperAction,
        pv: &str,
        node: &str,
        base: &Path,
        rel: &Path,
    ) -> HelperPodParams {
        HelperPodParams {
            namespace: self.settings.namespace.clone(),
            image: self.settings.helper_image.clone(),
            action,
            pv_name: pv.to_string(),
            node: node.to_string(),
            base_path: base.to_path_buf(),
            relative_dir: rel.to_path_buf(),
            mode: DEFAULT_MODE,
        }
    }

    /// The node for a new volume: the selected node (must exist), else the first usable node.
    async fn choose_node(&self, request: &ProvisionRequest) -> Result<Node, ProvisionError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        if let Some(selected) = request.selected_node.as_deref() {
            return nodes
                .get_opt(selected)
                .await
                .map_err(|e| ProvisionError::api(format!("get node {selected}"), e))?
                .ok_or_else(|| ProvisionError::NoNode {
                    message: format!(
                        "node {selected}, selected for claim {} by the scheduler \
                         (volume.kubernetes.io/selected-node), does not exist: the scheduler will \
                         select another node",
                        claim_key(&request.claim)
                    ),
                });
        }
        let list = nodes
            .list(&ListParams::default())
            .await
            .map_err(|e| ProvisionError::api("list nodes", e))?;
        pick_node(&list.items, &self.settings, &request.class).cloned()
    }
}

#[async_trait::async_trait]
impl Provisioner for HostPathProvisioner {
    async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<PersistentVolume, ProvisionError> {
        let ClassKind::HostPath(params) = &request.kind else {
            return Err(ProvisionError::InvalidClass {
                class: class_name(request),
                message: "is not a stowage.io/hostpath class".to_string(),
            });
        };
        check_claim(request)?;
        let node = self.choose_node(request).await?;
        let node_name = node.name_any();
        let base = self.settings.base_for(&node_name)?;
        let (full, relative) =
            volume_dir(request, params.path_pattern.as_deref(), &node_name, base)?;
        let params = self.helper(
            HelperAction::Create,
            &request.pv_name,
            &node_name,
            base,
            &relative,
        );
        run_helper_pod(
            &self.client,
            helper_pod(&params),
            self.settings.helper_timeout,
        )
        .await?;
        tracing::info!(pv = %request.pv_name, node = %node_name, path = %full.display(), "hostPath volume created");
        Ok(hostpath_volume(
            request,
            &node_name,
            &hostname_of(&node),
            &full,
        ))
    }

    async fn delete(
        &self,
        volume: &PersistentVolume,
        _kind: &ClassKind,
    ) -> Result<DeleteOutcome, ProvisionError> {
        let pv = volume.name_any();
        let (node, path) = volume_location(volume)?;
        let nodes: Api<Node> = Api::all(self.client.clone());
        let exists = nodes
            .get_opt(&node)
            .await
            .map_err(|e| ProvisionError::api(format!("get node {node}"), e))?
            .is_some();
        if !exists {
            tracing::warn!(%pv, %node, path = %path.display(), "node is gone: its data cannot be removed");
            return Ok(DeleteOutcome::NodeGone { node, path });
        }
        let (base, relative) = locate_under_base(&self.settings, &pv, &node, &path)?;
        let params = self.helper(HelperAction::Delete, &pv, &node, &base, &relative);
        run_helper_pod(
            &self.client,
            helper_pod(&params),
            self.settings.helper_timeout,
        )
        .await?;
        tracing::info!(%pv, %node, path = %path.display(), "hostPath volume removed");
        Ok(DeleteOutcome::Removed { path })
    }
}

#[cfg(test)]
#[path = "hostpath_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "hostpath_api_tests.rs"]
mod api_tests;

#[cfg(test)]
#[path = "hostpath_agent_tests.rs"]
mod agent_tests;
