//! Volume expansion: whether a claim's growth is allowed, who finishes it (Stowage for its own
//! hostPath and NFS volumes, the CSI resizer for Longhorn), and the objects Stowage writes when it
//! acts as the resizer. Pure: no I/O.

use crate::storage::bind::{CLAIM_BOUND, claim_class, claim_phase, claim_volume_name};
use crate::storage::class::{ClassKind, classify};
use crate::storage::quantity::{
    STORAGE, claim_capacity, claim_request, format_bytes, volume_capacity,
};
use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimCondition,
    PersistentVolumeClaimStatus,
};
use k8s_openapi::api::storage::v1::StorageClass;

/// Condition type (and Event reason) Stowage sets when it will not expand a claim.
pub const EXPANSION_REFUSED: &str = "ExpansionRefused";
/// Conditions of an expansion in progress, cleared when Stowage finishes it.
pub const CONDITION_RESIZING: &str = "Resizing";
pub const CONDITION_FILE_SYSTEM_RESIZE_PENDING: &str = "FileSystemResizePending";

/// Why a class does not allow expansion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpansionRefused {
    #[error(
        "the claim has no StorageClass; expansion needs a class with allowVolumeExpansion: true"
    )]
    NoClass,
    #[error("StorageClass {class:?} does not exist; create it with allowVolumeExpansion: true")]
    ClassMissing { class: String },
    #[error(
        "StorageClass {class:?} does not set allowVolumeExpansion; set allowVolumeExpansion: true to expand its volumes"
    )]
    NotSet { class: String },
    #[error(
        "StorageClass {class:?} has allowVolumeExpansion: false; set it to true to expand its volumes"
    )]
    NotAllowed { class: String },
    #[error("StorageClass {class:?} cannot be used: {problem}")]
    InvalidClass { class: String, problem: String },
}

/// What to do about a claim's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpansionPlan {
    /// No growth pending (shrinking is ignored), not bound yet, or not Stowage's business.
    Nothing,
    /// Growth asked for but not allowed: condition [`refused_condition`], Warning Event with
    /// `reason` (always [`EXPANSION_REFUSED`]) and `message`, metric.
    Refused { reason: String, message: String },
    /// Stowage is the resizer (hostPath, NFS): write [`resized_volume`], then
    /// [`resized_claim_status`].
    Resize { from: u128, to: u128 },
    /// Longhorn is CSI: the external resizer finishes it.
    LeaveToCsi,
}

/// Upstream's `ValidateStorageClassForExpansion`: the class exists and has
/// `allowVolumeExpansion: true`.
pub fn validate_class_for_expansion(class: Option<&StorageClass>) -> Result<(), ExpansionRefused> {
    let Some(class) = class else {
        return Err(ExpansionRefused::NoClass);
    };
    let name = class.metadata.name.clone().unwrap_or_default();
    match class.allow_volume_expansion {
        Some(true) => Ok(()),
        Some(false) => Err(ExpansionRefused::NotAllowed { class: name }),
        None => Err(ExpansionRefused::NotSet { class: name }),
    }
}

fn refused(why: ExpansionRefused) -> ExpansionPlan {
    ExpansionPlan::Refused {
        reason: EXPANSION_REFUSED.to_string(),
        message: why.to_string(),
    }
}

/// The expansion decision for one claim: growth is `spec` request above `status.capacity` on a
/// Bound claim. `volume`: the bound PV if it exists; `class`: the claim's class if it exists.
pub fn plan_expansion(
    claim: &PersistentVolumeClaim,
    volume: Option<&PersistentVolume>,
    class: Option<&StorageClass>,
) -> ExpansionPlan {
    if claim_phase(claim) != CLAIM_BOUND || claim_volume_name(claim).is_none() {
        return ExpansionPlan::Nothing;
    }
    let (Some(to), Some(from)) = (claim_request(claim), claim_capacity(claim)) else {
        return ExpansionPlan::Nothing;
    };
    if to <= from {
        return ExpansionPlan::Nothing;
    }
    let name = claim_class(claim);
    if name.is_empty() {
        return refused(ExpansionRefused::NoClass);
    }
    let Some(class) = class else {
        return refused(ExpansionRefused::ClassMissing {
            class: name.to_string(),
        });
    };
    let kind = match classify(class) {
        Ok(ClassKind::Foreign) => return ExpansionPlan::Nothing,
        Ok(kind) => kind,
        Err(problem) => {
            return refused(ExpansionRefused::InvalidClass {
                class: name.to_string(),
                problem: problem.to_string(),
            });
        }
    };
    if let Err(why) = validate_class_for_expansion(Some(class)) {
        return refused(why);
    }
    match kind {
        ClassKind::Longhorn => ExpansionPlan::LeaveToCsi,
        // Without its volume there is nothing to resize; the binder reports the claim Lost.
        _ if volume.is_none() => ExpansionPlan::Nothing,
        _ => ExpansionPlan::Resize { from, to },
    }
}

