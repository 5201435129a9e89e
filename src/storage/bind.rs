//! Binder mode: the upstream PersistentVolume binding algorithm (kubernetes `pv_controller.go`,
//! `pv_helpers.go` FindMatchingVolume) as pure functions over typed objects, plus the objects the
//! controller writes (`bind_objects.rs`). Rules 1–9 of docs/storage.md; no I/O here.

use crate::storage::quantity::{QuantityError, STORAGE, parse_bytes, volume_capacity};
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use std::borrow::Borrow;
use std::collections::BTreeMap;

/// On a PV or PVC: the controller (not the user) made the link.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// On a PVC: the binding finished; from now on the claim is synced as bound.
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// On a PVC: the node the scheduler picked (WaitForFirstConsumer).
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// On a PVC: the provisioner expected to provision it.
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// On a PVC: the older (beta) form of [`ANN_STORAGE_PROVISIONER`].
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// On a PV: the provisioner that created it (a dynamically provisioned volume).
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// On a PV or PVC: the class, in the form that predates `storageClassName`.
pub const ANN_BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

pub const CLAIM_PENDING: &str = "Pending";
pub const CLAIM_BOUND: &str = "Bound";
pub const CLAIM_LOST: &str = "Lost";
pub const VOLUME_PENDING: &str = "Pending";
pub const VOLUME_AVAILABLE: &str = "Available";
pub const VOLUME_BOUND: &str = "Bound";
pub const VOLUME_RELEASED: &str = "Released";
pub const VOLUME_FAILED: &str = "Failed";

/// Event reasons used by the binder (upstream's names).
pub const REASON_FAILED_BINDING: &str = "FailedBinding";
pub const REASON_VOLUME_MISMATCH: &str = "VolumeMismatch";
pub const REASON_PROVISIONING_FAILED: &str = "ProvisioningFailed";
pub const REASON_CLAIM_LOST: &str = "ClaimLost";
pub const REASON_CLAIM_MISBOUND: &str = "ClaimMisbound";
pub const REASON_UNKNOWN_RECLAIM_POLICY: &str = "VolumeUnknownReclaimPolicy";

const ACCESS_MODE_ORDER: [&str; 4] = [
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];

/// What binder mode does for one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimAction {
    /// Everything is in place.
    Nothing,
    /// Link the claim to `volume`: write the PV first ([`bound_volume`], status Bound), then the
    /// claim ([`bound_claim`], [`bound_claim_status`]). `bound_by_controller`: the controller
    /// chose the volume (the claim had no `spec.volumeName`).
    Bind {
        volume: String,
        bound_by_controller: bool,
    },
    /// The PV already points at the claim (uid included): finish the claim side
    /// ([`bound_claim`], [`bound_claim_status`]) and set the PV phase Bound if it is not.
    CompleteBind { volume: String },
    /// No volume matched and the claim's class exists: provision one.
    Provision,
    /// WaitForFirstConsumer class and no `selected-node` yet: wait, no event needed beyond a
    /// Normal `WaitForFirstConsumer`.
    WaitForFirstConsumer,
    /// Stay Pending; emit a Warning event with `reason` and `message`.
    Pending { reason: String, message: String },
    /// A bound claim lost its volume: set phase Lost ([`lost_claim_status`]) and emit a Warning
    /// event (`ClaimLost` or `ClaimMisbound`). `volume` is the name it was bound to ("" if none).
    Lost {
        volume: String,
        reason: String,
        message: String,
    },
}

/// What binder mode does for one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeAction {
    /// Everything is in place (or the claim's sync will act).
    Nothing,
    /// No claim (or only a name reservation): set phase Available.
    MakeAvailable,
    /// Bound both ways but the PV phase is not Bound yet: set it.
    MarkBound,
    /// The claim is gone (or recreated with another uid): set phase Released
    /// ([`released_volume_status`]); the next sync reclaims.
    Release,
    /// Released (or Failed): apply the reclaim policy.
    Reclaim(Reclaim),
    /// The claim was bound to another volume: write [`unbound_volume`] and set phase Available.
    Unbind,
    /// Set phase Failed ([`failed_volume_status`]) and emit a Warning event.
    Fail { reason: String, message: String },
}

