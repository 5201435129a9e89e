//! hostPath provisioning end to end through helper pods, run by the emulator's node agent on a
//! temporary directory per node: create, WaitForFirstConsumer, delete, expansion, a helper pod
//! that times out, and a node with no allowed path.

#[allow(
    dead_code,
    reason = "each storage test binary uses a different part of the support"
)]
mod storage_support;

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use storage_support::builders::{claim, class, node};
use storage_support::{Cluster, Controller, TEST_TIMEOUT, binder_config, eventually};
use stowage::config::Config;
use stowage_emulator::{EmulatorConfig, NODE_AGENT_ANNOTATION, NodeAgentConfig};

const NS: &str = "apps";
const WAIT: Duration = Duration::from_secs(20);
const HOSTPATH: &str = "stowage.io/hostpath";
const BASE: &str = "/var/lib/stowage/volumes";

struct Scenario {
    cluster: Cluster,
    controller: Controller,
    _nodes: tempfile::TempDir,
}

impl Scenario {
    /// Binder mode; the nodes `nodes` exist (the first annotated `agent` when given) before the
    /// controller starts.
    async fn start(
        nodes: &[&str],
        agent: Option<&str>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let root = tempfile::tempdir().expect("node root");
        let emulator = EmulatorConfig {
            node_agent: Some(NodeAgentConfig::new(root.path())),
            ..EmulatorConfig::default()
        };
        let cluster = Cluster::start(emulator, &["stowage", NS]).await;
        for (index, name) in nodes.iter().enumerate() {
            let mut object = node(name);
            if let (0, Some(mode)) = (index, agent) {
                object.metadata.annotations =
                    Some([(NODE_AGENT_ANNOTATION.to_owned(), mode.to_owned())].into());
            }
            let nodes = Api::<Node>::all(cluster.client.clone());
            let mut created = nodes
                .create(&PostParams::default(), &object)
                .await
                .expect("create node");
            // Status is written through its subresource, as a kubelet does.
            created.status = object.status.clone();
            nodes
                .replace_status(name, &PostParams::default(), &created)
                .await
                .expect("node Ready");
        }
        let mut config = binder_config();
        configure(&mut config);
        let controller = Controller::start(&cluster, &config).await;
        Self {
            cluster,
            controller,
            _nodes: root,
        }
    }

    fn claims(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.cluster.client.clone(), NS)
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

    async fn bound(&self, name: &str) -> (PersistentVolumeClaim, PersistentVolume) {
        let claim = eventually(WAIT, &format!("claim {name} Bound"), || async {
            let claim = self.claims().get(name).await.expect("read claim");
            match claim.status.as_ref().and_then(|s| s.phase.as_deref()) {
                Some("Bound") => Ok(claim),
                other => Err(format!("phase {other:?}")),
            }
        })
        .await;
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .expect("volumeName");
        let volume = Api::<PersistentVolume>::all(self.cluster.client.clone())
            .get(&volume_name)
            .await
            .expect("read volume");
        (claim, volume)
    }

    /// Where the node agent keeps `path` of `node`.
    fn on_node(&self, node: &str, path: &str) -> PathBuf {
        let root = self.cluster.emulator.node_root(node).expect("node root");
        root.join(path.trim_start_matches('/'))
    }

    async fn event(&self, name: &str, reason: &str) -> String {
        self.event_with(name, reason, "").await
    }

    async fn event_with(&self, name: &str, reason: &str, needle: &str) -> String {
        storage_support::event_for(&self.cluster.client, NS, name, reason, needle, WAIT).await
    }

    async fn helper_pods(&self) -> usize {
        Api::<Pod>::namespaced(self.cluster.client.clone(), "stowage")
            .list(&ListParams::default().labels("app.kubernetes.io/component=volume-helper"))
            .await
            .expect("list helper pods")
            .items
            .len()
    }

    async fn stop(self) {
        self.controller.stop().await;
        self.cluster.stop().await;
    }
}

fn host_path(volume: &PersistentVolume) -> String {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.host_path.as_ref())
        .map(|h| h.path.clone())
        .expect("hostPath volume")
}

