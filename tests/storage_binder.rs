//! Binder mode end to end against the emulator over HTTP: the static-binding examples of
//! storage.md, Retain vs Delete, Lost, and expansion refused or completed.

#[allow(
    dead_code,
    reason = "each storage test binary uses a different part of the support"
)]
mod storage_support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use storage_support::builders::{claim, class, volume};
use storage_support::{Cluster, Controller, TEST_TIMEOUT, binder_config, eventually};

const NS: &str = "apps";
const WAIT: Duration = Duration::from_secs(15);

struct Scenario {
    cluster: Cluster,
    controller: Controller,
}

impl Scenario {
    async fn start() -> Self {
        let cluster = Cluster::start(Default::default(), &["stowage", NS]).await;
        let controller = Controller::start(&cluster, &binder_config()).await;
        Self {
            cluster,
            controller,
        }
    }

    fn claims(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.cluster.client.clone(), NS)
    }

    fn volumes(&self) -> Api<PersistentVolume> {
        Api::all(self.cluster.client.clone())
    }

    async fn create_class(&self, class: StorageClass) {
        Api::<StorageClass>::all(self.cluster.client.clone())
            .create(&PostParams::default(), &class)
            .await
            .expect("create class");
    }

    async fn create_volume(&self, volume: PersistentVolume) {
        self.volumes()
            .create(&PostParams::default(), &volume)
            .await
            .expect("create volume");
    }

    async fn create_claim(&self, claim: PersistentVolumeClaim) -> PersistentVolumeClaim {
        self.claims()
            .create(&PostParams::default(), &claim)
            .await
            .expect("create claim")
    }

    async fn claim(&self, name: &str) -> PersistentVolumeClaim {
        self.claims().get(name).await.expect("read claim")
    }

    async fn volume(&self, name: &str) -> Option<PersistentVolume> {
        self.volumes().get_opt(name).await.expect("read volume")
    }

    /// Waits until the volume is Available (a new volume is not a binding candidate before).
    async fn available(&self, name: &str) {
        eventually(WAIT, &format!("volume {name} Available"), || async {
            let volume = self.volume(name).await.ok_or("no volume")?;
            match phase_of_volume(&volume) {
                "Available" => Ok(()),
                other => Err(format!("phase {other:?}")),
            }
        })
        .await
    }

    /// Waits until the claim is Bound; returns it.
    async fn bound(&self, name: &str) -> PersistentVolumeClaim {
        eventually(WAIT, &format!("claim {name} Bound"), || async {
            let claim = self.claim(name).await;
            match phase_of_claim(&claim) {
                "Bound" => Ok(claim),
                other => Err(format!("phase {other:?}")),
            }
        })
        .await
    }

    /// Waits for an Event with `reason` about the object `name`; returns its note.
    async fn event(&self, namespace: &str, name: &str, reason: &str) -> String {
        let events: Api<Event> = Api::namespaced(self.cluster.client.clone(), namespace);
        eventually(WAIT, &format!("event {reason} for {name}"), || async {
            let list = events
                .list(&ListParams::default())
                .await
                .expect("list events");
            list.items
                .iter()
                .find(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.involved_object.name.as_deref() == Some(name)
                })
                .map(|e| e.message.clone().unwrap_or_default())
                .ok_or_else(|| {
                    let seen: Vec<_> = list
                        .items
                        .iter()
                        .map(|e| e.reason.clone().unwrap_or_default())
                        .collect();
                    format!("events {seen:?}")
                })
        })
        .await
    }

    async fn stop(self) {
        self.controller.stop().await;
        self.cluster.stop().await;
    }
}

fn phase_of_claim(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn phase_of_volume(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn volume_name(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or("")
}

fn annotation<'a>(object: &'a impl ResourceExt, key: &str) -> Option<&'a str> {
    object.annotations().get(key).map(String::as_str)
}

async fn run(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test timed out");
}