/// A volume's `persistentVolumeReclaimPolicy` (unset counts as Retain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reclaim {
    /// Keep it Released until an admin clears `claimRef`.
    Retain,
    /// Remove the data and the PV; on error set Failed with event `VolumeFailedDelete`.
    Delete,
    /// Deprecated upstream: warn and treat as Retain.
    Recycle,
}

fn meta_annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn has_annotation(meta: &ObjectMeta, key: &str) -> bool {
    meta_annotation(meta, key).is_some()
}

fn set_annotation(meta: &mut ObjectMeta, key: &str, value: &str) {
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_string(), value.to_string());
}

fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

/// The claim's class: the beta annotation wins over `spec.storageClassName`; "" when none.
pub fn claim_class(claim: &PersistentVolumeClaim) -> &str {
    meta_annotation(&claim.metadata, ANN_BETA_STORAGE_CLASS)
        .or_else(|| claim.spec.as_ref()?.storage_class_name.as_deref())
        .unwrap_or("")
}

/// The volume's class, read like [`claim_class`].
pub fn volume_class(volume: &PersistentVolume) -> &str {
    meta_annotation(&volume.metadata, ANN_BETA_STORAGE_CLASS)
        .or_else(|| volume.spec.as_ref()?.storage_class_name.as_deref())
        .unwrap_or("")
}

/// The claim's `spec.volumeName`, `None` when unset or empty.
pub fn claim_volume_name(claim: &PersistentVolumeClaim) -> Option<&str> {
    non_empty(claim.spec.as_ref()?.volume_name.as_deref())
}

/// The claim's `status.phase` ("" when unset).
pub fn claim_phase(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The volume's `status.phase` ("" when unset).
pub fn volume_phase(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The `selected-node` annotation of a claim.
pub fn selected_node(claim: &PersistentVolumeClaim) -> Option<&str> {
    non_empty(meta_annotation(&claim.metadata, ANN_SELECTED_NODE))
}

fn claim_ref(volume: &PersistentVolume) -> Option<&ObjectReference> {
    volume.spec.as_ref()?.claim_ref.as_ref()
}

/// Upstream `IsVolumeBoundToClaim`: the claimRef names this claim (name, namespace, and uid when
/// the claimRef has one).
pub fn is_volume_bound_to_claim(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(reference) = claim_ref(volume) else {
        return false;
    };
    if reference.name.as_deref().unwrap_or("") != name(&claim.metadata)
        || reference.namespace.as_deref().unwrap_or("")
            != claim.metadata.namespace.as_deref().unwrap_or("")
    {
        return false;
    }
    match non_empty(reference.uid.as_deref()) {
        Some(uid) => Some(uid) == claim.metadata.uid.as_deref(),
        None => true,
    }
}

/// The claimRef names this claim including its uid: the PV side of the binding is complete.
fn volume_points_at_claim(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    is_volume_bound_to_claim(volume, claim)
        && claim_ref(volume)
            .and_then(|r| non_empty(r.uid.as_deref()))
            .is_some()
}

/// `volumeMode` differs (nil counts as Filesystem).
fn volume_mode_mismatch(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let claim_mode = claim.spec.as_ref().and_then(|s| s.volume_mode.as_deref());
    let volume_mode = volume.spec.as_ref().and_then(|s| s.volume_mode.as_deref());
    claim_mode.unwrap_or("Filesystem") != volume_mode.unwrap_or("Filesystem")
}

/// The claim's `spec.accessModes` (empty when unset).
pub fn claim_access_modes(claim: &PersistentVolumeClaim) -> &[String] {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or(&[])
}

fn volume_access_modes(volume: &PersistentVolume) -> &[String] {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or(&[])
}

/// The volume's access modes as a set in upstream's canonical order (the key of
/// `find_matching_volume`'s groups). Borrowed: it is computed for every volume of every decision.
pub fn access_mode_set(volume: &PersistentVolume) -> Vec<&str> {
    let modes = volume_access_modes(volume);
    let mut set: Vec<&str> = ACCESS_MODE_ORDER
        .iter()
        .copied()
        .filter(|m| modes.iter().any(|v| v == m))
        .collect();
    for mode in modes {
        if !set.contains(&mode.as_str()) {
            set.push(mode);
        }
    }
    set
}

fn contains_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| set.contains(w))
}

