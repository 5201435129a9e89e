//! Table-driven tests of the binder: every rule (1–9) and every example of docs/storage.md.

use super::*;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeSpec,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, Time};

const RWO: &str = "ReadWriteOnce";
const ROX: &str = "ReadOnlyMany";
const RWX: &str = "ReadWriteMany";

/// (what, claim, volumes, delay_binding, expected volume)
type MatchCase = (
    &'static str,
    PersistentVolumeClaim,
    Vec<PersistentVolume>,
    bool,
    Option<&'static str>,
);
/// (what, claim, volumes, class, expected action)
type ClaimCase<'a> = (
    &'static str,
    PersistentVolumeClaim,
    Vec<PersistentVolume>,
    Option<&'a StorageClass>,
    ClaimAction,
);
/// (what, volume, claim named by claimRef, expected action)
type VolumeCase = (
    &'static str,
    PersistentVolume,
    Option<PersistentVolumeClaim>,
    VolumeAction,
);

/// The candidates the binder's index gives for `claim` (it decides over these only).
fn indexed(
    volumes: &[PersistentVolume],
    claim: &PersistentVolumeClaim,
) -> Vec<std::sync::Arc<PersistentVolume>> {
    let mut index = crate::storage::volume_index::VolumeIndex::default();
    for volume in volumes {
        index.insert(std::sync::Arc::new(volume.clone()));
    }
    index.candidates(claim)
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

fn storage(size: &str) -> Option<BTreeMap<String, Quantity>> {
    Some(BTreeMap::from([(
        "storage".to_string(),
        Quantity(size.to_string()),
    )]))
}

/// A claim `default/<name>` with uid `uid-<name>`, RWO, no class, status Pending.
fn claim(name: &str, size: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some("default".to_string()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("7".to_string()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(strings(&[RWO])),
            resources: Some(VolumeResourceRequirements {
                requests: storage(size),
                limits: None,
            }),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some(CLAIM_PENDING.to_string()),
            ..Default::default()
        }),
    }
}

/// A volume `<name>`, RWO, no class, Retain, phase Available.
fn pv(name: &str, size: &str) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: Some(strings(&[RWO])),
            capacity: storage(size),
            persistent_volume_reclaim_policy: Some("Retain".to_string()),
            ..Default::default()
        }),
        status: Some(volume_status(VOLUME_AVAILABLE)),
    }
}

trait ClaimExt: Sized {
    fn edit(self, f: impl FnOnce(&mut PersistentVolumeClaim)) -> Self;
    fn modes(self, modes: &[&str]) -> Self;
    fn class(self, class: &str) -> Self;
    fn volume(self, name: &str) -> Self;
    fn annotate(self, key: &str) -> Self;
    fn phase(self, phase: &str) -> Self;
    fn labels_wanted(self, key: &str, value: &str) -> Self;
    fn expression(self, key: &str, operator: &str, values: &[&str]) -> Self;
    fn block(self) -> Self;
}

impl ClaimExt for PersistentVolumeClaim {
    fn edit(mut self, f: impl FnOnce(&mut PersistentVolumeClaim)) -> Self {
        f(&mut self);
        self
    }
    fn modes(self, modes: &[&str]) -> Self {
        self.edit(|c| c.spec.as_mut().unwrap().access_modes = Some(strings(modes)))
    }
    fn class(self, class: &str) -> Self {
        self.edit(|c| c.spec.as_mut().unwrap().storage_class_name = Some(class.to_string()))
    }
    fn volume(self, name: &str) -> Self {
        self.edit(|c| c.spec.as_mut().unwrap().volume_name = Some(name.to_string()))
    }
    fn annotate(self, key: &str) -> Self {
        self.edit(|c| set_annotation(&mut c.metadata, key, "yes"))
    }
    fn phase(self, phase: &str) -> Self {
        self.edit(|c| c.status.as_mut().unwrap().phase = Some(phase.to_string()))
    }
    fn labels_wanted(self, key: &str, value: &str) -> Self {
        self.edit(|c| {
            let selector = c.spec.as_mut().unwrap().selector.get_or_insert_default();
            selector
                .match_labels
                .get_or_insert_default()
                .insert(key.to_string(), value.to_string());
        })
    }
    fn expression(self, key: &str, operator: &str, values: &[&str]) -> Self {
        self.edit(|c| {
            let selector = c.spec.as_mut().unwrap().selector.get_or_insert_default();
            selector
                .match_expressions
                .get_or_insert_default()
                .push(LabelSelectorRequirement {
                    key: key.to_string(),
                    operator: operator.to_string(),
                    values: (!values.is_empty()).then(|| strings(values)),
                });
        })
    }
    fn block(self) -> Self {
        self.edit(|c| c.spec.as_mut().unwrap().volume_mode = Some("Block".to_string()))
    }
}

trait VolumeExt: Sized {
    fn edit(self, f: impl FnOnce(&mut PersistentVolume)) -> Self;
    fn modes(self, modes: &[&str]) -> Self;
    fn class(self, class: &str) -> Self;
    fn phase(self, phase: &str) -> Self;
    fn label(self, key: &str, value: &str) -> Self;
    fn annotate(self, key: &str) -> Self;
    fn policy(self, policy: &str) -> Self;
    fn mode(self, mode: &str) -> Self;
    fn deleting(self) -> Self;
    /// claimRef to `namespace/name`, with `uid` unless it is "".
    fn reserved(self, namespace: &str, name: &str, uid: &str) -> Self;
}

