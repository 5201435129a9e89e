//! The objects binder mode writes, built purely from the current ones: PV claimRef, claim
//! spec/annotations and the status phases. Idempotent: a result equal to its input means there is
//! nothing to write. Part of [`super`] (re-exported there).

use super::{
    ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER, CLAIM_BOUND, CLAIM_LOST, CLAIM_PENDING,
    VOLUME_FAILED, VOLUME_RELEASED, claim_volume_name, has_annotation, is_volume_bound_to_claim,
    name, set_annotation, volume_points_at_claim,
};
use k8s_openapi::api::core::v1::{
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus,
    PersistentVolumeStatus,
};

/// The PV with `claimRef` pointing at the claim (kind, apiVersion, name, namespace, uid,
/// resourceVersion); `bound-by-controller` when the PV was not already reserved for this claim.
pub fn bound_volume(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> PersistentVolume {
    let mut out = volume.clone();
    let reserved = is_volume_bound_to_claim(volume, claim);
    if !volume_points_at_claim(volume, claim) {
        out.spec.get_or_insert_with(Default::default).claim_ref = Some(ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("PersistentVolumeClaim".to_string()),
            name: claim.metadata.name.clone(),
            namespace: claim.metadata.namespace.clone(),
            uid: claim.metadata.uid.clone(),
            resource_version: claim.metadata.resource_version.clone(),
            field_path: None,
        });
    }
    if !reserved && !has_annotation(&out.metadata, ANN_BOUND_BY_CONTROLLER) {
        set_annotation(&mut out.metadata, ANN_BOUND_BY_CONTROLLER, "yes");
    }
    out
}

/// The claim with `spec.volumeName` and `bind-completed`; `bound-by-controller` when the controller
/// chose the volume (the claim named none).
pub fn bound_claim(
    claim: &PersistentVolumeClaim,
    volume: &PersistentVolume,
) -> PersistentVolumeClaim {
    let mut out = claim.clone();
    let volume_name = name(&volume.metadata);
    if claim_volume_name(claim) != Some(volume_name) {
        out.spec.get_or_insert_with(Default::default).volume_name = Some(volume_name.to_string());
        if !has_annotation(&out.metadata, ANN_BOUND_BY_CONTROLLER) {
            set_annotation(&mut out.metadata, ANN_BOUND_BY_CONTROLLER, "yes");
        }
    }
    if !has_annotation(&out.metadata, ANN_BIND_COMPLETED) {
        set_annotation(&mut out.metadata, ANN_BIND_COMPLETED, "yes");
    }
    out
}

/// The claim status once bound: phase Bound, access modes from the PV, capacity from the PV when
/// the claim becomes Bound (kept afterwards: a resize may make them differ on purpose).
pub fn bound_claim_status(
    claim: &PersistentVolumeClaim,
    volume: &PersistentVolume,
) -> PersistentVolumeClaimStatus {
    let mut status = claim.status.clone().unwrap_or_default();
    let spec = volume.spec.as_ref();
    status.access_modes = spec.and_then(|s| s.access_modes.clone());
    if status.phase.as_deref() != Some(CLAIM_BOUND) || status.capacity.is_none() {
        status.capacity = spec.and_then(|s| s.capacity.clone());
    }
    status.phase = Some(CLAIM_BOUND.to_string());
    status
}

/// The claim status with phase Lost (everything else kept).
pub fn lost_claim_status(claim: &PersistentVolumeClaim) -> PersistentVolumeClaimStatus {
    let mut status = claim.status.clone().unwrap_or_default();
    status.phase = Some(CLAIM_LOST.to_string());
    status
}

/// The claim status with phase Pending (everything else kept).
pub fn pending_claim_status(claim: &PersistentVolumeClaim) -> PersistentVolumeClaimStatus {
    let mut status = claim.status.clone().unwrap_or_default();
    status.phase = Some(CLAIM_PENDING.to_string());
    status
}

/// A PV status with only `phase` set (`VOLUME_AVAILABLE`, `VOLUME_BOUND`, ...).
pub fn volume_status(phase: &str) -> PersistentVolumeStatus {
    PersistentVolumeStatus {
        phase: Some(phase.to_string()),
        ..Default::default()
    }
}

/// Phase Released (rule 8).
pub fn released_volume_status() -> PersistentVolumeStatus {
    volume_status(VOLUME_RELEASED)
}

/// Phase Failed with a reason and message (failed delete, unknown reclaim policy).
pub fn failed_volume_status(reason: &str, message: &str) -> PersistentVolumeStatus {
    PersistentVolumeStatus {
        phase: Some(VOLUME_FAILED.to_string()),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        ..Default::default()
    }
}

/// For [`VolumeAction::Unbind`]: a PV the controller bound loses its claimRef and annotation; a PV
/// the user pre-bound keeps the reservation by name and only loses the uid.
pub fn unbound_volume(volume: &PersistentVolume) -> PersistentVolume {
    let mut out = volume.clone();
    let by_controller = has_annotation(&volume.metadata, ANN_BOUND_BY_CONTROLLER);
    if let Some(spec) = out.spec.as_mut() {
        if by_controller {
            spec.claim_ref = None;
        } else if let Some(reference) = spec.claim_ref.as_mut() {
            reference.uid = None;
            reference.resource_version = None;
        }
    }
    if by_controller && let Some(annotations) = out.metadata.annotations.as_mut() {
        annotations.remove(ANN_BOUND_BY_CONTROLLER);
    }
    out
}
