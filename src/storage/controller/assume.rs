//! Binder mode's assume cache (upstream keeps one too): a volume this replica is binding or has
//! just written is seen as written by the next decisions, before the watch delivers it, so two
//! claims reconciled at once never pick the same volume. Decisions look at the index of the
//! volumes as the watch has them overlaid with the assumed ones (`VolumeIndex`), so a reserved
//! volume leaves the free ones at once and comes back if its write fails.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::ResourceExt;
use kube::runtime::watcher;
use parking_lot::Mutex;

use crate::storage::volume_index::VolumeIndex;

/// A volume this replica wrote (`Some(resourceVersion)`) or is writing (`None`).
type AssumedVolume = (Arc<PersistentVolume>, Option<u64>);

/// The volumes as the watch delivered them, the assumed ones, and the index of what decisions
/// see (the assumed version while it is in flight or newer than the watch's).
#[derive(Default)]
struct Volumes {
    watched: HashMap<String, Arc<PersistentVolume>>,
    assumed: HashMap<String, AssumedVolume>,
    index: VolumeIndex,
    /// The volumes of a relist in progress; they replace `watched` when it is complete.
    relist: Option<HashMap<String, Arc<PersistentVolume>>>,
}

/// The volumes (see `Volumes`); claim uid → the resourceVersion of this replica's last write of
/// it.
#[derive(Default)]
pub(super) struct Assumed {
    volumes: Mutex<Volumes>,
    claims: Mutex<HashMap<String, u64>>,
}

fn version<K: kube::Resource>(object: &K) -> Option<u64> {
    object.meta().resource_version.as_deref()?.parse().ok()
}

impl Volumes {
    /// Puts the version of `name` decisions should see into the index; forgets an assumed
    /// version the watch has caught up with.
    fn refresh(&mut self, name: &str) {
        let Some(watched) = self.watched.get(name) else {
            // Deleted: a write in flight still reports back through `written` or `failed`.
            if matches!(self.assumed.get(name), Some((_, Some(_)))) {
                self.assumed.remove(name);
            }
            self.index.remove(name);
            return;
        };
        let seen = match self.assumed.get(name) {
            None => Arc::clone(watched),
            Some((mine, None)) => Arc::clone(mine),
            Some((mine, Some(written))) => {
                if version(watched.as_ref()).is_some_and(|seen| seen >= *written) {
                    self.assumed.remove(name);
                    Arc::clone(watched)
                } else {
                    Arc::clone(mine)
                }
            }
        };
        self.index.insert(seen);
    }

    fn assume(&mut self, volume: PersistentVolume, written: Option<u64>) {
        let name = volume.name_any();
        self.assumed
            .insert(name.clone(), (Arc::new(volume), written));
        self.refresh(&name);
    }
}

impl Assumed {
    /// True when this replica wrote a newer version of `claim` than the cached one: the watch
    /// will deliver it (and wake the controller), so deciding on the cached one is wasted work
    /// that ends in a write conflict.
    pub(super) fn claim_is_stale(&self, claim: &PersistentVolumeClaim) -> bool {
        let (Some(uid), Some(seen)) = (claim.uid(), version(claim)) else {
            return false;
        };
        let mut claims = self.claims.lock();
        match claims.get(&uid) {
            Some(written) if seen < *written => true,
            Some(_) => {
                claims.remove(&uid);
                false
            }
            None => false,
        }
    }

    /// A write of a claim succeeded.
    pub(super) fn claim_written(&self, claim: &PersistentVolumeClaim) {
        if let (Some(uid), Some(written)) = (claim.uid(), version(claim)) {
            self.claims.lock().insert(uid, written);
        }
    }

