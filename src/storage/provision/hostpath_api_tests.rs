//! hostPath provisioner against the emulator over HTTP, without a node agent: helper pods stay
//! Pending as on a node whose kubelet does not answer. Timeouts, cleanup and refusals.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;
use stowage_emulator::EmulatorConfig;

use super::tests::{hostpath_request, settings};
use super::*;
use crate::storage::provision::fixtures::{Cluster, within};
use crate::storage::provision::helper_pod::{
    DEFAULT_MODE, HelperAction, HelperPodParams, helper_pod,
};

fn provisioner(cluster: &Cluster, timeout: Duration) -> HostPathProvisioner {
    let mut s = settings();
    s.helper_timeout = timeout;
    HostPathProvisioner::new(cluster.client.clone(), s)
}

#[tokio::test]
async fn a_helper_pod_that_never_runs_times_out_and_is_removed() {
    within(async {
        let cluster = Cluster::start(EmulatorConfig::default()).await;
        cluster.node("w1", true, &[]);
        let hp = provisioner(&cluster, Duration::from_millis(300));

        let err = hp
            .provision(&hostpath_request(None, Some("w1")))
            .await
            .expect_err("nobody runs the pod");
        assert_eq!(err.category(), "helper-timeout");
        assert!(!err.is_permanent());
        assert_eq!(
            err.to_string(),
            "helper pod stowage/stowage-create-pvc-1 on node w1 did not finish within 300ms: check \
             that node w1 is Ready and can pull image busybox:1.36 \
             (storage.controller.helper_image), or raise storage.controller.helper_timeout"
        );
        assert_eq!(cluster.helper_pods().await, Vec::<String>::new());
        cluster.stop().await;
    })
    .await
}

#[tokio::test]
async fn a_stale_failed_pod_of_the_same_name_is_replaced_not_trusted() {
    within(async {
        let cluster = Cluster::start(EmulatorConfig::default()).await;
        cluster.node("w1", true, &[]);
        let stale: Pod = serde_json::from_value(json!({
            "metadata": {"name": "stowage-create-pvc-1", "namespace": "stowage"},
            "spec": {"nodeName": "w1", "containers": [{"name": "helper", "image": "old"}]}
        }))
        .expect("pod");
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "stowage");
        let created = pods
            .create(&PostParams::default(), &stale)
            .await
            .expect("stale pod");
        let mut failed = created.clone();
        failed.status = Some(serde_json::from_value(json!({"phase": "Failed"})).expect("status"));
        pods.replace_status("stowage-create-pvc-1", &PostParams::default(), &failed)
            .await
            .expect("mark failed");

        let hp = provisioner(&cluster, Duration::from_millis(300));
        let err = hp
            .provision(&hostpath_request(None, Some("w1")))
            .await
            .expect_err("the new pod never runs");
        // Reusing the stale pod would have reported its failure at once.
        assert_eq!(err.category(), "helper-timeout", "{err}");
        assert_eq!(cluster.helper_pods().await, Vec::<String>::new());
        cluster.stop().await;
    })
    .await
}

#[tokio::test]
async fn a_dropped_provision_still_removes_its_pod() {
    within(async {
        let cluster = Cluster::start(EmulatorConfig::default()).await;
        cluster.node("w1", true, &[]);
        let hp = Arc::new(provisioner(&cluster, Duration::from_secs(600)));
        let task = tokio::spawn({
            let hp = hp.clone();
            async move { hp.provision(&hostpath_request(None, Some("w1"))).await }
        });
        cluster.until_pod_exists("stowage-create-pvc-1").await;
        task.abort();
        assert!(task.await.expect_err("aborted").is_cancelled());
        cluster.until_no_helper_pods().await;
        cluster.stop().await;
    })
    .await
}