/// Evaluates a label selector; `Err` names what is malformed.
pub fn selector_matches(
    selector: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> Result<bool, String> {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    let mut matches = true;
    for (key, value) in selector.match_labels.iter().flatten() {
        matches &= labels.get(key) == Some(value);
    }
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.as_deref().unwrap_or(&[]);
        let present = labels.get(&expr.key);
        matches &= match expr.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(format!(
                    "operator {} on key {:?} needs at least one value",
                    expr.operator, expr.key
                ));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(format!(
                    "operator {} on key {:?} takes no values",
                    expr.operator, expr.key
                ));
            }
            "In" => present.is_some_and(|v| values.contains(v)),
            "NotIn" => present.is_none_or(|v| !values.contains(v)),
            "Exists" => present.is_some(),
            "DoesNotExist" => present.is_none(),
            other => {
                return Err(format!(
                    "unknown operator {other:?} (use In, NotIn, Exists or DoesNotExist)"
                ));
            }
        };
    }
    Ok(matches)
}

fn being_deleted(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

/// The claim's storage request in bytes: 0 when it asks for none (upstream's zero quantity), an
/// error when the value is not a quantity (so a malformed claim never matches every volume).
pub fn request_bytes(claim: &PersistentVolumeClaim) -> Result<u128, QuantityError> {
    let requested = claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get(STORAGE));
    requested.map_or(Ok(0), parse_bytes)
}

/// Upstream `FindMatchingVolume` over one access-mode group (rules 2–5).
fn find_in_group<'a>(
    claim: &PersistentVolumeClaim,
    volumes: &[&'a PersistentVolume],
    delay_binding: bool,
    request: u128,
) -> Option<&'a PersistentVolume> {
    let class = claim_class(claim);
    let selector = claim.spec.as_ref().and_then(|s| s.selector.as_ref());
    let mut smallest: Option<(&'a PersistentVolume, u128)> = None;
    for &volume in volumes {
        if claim_ref(volume).is_some() && !is_volume_bound_to_claim(volume, claim) {
            continue;
        }
        let capacity = volume_capacity(volume).unwrap_or(0);
        if capacity < request
            || volume_mode_mismatch(claim, volume)
            || being_deleted(&volume.metadata)
        {
            continue;
        }
        if is_volume_bound_to_claim(volume, claim) {
            return Some(volume);
        }
        if delay_binding {
            continue;
        }
        if volume_phase(volume) != VOLUME_AVAILABLE {
            continue;
        }
        if let Some(selector) = selector
            && selector_matches(selector, volume.metadata.labels.as_ref()) != Ok(true)
        {
            continue;
        }
        if volume_class(volume) != class {
            continue;
        }
        // Ties go to the name that sorts first so the choice does not depend on list order.
        let better = match smallest {
            None => true,
            Some((best, best_capacity)) => {
                capacity < best_capacity
                    || (capacity == best_capacity && name(&volume.metadata) < name(&best.metadata))
            }
        };
        if better {
            smallest = Some((volume, capacity));
        }
    }
    smallest.map(|(volume, _)| volume)
}

/// Rules 1–5 of storage.md: the volume the claim should bind to, if any. `delay_binding`: the
/// claim's class is WaitForFirstConsumer and no node is selected yet (only pre-bound volumes).
pub fn find_matching_volume<'a, V: Borrow<PersistentVolume>>(
    claim: &PersistentVolumeClaim,
    volumes: &'a [V],
    delay_binding: bool,
) -> Option<&'a PersistentVolume> {
    let Ok(request) = request_bytes(claim) else {
        return None;
    };
    let wanted = claim_access_modes(claim);
    let mut groups: BTreeMap<Vec<&'a str>, Vec<&'a PersistentVolume>> = BTreeMap::new();
    for volume in volumes {
        let volume = volume.borrow();
        groups
            .entry(access_mode_set(volume))
            .or_default()
            .push(volume);
    }
    let mut candidates: Vec<(&Vec<&'a str>, &Vec<&'a PersistentVolume>)> = groups
        .iter()
        .filter(|(set, _)| wanted.iter().all(|w| set.contains(&w.as_str())))
        .collect();
    // Fewest modes first; the key breaks ties so the walk is deterministic.
    candidates.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(b.0)));
    candidates
        .into_iter()
        .find_map(|(_, group)| find_in_group(claim, group, delay_binding, request))
}