impl VolumeExt for PersistentVolume {
    fn edit(mut self, f: impl FnOnce(&mut PersistentVolume)) -> Self {
        f(&mut self);
        self
    }
    fn modes(self, modes: &[&str]) -> Self {
        self.edit(|v| v.spec.as_mut().unwrap().access_modes = Some(strings(modes)))
    }
    fn class(self, class: &str) -> Self {
        self.edit(|v| v.spec.as_mut().unwrap().storage_class_name = Some(class.to_string()))
    }
    fn phase(self, phase: &str) -> Self {
        self.edit(|v| v.status = Some(volume_status(phase)))
    }
    fn label(self, key: &str, value: &str) -> Self {
        self.edit(|v| {
            v.metadata
                .labels
                .get_or_insert_default()
                .insert(key.to_string(), value.to_string());
        })
    }
    fn annotate(self, key: &str) -> Self {
        self.edit(|v| set_annotation(&mut v.metadata, key, "yes"))
    }
    fn policy(self, policy: &str) -> Self {
        self.edit(|v| {
            v.spec.as_mut().unwrap().persistent_volume_reclaim_policy = Some(policy.to_string())
        })
    }
    fn mode(self, mode: &str) -> Self {
        self.edit(|v| v.spec.as_mut().unwrap().volume_mode = Some(mode.to_string()))
    }
    fn deleting(self) -> Self {
        self.edit(|v| {
            v.metadata.deletion_timestamp = Some(Time("2026-01-01T00:00:00Z".parse().unwrap()))
        })
    }
    fn reserved(self, namespace: &str, name: &str, uid: &str) -> Self {
        self.edit(|v| {
            v.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
                kind: Some("PersistentVolumeClaim".to_string()),
                namespace: Some(namespace.to_string()),
                name: Some(name.to_string()),
                uid: (!uid.is_empty()).then(|| uid.to_string()),
                ..Default::default()
            })
        })
    }
}

fn class(name: &str, mode: &str) -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        provisioner: "stowage.io/hostpath".to_string(),
        volume_binding_mode: Some(mode.to_string()),
        ..Default::default()
    }
}

fn pending_action(reason: &str, message: &str) -> ClaimAction {
    ClaimAction::Pending {
        reason: reason.to_string(),
        message: message.to_string(),
    }
}

fn bind(volume: &str, bound_by_controller: bool) -> ClaimAction {
    ClaimAction::Bind {
        volume: volume.to_string(),
        bound_by_controller,
    }
}

fn complete(volume: &str) -> ClaimAction {
    ClaimAction::CompleteBind {
        volume: volume.to_string(),
    }
}