#[tokio::test]
async fn deleting_on_a_gone_node_does_not_wait() {
    within(async {
        let cluster = Cluster::start(EmulatorConfig::default()).await;
        let hp = provisioner(&cluster, Duration::from_secs(600));
        let req = hostpath_request(None, Some("gone"));
        let path = Path::new("/var/lib/stowage/volumes/team-a-data-pvc-1");
        let pv = hostpath_volume(&req, "gone", "gone", path);

        let outcome = tokio::time::timeout(Duration::from_secs(5), hp.delete(&pv, &req.kind))
            .await
            .expect("returns without waiting for the helper timeout")
            .expect("delete");
        assert_eq!(
            outcome,
            DeleteOutcome::NodeGone {
                node: "gone".to_string(),
                path: path.to_path_buf()
            }
        );
        assert_eq!(
            outcome.warning().as_deref(),
            Some(
                "node gone no longer exists, so /var/lib/stowage/volumes/team-a-data-pvc-1 was not \
                 removed from it; if the machine comes back, remove the directory by hand"
            )
        );
        assert_eq!(cluster.helper_pods().await, Vec::<String>::new());
        cluster.stop().await;
    })
    .await
}

#[tokio::test]
async fn refusals_create_no_pod() {
    within(async {
        let cluster = Cluster::start(EmulatorConfig::default()).await;
        cluster.node("refused", true, &[]);
        cluster.node("w1", true, &[]);
        let hp = provisioner(&cluster, Duration::from_secs(600));

        let err = hp
            .provision(&hostpath_request(None, Some("missing")))
            .await
            .expect_err("selected node missing");
        assert_eq!(err.category(), "no-node");
        assert!(!err.is_permanent(), "the scheduler picks another node");

        let err = hp
            .provision(&hostpath_request(None, Some("refused")))
            .await
            .expect_err("node without paths");
        assert_eq!(err.category(), "no-allowed-path");

        let err = hp
            .provision(&hostpath_request(Some("../${pvc}"), Some("w1")))
            .await
            .expect_err("unsafe pattern");
        assert_eq!(err.category(), "unsafe-path");

        let req = hostpath_request(None, Some("w1"));
        let pv = hostpath_volume(&req, "w1", "w1", Path::new("/etc"));
        let err = hp
            .delete(&pv, &req.kind)
            .await
            .expect_err("outside the base");
        assert_eq!(err.category(), "unsafe-path");

        assert_eq!(cluster.helper_pods().await, Vec::<String>::new());
        cluster.stop().await;
    })
    .await
}

#[tokio::test]
async fn orphaned_helper_pods_are_removed_and_others_kept() {
    within(async {
        let cluster = Cluster::start(EmulatorConfig::default()).await;
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "stowage");
        let params = |action, pv: &str| HelperPodParams {
            namespace: "stowage".to_string(),
            image: "busybox:1.36".to_string(),
            action,
            pv_name: pv.to_string(),
            node: "w1".to_string(),
            base_path: PathBuf::from("/var/lib/stowage/volumes"),
            relative_dir: PathBuf::from("x"),
            mode: DEFAULT_MODE,
        };
        let post = PostParams::default();
        let done = pods
            .create(&post, &helper_pod(&params(HelperAction::Create, "pv-done")))
            .await
            .expect("done pod");
        let mut finished = done.clone();
        finished.status =
            Some(serde_json::from_value(json!({"phase": "Succeeded"})).expect("status"));
        pods.replace_status("stowage-create-pv-done", &post, &finished)
            .await
            .expect("finish");
        pods.create(&post, &helper_pod(&params(HelperAction::Delete, "pv-busy")))
            .await
            .expect("busy pod");
        let other: Pod = serde_json::from_value(json!({
            "metadata": {"name": "someone-else", "namespace": "stowage"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]},
        }))
        .expect("pod");
        let mut other = pods.create(&post, &other).await.expect("other pod");
        other.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).expect("status"));
        pods.replace_status("someone-else", &post, &other)
            .await
            .expect("finish other");

        let hp = provisioner(&cluster, Duration::from_secs(600));
        let removed = hp.remove_orphaned_helper_pods().await.expect("cleanup");
        assert_eq!(removed, ["stowage-create-pv-done"]);
        let mut left = cluster.helper_pods().await;
        left.sort();
        assert_eq!(left, ["someone-else", "stowage-delete-pv-busy"]);
        cluster.stop().await;
    })
    .await
}