/// The PV with `spec.capacity.storage` raised to `bytes` (never lowered).
pub fn resized_volume(volume: &PersistentVolume, bytes: u128) -> PersistentVolume {
    let mut out = volume.clone();
    if volume_capacity(volume).is_some_and(|current| current >= bytes) {
        return out;
    }
    out.spec
        .get_or_insert_with(Default::default)
        .capacity
        .get_or_insert_with(Default::default)
        .insert(STORAGE.to_string(), format_bytes(bytes));
    out
}

/// The claim status after Stowage finished a resize: capacity and allocatedResources at `bytes`,
/// the in-progress conditions and any ExpansionRefused condition cleared.
pub fn resized_claim_status(
    claim: &PersistentVolumeClaim,
    bytes: u128,
) -> PersistentVolumeClaimStatus {
    let mut status = claim.status.clone().unwrap_or_default();
    status
        .capacity
        .get_or_insert_with(Default::default)
        .insert(STORAGE.to_string(), format_bytes(bytes));
    status
        .allocated_resources
        .get_or_insert_with(Default::default)
        .insert(STORAGE.to_string(), format_bytes(bytes));
    if let Some(statuses) = status.allocated_resource_statuses.as_mut() {
        statuses.remove(STORAGE);
        if statuses.is_empty() {
            status.allocated_resource_statuses = None;
        }
    }
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| {
            ![
                CONDITION_RESIZING,
                CONDITION_FILE_SYSTEM_RESIZE_PENDING,
                EXPANSION_REFUSED,
            ]
            .contains(&c.type_.as_str())
        });
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
    status
}