#[test]
fn find_matching_volume_follows_rules_1_to_5() {
    let c = || claim("data", "1Gi");
    let cases: Vec<MatchCase> = vec![
        (
            "equal size binds",
            c(),
            vec![pv("a", "1Gi")],
            false,
            Some("a"),
        ),
        (
            "too small is skipped",
            claim("data", "10Gi"),
            vec![pv("a", "1Gi")],
            false,
            None,
        ),
        (
            "smallest that fits wins",
            claim("data", "2Gi"),
            vec![
                pv("big", "10Gi"),
                pv("small", "1Gi"),
                pv("mid", "5Gi"),
                pv("fit", "3Gi"),
            ],
            false,
            Some("fit"),
        ),
        (
            "rule 1: RWO claim prefers a 10Gi RWO volume over a 1Gi RWO+RWX one",
            c(),
            vec![pv("multi", "1Gi").modes(&[RWO, RWX]), pv("single", "10Gi")],
            false,
            Some("single"),
        ),
        (
            "rule 1: a wider set is used when the narrow one has no fit",
            claim("data", "5Gi"),
            vec![pv("multi", "5Gi").modes(&[RWX, RWO]), pv("single", "1Gi")],
            false,
            Some("multi"),
        ),
        (
            "rule 1: only sets containing every requested mode count",
            c().modes(&[RWX]),
            vec![pv("rwo", "1Gi"), pv("rox", "1Gi").modes(&[ROX])],
            false,
            None,
        ),
        (
            "rule 1: RWX+ROX claim takes the set holding both",
            c().modes(&[RWX, ROX]),
            vec![
                pv("rwx", "1Gi").modes(&[RWX]),
                pv("all", "8Gi").modes(&[RWO, ROX, RWX]),
            ],
            false,
            Some("all"),
        ),
        (
            "rule 1: a claim without modes walks the one-mode set first",
            c().modes(&[]),
            vec![pv("multi", "1Gi").modes(&[RWO, RWX]), pv("single", "10Gi")],
            false,
            Some("single"),
        ),
        (
            "rule 2: claimRef to another claim is skipped",
            c(),
            vec![
                pv("taken", "1Gi").reserved("default", "other", ""),
                pv("free", "2Gi"),
            ],
            false,
            Some("free"),
        ),
        (
            "rule 2: claimRef with this name in another namespace is skipped",
            c(),
            vec![pv("taken", "1Gi").reserved("prod", "data", "")],
            false,
            None,
        ),
        (
            "rule 2: claimRef with this name but another uid is skipped",
            c(),
            vec![pv("taken", "1Gi").reserved("default", "data", "uid-old")],
            false,
            None,
        ),
        (
            "rule 2: volumeMode Block vs nil (Filesystem) is skipped",
            c().block(),
            vec![pv("fs", "1Gi")],
            false,
            None,
        ),
        (
            "rule 2: volumeMode Block matches Block",
            c().block(),
            vec![pv("fs", "1Gi"), pv("blk", "2Gi").mode("Block")],
            false,
            Some("blk"),
        ),
        (
            "rule 2: nil volumeMode equals Filesystem",
            c(),
            vec![pv("fs", "1Gi").mode("Filesystem")],
            false,
            Some("fs"),
        ),
        (
            "rule 2: a volume being deleted is skipped",
            c(),
            vec![pv("gone", "1Gi").deleting(), pv("ok", "3Gi")],
            false,
            Some("ok"),
        ),
        (
            "rule 2: a pre-bound volume being deleted is skipped too",
            c(),
            vec![pv("gone", "1Gi").reserved("default", "data", "").deleting()],
            false,
            None,
        ),
        (
            "rule 3: pre-bound by name wins over a smaller free volume",
            c(),
            vec![
                pv("free", "1Gi"),
                pv("mine", "10Gi").reserved("default", "data", ""),
            ],
            false,
            Some("mine"),
        ),
        (
            "rule 3: pre-bound with this uid wins",
            c(),
            vec![
                pv("free", "1Gi"),
                pv("mine", "10Gi").reserved("default", "data", "uid-data"),
            ],
            false,
            Some("mine"),
        ),
        (
            "rule 3: pre-bound wins whatever its phase and class",
            c(),
            vec![
                pv("mine", "1Gi")
                    .reserved("default", "data", "")
                    .phase(VOLUME_PENDING)
                    .class("x"),
            ],
            false,
            Some("mine"),
        ),
        (
            "rule 3: pre-bound but too small does not win",
            claim("data", "5Gi"),
            vec![
                pv("mine", "1Gi").reserved("default", "data", ""),
                pv("free", "5Gi"),
            ],
            false,
            Some("free"),
        ),
        (
            "rule 3: Pending, Failed, Released and phase-less volumes are skipped",
            c(),
            vec![
                pv("p", "1Gi").phase(VOLUME_PENDING),
                pv("f", "1Gi").phase(VOLUME_FAILED),
                pv("r", "1Gi").phase(VOLUME_RELEASED),
                pv("n", "1Gi").edit(|v| v.status = None),
            ],
            false,
            None,
        ),
        (
            "rule 3: selector mismatch is skipped",
            c().labels_wanted("tier", "fast"),
            vec![pv("slow", "1Gi").label("tier", "slow"), pv("none", "1Gi")],
            false,
            None,
        ),
        (
            "rule 3: selector match binds",
            c().labels_wanted("tier", "fast"),
            vec![
                pv("slow", "1Gi").label("tier", "slow"),
                pv("fast", "2Gi").label("tier", "fast"),
            ],
            false,
            Some("fast"),
        ),
        (
            "rule 3: matchExpressions In / NotIn / Exists / DoesNotExist",
            c().expression("zone", "In", &["a", "b"])
                .expression("tier", "NotIn", &["slow"])
                .expression("ssd", "Exists", &[])
                .expression("broken", "DoesNotExist", &[]),
            vec![
                pv("wrong-zone", "1Gi").label("zone", "c").label("ssd", "1"),
                pv("slow", "1Gi")
                    .label("zone", "a")
                    .label("ssd", "1")
                    .label("tier", "slow"),
                pv("no-ssd", "1Gi").label("zone", "a"),
                pv("broken", "1Gi")
                    .label("zone", "a")
                    .label("ssd", "1")
                    .label("broken", "y"),
                pv("right", "4Gi")
                    .label("zone", "b")
                    .label("ssd", "1")
                    .label("tier", "fast"),
            ],
            false,
            Some("right"),
        ),
        (
            "rule 3: an unknown selector operator matches nothing",
            c().expression("zone", "Near", &["a"]),
            vec![pv("a", "1Gi").label("zone", "a")],
            false,
            None,
        ),
        (
            "rule 3: a classless claim does not take a classed volume",
            c(),
            vec![pv("fast", "1Gi").class("fast")],
            false,
            None,
        ),
        (
            "rule 3: a classed claim does not take a classless volume",
            c().class("fast"),
            vec![pv("plain", "1Gi"), pv("slow", "1Gi").class("slow")],
            false,
            None,
        ),
        (
            "rule 3: nil class equals empty class",
            c().class(""),
            vec![pv("plain", "1Gi")],
            false,
            Some("plain"),
        ),
        (
            "rule 3: same class binds; the beta annotation counts as the class",
            c().class("fast"),
            vec![
                pv("annotated", "1Gi")
                    .edit(|v| set_annotation(&mut v.metadata, ANN_BETA_STORAGE_CLASS, "fast")),
            ],
            false,
            Some("annotated"),
        ),
        (
            "rule 3: equal sizes go to the first name",
            c(),
            vec![pv("b", "1Gi"), pv("a", "1Gi"), pv("c", "1Gi")],
            false,
            Some("a"),
        ),
        (
            "rule 4: WaitForFirstConsumer leaves free volumes alone",
            c(),
            vec![pv("free", "1Gi")],
            true,
            None,
        ),
        (
            "rule 4: WaitForFirstConsumer still binds a pre-bound volume",
            c(),
            vec![
                pv("free", "1Gi"),
                pv("mine", "2Gi").reserved("default", "data", ""),
            ],
            true,
            Some("mine"),
        ),
    ];
    for (what, claim, volumes, delay, want) in cases {
        let got = find_matching_volume(&claim, &volumes, delay).map(|v| name(&v.metadata));
        assert_eq!(got, want, "{what}");
        // The binder decides over the candidates only; it must choose the same.
        let candidates: Vec<&PersistentVolume> = volumes
            .iter()
            .filter(|v| may_concern_claim(v, &claim))
            .collect();
        let got = find_matching_volume(&claim, &candidates, delay).map(|v| name(&v.metadata));
        assert_eq!(got, want, "{what} (candidates only)");
        let indexed = indexed(&volumes, &claim);
        let got = find_matching_volume(&claim, &indexed, delay).map(|v| name(&v.metadata));
        assert_eq!(got, want, "{what} (the index's candidates)");
    }
}