/// Rule 5 (upstream `checkVolumeSatisfyClaim`): a volume the claim names by `spec.volumeName` is
/// checked for deletion, size, class, volumeMode and access modes; the selector is ignored.
pub fn check_volume_satisfies_claim(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Result<(), String> {
    if being_deleted(&volume.metadata) {
        return Err("the volume is being deleted".to_string());
    }
    let request = request_bytes(claim).map_err(|e| format!("invalid storage request: {e}"))?;
    if volume_capacity(volume).unwrap_or(0) < request {
        return Err("requested PV is too small".to_string());
    }
    if volume_class(volume) != claim_class(claim) {
        return Err("storageClassName does not match".to_string());
    }
    if volume_mode_mismatch(claim, volume) {
        return Err("incompatible volumeMode".to_string());
    }
    if !contains_all(volume_access_modes(volume), claim_access_modes(claim)) {
        return Err("incompatible accessMode".to_string());
    }
    Ok(())
}

/// Rule 4: the class is WaitForFirstConsumer and the scheduler has not picked a node yet.
pub fn is_delay_binding(claim: &PersistentVolumeClaim, class: Option<&StorageClass>) -> bool {
    let wait = class.and_then(|c| c.volume_binding_mode.as_deref()) == Some("WaitForFirstConsumer");
    wait && selected_node(claim).is_none()
}

fn pending(reason: &str, message: String) -> ClaimAction {
    ClaimAction::Pending {
        reason: reason.to_string(),
        message,
    }
}

fn lost(claim: &PersistentVolumeClaim, volume: &str, reason: &str, message: &str) -> ClaimAction {
    // Lost is reported once; a claim already Lost waits for its volume to come back.
    if claim_phase(claim) == CLAIM_LOST {
        return ClaimAction::Nothing;
    }
    ClaimAction::Lost {
        volume: volume.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
    }
}

/// True when `plan_claim` for `claim` could look at `volume` at all: the volume the claim names,
/// a volume whose claimRef names the claim, or a free Available volume of the claim's class.
/// Every other volume is skipped by rules 1–5, so `plan_claim` over only the volumes this keeps
/// decides exactly as over all of them. The binder's `volume_index` narrows this further to the
/// free volume each access-mode set would offer.
pub fn may_concern_claim(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let volume_name = name(&volume.metadata);
    if claim_volume_name(claim) == Some(volume_name) {
        return true;
    }
    match claim_ref(volume) {
        Some(reference) => {
            reference.name.as_deref().unwrap_or("") == name(&claim.metadata)
                && reference.namespace.as_deref().unwrap_or("")
                    == claim.metadata.namespace.as_deref().unwrap_or("")
        }
        None => {
            volume_phase(volume) == VOLUME_AVAILABLE && volume_class(volume) == claim_class(claim)
        }
    }
}

/// A volume anyone may claim: no claimRef, phase Available, not being deleted. Besides the
/// volume a claim names and those whose claimRef names it, only free volumes of the claim's
/// class can be chosen for it (see `find_in_group`).
pub fn is_free(volume: &PersistentVolume) -> bool {
    claim_ref(volume).is_none()
        && volume_phase(volume) == VOLUME_AVAILABLE
        && !being_deleted(&volume.metadata)
}

/// The checks `find_matching_volume` makes of a free volume beyond class, phase, access modes
/// and size: its volumeMode and the claim's selector. An index walking free volumes from the
/// smallest up keeps the first that passes, which is the one the full scan would choose.
pub fn free_volume_fits(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    if volume_mode_mismatch(claim, volume) {
        return false;
    }
    match claim.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(selector) => selector_matches(selector, volume.metadata.labels.as_ref()) == Ok(true),
        None => true,
    }
}

