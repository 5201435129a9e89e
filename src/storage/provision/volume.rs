//! Pure pieces shared by both provisioners: checking that a claim can be provisioned and building
//! the PersistentVolume around a volume source (claimRef, annotation, policy, size, modes).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::ProvisionRequest;
use super::error::ProvisionError;
use crate::storage::bind::ANN_PROVISIONED_BY;

/// `namespace/name` of a claim, for messages.
pub(crate) fn claim_key(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Name of the class, for messages.
pub(crate) fn class_name(request: &ProvisionRequest) -> String {
    request.class.metadata.name.clone().unwrap_or_default()
}

/// Refuses claims that a directory-backed provisioner cannot serve; says what to change.
pub(crate) fn check_claim(request: &ProvisionRequest) -> Result<(), ProvisionError> {
    let claim = &request.claim;
    let invalid = |message: String| ProvisionError::InvalidClaim {
        claim: claim_key(claim),
        message,
    };
    let provisioner = &request.class.provisioner;
    let spec = claim.spec.as_ref();
    if spec.and_then(|s| s.volume_mode.as_deref()) == Some("Block") {
        return Err(invalid(format!(
            "volumeMode Block is not supported by {provisioner}: use volumeMode Filesystem"
        )));
    }
    if spec.and_then(|s| s.selector.as_ref()).is_some() {
        return Err(invalid(
            "a claim with spec.selector is never dynamically provisioned: remove the selector, or \
             create a PersistentVolume that matches it"
                .to_string(),
        ));
    }
    if spec.is_some_and(|s| s.data_source.is_some() || s.data_source_ref.is_some()) {
        return Err(invalid(format!(
            "{provisioner} cannot fill a volume from spec.dataSource/dataSourceRef: remove it and \
             copy the data yourself"
        )));
    }
    if storage_request(claim).is_none() {
        return Err(invalid(
            "spec.resources.requests.storage is missing: set the size the volume should have"
                .to_string(),
        ));
    }
    Ok(())
}

fn storage_request(
    claim: &PersistentVolumeClaim,
) -> Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
}

/// The PV for `request` without a volume source: name, `pv.kubernetes.io/provisioned-by`,
/// claimRef (name, namespace, uid), reclaim policy (class, default Delete), mount options, class
/// name, capacity (the claim's request), access modes and volume mode of the claim.
pub(crate) fn new_volume(request: &ProvisionRequest) -> PersistentVolume {
    let claim = &request.claim;
    let class = &request.class;
    let spec = claim.spec.as_ref();
    let capacity =
        storage_request(claim).map(|q| BTreeMap::from([("storage".to_string(), q.clone())]));
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(request.pv_name.clone()),
            annotations: Some(BTreeMap::from([(
                ANN_PROVISIONED_BY.to_string(),
                class.provisioner.clone(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".to_string()),
                kind: Some("PersistentVolumeClaim".to_string()),
                name: claim.metadata.name.clone(),
                namespace: claim.metadata.namespace.clone(),
                uid: claim.metadata.uid.clone(),
                ..ObjectReference::default()
            }),
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .unwrap_or_else(|| "Delete".to_string()),
            ),
            mount_options: class.mount_options.clone().filter(|m| !m.is_empty()),
            storage_class_name: class.metadata.name.clone(),
            capacity,
            access_modes: spec.and_then(|s| s.access_modes.clone()),
            volume_mode: Some(
                spec.and_then(|s| s.volume_mode.clone())
                    .unwrap_or_else(|| "Filesystem".to_string()),
            ),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    }
}

/// `path` relative to `base` when it lies strictly inside it (at least one normal component, no
/// `..`, `.` or root after the base); `None` otherwise. Never touches the filesystem.
pub(crate) fn relative_inside(base: &Path, path: &Path) -> Option<PathBuf> {
    let rest = path.strip_prefix(base).ok()?;
    let mut relative = PathBuf::new();
    for component in rest.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            _ => return None,
        }
    }
    (!relative.as_os_str().is_empty()).then_some(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_inside_accepts_only_strict_children() {
        let base = Path::new("/var/lib/stowage");
        assert_eq!(
            relative_inside(base, Path::new("/var/lib/stowage/a/b")),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(relative_inside(base, Path::new("/var/lib/stowage")), None);
        assert_eq!(relative_inside(base, Path::new("/var/lib/stowage/")), None);
        assert_eq!(
            relative_inside(base, Path::new("/var/lib/stowage/../etc")),
            None
        );
        assert_eq!(
            relative_inside(base, Path::new("/var/lib/stowage/a/../../x")),
            None
        );
        assert_eq!(
            relative_inside(base, Path::new("/var/lib/stowage-other/a")),
            None
        );
        assert_eq!(relative_inside(base, Path::new("relative/a")), None);
    }
}