#[test]
fn rule_5_checks_a_named_volume() {
    let c = || claim("data", "2Gi");
    let cases: Vec<(
        &str,
        PersistentVolumeClaim,
        PersistentVolume,
        Result<(), &str>,
    )> = vec![
        ("fits", c(), pv("v", "2Gi"), Ok(())),
        (
            "selector is ignored",
            c().labels_wanted("tier", "fast"),
            pv("v", "2Gi").label("tier", "slow"),
            Ok(()),
        ),
        (
            "phase is ignored",
            c(),
            pv("v", "2Gi").phase(VOLUME_RELEASED),
            Ok(()),
        ),
        (
            "too small",
            c(),
            pv("v", "1Gi"),
            Err("requested PV is too small"),
        ),
        (
            "class",
            c().class("fast"),
            pv("v", "2Gi"),
            Err("storageClassName does not match"),
        ),
        (
            "volume mode",
            c().block(),
            pv("v", "2Gi"),
            Err("incompatible volumeMode"),
        ),
        (
            "access modes",
            c().modes(&[RWX]),
            pv("v", "2Gi"),
            Err("incompatible accessMode"),
        ),
        (
            "being deleted",
            c(),
            pv("v", "2Gi").deleting(),
            Err("the volume is being deleted"),
        ),
        (
            "malformed request",
            claim("data", "-1Gi"),
            pv("v", "2Gi"),
            Err("invalid storage request: `-1Gi` is negative; a size must be zero or more"),
        ),
    ];
    for (what, claim, volume, want) in cases {
        let got = check_volume_satisfies_claim(&volume, &claim);
        assert_eq!(got, want.map_err(str::to_string), "{what}");
    }
}