/// The claim condition reporting a refused expansion (type [`EXPANSION_REFUSED`], status True).
pub fn refused_condition(reason: &str, message: &str) -> PersistentVolumeClaimCondition {
    PersistentVolumeClaimCondition {
        type_: EXPANSION_REFUSED.to_string(),
        status: "True".to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::class::{HOSTPATH_PROVISIONER, LONGHORN_PROVISIONER, NFS_PROVISIONER};
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimSpec, PersistentVolumeSpec, VolumeResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    const GI: u128 = 1024 * 1024 * 1024;

    fn storage(size: &str) -> Option<BTreeMap<String, Quantity>> {
        Some(BTreeMap::from([(
            STORAGE.to_string(),
            Quantity(size.to_string()),
        )]))
    }

    fn condition(type_: &str) -> PersistentVolumeClaimCondition {
        PersistentVolumeClaimCondition {
            type_: type_.to_string(),
            status: "True".to_string(),
            ..Default::default()
        }
    }

    /// A Bound claim of class "c" on volume "v" asking for `request` with `capacity` in status.
    fn claim(request: &str, capacity: &str) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data".to_string()),
                namespace: Some("default".to_string()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                storage_class_name: Some("c".to_string()),
                volume_name: Some("v".to_string()),
                resources: Some(VolumeResourceRequirements {
                    requests: storage(request),
                    limits: None,
                }),
                ..Default::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                phase: Some(CLAIM_BOUND.to_string()),
                capacity: storage(capacity),
                ..Default::default()
            }),
        }
    }

    fn volume(size: &str) -> PersistentVolume {
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some("v".to_string()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                capacity: storage(size),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn class(provisioner: &str, allow: Option<bool>, params: &[(&str, &str)]) -> StorageClass {
        StorageClass {
            metadata: ObjectMeta {
                name: Some("c".to_string()),
                ..Default::default()
            },
            provisioner: provisioner.to_string(),
            allow_volume_expansion: allow,
            parameters: (!params.is_empty()).then(|| {
                params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            ..Default::default()
        }
    }

    /// (what, claim, bound volume, class, expected plan)
    type PlanCase<'a> = (
        &'static str,
        PersistentVolumeClaim,
        Option<&'a PersistentVolume>,
        Option<&'a StorageClass>,
        ExpansionPlan,
    );

    fn refusal(message: &str) -> ExpansionPlan {
        ExpansionPlan::Refused {
            reason: "ExpansionRefused".to_string(),
            message: message.to_string(),
        }
    }

    #[test]
    fn validates_the_class_like_upstream() {
        let cases: Vec<(Option<StorageClass>, Result<(), ExpansionRefused>)> = vec![
            (None, Err(ExpansionRefused::NoClass)),
            (
                Some(class(HOSTPATH_PROVISIONER, None, &[])),
                Err(ExpansionRefused::NotSet { class: "c".into() }),
            ),
            (
                Some(class(HOSTPATH_PROVISIONER, Some(false), &[])),
                Err(ExpansionRefused::NotAllowed { class: "c".into() }),
            ),
            (Some(class(HOSTPATH_PROVISIONER, Some(true), &[])), Ok(())),
        ];
        for (class, want) in cases {
            assert_eq!(
                validate_class_for_expansion(class.as_ref()),
                want,
                "{class:?}"
            );
        }
    }

    #[test]
    fn plans_every_case() {
        let hostpath = class(HOSTPATH_PROVISIONER, Some(true), &[]);
        let nfs = class(
            NFS_PROVISIONER,
            Some(true),
            &[("server", "nfs"), ("path", "/exports")],
        );
        let longhorn = class(LONGHORN_PROVISIONER, Some(true), &[]);
        let longhorn_fixed = class(LONGHORN_PROVISIONER, Some(false), &[]);
        let fixed = class(HOSTPATH_PROVISIONER, Some(false), &[]);
        let unset = class(HOSTPATH_PROVISIONER, None, &[]);
        let foreign = class("ebs.csi.aws.com", Some(false), &[]);
        let broken = class(NFS_PROVISIONER, Some(true), &[("path", "/exports")]);
        let grow = || claim("2Gi", "1Gi");
        let pv = volume("1Gi");
        let resize = ExpansionPlan::Resize {
            from: GI,
            to: 2 * GI,
        };
        let cases: Vec<PlanCase> = vec![
            (
                "hostPath growth → Stowage resizes",
                grow(),
                Some(&pv),
                Some(&hostpath),
                resize.clone(),
            ),
            (
                "NFS growth → Stowage resizes",
                grow(),
                Some(&pv),
                Some(&nfs),
                resize.clone(),
            ),
            (
                "Longhorn growth → CSI",
                grow(),
                Some(&pv),
                Some(&longhorn),
                ExpansionPlan::LeaveToCsi,
            ),
            (
                "shrink is ignored",
                claim("1Gi", "2Gi"),
                Some(&pv),
                Some(&fixed),
                ExpansionPlan::Nothing,
            ),
            (
                "same size",
                claim("1Gi", "1Gi"),
                Some(&pv),
                Some(&hostpath),
                ExpansionPlan::Nothing,
            ),
            (
                "1024Mi equals 1Gi",
                claim("1024Mi", "1Gi"),
                Some(&pv),
                Some(&fixed),
                ExpansionPlan::Nothing,
            ),
            (
                "not bound yet",
                grow().edit_phase("Pending"),
                Some(&pv),
                Some(&hostpath),
                ExpansionPlan::Nothing,
            ),
            (
                "no capacity yet",
                grow().edit_capacity(None),
                Some(&pv),
                Some(&hostpath),
                ExpansionPlan::Nothing,
            ),
            (
                "foreign classes are not ours",
                grow(),
                Some(&pv),
                Some(&foreign),
                ExpansionPlan::Nothing,
            ),
            (
                "volume gone",
                grow(),
                None,
                Some(&hostpath),
                ExpansionPlan::Nothing,
            ),
            (
                "allowVolumeExpansion false",
                grow(),
                Some(&pv),
                Some(&fixed),
                refusal(
                    "StorageClass \"c\" has allowVolumeExpansion: false; set it to true to expand its volumes",
                ),
            ),
            (
                "allowVolumeExpansion unset",
                grow(),
                Some(&pv),
                Some(&unset),
                refusal(
                    "StorageClass \"c\" does not set allowVolumeExpansion; set allowVolumeExpansion: true to expand its volumes",
                ),
            ),
            (
                "Longhorn without allowVolumeExpansion",
                grow(),
                Some(&pv),
                Some(&longhorn_fixed),
                refusal(
                    "StorageClass \"c\" has allowVolumeExpansion: false; set it to true to expand its volumes",
                ),
            ),
            (
                "class missing",
                grow(),
                Some(&pv),
                None,
                refusal(
                    "StorageClass \"c\" does not exist; create it with allowVolumeExpansion: true",
                ),
            ),
            (
                "no class",
                grow().edit_class(""),
                Some(&pv),
                None,
                refusal(
                    "the claim has no StorageClass; expansion needs a class with allowVolumeExpansion: true",
                ),
            ),
            (
                "invalid class",
                grow(),
                Some(&pv),
                Some(&broken),
                refusal(
                    "StorageClass \"c\" cannot be used: StorageClass \"c\": parameter \"server\" is required for stowage.io/nfs",
                ),
            ),
        ];
        for (what, claim, volume, class, want) in cases {
            assert_eq!(plan_expansion(&claim, volume, class), want, "{what}");
        }
    }

    trait Edit {
        fn edit_phase(self, phase: &str) -> Self;
        fn edit_capacity(self, capacity: Option<&str>) -> Self;
        fn edit_class(self, class: &str) -> Self;
    }

    impl Edit for PersistentVolumeClaim {
        fn edit_phase(mut self, phase: &str) -> Self {
            self.status.as_mut().unwrap().phase = Some(phase.to_string());
            self
        }
        fn edit_capacity(mut self, capacity: Option<&str>) -> Self {
            self.status.as_mut().unwrap().capacity = capacity.and_then(storage);
            self
        }
        fn edit_class(mut self, class: &str) -> Self {
            self.spec.as_mut().unwrap().storage_class_name = Some(class.to_string());
            self
        }
    }

    #[test]
    fn resized_volume_only_grows() {
        let grown = resized_volume(&volume("1Gi"), 2 * GI);
        assert_eq!(grown.spec.as_ref().unwrap().capacity, storage("2Gi"));
        assert_eq!(grown.metadata, volume("1Gi").metadata);
        assert_eq!(resized_volume(&volume("5Gi"), 2 * GI), volume("5Gi"));
        assert_eq!(resized_volume(&grown, 2 * GI), grown, "idempotent");
    }

    #[test]
    fn resized_claim_status_finishes_the_resize() {
        let mut claim = claim("3Gi", "1Gi");
        {
            let status = claim.status.as_mut().unwrap();
            status.conditions = Some(vec![
                condition(CONDITION_RESIZING),
                condition(CONDITION_FILE_SYSTEM_RESIZE_PENDING),
                condition(EXPANSION_REFUSED),
                condition("ModifyingVolume"),
            ]);
            status.allocated_resource_statuses = Some(BTreeMap::from([(
                STORAGE.to_string(),
                "ControllerResizeInProgress".to_string(),
            )]));
            status.access_modes = Some(vec!["ReadWriteOnce".to_string()]);
        }
        let status = resized_claim_status(&claim, 3 * GI);
        assert_eq!(status.capacity, storage("3Gi"));
        assert_eq!(status.allocated_resources, storage("3Gi"));
        assert_eq!(status.allocated_resource_statuses, None);
        assert_eq!(status.conditions, Some(vec![condition("ModifyingVolume")]));
        assert_eq!(status.phase.as_deref(), Some(CLAIM_BOUND));
        assert_eq!(status.access_modes, Some(vec!["ReadWriteOnce".to_string()]));

        let plain = resized_claim_status(&self::claim("2Gi", "1Gi"), 2 * GI);
        assert_eq!(plain.conditions, None);
        assert_eq!(plain.capacity, storage("2Gi"));
    }

    #[test]
    fn refused_condition_is_true_with_reason_and_message() {
        let c = refused_condition("ExpansionRefused", "StorageClass \"c\" has ...");
        assert_eq!(c.type_, "ExpansionRefused");
        assert_eq!(c.status, "True");
        assert_eq!(c.reason.as_deref(), Some("ExpansionRefused"));
        assert_eq!(c.message.as_deref(), Some("StorageClass \"c\" has ..."));
    }
}
