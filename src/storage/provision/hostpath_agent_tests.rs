//! hostPath provisioning end to end through real helper pods: the emulator's node agent runs them
//! against a temporary directory per node, as a kubelet would.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;
use stowage_emulator::{EmulatorConfig, NODE_AGENT_ANNOTATION, NodeAgentConfig};

use super::tests::{hostpath_request, settings};
use super::*;
use crate::storage::provision::fixtures::{Cluster, within};

/// An emulator whose node agent keeps node filesystems under a temporary directory.
async fn cluster_with_agent() -> (Cluster, tempfile::TempDir) {
    let root = tempfile::tempdir().expect("tempdir");
    let config = EmulatorConfig {
        node_agent: Some(NodeAgentConfig::new(root.path())),
        ..EmulatorConfig::default()
    };
    (Cluster::start(config).await, root)
}

fn provisioner(cluster: &Cluster, timeout: Duration) -> HostPathProvisioner {
    let mut s = settings();
    s.helper_timeout = timeout;
    HostPathProvisioner::new(cluster.client.clone(), s)
}

/// `path` on `node` as the agent's directory holds it.
fn on_node(cluster: &Cluster, node: &str, path: &str) -> PathBuf {
    let root = cluster.emulator.node_root(node).expect("node root");
    root.join(path.trim_start_matches('/'))
}

fn host_path(pv: &PersistentVolume) -> String {
    pv.spec
        .as_ref()
        .and_then(|s| s.host_path.as_ref())
        .map(|h| h.path.clone())
        .expect("hostPath")
}

#[tokio::test]
async fn provision_and_delete_through_helper_pods() {
    within(async {
        let (cluster, _root) = cluster_with_agent().await;
        cluster.node("w1", true, &[]);
        let hp = provisioner(&cluster, Duration::from_secs(10));
        let req = hostpath_request(None, Some("w1"));

        let pv = hp.provision(&req).await.expect("provision");
        let path = "/var/lib/stowage/volumes/team-a-data-pvc-1";
        assert_eq!(pv, hostpath_volume(&req, "w1", "w1", Path::new(path)));
        let dir = on_node(&cluster, "w1", path);
        assert!(dir.is_dir(), "{} exists on the node", dir.display());
        let mode = fs::metadata(&dir).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o777);
        assert_eq!(cluster.helper_pods().await, Vec::<String>::new());

        fs::create_dir_all(dir.join("app/data")).expect("data");
        fs::write(dir.join("app/data/f"), "x").expect("file");
        let outcome = hp.delete(&pv, &req.kind).await.expect("delete");
        assert_eq!(
            outcome,
            DeleteOutcome::Removed {
                path: PathBuf::from(path)
            }
        );
        assert!(!dir.exists());
        assert!(
            on_node(&cluster, "w1", "/var/lib/stowage/volumes").is_dir(),
            "base kept"
        );
        assert_eq!(cluster.helper_pods().await, Vec::<String>::new());

        // A retried delete finds nothing to remove and still succeeds.
        let again = hp.delete(&pv, &req.kind).await.expect("delete again");
        assert_eq!(
            again,
            DeleteOutcome::Removed {
                path: PathBuf::from(path)
            }
        );
        cluster.stop().await;
    })
    .await
}

#[tokio::test]
async fn immediate_classes_land_on_the_first_ready_node_with_a_path() {
    within(async {
        let (cluster, _root) = cluster_with_agent().await;
        cluster.node("a-not-ready", false, &[]);
        cluster.node("b-refused", true, &[]);
        cluster.node("c-ready", true, &[]);
        let mut s = settings();
        s.node_paths.insert("b-refused".to_string(), vec![]);
        s.helper_timeout = Duration::from_secs(10);
        let hp = HostPathProvisioner::new(cluster.client.clone(), s);
        let req = hostpath_request(None, None);

        let pv = hp.provision(&req).await.expect("provision");
        let path = "/var/lib/stowage/volumes/team-a-data-pvc-1";
        assert_eq!(
            pv,
            hostpath_volume(&req, "c-ready", "c-ready", Path::new(path))
        );
        assert!(on_node(&cluster, "c-ready", path).is_dir());
        cluster.stop().await;
    })
    .await
}