#[test]
fn plan_claim_covers_rules_and_examples() {
    let c = || claim("data", "1Gi");
    let fast = class("fast", "Immediate");
    let wait = class("fast", "WaitForFirstConsumer");
    // The PV side written, the claim side not: a crash between the two writes of rule 6.
    let half = pv("v", "1Gi")
        .reserved("default", "data", "uid-data")
        .annotate(ANN_BOUND_BY_CONTROLLER);
    let done = || {
        c().volume("v")
            .annotate(ANN_BIND_COMPLETED)
            .annotate(ANN_BOUND_BY_CONTROLLER)
            .phase(CLAIM_BOUND)
    };
    let bound_pv = || {
        pv("v", "1Gi")
            .reserved("default", "data", "uid-data")
            .phase(VOLUME_BOUND)
    };
    let cases: Vec<ClaimCase> = vec![
        ("example: 1Gi PV + 1Gi claim binds", c(), vec![pv("v", "1Gi")], None, bind("v", true)),
        (
            "example: 1Gi PV + 10Gi claim → FailedBinding",
            claim("data", "10Gi"),
            vec![pv("v", "1Gi")],
            None,
            pending_action(
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set",
            ),
        ),
        (
            "example: 10Gi and 1Gi PVs + 1Gi claim → the 1Gi binds",
            c(),
            vec![pv("ten", "10Gi"), pv("one", "1Gi")],
            None,
            bind("one", true),
        ),
        (
            "example: 10Gi pre-bound by name + free 1Gi → the 10Gi binds",
            c(),
            vec![pv("one", "1Gi"), pv("ten", "10Gi").reserved("default", "data", "")],
            None,
            bind("ten", true),
        ),
        (
            "example: selector mismatch → not bound",
            c().labels_wanted("tier", "fast"),
            vec![pv("v", "1Gi").label("tier", "slow")],
            None,
            pending_action(
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set",
            ),
        ),
        (
            "example: Pending/Failed/Released PVs are skipped",
            c(),
            vec![
                pv("p", "1Gi").phase(VOLUME_PENDING),
                pv("f", "1Gi").phase(VOLUME_FAILED),
                pv("r", "1Gi").phase(VOLUME_RELEASED),
            ],
            None,
            pending_action(
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set",
            ),
        ),
        (
            "example: crash between the two bind writes → completed",
            c(),
            vec![pv("other", "1Gi"), half.clone()],
            None,
            complete("v"),
        ),
        (
            "rule 7: no match with a class → provision",
            c().class("fast"),
            vec![pv("v", "1Gi")],
            Some(&fast),
            ClaimAction::Provision,
        ),
        (
            "rule 7: a matching classed volume beats provisioning",
            c().class("fast"),
            vec![pv("v", "1Gi").class("fast")],
            Some(&fast),
            bind("v", true),
        ),
        (
            "rule 7: class named but missing",
            c().class("fast"),
            vec![],
            None,
            pending_action("ProvisioningFailed", "storageclass.storage.k8s.io \"fast\" not found"),
        ),
        (
            "rule 4: WaitForFirstConsumer without a node waits, even with a free volume",
            c().class("fast"),
            vec![pv("v", "1Gi").class("fast")],
            Some(&wait),
            ClaimAction::WaitForFirstConsumer,
        ),
        (
            "rule 4: WaitForFirstConsumer binds a pre-bound volume at once",
            c().class("fast"),
            vec![pv("v", "1Gi").reserved("default", "data", "")],
            Some(&wait),
            bind("v", true),
        ),
        (
            "rule 4: selected-node set → free volumes bind",
            c().class("fast").edit(|c| set_annotation(&mut c.metadata, ANN_SELECTED_NODE, "n1")),
            vec![pv("v", "1Gi").class("fast")],
            Some(&wait),
            bind("v", true),
        ),
        (
            "rule 4: selected-node set, nothing free → provision",
            c().class("fast").edit(|c| set_annotation(&mut c.metadata, ANN_SELECTED_NODE, "n1")),
            vec![],
            Some(&wait),
            ClaimAction::Provision,
        ),
        (
            "rule 5: named volume binds, selector ignored, user link",
            c().volume("v").labels_wanted("tier", "fast"),
            vec![pv("small", "1Gi"), pv("v", "5Gi").label("tier", "slow")],
            None,
            bind("v", false),
        ),
        (
            "rule 5: named volume too small",
            c().volume("v"),
            vec![pv("v", "500Mi")],
            None,
            pending_action(
                "VolumeMismatch",
                "Cannot bind to requested volume \"v\": requested PV is too small",
            ),
        ),
        (
            "rule 5: named volume with another class",
            c().volume("v"),
            vec![pv("v", "1Gi").class("fast")],
            None,
            pending_action(
                "VolumeMismatch",
                "Cannot bind to requested volume \"v\": storageClassName does not match",
            ),
        ),
        (
            "rule 5: named volume missing",
            c().volume("v"),
            vec![pv("w", "1Gi")],
            None,
            pending_action(
                "FailedBinding",
                "volume \"v\" requested by the claim does not exist; waiting for it",
            ),
        ),
        (
            "rule 5: named volume bound to someone else",
            c().volume("v"),
            vec![pv("v", "1Gi").reserved("default", "other", "uid-other")],
            None,
            pending_action("FailedBinding", "volume \"v\" already bound to a different claim."),
        ),
        (
            "rule 5: both named each other by hand → fill in the uid",
            c().volume("v"),
            vec![pv("v", "1Gi").reserved("default", "data", "")],
            None,
            bind("v", false),
        ),
        (
            "rule 6: named volume already points at the claim → complete",
            c().volume("v"),
            vec![half.clone()],
            None,
            complete("v"),
        ),
        ("bound and in place → nothing", done(), vec![bound_pv()], None, ClaimAction::Nothing),
        (
            "bound, PV phase lagging → complete",
            done(),
            vec![bound_pv().phase(VOLUME_AVAILABLE)],
            None,
            complete("v"),
        ),
        (
            "bound, claim status lagging → complete",
            done().phase(CLAIM_PENDING),
            vec![bound_pv()],
            None,
            complete("v"),
        ),
        (
            "bound, PV lost its claimRef → bind again",
            done(),
            vec![pv("v", "1Gi").phase(VOLUME_AVAILABLE)],
            None,
            bind("v", false),
        ),
        (
            "rule 9: bound claim whose volume disappeared → Lost",
            done(),
            vec![pv("w", "1Gi")],
            None,
            ClaimAction::Lost {
                volume: "v".to_string(),
                reason: "ClaimLost".to_string(),
                message: "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
                    .to_string(),
            },
        ),
        (
            "rule 9: already Lost → no new event",
            done().phase(CLAIM_LOST),
            vec![],
            None,
            ClaimAction::Nothing,
        ),
        (
            "rule 9: Lost claim whose volume came back → bound again",
            done().phase(CLAIM_LOST),
            vec![bound_pv()],
            None,
            complete("v"),
        ),
        (
            "rule 9: bound claim without volumeName → Lost",
            c().annotate(ANN_BIND_COMPLETED).phase(CLAIM_BOUND),
            vec![],
            None,
            ClaimAction::Lost {
                volume: String::new(),
                reason: "ClaimLost".to_string(),
                message:
                    "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!"
                        .to_string(),
            },
        ),
        (
            "bound claim whose volume serves another claim → misbound",
            done(),
            vec![pv("v", "1Gi").reserved("default", "data", "uid-new").phase(VOLUME_BOUND)],
            None,
            ClaimAction::Lost {
                volume: "v".to_string(),
                reason: "ClaimMisbound".to_string(),
                message: "Two claims are bound to the same volume, this one is bound incorrectly"
                    .to_string(),
            },
        ),
        (
            "claim being deleted → nothing",
            c().edit(|c| {
                c.metadata.deletion_timestamp = Some(Time("2026-01-01T00:00:00Z".parse().unwrap()))
            }),
            vec![pv("v", "1Gi")],
            None,
            ClaimAction::Nothing,
        ),
        (
            "malformed request → Pending with the problem, never a match",
            claim("data", "lots"),
            vec![pv("v", "1Gi")],
            None,
            pending_action(
                "FailedBinding",
                "invalid spec.resources.requests.storage: `lots` is not a Kubernetes quantity (no \
                 digits); write a size such as 10Gi, 500M or 1.5Ti",
            ),
        ),
        (
            "no request at all counts as zero (upstream)",
            c().edit(|c| c.spec.as_mut().unwrap().resources = None),
            vec![pv("big", "5Gi"), pv("small", "1Gi")],
            None,
            bind("small", true),
        ),
        (
            "malformed selector → Pending with the problem",
            c().expression("zone", "In", &[]),
            vec![pv("v", "1Gi")],
            None,
            pending_action(
                "FailedBinding",
                "invalid label selector: operator In on key \"zone\" needs at least one value",
            ),
        ),
    ];
    for (what, claim, volumes, class, want) in cases {
        assert_eq!(plan_claim(&claim, &volumes, class), want, "{what}");
        let candidates: Vec<&PersistentVolume> = volumes
            .iter()
            .filter(|v| may_concern_claim(v, &claim))
            .collect();
        assert_eq!(
            plan_claim(&claim, &candidates, class),
            want,
            "{what} (candidates only)"
        );
        assert_eq!(
            plan_claim(&claim, &indexed(&volumes, &claim), class),
            want,
            "{what} (the index's candidates)"
        );
    }
}

