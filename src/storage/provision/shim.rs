//! Temporary stand-ins for part A's pure functions (`class`, `pattern`, `bind` constants), with the
//! contract's names, so the provisioners compile before `core` is merged. Deleted on merge.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::PersistentVolumeClaim;

pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
#[cfg(test)]
pub const HOSTPATH_PROVISIONER: &str = "stowage.io/hostpath";
#[cfg(test)]
pub const NFS_PROVISIONER: &str = "stowage.io/nfs";
pub const DEFAULT_PATTERN: &str = "${namespace}-${pvc}-${pv}";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassKind {
    HostPath(HostPathParams),
    Nfs(NfsParams),
    Longhorn,
    Foreign,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostPathParams {
    pub path_pattern: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsParams {
    pub server: String,
    pub path: String,
    pub path_pattern: Option<String>,
    pub on_delete: OnDelete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    Delete,
    Retain,
    Archive,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(String);

pub struct PatternVars<'a> {
    pub namespace: &'a str,
    pub pvc: &'a str,
    pub pv: &'a str,
    pub node: Option<&'a str>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl<'a> PatternVars<'a> {
    pub fn for_claim(claim: &'a PersistentVolumeClaim, pv: &'a str, node: Option<&'a str>) -> Self {
        Self {
            namespace: claim.metadata.namespace.as_deref().unwrap_or_default(),
            pvc: claim.metadata.name.as_deref().unwrap_or_default(),
            pv,
            node,
            labels: claim.metadata.labels.clone().unwrap_or_default(),
            annotations: claim.metadata.annotations.clone().unwrap_or_default(),
        }
    }
}

pub fn expand_pattern(pattern: &str, vars: &PatternVars<'_>) -> Result<PathBuf, PatternError> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| PatternError(format!("unclosed variable in {pattern:?}")))?;
        let name = &after[..end];
        let value = match name {
            "namespace" | ".PVC.namespace" => vars.namespace.to_string(),
            "pvc" | ".PVC.name" => vars.pvc.to_string(),
            "pv" => vars.pv.to_string(),
            "node" => vars.node.unwrap_or_default().to_string(),
            other => {
                if let Some(key) = other.strip_prefix(".PVC.labels.") {
                    vars.labels.get(key).cloned().unwrap_or_default()
                } else if let Some(key) = other.strip_prefix(".PVC.annotations.") {
                    vars.annotations.get(key).cloned().unwrap_or_default()
                } else {
                    return Err(PatternError(format!("unknown variable ${{{other}}}")));
                }
            }
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    let path = PathBuf::from(out);
    if path.as_os_str().is_empty() || path.is_absolute() {
        return Err(PatternError(format!(
            "pathPattern {pattern:?} expands to {path:?}"
        )));
    }
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => normal.push(part),
            Component::CurDir => {}
            _ => {
                return Err(PatternError(format!(
                    "pathPattern {pattern:?} leaves its base"
                )));
            }
        }
    }
    if normal.as_os_str().is_empty() {
        return Err(PatternError(format!("pathPattern {pattern:?} is empty")));
    }
    Ok(normal)
}

pub fn join_under(base: &Path, relative: &Path) -> Result<PathBuf, PatternError> {
    let mut out = base.to_path_buf();
    for component in relative.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return Err(PatternError(format!("{relative:?} leaves {base:?}"))),
        }
    }
    Ok(out)
}
