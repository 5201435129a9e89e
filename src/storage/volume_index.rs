//! The binder's index of volumes: the few volumes `bind::plan_claim` could choose for a claim,
//! found without scanning every volume. Free volumes are kept by class and access-mode set,
//! ordered by capacity then name (the order in which `find_matching_volume` prefers them);
//! volumes whose claimRef names a claim are kept by that claim. Pure data, no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

use crate::storage::bind;
use crate::storage::quantity::volume_capacity;

/// Free volumes of one class: access-mode set → (capacity, name), smallest first.
type ByModes = BTreeMap<Vec<String>, BTreeSet<(u128, String)>>;

/// Every volume by name, indexed for a claim's decision.
#[derive(Default)]
pub struct VolumeIndex {
    volumes: HashMap<String, Arc<PersistentVolume>>,
    /// Free volumes (see `bind::is_free`) by class.
    free: HashMap<String, ByModes>,
    /// Volume names by the (namespace, name) their claimRef names.
    reserved: HashMap<(String, String), BTreeSet<String>>,
}

fn volume_name(volume: &PersistentVolume) -> &str {
    volume.metadata.name.as_deref().unwrap_or("")
}

fn reference_of(volume: &PersistentVolume) -> Option<(String, String)> {
    let reference = volume.spec.as_ref()?.claim_ref.as_ref()?;
    Some((
        reference.namespace.clone().unwrap_or_default(),
        reference.name.clone().unwrap_or_default(),
    ))
}

impl VolumeIndex {
    /// Adds `volume`, or replaces the version of it the index has.
    pub fn insert(&mut self, volume: Arc<PersistentVolume>) {
        let name = volume_name(&volume).to_owned();
        self.remove(&name);
        if bind::is_free(&volume) {
            let modes = bind::access_mode_set(&volume)
                .into_iter()
                .map(str::to_owned)
                .collect();
            let capacity = volume_capacity(&volume).unwrap_or(0);
            self.free
                .entry(bind::volume_class(&volume).to_owned())
                .or_default()
                .entry(modes)
                .or_default()
                .insert((capacity, name.clone()));
        } else if let Some(claim) = reference_of(&volume) {
            self.reserved.entry(claim).or_default().insert(name.clone());
        }
        self.volumes.insert(name, volume);
    }

    /// Takes the volume named `name` out of the index.
    pub fn remove(&mut self, name: &str) -> Option<Arc<PersistentVolume>> {
        let old = self.volumes.remove(name)?;
        if bind::is_free(&old) {
            let class = bind::volume_class(&old);
            if let Some(by_modes) = self.free.get_mut(class) {
                let modes: Vec<String> = bind::access_mode_set(&old)
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                if let Some(set) = by_modes.get_mut(&modes) {
                    set.remove(&(volume_capacity(&old).unwrap_or(0), name.to_owned()));
                    if set.is_empty() {
                        by_modes.remove(&modes);
                    }
                }
                if by_modes.is_empty() {
                    self.free.remove(class);
                }
            }
        } else if let Some(claim) = reference_of(&old)
            && let Some(names) = self.reserved.get_mut(&claim)
        {
            names.remove(name);
            if names.is_empty() {
                self.reserved.remove(&claim);
            }
        }
        Some(old)
    }

    /// The version of the volume named `name` the index has.
    pub fn get(&self, name: &str) -> Option<&Arc<PersistentVolume>> {
        self.volumes.get(name)
    }

    /// The number of volumes.
    pub fn len(&self) -> usize {
        self.volumes.len()
    }

    /// True when the index has no volume.
    pub fn is_empty(&self) -> bool {
        self.volumes.is_empty()
    }

