//! Dynamic provisioning end to end against the emulator over HTTP: NFS sub-directories on a
//! temporary export (create, archive, delete, retain, expansion), provisioner mode leaving binding
//! to the cluster, and bad input leaving claims Pending with a Warning Event that says what to fix.

#[allow(
    dead_code,
    reason = "each storage test binary uses a different part of the support"
)]
mod storage_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use storage_support::builders::{claim, class};
use storage_support::{Cluster, Controller, TEST_TIMEOUT, binder_config, eventually};
use stowage::config::Config;

const NS: &str = "apps";
const WAIT: Duration = Duration::from_secs(20);
const NFS: &str = "stowage.io/nfs";

struct Scenario {
    cluster: Cluster,
    controller: Controller,
    /// The NFS export as "mounted" into Stowage.
    export: tempfile::TempDir,
}

impl Scenario {
    /// Binder mode with the export mounted.
    async fn binder() -> Self {
        Self::start(
            |config, export| {
                config.storage.nfs.mount_path = Some(export.to_owned());
            },
            true,
        )
        .await
    }

    async fn start(configure: impl FnOnce(&mut Config, &Path), binder: bool) -> Self {
        let export = tempfile::tempdir().expect("export dir");
        let cluster = Cluster::start(Default::default(), &["stowage", NS]).await;
        let mut config = if binder {
            binder_config()
        } else {
            Config::default()
        };
        configure(&mut config, export.path());
        let controller = Controller::start(&cluster, &config).await;
        Self {
            cluster,
            controller,
            export,
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

    async fn create_claim(&self, claim: PersistentVolumeClaim) -> PersistentVolumeClaim {
        self.claims()
            .create(&PostParams::default(), &claim)
            .await
            .expect("create claim")
    }

    async fn claim(&self, name: &str) -> PersistentVolumeClaim {
        self.claims().get(name).await.expect("read claim")
    }

    async fn bound(&self, name: &str) -> PersistentVolumeClaim {
        eventually(WAIT, &format!("claim {name} Bound"), || async {
            let claim = self.claim(name).await;
            match phase(&claim) {
                "Bound" => Ok(claim),
                other => Err(format!("phase {other:?}")),
            }
        })
        .await
    }

    async fn volume_of(&self, claim: &PersistentVolumeClaim) -> PersistentVolume {
        let name = format!("pvc-{}", claim.uid().expect("uid"));
        eventually(WAIT, &format!("volume {name}"), || async {
            self.volumes()
                .get_opt(&name)
                .await
                .expect("read volume")
                .ok_or_else(|| "absent".to_owned())
        })
        .await
    }

    async fn gone(&self, volume: &str) {
        eventually(WAIT, &format!("volume {volume} deleted"), || async {
            match self.volumes().get_opt(volume).await.expect("read volume") {
                None => Ok(()),
                Some(pv) => Err(format!("phase {:?}", pv.status.and_then(|s| s.phase))),
            }
        })
        .await
    }

    async fn event(&self, name: &str, reason: &str) -> String {
        self.event_with(name, reason, "").await
    }

    async fn event_with(&self, name: &str, reason: &str, needle: &str) -> String {
        storage_support::event_for(&self.cluster.client, NS, name, reason, needle, WAIT).await
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.export.path().join(relative)
    }

    /// Every directory under the export, relative, sorted.
    fn tree(&self) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    out.push(
                        path.strip_prefix(base)
                            .expect("inside")
                            .display()
                            .to_string(),
                    );
                    walk(base, &path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.export.path(), self.export.path(), &mut out);
        out.sort();
        out
    }

    async fn stop(self) {
        self.controller.stop().await;
        self.cluster.stop().await;
    }
}

fn nfs_class(name: &str) -> storage_support::builders::ClassBuilder {
    class(name, NFS)
        .param("server", "nfs.example")
        .param("path", "/exports/k8s")
}

fn phase(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

async fn run(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test timed out");
}

#[tokio::test]
async fn nfs_creates_a_sub_directory_per_volume_and_binds_it() {
    run(async {
        let s = Scenario::binder().await;
        s.create_class(nfs_class("nfs").build()).await;
        let created = s
            .create_claim(claim(NS, "data", "1Gi").class("nfs").build())
            .await;
        let bound = s.bound("data").await;
        let pv_name = format!("pvc-{}", created.uid().expect("uid"));
        let dir = format!("{NS}-data-{pv_name}");
        assert!(s.path(&dir).is_dir(), "{dir} in {:?}", s.tree());
        let pv = s.volume_of(&bound).await;
        let nfs = pv
            .spec
            .as_ref()
            .and_then(|s| s.nfs.as_ref())
            .expect("nfs volume");
        assert_eq!(nfs.server, "nfs.example");
        assert_eq!(nfs.path, format!("/exports/k8s/{dir}"));
        assert_eq!(
            pv.annotations()
                .get("pv.kubernetes.io/provisioned-by")
                .map(String::as_str),
            Some(NFS)
        );
        let note = s.event("data", "ProvisioningSucceeded").await;
        assert!(note.contains(&pv_name), "{note}");
        let text = s.controller.metrics_text();
        assert!(
            text.contains("stowage_storage_provision_duration_seconds_count{class=\"nfs\"} 1"),
            "{text}"
        );
        s.stop().await;
    })
    .await;
}

/// Creates an NFS claim, waits for it to bind, deletes it; returns the claim and its PV's name.
async fn provision_and_delete(
    s: &Scenario,
    class_name: &str,
    name: &str,
) -> (PersistentVolumeClaim, String) {
    let created = s
        .create_claim(claim(NS, name, "1Gi").class(class_name).build())
        .await;
    s.bound(name).await;
    let pv = s.volume_of(&created).await;
    s.claims()
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete claim");
    (created, pv.name_any())
}

#[tokio::test]
async fn nfs_delete_removes_the_directory_and_the_volume() {
    run(async {
        let s = Scenario::binder().await;
        s.create_class(nfs_class("nfs").param("onDelete", "delete").build())
            .await;
        let (_, pv) = provision_and_delete(&s, "nfs", "scratch").await;
        s.gone(&pv).await;
        assert_eq!(s.tree(), Vec::<String>::new());
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn nfs_archive_keeps_the_nested_path_intact() {
    run(async {
        let s = Scenario::binder().await;
        s.create_class(
            nfs_class("nfs")
                .param("onDelete", "archive")
                .param("pathPattern", "${namespace}/${pvc}")
                .build(),
        )
        .await;
        let (_, pv) = provision_and_delete(&s, "nfs", "logs").await;
        s.gone(&pv).await;
        assert_eq!(s.tree(), [NS.to_owned(), format!("{NS}/archived-logs")]);
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn nfs_archive_on_delete_is_the_older_boolean_form() {
    run(async {
        let s = Scenario::binder().await;
        s.create_class(
            nfs_class("nfs")
                .param("archiveOnDelete", "true")
                .param("pathPattern", "${pvc}")
                .build(),
        )
        .await;
        let (_, pv) = provision_and_delete(&s, "nfs", "old").await;
        s.gone(&pv).await;
        assert_eq!(s.tree(), ["archived-old".to_owned()]);
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn nfs_retain_leaves_the_directory_and_removes_the_volume() {
    run(async {
        let s = Scenario::binder().await;
        s.create_class(
            nfs_class("nfs")
                .param("onDelete", "retain")
                .param("pathPattern", "${pvc}")
                .build(),
        )
        .await;
        let (_, pv) = provision_and_delete(&s, "nfs", "kept").await;
        s.gone(&pv).await;
        assert_eq!(s.tree(), ["kept".to_owned()]);
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_retain_class_keeps_the_volume_released_and_the_data() {
    run(async {
        let s = Scenario::binder().await;
        s.create_class(
            nfs_class("nfs")
                .reclaim("Retain")
                .param("pathPattern", "${pvc}")
                .build(),
        )
        .await;
        let (_, pv) = provision_and_delete(&s, "nfs", "precious").await;
        eventually(WAIT, "volume Released", || async {
            let volume = s.volumes().get(&pv).await.expect("the volume stays");
            match volume.status.and_then(|s| s.phase).as_deref() {
                Some("Released") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        assert_eq!(s.tree(), ["precious".to_owned()]);
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn nfs_expansion_is_completed_by_stowage() {
    run(async {
        let s = Scenario::binder().await;
        s.create_class(nfs_class("nfs").expandable(true).build())
            .await;
        s.create_claim(claim(NS, "growing", "1Gi").class("nfs").build())
            .await;
        let mut bound = s.bound("growing").await;
        if let Some(requests) = bound
            .spec
            .as_mut()
            .and_then(|s| s.resources.as_mut())
            .and_then(|r| r.requests.as_mut())
        {
            requests.insert("storage".into(), Quantity("3Gi".into()));
        }
        s.claims()
            .replace("growing", &PostParams::default(), &bound)
            .await
            .expect("ask for 3Gi");
        let grown = eventually(WAIT, "claim capacity 3Gi", || async {
            let claim = s.claim("growing").await;
            let capacity = claim
                .status
                .as_ref()
                .and_then(|s| s.capacity.as_ref())
                .and_then(|c| c.get("storage"))
                .map(|q| q.0.clone());
            if capacity.as_deref() == Some("3Gi") {
                Ok(claim)
            } else {
                Err(format!("{capacity:?}"))
            }
        })
        .await;
        let pv = s.volume_of(&grown).await;
        assert_eq!(
            pv.spec
                .as_ref()
                .and_then(|s| s.capacity.as_ref())
                .expect("capacity")["storage"]
                .0,
            "3Gi"
        );
        let note = s.event("growing", "VolumeResizeSuccessful").await;
        assert!(note.contains("3Gi"), "{note}");
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn provisioner_mode_creates_the_volume_and_leaves_binding_to_the_cluster() {
    run(async {
        let s = Scenario::start(
            |config, export| config.storage.nfs.mount_path = Some(export.to_owned()),
            false,
        )
        .await;
        s.create_class(
            nfs_class("nfs")
                .param("pathPattern", "${pvc}")
                .param("onDelete", "delete")
                .build(),
        )
        .await;
        // Not handed over by the cluster yet: Stowage leaves it alone.
        s.create_claim(claim(NS, "waiting", "1Gi").class("nfs").build())
            .await;
        let created = s
            .create_claim(
                claim(NS, "handed", "1Gi")
                    .class("nfs")
                    .annotation("volume.kubernetes.io/storage-provisioner", NFS)
                    .build(),
            )
            .await;
        let pv = s.volume_of(&created).await;
        let claim_ref = pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .expect("claimRef");
        assert_eq!(claim_ref.name.as_deref(), Some("handed"));
        assert_eq!(claim_ref.namespace.as_deref(), Some(NS));
        assert_eq!(claim_ref.uid, created.metadata.uid);
        assert_eq!(
            pv.annotations()
                .get("pv.kubernetes.io/provisioned-by")
                .map(String::as_str),
            Some(NFS)
        );
        assert_eq!(
            s.tree(),
            ["handed".to_owned()],
            "only the handed-over claim is provisioned"
        );

        // No bind writes: the claim is untouched by Stowage, the PV's phase is the API server's.
        let claim = s.claim("handed").await;
        assert_eq!(
            claim.spec.as_ref().and_then(|s| s.volume_name.as_deref()),
            None
        );
        assert!(
            !claim
                .annotations()
                .contains_key("pv.kubernetes.io/bind-completed")
        );
        let managers: Vec<_> = claim
            .managed_fields()
            .iter()
            .filter_map(|m| m.manager.clone())
            .collect();
        assert!(!managers.iter().any(|m| m == "stowage"), "{managers:?}");
        let pv = s.volumes().get(&pv.name_any()).await.expect("volume");
        assert_eq!(
            pv.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Pending")
        );

        // The cluster releases the volume when the claim goes: Stowage deletes data and PV.
        s.claims()
            .delete("handed", &DeleteParams::default())
            .await
            .expect("delete claim");
        let mut released = s.volumes().get(&pv.name_any()).await.expect("volume");
        released.status = Some(k8s_openapi::api::core::v1::PersistentVolumeStatus {
            phase: Some("Released".into()),
            ..Default::default()
        });
        s.volumes()
            .replace_status(&pv.name_any(), &PostParams::default(), &released)
            .await
            .expect("release");
        s.gone(&pv.name_any()).await;
        assert_eq!(s.tree(), Vec::<String>::new());
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_unsafe_path_pattern_leaves_the_claim_pending_with_a_warning() {
    run(async {
        let s = Scenario::binder().await;
        s.create_class(
            nfs_class("escape")
                .param("pathPattern", "../${pvc}")
                .build(),
        )
        .await;
        s.create_claim(claim(NS, "evil", "1Gi").class("escape").build())
            .await;
        let note = s
            .event_with("evil", "ProvisioningFailed", "pathPattern")
            .await;
        assert!(note.contains("pathPattern"), "{note}");
        assert!(note.contains(".."), "{note}");
        assert_eq!(phase(&s.claim("evil").await), "Pending");
        assert_eq!(s.tree(), Vec::<String>::new());
        let parent = s.export.path().parent().expect("parent");
        assert!(
            !parent.join("evil").exists(),
            "nothing created outside the export"
        );
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_unknown_class_parameter_is_named_in_the_warning() {
    run(async {
        let s = Scenario::binder().await;
        s.create_class(nfs_class("typo").param("onDelte", "retain").build())
            .await;
        s.create_claim(claim(NS, "typo", "1Gi").class("typo").build())
            .await;
        let note = s.event_with("typo", "ProvisioningFailed", "onDelte").await;
        assert!(note.contains("onDelte"), "{note}");
        assert_eq!(phase(&s.claim("typo").await), "Pending");
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn nfs_without_a_mount_path_says_which_key_to_set() {
    run(async {
        let s = Scenario::start(|_, _| {}, true).await;
        s.create_class(nfs_class("nfs").build()).await;
        s.create_claim(claim(NS, "nowhere", "1Gi").class("nfs").build())
            .await;
        let note = s
            .event_with("nowhere", "ProvisioningFailed", "storage.nfs.mount_path")
            .await;
        assert!(note.contains("storage.nfs.mount_path"), "{note}");
        assert_eq!(phase(&s.claim("nowhere").await), "Pending");
        s.stop().await;
    })
    .await;
}