/// Binder-mode decision for one claim (upstream `syncClaim`). `volumes`: every PV; `class`: the
/// claim's StorageClass when it exists.
pub fn plan_claim<V: Borrow<PersistentVolume>>(
    claim: &PersistentVolumeClaim,
    volumes: &[V],
    class: Option<&StorageClass>,
) -> ClaimAction {
    if being_deleted(&claim.metadata) {
        return ClaimAction::Nothing;
    }
    if has_annotation(&claim.metadata, ANN_BIND_COMPLETED) {
        plan_bound_claim(claim, volumes)
    } else {
        plan_unbound_claim(claim, volumes, class)
    }
}

/// Both sides in place: PV uid link, claim spec + annotation, both phases Bound.
fn fully_bound(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    claim_volume_name(claim) == Some(name(&volume.metadata))
        && has_annotation(&claim.metadata, ANN_BIND_COMPLETED)
        && claim_phase(claim) == CLAIM_BOUND
        && volume_phase(volume) == VOLUME_BOUND
}

fn bind_or_complete(
    claim: &PersistentVolumeClaim,
    volume: &PersistentVolume,
    bound_by_controller: bool,
) -> ClaimAction {
    let volume_name = name(&volume.metadata).to_string();
    if !volume_points_at_claim(volume, claim) {
        ClaimAction::Bind {
            volume: volume_name,
            bound_by_controller,
        }
    } else if fully_bound(claim, volume) {
        ClaimAction::Nothing
    } else {
        ClaimAction::CompleteBind {
            volume: volume_name,
        }
    }
}

fn plan_unbound_claim<V: Borrow<PersistentVolume>>(
    claim: &PersistentVolumeClaim,
    volumes: &[V],
    class: Option<&StorageClass>,
) -> ClaimAction {
    if let Err(problem) = request_bytes(claim) {
        return pending(
            REASON_FAILED_BINDING,
            format!("invalid spec.resources.requests.storage: {problem}"),
        );
    }
    let Some(wanted) = claim_volume_name(claim) else {
        if let Some(Err(problem)) = claim
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .map(|s| selector_matches(s, None))
        {
            return pending(
                REASON_FAILED_BINDING,
                format!("invalid label selector: {problem}"),
            );
        }
        let delay = is_delay_binding(claim, class);
        if let Some(volume) = find_matching_volume(claim, volumes, delay) {
            return bind_or_complete(claim, volume, true);
        }
        let class_name = claim_class(claim);
        return if delay {
            ClaimAction::WaitForFirstConsumer
        } else if class_name.is_empty() {
            pending(
                REASON_FAILED_BINDING,
                "no persistent volumes available for this claim and no storage class is set"
                    .to_string(),
            )
        } else if class.is_none() {
            pending(
                REASON_PROVISIONING_FAILED,
                format!("storageclass.storage.k8s.io {class_name:?} not found"),
            )
        } else {
            ClaimAction::Provision
        };
    };
    let Some(volume) = volumes
        .iter()
        .map(|v| -> &PersistentVolume { v.borrow() })
        .find(|v| name(&v.metadata) == wanted)
    else {
        return pending(
            REASON_FAILED_BINDING,
            format!("volume {wanted:?} requested by the claim does not exist; waiting for it"),
        );
    };
    if claim_ref(volume).is_none() {
        return match check_volume_satisfies_claim(volume, claim) {
            Ok(()) => bind_or_complete(claim, volume, false),
            Err(problem) => pending(
                REASON_VOLUME_MISMATCH,
                format!("Cannot bind to requested volume {wanted:?}: {problem}"),
            ),
        };
    }
    if is_volume_bound_to_claim(volume, claim) {
        return bind_or_complete(claim, volume, false);
    }
    pending(
        REASON_FAILED_BINDING,
        format!("volume {wanted:?} already bound to a different claim."),
    )
}