    /// The volumes `bind::plan_claim` needs to decide for `claim` as it would over every volume:
    /// the volume the claim names, the volumes whose claimRef names it (by name), and of each
    /// access-mode set holding the claim's modes, the smallest free volume of its class that is
    /// large enough and passes `bind::free_volume_fits`. Every other volume would lose to one of
    /// these or is skipped by rules 1–5.
    pub fn candidates(&self, claim: &PersistentVolumeClaim) -> Vec<Arc<PersistentVolume>> {
        let mut found: Vec<Arc<PersistentVolume>> = Vec::new();
        let mut add = |volume: &Arc<PersistentVolume>| {
            if !found.iter().any(|f| Arc::ptr_eq(f, volume)) {
                found.push(Arc::clone(volume));
            }
        };
        if let Some(volume) = bind::claim_volume_name(claim).and_then(|name| self.get(name)) {
            add(volume);
        }
        let key = (
            claim.metadata.namespace.clone().unwrap_or_default(),
            claim.metadata.name.clone().unwrap_or_default(),
        );
        for name in self.reserved.get(&key).into_iter().flatten() {
            if let Some(volume) = self.get(name) {
                add(volume);
            }
        }
        // A malformed request matches nothing; plan_claim says so.
        let (Ok(request), Some(by_modes)) = (
            bind::request_bytes(claim),
            self.free.get(bind::claim_class(claim)),
        ) else {
            return found;
        };
        let wanted = bind::claim_access_modes(claim);
        for (modes, set) in by_modes {
            if !wanted.iter().all(|w| modes.contains(w)) {
                continue;
            }
            let smallest = set
                .range((request, String::new())..)
                .filter_map(|(_, name)| self.get(name))
                .find(|volume| bind::free_volume_fits(volume, claim));
            if let Some(volume) = smallest {
                add(volume);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ObjectReference, PersistentVolumeClaimSpec, PersistentVolumeSpec, PersistentVolumeStatus,
        VolumeResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pv(name: &str, size: &str, class: &str) -> PersistentVolume {
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeSpec {
                capacity: Some([("storage".to_owned(), Quantity(size.into()))].into()),
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: Some(class.into()),
                ..PersistentVolumeSpec::default()
            }),
            status: Some(PersistentVolumeStatus {
                phase: Some(bind::VOLUME_AVAILABLE.into()),
                ..PersistentVolumeStatus::default()
            }),
        }
    }

    fn claimed(mut volume: PersistentVolume, claim: &str) -> PersistentVolume {
        volume.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
            namespace: Some("default".into()),
            name: Some(claim.into()),
            ..ObjectReference::default()
        });
        volume
    }

    fn claim(name: &str, size: &str) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some([("storage".to_owned(), Quantity(size.into()))].into()),
                    ..VolumeResourceRequirements::default()
                }),
                storage_class_name: Some(String::new()),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: None,
        }
    }

    fn names(volumes: &[Arc<PersistentVolume>]) -> Vec<&str> {
        volumes.iter().map(|v| volume_name(v)).collect()
    }

    #[test]
    fn candidates_are_the_smallest_free_fit_and_the_claims_own_volumes() {
        let mut index = VolumeIndex::default();
        for volume in [
            pv("big", "10Gi", ""),
            pv("b-fit", "2Gi", ""),
            pv("a-fit", "2Gi", ""),
            pv("small", "1Gi", ""),
            pv("other-class", "2Gi", "fast"),
            claimed(pv("taken", "2Gi", ""), "someone"),
            claimed(pv("mine", "5Gi", ""), "data"),
        ] {
            index.insert(Arc::new(volume));
        }
        assert_eq!(
            names(&index.candidates(&claim("data", "2Gi"))),
            ["mine", "a-fit"]
        );
        assert_eq!(names(&index.candidates(&claim("else", "3Gi"))), ["big"]);
        assert!(index.candidates(&claim("else", "20Gi")).is_empty());
    }

    #[test]
    fn a_replaced_volume_moves_between_free_and_reserved() {
        let mut index = VolumeIndex::default();
        index.insert(Arc::new(pv("v", "1Gi", "")));
        assert_eq!(names(&index.candidates(&claim("a", "1Gi"))), ["v"]);
        index.insert(Arc::new(claimed(pv("v", "1Gi", ""), "a")));
        assert!(
            index.candidates(&claim("b", "1Gi")).is_empty(),
            "reserved for a"
        );
        assert_eq!(names(&index.candidates(&claim("a", "1Gi"))), ["v"]);
        index.insert(Arc::new(pv("v", "1Gi", "")));
        assert_eq!(names(&index.candidates(&claim("b", "1Gi"))), ["v"]);
        index.remove("v");
        assert!(index.candidates(&claim("b", "1Gi")).is_empty());
        assert!(index.free.is_empty() && index.reserved.is_empty() && index.is_empty());
    }

    #[test]
    fn a_claim_of_no_valid_size_gets_only_its_own_volumes() {
        let mut index = VolumeIndex::default();
        index.insert(Arc::new(pv("free", "1Gi", "")));
        index.insert(Arc::new(claimed(pv("mine", "1Gi", ""), "data")));
        assert_eq!(names(&index.candidates(&claim("data", "lots"))), ["mine"]);
    }
}