    /// Takes in an event of the volume watch (called before the controllers' cache has it).
    pub(super) fn observe(&self, event: &watcher::Event<PersistentVolume>) {
        let mut volumes = self.volumes.lock();
        match event {
            watcher::Event::Apply(volume) => {
                let name = volume.name_any();
                volumes
                    .watched
                    .insert(name.clone(), Arc::new(volume.clone()));
                volumes.refresh(&name);
            }
            watcher::Event::Delete(volume) => {
                let name = volume.name_any();
                volumes.watched.remove(&name);
                volumes.refresh(&name);
            }
            watcher::Event::Init => volumes.relist = Some(HashMap::new()),
            watcher::Event::InitApply(volume) => {
                let volume = Arc::new(volume.clone());
                if let Some(relist) = volumes.relist.as_mut() {
                    relist.insert(volume.name_any(), volume);
                }
            }
            watcher::Event::InitDone => {
                let Some(relist) = volumes.relist.take() else {
                    return;
                };
                let gone: Vec<String> = volumes
                    .watched
                    .keys()
                    .filter(|name| !relist.contains_key(*name))
                    .cloned()
                    .collect();
                let names: Vec<String> = relist.keys().cloned().collect();
                volumes.watched = relist;
                for name in gone.iter().chain(&names) {
                    volumes.refresh(name);
                }
            }
        }
    }

    /// True when this replica wrote a newer version of `volume` than the cached one.
    pub(super) fn volume_is_stale(&self, volume: &PersistentVolume) -> bool {
        let Some(seen) = version(volume) else {
            return false;
        };
        match self.volumes.lock().assumed.get(&volume.name_any()) {
            Some((_, None)) => true,
            Some((_, Some(written))) => seen < *written,
            None => false,
        }
    }

    /// Runs `decide` on the index's candidates for `claim` (the watched volumes overlaid with
    /// the assumed ones); when it returns a volume to write, that volume is assumed (as being
    /// written) before the lock is released, which takes it out of the free volumes.
    pub(super) fn decide<T>(
        &self,
        claim: &PersistentVolumeClaim,
        decide: impl FnOnce(&[Arc<PersistentVolume>]) -> (T, Option<PersistentVolume>),
    ) -> T {
        let mut volumes = self.volumes.lock();
        let candidates = volumes.index.candidates(claim);
        let (outcome, reserve) = decide(&candidates);
        if let Some(volume) = reserve {
            volumes.assume(volume, None);
        }
        outcome
    }

    /// The write of `volume` succeeded: keep it until the watch has this version.
    pub(super) fn written(&self, volume: PersistentVolume) {
        let mut volumes = self.volumes.lock();
        match version(&volume) {
            Some(written) => volumes.assume(volume, Some(written)),
            None => {
                let name = volume.name_any();
                volumes.assumed.remove(&name);
                volumes.refresh(&name);
            }
        }
    }

    /// The write of the volume named `name` failed: the watch's version is right again (a
    /// reserved volume is free again).
    pub(super) fn failed(&self, name: &str) {
        let mut volumes = self.volumes.lock();
        volumes.assumed.remove(name);
        volumes.refresh(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::bind;
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimSpec, PersistentVolumeSpec, PersistentVolumeStatus,
        VolumeResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use kube::core::ObjectMeta;

    fn storage(size: &str) -> std::collections::BTreeMap<String, Quantity> {
        [("storage".to_owned(), Quantity(size.into()))].into()
    }

    /// A free 1Gi volume at resourceVersion `rv`.
    fn volume(name: &str, rv: &str) -> PersistentVolume {
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeSpec {
                capacity: Some(storage("1Gi")),
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                ..PersistentVolumeSpec::default()
            }),
            status: Some(PersistentVolumeStatus {
                phase: Some(bind::VOLUME_AVAILABLE.into()),
                ..PersistentVolumeStatus::default()
            }),
        }
    }