#[test]
fn plan_volume_covers_rules_8_and_the_volume_side() {
    let c = || claim("data", "1Gi");
    let bound_claim = || {
        c().volume("v")
            .annotate(ANN_BIND_COMPLETED)
            .phase(CLAIM_BOUND)
    };
    let mine = || pv("v", "1Gi").reserved("default", "data", "uid-data");
    let retained = || mine().phase(VOLUME_RELEASED);
    let reclaim = |policy| VolumeAction::Reclaim(policy);
    let cases: Vec<VolumeCase> = vec![
        (
            "new volume → Available",
            pv("v", "1Gi").phase(VOLUME_PENDING),
            None,
            VolumeAction::MakeAvailable,
        ),
        (
            "phase-less volume → Available",
            pv("v", "1Gi").edit(|v| v.status = None),
            None,
            VolumeAction::MakeAvailable,
        ),
        (
            "Available stays",
            pv("v", "1Gi"),
            None,
            VolumeAction::Nothing,
        ),
        (
            "admin cleared claimRef of a Released volume → Available",
            pv("v", "1Gi").phase(VOLUME_RELEASED),
            None,
            VolumeAction::MakeAvailable,
        ),
        (
            "reserved by name only → Available",
            pv("v", "1Gi")
                .reserved("default", "data", "")
                .phase(VOLUME_PENDING),
            None,
            VolumeAction::MakeAvailable,
        ),
        (
            "rule 8: claim deleted → Released",
            mine().phase(VOLUME_BOUND),
            None,
            VolumeAction::Release,
        ),
        (
            "rule 8: claim recreated with a new uid → Released",
            mine().phase(VOLUME_BOUND),
            Some(bound_claim().edit(|c| c.metadata.uid = Some("uid-new".to_string()))),
            VolumeAction::Release,
        ),
        (
            "rule 8: Released + Retain → kept",
            retained(),
            None,
            reclaim(Reclaim::Retain),
        ),
        (
            "rule 8: no policy counts as Retain",
            retained().edit(|v| v.spec.as_mut().unwrap().persistent_volume_reclaim_policy = None),
            None,
            reclaim(Reclaim::Retain),
        ),
        (
            "rule 8: Released + Delete → delete",
            retained().policy("Delete"),
            None,
            reclaim(Reclaim::Delete),
        ),
        (
            "rule 8: Failed + Delete → retry delete",
            mine().phase(VOLUME_FAILED).policy("Delete"),
            None,
            reclaim(Reclaim::Delete),
        ),
        (
            "rule 8: Recycle is reported as such",
            retained().policy("Recycle"),
            None,
            reclaim(Reclaim::Recycle),
        ),
        (
            "rule 8: unknown policy → Failed",
            retained().policy("Shred"),
            None,
            VolumeAction::Fail {
                reason: "VolumeUnknownReclaimPolicy".to_string(),
                message: "Volume has unrecognized PersistentVolumeReclaimPolicy \"Shred\""
                    .to_string(),
            },
        ),
        (
            "unknown policy already Failed → nothing",
            mine().phase(VOLUME_FAILED).policy("Shred"),
            None,
            VolumeAction::Nothing,
        ),
        (
            "claim not finished yet → its sync acts",
            mine(),
            Some(c()),
            VolumeAction::Nothing,
        ),
        (
            "bound both ways, phase lagging → Bound",
            mine(),
            Some(bound_claim()),
            VolumeAction::MarkBound,
        ),
        (
            "bound both ways → nothing",
            mine().phase(VOLUME_BOUND),
            Some(bound_claim()),
            VolumeAction::Nothing,
        ),
        (
            "claim bound elsewhere → unbind",
            mine().phase(VOLUME_BOUND).annotate(ANN_BOUND_BY_CONTROLLER),
            Some(bound_claim().volume("w")),
            VolumeAction::Unbind,
        ),
        (
            "claim bound elsewhere, provisioned + Delete → released",
            mine()
                .phase(VOLUME_BOUND)
                .annotate(ANN_PROVISIONED_BY)
                .policy("Delete"),
            Some(bound_claim().volume("w")),
            VolumeAction::Release,
        ),
        (
            "claim bound elsewhere, provisioned + Delete, Released → delete",
            mine()
                .phase(VOLUME_RELEASED)
                .annotate(ANN_PROVISIONED_BY)
                .policy("Delete"),
            Some(bound_claim().volume("w")),
            reclaim(Reclaim::Delete),
        ),
    ];
    for (what, volume, claim, want) in cases {
        assert_eq!(plan_volume(&volume, claim.as_ref()), want, "{what}");
    }
}