fn plan_bound_claim<V: Borrow<PersistentVolume>>(
    claim: &PersistentVolumeClaim,
    volumes: &[V],
) -> ClaimAction {
    let Some(wanted) = claim_volume_name(claim) else {
        return lost(
            claim,
            "",
            REASON_CLAIM_LOST,
            "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
        );
    };
    let Some(volume) = volumes
        .iter()
        .map(|v| -> &PersistentVolume { v.borrow() })
        .find(|v| name(&v.metadata) == wanted)
    else {
        return lost(
            claim,
            wanted,
            REASON_CLAIM_LOST,
            "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
        );
    };
    if claim_ref(volume).is_none() || is_volume_bound_to_claim(volume, claim) {
        return bind_or_complete(claim, volume, false);
    }
    lost(
        claim,
        wanted,
        REASON_CLAIM_MISBOUND,
        "Two claims are bound to the same volume, this one is bound incorrectly",
    )
}

/// The reclaim policy of a volume; unset counts as Retain, an unknown value is `Err`.
pub fn reclaim_policy(volume: &PersistentVolume) -> Result<Reclaim, String> {
    match volume
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
    {
        None | Some("") | Some("Retain") => Ok(Reclaim::Retain),
        Some("Delete") => Ok(Reclaim::Delete),
        Some("Recycle") => Ok(Reclaim::Recycle),
        Some(other) => Err(other.to_string()),
    }
}

fn release_or_reclaim(volume: &PersistentVolume) -> VolumeAction {
    let phase = volume_phase(volume);
    if phase != VOLUME_RELEASED && phase != VOLUME_FAILED {
        return VolumeAction::Release;
    }
    match reclaim_policy(volume) {
        Ok(policy) => VolumeAction::Reclaim(policy),
        // Already Failed for this reason: the event was sent once.
        Err(_) if phase == VOLUME_FAILED => VolumeAction::Nothing,
        Err(other) => VolumeAction::Fail {
            reason: REASON_UNKNOWN_RECLAIM_POLICY.to_string(),
            message: format!("Volume has unrecognized PersistentVolumeReclaimPolicy {other:?}"),
        },
    }
}

/// Binder-mode decision for one volume (upstream `syncVolume`). `claim`: the claim its claimRef
/// names (namespace/name), `None` when it does not exist. A cache can lag behind a claim that was
/// just created: like upstream, confirm a missing claim (or a uid mismatch) with a direct GET
/// before acting on `Release`.
pub fn plan_volume(
    volume: &PersistentVolume,
    claim: Option<&PersistentVolumeClaim>,
) -> VolumeAction {
    let Some(reference) = claim_ref(volume) else {
        return make_available(volume);
    };
    let Some(uid) = non_empty(reference.uid.as_deref()) else {
        // Reserved by name for a claim that has not bound yet; the claim's sync binds it.
        return make_available(volume);
    };
    let claim = claim.filter(|c| c.metadata.uid.as_deref() == Some(uid));
    let Some(claim) = claim else {
        return release_or_reclaim(volume);
    };
    match claim_volume_name(claim) {
        // Claim not finished yet: its sync completes the bind.
        None => VolumeAction::Nothing,
        Some(bound) if bound == name(&volume.metadata) => {
            if volume_phase(volume) == VOLUME_BOUND {
                VolumeAction::Nothing
            } else {
                VolumeAction::MarkBound
            }
        }
        Some(_) => {
            let provisioned = has_annotation(&volume.metadata, ANN_PROVISIONED_BY);
            if provisioned && reclaim_policy(volume) == Ok(Reclaim::Delete) {
                release_or_reclaim(volume)
            } else {
                VolumeAction::Unbind
            }
        }
    }
}

fn make_available(volume: &PersistentVolume) -> VolumeAction {
    if volume_phase(volume) == VOLUME_AVAILABLE {
        VolumeAction::Nothing
    } else {
        VolumeAction::MakeAvailable
    }
}

#[path = "bind_objects.rs"]
mod objects;
pub use objects::*;

#[cfg(test)]
#[path = "bind_tests.rs"]
mod tests;