fn pinned_node(volume: &PersistentVolume) -> String {
    let affinity = volume
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .expect("node affinity");
    let term = &affinity.node_selector_terms[0];
    let expression = &term.match_expressions.as_ref().expect("expressions")[0];
    assert_eq!(expression.key, "kubernetes.io/hostname");
    assert_eq!(expression.operator, "In");
    expression.values.as_ref().expect("values")[0].clone()
}

async fn run(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test timed out");
}

#[tokio::test]
async fn a_helper_pod_creates_the_directory_on_the_node_and_the_volume_is_pinned_there() {
    run(async {
        let s = Scenario::start(&["node-a"], None, |_| {}).await;
        s.create_class(
            class("local", HOSTPATH)
                .param("pathPattern", "${namespace}/${pvc}")
                .build(),
        )
        .await;
        s.create_claim(claim(NS, "data", "1Gi").class("local").build())
            .await;
        let (_, volume) = s.bound("data").await;
        assert_eq!(host_path(&volume), format!("{BASE}/{NS}/data"));
        assert_eq!(pinned_node(&volume), "node-a");
        assert!(
            s.on_node("node-a", &host_path(&volume)).is_dir(),
            "created on node-a by the helper pod"
        );
        assert_eq!(
            s.helper_pods().await,
            0,
            "helper pods are removed afterwards"
        );
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn wait_for_first_consumer_uses_the_selected_node() {
    run(async {
        let s = Scenario::start(&["node-a", "node-b"], None, |_| {}).await;
        s.create_class(
            class("local-wffc", HOSTPATH)
                .wait_for_first_consumer()
                .build(),
        )
        .await;
        s.create_claim(claim(NS, "later", "1Gi").class("local-wffc").build())
            .await;
        s.event("later", "WaitForFirstConsumer").await;
        let mut waiting = s.claims().get("later").await.expect("claim");
        waiting
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert("volume.kubernetes.io/selected-node".into(), "node-b".into());
        s.claims()
            .replace("later", &PostParams::default(), &waiting)
            .await
            .expect("select node-b");
        let (_, volume) = s.bound("later").await;
        assert_eq!(pinned_node(&volume), "node-b");
        assert!(s.on_node("node-b", &host_path(&volume)).is_dir());
        assert!(!s.on_node("node-a", &host_path(&volume)).exists());
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn deleting_the_claim_removes_the_directory_and_the_volume() {
    run(async {
        let s = Scenario::start(&["node-a"], None, |_| {}).await;
        s.create_class(class("local", HOSTPATH).build()).await;
        s.create_claim(claim(NS, "tmp", "1Gi").class("local").build())
            .await;
        let (_, volume) = s.bound("tmp").await;
        let dir = s.on_node("node-a", &host_path(&volume));
        assert!(dir.is_dir());
        s.claims()
            .delete("tmp", &DeleteParams::default())
            .await
            .expect("delete claim");
        let volumes: Api<PersistentVolume> = Api::all(s.cluster.client.clone());
        eventually(WAIT, "volume deleted", || async {
            match volumes
                .get_opt(&volume.name_any())
                .await
                .expect("read volume")
            {
                None => Ok(()),
                Some(pv) => Err(format!("{:?}", pv.status.and_then(|s| s.phase))),
            }
        })
        .await;
        assert!(!dir.exists(), "removed from node-a by a helper pod");
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn hostpath_expansion_is_completed_by_stowage() {
    run(async {
        let s = Scenario::start(&["node-a"], None, |_| {}).await;
        s.create_class(class("local", HOSTPATH).expandable(true).build())
            .await;
        s.create_claim(claim(NS, "grow", "1Gi").class("local").build())
            .await;
        let (mut claim, volume) = s.bound("grow").await;
        if let Some(requests) = claim
            .spec
            .as_mut()
            .and_then(|s| s.resources.as_mut())
            .and_then(|r| r.requests.as_mut())
        {
            requests.insert("storage".into(), Quantity("5Gi".into()));
        }
        s.claims()
            .replace("grow", &PostParams::default(), &claim)
            .await
            .expect("ask for 5Gi");
        eventually(WAIT, "claim capacity 5Gi", || async {
            let claim = s.claims().get("grow").await.expect("claim");
            let capacity = claim
                .status
                .and_then(|s| s.capacity)
                .and_then(|c| c.get("storage").map(|q| q.0.clone()));
            if capacity.as_deref() == Some("5Gi") {
                Ok(())
            } else {
                Err(format!("{capacity:?}"))
            }
        })
        .await;
        let volume = Api::<PersistentVolume>::all(s.cluster.client.clone())
            .get(&volume.name_any())
            .await
            .expect("volume");
        assert_eq!(
            volume.spec.and_then(|s| s.capacity).expect("capacity")["storage"].0,
            "5Gi"
        );
        s.event("grow", "VolumeResizeSuccessful").await;
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_helper_pod_that_never_finishes_times_out_with_a_warning() {
    run(async {
        let s = Scenario::start(&["node-a"], Some("paused"), |config| {
            config.storage.controller.helper_timeout = Duration::from_secs(1);
        })
        .await;
        s.create_class(class("local", HOSTPATH).build()).await;
        s.create_claim(claim(NS, "stuck", "1Gi").class("local").build())
            .await;
        let note = s
            .event_with("stuck", "ProvisioningFailed", "did not finish within")
            .await;
        assert!(note.contains("did not finish within"), "{note}");
        assert!(note.contains("storage.controller.helper_timeout"), "{note}");
        let claim = s.claims().get("stuck").await.expect("claim");
        assert_eq!(
            claim.status.and_then(|s| s.phase).as_deref(),
            Some("Pending")
        );
        let text = s.controller.metrics_text();
        assert!(text.contains("reason=\"helper-timeout\""), "{text}");
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_node_with_no_allowed_path_leaves_the_claim_pending_with_a_warning() {
    run(async {
        let s = Scenario::start(&["node-a"], None, |config| {
            config
                .storage
                .hostpath
                .node_paths
                .insert("node-a".into(), Vec::new());
        })
        .await;
        s.create_class(
            class("local-wffc", HOSTPATH)
                .wait_for_first_consumer()
                .build(),
        )
        .await;
        s.create_claim(
            claim(NS, "refused", "1Gi")
                .class("local-wffc")
                .annotation("volume.kubernetes.io/selected-node", "node-a")
                .build(),
        )
        .await;
        let note = s
            .event_with("refused", "ProvisioningFailed", "storage.hostpath")
            .await;
        assert!(note.contains("node-a"), "{note}");
        assert!(note.contains("storage.hostpath.node_paths"), "{note}");
        assert_eq!(s.helper_pods().await, 0);
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_provisioned_volume_deleted_by_hand_still_has_its_directory_removed() {
    run(async {
        let s = Scenario::start(&["node-a"], None, |_| {}).await;
        s.create_class(class("local", HOSTPATH).build()).await;
        s.create_claim(claim(NS, "handmade", "1Gi").class("local").build())
            .await;
        let (_, volume) = s.bound("handmade").await;
        assert!(
            volume
                .finalizers()
                .iter()
                .any(|f| f == "stowage.io/volume-protection"),
            "{:?}",
            volume.finalizers()
        );
        let dir = s.on_node("node-a", &host_path(&volume));
        assert!(dir.is_dir());
        let volumes: Api<PersistentVolume> = Api::all(s.cluster.client.clone());
        volumes
            .delete(&volume.name_any(), &DeleteParams::default())
            .await
            .expect("delete the volume");
        eventually(WAIT, "volume gone", || async {
            match volumes
                .get_opt(&volume.name_any())
                .await
                .expect("read volume")
            {
                None => Ok(()),
                Some(pv) => Err(format!("finalizers {:?}", pv.metadata.finalizers)),
            }
        })
        .await;
        assert!(
            !dir.exists(),
            "the Delete policy removed the directory first"
        );
        s.stop().await;
    })
    .await;
}