/// Applies a claim decision the way the controller does: PV first, then the claim.
fn apply(
    claim: &PersistentVolumeClaim,
    volumes: &mut [PersistentVolume],
    action: &ClaimAction,
    write_claim: bool,
) -> PersistentVolumeClaim {
    let volume_name = match action {
        ClaimAction::Bind { volume, .. } | ClaimAction::CompleteBind { volume } => volume.clone(),
        other => panic!("not a bind: {other:?}"),
    };
    let volume = volumes
        .iter_mut()
        .find(|v| name(&v.metadata) == volume_name)
        .unwrap();
    *volume = bound_volume(volume, claim);
    volume.status = Some(volume_status(VOLUME_BOUND));
    if !write_claim {
        return claim.clone();
    }
    let mut out = bound_claim(claim, volume);
    out.status = Some(bound_claim_status(claim, volume));
    out
}

fn annotations(meta: &ObjectMeta) -> Vec<&str> {
    meta.annotations
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect()
}

#[test]
fn example_one_to_one_ends_bound_with_the_annotations() {
    let claim = claim("data", "1Gi");
    let mut volumes = vec![pv("v", "1Gi").modes(&[RWO, ROX])];
    let action = plan_claim(&claim, &volumes, None);
    assert_eq!(action, bind("v", true));
    let claim = apply(&claim, &mut volumes, &action, true);

    let reference = volumes[0].spec.as_ref().unwrap().claim_ref.clone().unwrap();
    assert_eq!(
        reference,
        ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("PersistentVolumeClaim".to_string()),
            name: Some("data".to_string()),
            namespace: Some("default".to_string()),
            uid: Some("uid-data".to_string()),
            resource_version: Some("7".to_string()),
            field_path: None,
        }
    );
    assert_eq!(
        annotations(&volumes[0].metadata),
        vec![ANN_BOUND_BY_CONTROLLER]
    );
    assert_eq!(
        annotations(&claim.metadata),
        vec![ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER]
    );
    assert_eq!(claim_volume_name(&claim), Some("v"));
    let status = claim.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some(CLAIM_BOUND));
    assert_eq!(status.capacity, storage("1Gi"));
    assert_eq!(status.access_modes, Some(strings(&[RWO, ROX])));

    assert_eq!(plan_claim(&claim, &volumes, None), ClaimAction::Nothing);
    assert_eq!(
        plan_volume(&volumes[0], Some(&claim)),
        VolumeAction::Nothing
    );
    // Idempotent builders: nothing left to write.
    assert_eq!(bound_volume(&volumes[0], &claim), volumes[0]);
    assert_eq!(bound_claim(&claim, &volumes[0]), claim);
    assert_eq!(
        &bound_claim_status(&claim, &volumes[0]),
        claim.status.as_ref().unwrap()
    );
}

#[test]
fn example_crash_between_the_two_writes_is_completed() {
    let claim = claim("data", "1Gi");
    let mut volumes = vec![pv("v", "1Gi")];
    let action = plan_claim(&claim, &volumes, None);
    let unwritten = apply(&claim, &mut volumes, &action, false);
    assert_eq!(unwritten, claim);
    // The volume's own sync leaves it to the claim.
    assert_eq!(
        plan_volume(&volumes[0], Some(&claim)),
        VolumeAction::Nothing
    );
    let action = plan_claim(&claim, &volumes, None);
    assert_eq!(action, complete("v"));
    let pv_before = volumes[0].clone();
    let claim = apply(&claim, &mut volumes, &action, true);
    assert_eq!(volumes[0], pv_before, "the PV side is not written twice");
    assert_eq!(
        annotations(&claim.metadata),
        vec![ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER]
    );
    assert_eq!(plan_claim(&claim, &volumes, None), ClaimAction::Nothing);
}

