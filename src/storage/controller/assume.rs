//! Binder mode's assume cache (upstream keeps one too): a volume this replica is binding or has
//! just written is seen as written by the next decisions, before the watch delivers it, so two
//! claims reconciled at once never pick the same volume.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::ResourceExt;
use parking_lot::Mutex;

/// A volume this replica wrote (`Some(resourceVersion)`) or is writing (`None`).
type AssumedVolume = (Arc<PersistentVolume>, Option<u64>);

/// Volume name → the version this replica wrote (`Some(resourceVersion)`) or is writing (`None`);
/// claim uid → the resourceVersion of this replica's last write of it.
#[derive(Default)]
pub(super) struct Assumed {
    volumes: Mutex<HashMap<String, AssumedVolume>>,
    claims: Mutex<HashMap<String, u64>>,
}

fn version<K: kube::Resource>(object: &K) -> Option<u64> {
    object.meta().resource_version.as_deref()?.parse().ok()
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

    /// True when this replica wrote a newer version of `volume` than the cached one.
    pub(super) fn volume_is_stale(&self, volume: &PersistentVolume) -> bool {
        let Some(seen) = version(volume) else {
            return false;
        };
        match self.volumes.lock().get(&volume.name_any()) {
            Some((_, None)) => true,
            Some((_, Some(written))) => seen < *written,
            None => false,
        }
    }

    /// Runs `decide` on the cached volumes overlaid with the assumed ones, keeping only those
    /// `relevant` accepts; when it returns a volume to write, that volume is assumed (as being
    /// written) before the lock is released. Volumes are shared, not copied: a burst of claims
    /// against many volumes must not cost claims × volumes deep copies.
    pub(super) fn decide<T>(
        &self,
        cached: Vec<Arc<PersistentVolume>>,
        relevant: impl Fn(&PersistentVolume) -> bool,
        decide: impl FnOnce(&[Arc<PersistentVolume>]) -> (T, Option<PersistentVolume>),
    ) -> T {
        let mut assumed = self.volumes.lock();
        let mut volumes: Vec<Arc<PersistentVolume>> = Vec::new();
        for volume in cached {
            let seen = match volume.metadata.name.as_deref().and_then(|n| assumed.get(n)) {
                // The write is in flight: the assumed version wins.
                Some((mine, None)) => Arc::clone(mine),
                // Written: the cache wins once it has caught up.
                Some((mine, Some(written))) => {
                    if version(volume.as_ref()).is_some_and(|seen| seen >= *written) {
                        assumed.remove(&volume.name_any());
                        volume
                    } else {
                        Arc::clone(mine)
                    }
                }
                None => volume,
            };
            if relevant(&seen) {
                volumes.push(seen);
            }
        }
        let (outcome, reserve) = decide(&volumes);
        if let Some(volume) = reserve {
            assumed.insert(volume.name_any(), (Arc::new(volume), None));
        }
        outcome
    }

    /// The write of `volume` succeeded: keep it until the cache has this version.
    pub(super) fn written(&self, volume: PersistentVolume) {
        let written = version(&volume);
        let name = volume.name_any();
        let mut assumed = self.volumes.lock();
        match written {
            Some(written) => {
                assumed.insert(name, (Arc::new(volume), Some(written)));
            }
            None => {
                assumed.remove(&name);
            }
        }
    }

    /// The write of the volume named `name` failed: the cache is right again.
    pub(super) fn failed(&self, name: &str) {
        self.volumes.lock().remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::ObjectMeta;

    fn volume(name: &str, rv: &str, bound: bool) -> Arc<PersistentVolume> {
        Arc::new(PersistentVolume {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                labels: bound.then(|| [("bound".to_owned(), "yes".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..PersistentVolume::default()
        })
    }

    fn bound(volumes: &[Arc<PersistentVolume>]) -> Vec<bool> {
        volumes
            .iter()
            .map(|v| v.labels().contains_key("bound"))
            .collect()
    }

    #[test]
    fn a_reserved_volume_is_seen_as_written_until_the_cache_catches_up() {
        let assumed = Assumed::default();
        let seen = assumed.decide(
            vec![volume("a", "5", false)],
            |_| true,
            |volumes| {
                (
                    bound(volumes),
                    Some(volume("a", "5", true).as_ref().clone()),
                )
            },
        );
        assert_eq!(seen, [false]);
        // In flight: the next decision sees the reservation although the cache is old.
        let seen = assumed.decide(
            vec![volume("a", "5", false)],
            |_| true,
            |v| (bound(v), None),
        );
        assert_eq!(seen, [true]);
        assumed.written(volume("a", "7", true).as_ref().clone());
        let seen = assumed.decide(
            vec![volume("a", "6", false)],
            |_| true,
            |v| (bound(v), None),
        );
        assert_eq!(seen, [true], "the cache is older than the write");
        let seen = assumed.decide(
            vec![volume("a", "8", false)],
            |_| true,
            |v| (bound(v), None),
        );
        assert_eq!(
            seen,
            [false],
            "the cache is newer: it wins and the entry is dropped"
        );
        assert!(assumed.volumes.lock().is_empty());
    }

    #[test]
    fn a_failed_write_forgets_the_reservation() {
        let assumed = Assumed::default();
        assumed.decide(
            vec![volume("a", "5", false)],
            |_| true,
            |_| ((), Some(volume("a", "5", true).as_ref().clone())),
        );
        assumed.failed("a");
        let seen = assumed.decide(
            vec![volume("a", "5", false)],
            |_| true,
            |v| (bound(v), None),
        );
        assert_eq!(seen, [false]);
    }
}