#[tokio::test]
async fn per_node_base_paths_and_nested_patterns() {
    within(async {
        let (cluster, _root) = cluster_with_agent().await;
        cluster.node("big", true, &[]);
        let hp = provisioner(&cluster, Duration::from_secs(10));
        let req = hostpath_request(Some("${node}/${namespace}/${pvc}"), Some("big"));

        let pv = hp.provision(&req).await.expect("provision");
        assert_eq!(host_path(&pv), "/mnt/disk1/big/team-a/data");
        assert!(on_node(&cluster, "big", "/mnt/disk1/big/team-a/data").is_dir());

        hp.delete(&pv, &req.kind).await.expect("delete");
        assert!(!on_node(&cluster, "big", "/mnt/disk1/big/team-a/data").exists());
        assert!(
            on_node(&cluster, "big", "/mnt/disk1/big/team-a").is_dir(),
            "parents kept"
        );
        cluster.stop().await;
    })
    .await
}

#[tokio::test]
async fn a_paused_node_times_out_and_leaves_nothing() {
    within(async {
        let (cluster, _root) = cluster_with_agent().await;
        cluster.node("w1", true, &[(NODE_AGENT_ANNOTATION, "paused")]);
        let hp = provisioner(&cluster, Duration::from_millis(500));

        let err = hp
            .provision(&hostpath_request(None, Some("w1")))
            .await
            .expect_err("paused");
        assert_eq!(err.category(), "helper-timeout", "{err}");
        assert_eq!(cluster.helper_pods().await, Vec::<String>::new());
        assert!(!on_node(&cluster, "w1", "/var/lib/stowage/volumes/team-a-data-pvc-1").exists());
        cluster.stop().await;
    })
    .await
}

#[tokio::test]
async fn a_failing_helper_reports_the_kubelet_message() {
    within(async {
        let (cluster, _root) = cluster_with_agent().await;
        cluster.node("w1", true, &[(NODE_AGENT_ANNOTATION, "fail")]);
        let hp = provisioner(&cluster, Duration::from_secs(10));

        let err = hp
            .provision(&hostpath_request(None, Some("w1")))
            .await
            .expect_err("fails");
        assert_eq!(err.category(), "helper-failed", "{err}");
        assert!(!err.is_permanent());
        let text = err.to_string();
        assert!(
            text.starts_with(
                "helper pod stowage/stowage-create-pvc-1 on node w1 failed: exit code 1: Error"
            ),
            "{text}"
        );
        assert_eq!(cluster.helper_pods().await, Vec::<String>::new());
        cluster.stop().await;
    })
    .await
}

#[tokio::test]
async fn a_stale_failed_pod_is_replaced_and_the_retry_succeeds() {
    within(async {
        let (cluster, _root) = cluster_with_agent().await;
        cluster.node("w1", true, &[]);
        // Left by an earlier attempt; already Failed, so the agent leaves it alone.
        let stale: Pod = serde_json::from_value(json!({
            "metadata": {"name": "stowage-create-pvc-1", "namespace": "stowage"},
            "spec": {"nodeName": "w1", "containers": [{"name": "helper", "image": "old"}]}
        }))
        .expect("pod");
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "stowage");
        let mut created = pods
            .create(&PostParams::default(), &stale)
            .await
            .expect("stale");
        created.status = Some(serde_json::from_value(json!({"phase": "Failed"})).expect("status"));
        pods.replace_status("stowage-create-pvc-1", &PostParams::default(), &created)
            .await
            .expect("mark failed");

        let hp = provisioner(&cluster, Duration::from_secs(10));
        let pv = hp
            .provision(&hostpath_request(None, Some("w1")))
            .await
            .expect("provision");
        assert!(on_node(&cluster, "w1", &host_path(&pv)).is_dir());
        assert_eq!(cluster.helper_pods().await, Vec::<String>::new());
        cluster.stop().await;
    })
    .await
}