#[test]
fn example_pre_bound_volume_gets_no_controller_annotation() {
    let claim = claim("data", "1Gi");
    let mut volumes = vec![
        pv("one", "1Gi"),
        pv("ten", "10Gi").reserved("default", "data", ""),
    ];
    let action = plan_claim(&claim, &volumes, None);
    assert_eq!(action, bind("ten", true));
    let claim = apply(&claim, &mut volumes, &action, true);
    assert_eq!(annotations(&volumes[1].metadata), Vec::<&str>::new());
    assert_eq!(
        volumes[1]
            .spec
            .as_ref()
            .unwrap()
            .claim_ref
            .as_ref()
            .unwrap()
            .uid
            .as_deref(),
        Some("uid-data")
    );
    // The claim named no volume, so the controller chose it.
    assert_eq!(
        annotations(&claim.metadata),
        vec![ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER]
    );
    assert_eq!(plan_volume(&volumes[0], None), VolumeAction::Nothing);
}

#[test]
fn user_named_volume_gets_only_bind_completed_on_the_claim() {
    let claim = claim("data", "1Gi").volume("v");
    let mut volumes = vec![pv("v", "1Gi")];
    let action = plan_claim(&claim, &volumes, None);
    assert_eq!(action, bind("v", false));
    let claim = apply(&claim, &mut volumes, &action, true);
    assert_eq!(annotations(&claim.metadata), vec![ANN_BIND_COMPLETED]);
    assert_eq!(
        annotations(&volumes[0].metadata),
        vec![ANN_BOUND_BY_CONTROLLER]
    );
}

#[test]
fn bound_claim_status_keeps_a_resized_capacity() {
    let claim = claim("data", "2Gi").volume("v").edit(|c| {
        let status = c.status.as_mut().unwrap();
        status.phase = Some(CLAIM_BOUND.to_string());
        status.capacity = storage("2Gi");
    });
    let volume = pv("v", "1Gi").modes(&[RWX]);
    let status = bound_claim_status(&claim, &volume);
    assert_eq!(status.capacity, storage("2Gi"));
    assert_eq!(status.access_modes, Some(strings(&[RWX])));
}

#[test]
fn retain_keeps_the_volume_released_until_claim_ref_is_cleared() {
    let volume = pv("v", "1Gi")
        .reserved("default", "data", "uid-data")
        .phase(VOLUME_BOUND);
    assert_eq!(plan_volume(&volume, None), VolumeAction::Release);
    let released = volume.edit(|v| v.status = Some(released_volume_status()));
    assert_eq!(volume_phase(&released), VOLUME_RELEASED);
    assert_eq!(
        plan_volume(&released, None),
        VolumeAction::Reclaim(Reclaim::Retain)
    );
    // A new claim with the old name cannot take it either.
    let newcomer = claim("data", "1Gi").edit(|c| c.metadata.uid = Some("uid-2".to_string()));
    assert_eq!(
        find_matching_volume(&newcomer, std::slice::from_ref(&released), false),
        None
    );
    let cleared = released.edit(|v| v.spec.as_mut().unwrap().claim_ref = None);
    assert_eq!(plan_volume(&cleared, None), VolumeAction::MakeAvailable);
}

#[test]
fn failed_status_carries_reason_and_message() {
    let status = failed_volume_status("VolumeFailedDelete", "helper pod timed out");
    assert_eq!(status.phase.as_deref(), Some(VOLUME_FAILED));
    assert_eq!(status.reason.as_deref(), Some("VolumeFailedDelete"));
    assert_eq!(status.message.as_deref(), Some("helper pod timed out"));
    let lost = lost_claim_status(&claim("data", "1Gi"));
    assert_eq!(lost.phase.as_deref(), Some(CLAIM_LOST));
    let pending = pending_claim_status(&claim("data", "1Gi").phase(CLAIM_LOST));
    assert_eq!(pending.phase.as_deref(), Some(CLAIM_PENDING));
}

#[test]
fn unbind_clears_what_the_controller_set_and_keeps_user_reservations() {
    let by_controller = pv("v", "1Gi")
        .reserved("default", "data", "uid-data")
        .annotate(ANN_BOUND_BY_CONTROLLER);
    let out = unbound_volume(&by_controller);
    assert_eq!(out.spec.as_ref().unwrap().claim_ref, None);
    assert_eq!(annotations(&out.metadata), Vec::<&str>::new());

    let by_user = pv("v", "1Gi").reserved("default", "data", "uid-data");
    let out = unbound_volume(&by_user);
    let reference = out.spec.as_ref().unwrap().claim_ref.clone().unwrap();
    assert_eq!(reference.name.as_deref(), Some("data"));
    assert_eq!(reference.uid, None);
    assert_eq!(
        plan_volume(&out.phase(VOLUME_BOUND), None),
        VolumeAction::MakeAvailable
    );
}

#[test]
fn delay_binding_needs_wait_for_first_consumer_and_no_node() {
    let wait = class("c", "WaitForFirstConsumer");
    let now = class("c", "Immediate");
    let plain = claim("data", "1Gi");
    let placed = plain
        .clone()
        .edit(|c| set_annotation(&mut c.metadata, ANN_SELECTED_NODE, "n1"));
    assert!(is_delay_binding(&plain, Some(&wait)));
    assert!(!is_delay_binding(&placed, Some(&wait)));
    assert!(!is_delay_binding(&plain, Some(&now)));
    assert!(!is_delay_binding(&plain, None));
    assert_eq!(selected_node(&placed), Some("n1"));
}