#[tokio::test]
async fn a_1gi_claim_binds_the_1gi_volume_with_the_annotations() {
    run(async {
        let s = Scenario::start().await;
        s.create_volume(volume("pv-1g", "1Gi").build()).await;
        s.create_claim(claim(NS, "data", "1Gi").class("").build()).await;

        let bound = s.bound("data").await;
        assert_eq!(volume_name(&bound), "pv-1g");
        assert_eq!(annotation(&bound, "pv.kubernetes.io/bind-completed"), Some("yes"));
        assert_eq!(annotation(&bound, "pv.kubernetes.io/bound-by-controller"), Some("yes"));
        let capacity = bound.status.as_ref().and_then(|s| s.capacity.as_ref()).expect("capacity");
        assert_eq!(capacity["storage"].0, "1Gi");
        let pv = s.volume("pv-1g").await.expect("volume");
        assert_eq!(phase_of_volume(&pv), "Bound");
        assert_eq!(annotation(&pv, "pv.kubernetes.io/bound-by-controller"), Some("yes"));
        let claim_ref = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).expect("claimRef");
        assert_eq!(claim_ref.name.as_deref(), Some("data"));
        assert_eq!(claim_ref.uid, bound.metadata.uid);
        let text = s.controller.metrics_text();
        assert!(text.contains("stowage_storage_operations_total{class=\"\",operation=\"bind\",outcome=\"success\",reason=\"\"} 1"), "{text}");
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_10gi_claim_does_not_bind_a_1gi_volume() {
    run(async {
        let s = Scenario::start().await;
        s.create_volume(volume("pv-1g", "1Gi").build()).await;
        s.create_claim(claim(NS, "big", "10Gi").class("").build())
            .await;

        let note = s.event(NS, "big", "FailedBinding").await;
        assert!(note.contains("no persistent volumes available"), "{note}");
        let claim = s.claim("big").await;
        assert_eq!(phase_of_claim(&claim), "Pending");
        assert_eq!(volume_name(&claim), "");
        let pv = s.volume("pv-1g").await.expect("volume");
        assert!(
            pv.spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .is_none()
        );
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_smallest_fitting_volume_binds() {
    run(async {
        let s = Scenario::start().await;
        s.create_volume(volume("pv-10g", "10Gi").build()).await;
        s.create_volume(volume("pv-1g", "1Gi").build()).await;
        // Both must be candidates when the claim arrives, as in storage.md's example.
        s.available("pv-10g").await;
        s.available("pv-1g").await;
        s.create_claim(claim(NS, "small", "1Gi").class("").build())
            .await;
        assert_eq!(volume_name(&s.bound("small").await), "pv-1g");
        let big = s.volume("pv-10g").await.expect("volume");
        assert_eq!(phase_of_volume(&big), "Available");
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_volume_pre_bound_by_name_wins_over_a_smaller_free_one() {
    run(async {
        let s = Scenario::start().await;
        s.create_volume(volume("pv-10g", "10Gi").claim_ref(NS, "mine").build())
            .await;
        s.create_volume(volume("pv-1g", "1Gi").build()).await;
        s.create_claim(claim(NS, "mine", "1Gi").class("").build())
            .await;
        let bound = s.bound("mine").await;
        assert_eq!(volume_name(&bound), "pv-10g");
        let pv = s.volume("pv-10g").await.expect("volume");
        assert_eq!(
            pv.spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .and_then(|r| r.uid.clone()),
            bound.metadata.uid
        );
        assert_eq!(
            annotation(&pv, "pv.kubernetes.io/bound-by-controller"),
            None,
            "the user made the link"
        );
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_selector_that_matches_no_volume_leaves_the_claim_unbound() {
    run(async {
        let s = Scenario::start().await;
        s.create_volume(volume("pv-fast", "1Gi").label("tier", "slow").build())
            .await;
        s.create_claim(
            claim(NS, "picky", "1Gi")
                .class("")
                .selector("tier", "fast")
                .build(),
        )
        .await;
        s.event(NS, "picky", "FailedBinding").await;
        assert_eq!(volume_name(&s.claim("picky").await), "");
        // A matching volume appears: now it binds.
        s.create_volume(volume("pv-fast-2", "1Gi").label("tier", "fast").build())
            .await;
        assert_eq!(volume_name(&s.bound("picky").await), "pv-fast-2");
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn released_and_failed_volumes_are_skipped() {
    run(async {
        let s = Scenario::start().await;
        // A volume reserved for a claim that is gone (uid set) is Released by the controller.
        let mut reserved = volume("pv-released", "1Gi").claim_ref(NS, "gone").build();
        if let Some(r) = reserved.spec.as_mut().and_then(|s| s.claim_ref.as_mut()) {
            r.uid = Some("00000000-0000-0000-0000-000000000001".into());
        }
        s.create_volume(reserved).await;
        eventually(WAIT, "pv-released Released", || async {
            let pv = s.volume("pv-released").await.expect("volume");
            if phase_of_volume(&pv) == "Released" {
                Ok(())
            } else {
                Err(phase_of_volume(&pv).to_owned())
            }
        })
        .await;
        s.create_claim(claim(NS, "fresh", "1Gi").class("").build())
            .await;
        s.event(NS, "fresh", "FailedBinding").await;
        s.create_volume(volume("pv-free", "1Gi").build()).await;
        assert_eq!(volume_name(&s.bound("fresh").await), "pv-free");
        let released = s.volume("pv-released").await.expect("volume");
        assert_eq!(
            phase_of_volume(&released),
            "Released",
            "Retain keeps it Released"
        );
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_crash_between_the_two_bind_writes_is_completed() {
    run(async {
        let cluster = Cluster::start(Default::default(), &["stowage", NS]).await;
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), NS);
        let created = claims
            .create(
                &PostParams::default(),
                &claim(NS, "half", "1Gi").class("").build(),
            )
            .await
            .expect("claim");
        // The first write of a bind happened (claimRef with uid), the second did not.
        let mut pv = volume("pv-half", "1Gi").claim_ref(NS, "half").build();
        if let Some(r) = pv.spec.as_mut().and_then(|s| s.claim_ref.as_mut()) {
            r.uid = created.metadata.uid.clone();
        }
        pv.metadata.annotations = Some(
            [(
                "pv.kubernetes.io/bound-by-controller".to_owned(),
                "yes".to_owned(),
            )]
            .into(),
        );
        Api::<PersistentVolume>::all(cluster.client.clone())
            .create(&PostParams::default(), &pv)
            .await
            .expect("volume");
        let controller = Controller::start(&cluster, &binder_config()).await;
        let s = Scenario {
            cluster,
            controller,
        };
        assert_eq!(volume_name(&s.bound("half").await), "pv-half");
        assert_eq!(
            phase_of_volume(&s.volume("pv-half").await.expect("volume")),
            "Bound"
        );
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn retain_keeps_the_volume_released_after_its_claim_is_deleted() {
    run(async {
        let s = Scenario::start().await;
        s.create_volume(volume("pv-keep", "1Gi").reclaim("Retain").build())
            .await;
        s.create_claim(claim(NS, "keep", "1Gi").class("").build())
            .await;
        s.bound("keep").await;
        s.claims()
            .delete("keep", &DeleteParams::default())
            .await
            .expect("delete claim");
        eventually(WAIT, "pv-keep Released", || async {
            let pv = s.volume("pv-keep").await.expect("the volume stays");
            if phase_of_volume(&pv) == "Released" {
                Ok(())
            } else {
                Err(phase_of_volume(&pv).to_owned())
            }
        })
        .await;
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn delete_fails_with_an_event_for_a_volume_stowage_did_not_provision() {
    run(async {
        let s = Scenario::start().await;
        s.create_volume(volume("pv-static", "1Gi").reclaim("Delete").build())
            .await;
        s.create_claim(claim(NS, "tmp", "1Gi").class("").build())
            .await;
        s.bound("tmp").await;
        s.claims()
            .delete("tmp", &DeleteParams::default())
            .await
            .expect("delete claim");
        let note = s.event("default", "pv-static", "VolumeFailedDelete").await;
        assert!(note.contains("not provisioned by Stowage"), "{note}");
        let pv = s
            .volume("pv-static")
            .await
            .expect("kept: its data cannot be removed");
        assert_eq!(phase_of_volume(&pv), "Failed");
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_bound_claim_whose_volume_vanished_is_lost() {
    run(async {
        let s = Scenario::start().await;
        s.create_volume(volume("pv-lost", "1Gi").build()).await;
        s.create_claim(claim(NS, "orphan", "1Gi").class("").build())
            .await;
        s.bound("orphan").await;
        s.volumes()
            .delete("pv-lost", &DeleteParams::default())
            .await
            .expect("delete volume");
        eventually(WAIT, "claim Lost", || async {
            let claim = s.claim("orphan").await;
            if phase_of_claim(&claim) == "Lost" {
                Ok(())
            } else {
                Err(phase_of_claim(&claim).to_owned())
            }
        })
        .await;
        let note = s.event(NS, "orphan", "ClaimLost").await;
        assert!(note.contains("lost its PersistentVolume"), "{note}");
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn growth_on_a_class_without_allow_volume_expansion_is_refused() {
    run(async {
        let s = Scenario::start().await;
        s.create_class(
            class("fixed", "stowage.io/hostpath")
                .expandable(false)
                .build(),
        )
        .await;
        s.create_volume(volume("pv-fixed", "1Gi").class("fixed").build())
            .await;
        s.create_claim(claim(NS, "grow", "1Gi").class("fixed").build())
            .await;
        let mut bound = s.bound("grow").await;
        if let Some(requests) = bound
            .spec
            .as_mut()
            .and_then(|s| s.resources.as_mut())
            .and_then(|r| r.requests.as_mut())
        {
            requests.insert(
                "storage".into(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("2Gi".into()),
            );
        }
        s.claims()
            .replace("grow", &PostParams::default(), &bound)
            .await
            .expect("ask for 2Gi");

        let note = s.event(NS, "grow", "ExpansionRefused").await;
        assert!(note.contains("allowVolumeExpansion"), "{note}");
        let claim = s.claim("grow").await;
        let condition = claim
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "ExpansionRefused"))
            .expect("ExpansionRefused condition");
        assert_eq!(condition.status, "True");
        assert_eq!(
            claim
                .status
                .as_ref()
                .and_then(|s| s.capacity.as_ref())
                .expect("capacity")["storage"]
                .0,
            "1Gi"
        );
        let text = s.controller.metrics_text();
        assert!(
            text.contains("stowage_storage_expansion_blocked_total{class=\"fixed\"} 1"),
            "{text}"
        );
        s.stop().await;
    })
    .await;
}
