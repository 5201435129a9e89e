//! Claims and volumes decoded without `metadata.managedFields`: the controller never reads them,
//! and decoding them (every entry's `fieldsV1` becomes a JSON tree) was most of the cost of
//! decoding an object from a watch or a write's answer. `Lean<K>` is `K` for kube's `Api` and
//! watcher; on the wire it is the same object, and serde skips the managedFields without building
//! them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimStatus, PersistentVolumeSpec, PersistentVolumeStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::Resource;
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `K`, read from the API without its managedFields.
#[derive(Clone, Debug)]
pub(super) struct Lean<K>(pub K);

/// A kind made of metadata, spec and status.
pub(super) trait Parts: Sized {
    type Spec: DeserializeOwned;
    type Status: DeserializeOwned;
    fn from_parts(
        metadata: ObjectMeta,
        spec: Option<Self::Spec>,
        status: Option<Self::Status>,
    ) -> Self;
}

/// The two kinds the controller watches are both `metadata` + `spec` + `status`.
macro_rules! parts {
    ($kind:ty, $spec:ty, $status:ty) => {
        impl Parts for $kind {
            type Spec = $spec;
            type Status = $status;
            fn from_parts(
                metadata: ObjectMeta,
                spec: Option<Self::Spec>,
                status: Option<Self::Status>,
            ) -> Self {
                Self {
                    metadata,
                    spec,
                    status,
                }
            }
        }
    };
}

parts!(
    PersistentVolume,
    PersistentVolumeSpec,
    PersistentVolumeStatus
);
parts!(
    PersistentVolumeClaim,
    PersistentVolumeClaimSpec,
    PersistentVolumeClaimStatus
);

/// `ObjectMeta` without `managedFields` (serde skips unknown keys without building them).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Meta {
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
}

impl From<Meta> for ObjectMeta {
    fn from(meta: Meta) -> Self {
        ObjectMeta {
            annotations: meta.annotations,
            creation_timestamp: meta.creation_timestamp,
            deletion_grace_period_seconds: meta.deletion_grace_period_seconds,
            deletion_timestamp: meta.deletion_timestamp,
            finalizers: meta.finalizers,
            generate_name: meta.generate_name,
            generation: meta.generation,
            labels: meta.labels,
            managed_fields: None,
            name: meta.name,
            namespace: meta.namespace,
            owner_references: meta.owner_references,
            resource_version: meta.resource_version,
            self_link: meta.self_link,
            uid: meta.uid,
        }
    }
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "S: DeserializeOwned, T: DeserializeOwned"))]
struct Object<S, T> {
    #[serde(default)]
    metadata: Meta,
    spec: Option<S>,
    status: Option<T>,
}

impl<'de, K: Parts> Deserialize<'de> for Lean<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = Object::<K::Spec, K::Status>::deserialize(deserializer)?;
        Ok(Lean(K::from_parts(
            object.metadata.into(),
            object.spec,
            object.status,
        )))
    }
}

impl<K: Serialize> Serialize for Lean<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Lean<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        self.0.meta()
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.meta_mut()
    }
}

/// A watch event of `Lean<K>` as one of `K`.
pub(super) fn event<K>(event: watcher::Event<Lean<K>>) -> watcher::Event<K> {
    match event {
        watcher::Event::Apply(Lean(object)) => watcher::Event::Apply(object),
        watcher::Event::Delete(Lean(object)) => watcher::Event::Delete(object),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(Lean(object)) => watcher::Event::InitApply(object),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
    use k8s_openapi::jiff::Timestamp;

    /// Every field of ObjectMeta set (no `..Default::default()`: a field k8s-openapi adds must
    /// be added here, and to `Meta`).
    fn full_meta() -> ObjectMeta {
        let time = Time("2026-01-02T03:04:05Z".parse::<Timestamp>().unwrap());
        ObjectMeta {
            annotations: Some([("a".to_owned(), "1".to_owned())].into()),
            creation_timestamp: Some(time.clone()),
            deletion_grace_period_seconds: Some(30),
            deletion_timestamp: Some(time.clone()),
            finalizers: Some(vec!["stowage.io/volume-protection".to_owned()]),
            generate_name: Some("pvc-".to_owned()),
            generation: Some(3),
            labels: Some([("l".to_owned(), "2".to_owned())].into()),
            managed_fields: Some(vec![ManagedFieldsEntry {
                api_version: Some("v1".to_owned()),
                fields_type: Some("FieldsV1".to_owned()),
                fields_v1: Some(FieldsV1(serde_json::json!({"f:spec": {"f:capacity": {}}}))),
                manager: Some("stowage".to_owned()),
                operation: Some("Update".to_owned()),
                subresource: None,
                time: Some(time),
            }]),
            name: Some("v".to_owned()),
            namespace: Some("default".to_owned()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_owned(),
                kind: "Pod".to_owned(),
                name: "p".to_owned(),
                uid: "u1".to_owned(),
                ..OwnerReference::default()
            }]),
            resource_version: Some("42".to_owned()),
            self_link: Some("/api/v1/x".to_owned()),
            uid: Some("u2".to_owned()),
        }
    }

    #[test]
    fn a_volume_decodes_like_the_typed_one_without_managed_fields() {
        let volume = PersistentVolume {
            metadata: full_meta(),
            spec: Some(PersistentVolumeSpec {
                storage_class_name: Some("fast".to_owned()),
                ..PersistentVolumeSpec::default()
            }),
            status: Some(PersistentVolumeStatus {
                phase: Some("Available".to_owned()),
                ..PersistentVolumeStatus::default()
            }),
        };
        let json = serde_json::to_vec(&volume).unwrap();
        let Lean(lean) = serde_json::from_slice::<Lean<PersistentVolume>>(&json).unwrap();
        let mut expected = volume;
        expected.metadata.managed_fields = None;
        assert_eq!(lean, expected);
    }

    #[test]
    fn a_claim_decodes_like_the_typed_one_without_managed_fields() {
        let claim = PersistentVolumeClaim {
            metadata: full_meta(),
            spec: Some(PersistentVolumeClaimSpec {
                volume_name: Some("v".to_owned()),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: None,
        };
        let json = serde_json::to_vec(&claim).unwrap();
        let Lean(lean) = serde_json::from_slice::<Lean<PersistentVolumeClaim>>(&json).unwrap();
        let mut expected = claim;
        expected.metadata.managed_fields = None;
        assert_eq!(lean, expected);
        // Written back, it is the same object as on the wire (minus what was skipped).
        assert_eq!(
            serde_json::to_value(Lean(expected.clone())).unwrap(),
            serde_json::to_value(&expected).unwrap()
        );
    }
}
