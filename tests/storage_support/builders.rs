//! Small builders for the objects the storage tests create: classes, claims, volumes and nodes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, Node, NodeCondition, NodeStatus, ObjectReference, PersistentVolume,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeSpec,
    VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::ObjectMeta;

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        ..ObjectMeta::default()
    }
}

/// A StorageClass under construction.
pub struct ClassBuilder(StorageClass);

/// A class named `name` served by `provisioner`, Immediate binding, Delete reclaim.
pub fn class(name: &str, provisioner: &str) -> ClassBuilder {
    ClassBuilder(StorageClass {
        metadata: meta(name, None),
        provisioner: provisioner.to_owned(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("Immediate".into()),
        ..StorageClass::default()
    })
}

impl ClassBuilder {
    pub fn param(mut self, key: &str, value: &str) -> Self {
        self.0
            .parameters
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
        self
    }
    pub fn wait_for_first_consumer(mut self) -> Self {
        self.0.volume_binding_mode = Some("WaitForFirstConsumer".into());
        self
    }
    pub fn reclaim(mut self, policy: &str) -> Self {
        self.0.reclaim_policy = Some(policy.to_owned());
        self
    }
    pub fn expandable(mut self, allowed: bool) -> Self {
        self.0.allow_volume_expansion = Some(allowed);
        self
    }
    pub fn build(self) -> StorageClass {
        self.0
    }
}

/// A PersistentVolumeClaim under construction.
pub struct ClaimBuilder(PersistentVolumeClaim);

/// A ReadWriteOnce Filesystem claim of `size` in `namespace`, class unset.
pub fn claim(namespace: &str, name: &str, size: &str) -> ClaimBuilder {
    ClaimBuilder(PersistentVolumeClaim {
        metadata: meta(name, Some(namespace)),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(size.to_owned()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    })
}

impl ClaimBuilder {
    fn spec(&mut self) -> &mut PersistentVolumeClaimSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }
    pub fn class(mut self, class: &str) -> Self {
        self.spec().storage_class_name = Some(class.to_owned());
        self
    }
    pub fn modes(mut self, modes: &[&str]) -> Self {
        self.spec().access_modes = Some(modes.iter().map(|m| (*m).to_owned()).collect());
        self
    }
    pub fn volume_name(mut self, volume: &str) -> Self {
        self.spec().volume_name = Some(volume.to_owned());
        self
    }
    pub fn selector(mut self, key: &str, value: &str) -> Self {
        self.spec().selector = Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(key.to_owned(), value.to_owned())])),
            ..LabelSelector::default()
        });
        self
    }
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
        self
    }
    pub fn build(self) -> PersistentVolumeClaim {
        self.0
    }
}

/// A PersistentVolume under construction.
pub struct VolumeBuilder(PersistentVolume);

/// A ReadWriteOnce hostPath volume of `size`, class `""`, Retain, phase Available.
pub fn volume(name: &str, size: &str) -> VolumeBuilder {
    VolumeBuilder(PersistentVolume {
        metadata: meta(name, None),
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([(
                "storage".to_owned(),
                Quantity(size.to_owned()),
            )])),
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            persistent_volume_reclaim_policy: Some("Retain".into()),
            storage_class_name: Some(String::new()),
            host_path: Some(HostPathVolumeSource {
                path: format!("/srv/volumes/{name}"),
                type_: Some("DirectoryOrCreate".into()),
            }),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    })
}

impl VolumeBuilder {
    fn spec(&mut self) -> &mut PersistentVolumeSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }
    pub fn class(mut self, class: &str) -> Self {
        self.spec().storage_class_name = Some(class.to_owned());
        self
    }
    pub fn modes(mut self, modes: &[&str]) -> Self {
        self.spec().access_modes = Some(modes.iter().map(|m| (*m).to_owned()).collect());
        self
    }
    pub fn reclaim(mut self, policy: &str) -> Self {
        self.spec().persistent_volume_reclaim_policy = Some(policy.to_owned());
        self
    }
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
        self
    }
    /// Pre-bound to the claim `namespace/name` (no uid: any claim of that name).
    pub fn claim_ref(mut self, namespace: &str, name: &str) -> Self {
        self.spec().claim_ref = Some(ObjectReference {
            kind: Some("PersistentVolumeClaim".into()),
            api_version: Some("v1".into()),
            namespace: Some(namespace.to_owned()),
            name: Some(name.to_owned()),
            ..ObjectReference::default()
        });
        self
    }
    pub fn build(self) -> PersistentVolume {
        self.0
    }
}

/// A Ready node named `name` with the usual hostname label.
pub fn node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/hostname".to_owned(),
                name.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..NodeCondition::default()
            }]),
            ..NodeStatus::default()
        }),
    }
}