    fn claim(name: &str) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(storage("1Gi")),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: None,
        }
    }

    /// `volume` reserved for `claim`, at resourceVersion `rv`.
    fn reserved(name: &str, rv: &str, claim: &PersistentVolumeClaim) -> PersistentVolume {
        let mut volume = bind::bound_volume(&volume(name, rv), claim);
        volume.metadata.resource_version = Some(rv.into());
        volume
    }

    /// What a decision for `claim` is given: (name, reserved for someone).
    fn seen(assumed: &Assumed, claim: &PersistentVolumeClaim) -> Vec<(String, bool)> {
        assumed.decide(claim, |volumes| {
            let seen = volumes
                .iter()
                .map(|v| (v.name_any(), !bind::is_free(v)))
                .collect();
            (seen, None)
        })
    }

    fn reserve(assumed: &Assumed, claim: &PersistentVolumeClaim, name: &str) {
        assumed.decide(claim, |_| ((), Some(reserved(name, "5", claim))));
    }

    fn watched(volumes: Vec<PersistentVolume>) -> Assumed {
        let assumed = Assumed::default();
        assumed.observe(&watcher::Event::Init);
        for volume in volumes {
            assumed.observe(&watcher::Event::InitApply(volume));
        }
        assumed.observe(&watcher::Event::InitDone);
        assumed
    }

    #[test]
    fn a_reserved_volume_is_no_longer_free_for_other_claims() {
        let assumed = watched(vec![volume("a", "5"), volume("b", "5")]);
        let (first, second) = (claim("first"), claim("second"));
        assert_eq!(seen(&assumed, &first), [("a".to_owned(), false)]);
        reserve(&assumed, &first, "a");
        // The watch has not delivered the write: the next claim is offered the next volume.
        assert_eq!(seen(&assumed, &second), [("b".to_owned(), false)]);
        // The claim that reserved it still sees its volume (rule 2: bound to the claim).
        assert_eq!(
            seen(&assumed, &first),
            [("a".to_owned(), true), ("b".to_owned(), false)]
        );
    }

    #[test]
    fn a_reserved_volume_is_seen_as_written_until_the_watch_catches_up() {
        let assumed = watched(vec![volume("a", "5")]);
        let (first, second) = (claim("first"), claim("second"));
        reserve(&assumed, &first, "a");
        assumed.written(reserved("a", "7", &first));
        assumed.observe(&watcher::Event::Apply(volume("a", "6")));
        assert!(
            seen(&assumed, &second).is_empty(),
            "the watch is older than the write"
        );
        assumed.observe(&watcher::Event::Apply(volume("a", "8")));
        assert_eq!(
            seen(&assumed, &second),
            [("a".to_owned(), false)],
            "the watch is newer: it wins and the entry is dropped"
        );
        assert!(assumed.volumes.lock().assumed.is_empty());
        assert!(!assumed.volume_is_stale(&volume("a", "8")));
    }

    #[test]
    fn a_failed_write_makes_the_volume_free_again() {
        let assumed = watched(vec![volume("a", "5")]);
        reserve(&assumed, &claim("first"), "a");
        assert!(seen(&assumed, &claim("second")).is_empty());
        assert!(
            assumed.volume_is_stale(&volume("a", "5")),
            "write in flight"
        );
        assumed.failed("a");
        assert_eq!(seen(&assumed, &claim("second")), [("a".to_owned(), false)]);
    }

    #[test]
    fn a_relist_replaces_the_watched_volumes() {
        let assumed = watched(vec![volume("a", "5")]);
        assumed.observe(&watcher::Event::Apply(volume("b", "6")));
        assumed.observe(&watcher::Event::Init);
        assumed.observe(&watcher::Event::InitApply(volume("b", "6")));
        // Until the relist is complete, decisions see the volumes as before.
        assert_eq!(seen(&assumed, &claim("c")), [("a".to_owned(), false)]);
        assumed.observe(&watcher::Event::InitDone);
        assert_eq!(seen(&assumed, &claim("c")), [("b".to_owned(), false)]);
        assumed.observe(&watcher::Event::Delete(volume("b", "7")));
        assert!(seen(&assumed, &claim("c")).is_empty());
    }
}
