//! The emulator's node agent driven over HTTP by a real kube client: helper pods create and delete
//! exactly the right directory under the agent's root, escapes fail without touching anything, and
//! the node annotations `paused` / `fail`, missing nodes and ordinary pods behave as specified.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};
use stowage_emulator::{
    Emulator, EmulatorConfig, NODE_AGENT_ANNOTATION, NodeAgentConfig, RunningEmulator,
};

const NS: &str = "stowage";
/// The hostPath every helper pod below mounts, as part D writes it.
const BASE: &str = "/var/lib/stowage/volumes";

/// Every test body is bounded.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(30), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

struct Cluster {
    emu: RunningEmulator,
    root: tempfile::TempDir,
    pods: Api<Pod>,
    nodes: Api<Node>,
}

impl Cluster {
    async fn start() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        let emu = Emulator::start(EmulatorConfig {
            node_agent: Some(NodeAgentConfig::new(root.path())),
            ..Default::default()
        })
        .await
        .expect("emulator starts");
        let client = kube::Client::try_from(kube::Config::new(emu.url().parse().expect("url")))
            .expect("client");
        let ns: Namespace = from_json(json!({"metadata": {"name": NS}}));
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace");
        Self {
            emu,
            root,
            pods: Api::namespaced(client.clone(), NS),
            nodes: Api::all(client),
        }
    }

    async fn node(&self, name: &str, agent: Option<&str>) {
        let mut node = json!({"metadata": {"name": name}});
        if let Some(a) = agent {
            node["metadata"]["annotations"] = json!({ NODE_AGENT_ANNOTATION: a });
        }
        self.nodes
            .create(&PostParams::default(), &from_json(node))
            .await
            .expect("node created");
    }

    async fn create(&self, pod: Value) -> Pod {
        self.pods
            .create(&PostParams::default(), &from_json(pod))
            .await
            .expect("pod created")
    }

    /// Waits (reactively, through a watch) until the pod has finished.
    async fn finished(&self, name: &str) -> Pod {
        let done = |p: Option<&Pod>| matches!(phase(p), Some("Succeeded" | "Failed"));
        await_condition(self.pods.clone(), name, done)
            .await
            .expect("watch works")
            .expect("pod still exists")
    }

    async fn get(&self, name: &str) -> Pod {
        self.pods.get(name).await.expect("pod readable")
    }

    /// Runs a helper pod on `node` to completion: once it finished, the agent has looked at every
    /// pod created or changed before it (it works through changes in order).
    async fn barrier(&self, node: &str, name: &str) {
        self.create(helper(
            name,
            node,
            "create",
            &format!("/stowage-base/{name}"),
        ))
        .await;
        assert_eq!(phase(Some(&self.finished(name).await)), Some("Succeeded"));
    }

    /// `root/<node>/<BASE>` on the host.
    fn base(&self, node: &str) -> PathBuf {
        self.root
            .path()
            .join(node)
            .join(BASE.trim_start_matches('/'))
    }
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

/// A helper pod as the protocol in CONTRACT.md describes it.
fn helper(name: &str, node: &str, action: &str, dir: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/component": "volume-helper"}},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "helper",
                "image": "busybox:1.36",
                "command": ["/bin/sh", "-c"],
                "args": ["mkdir -m \"$STOWAGE_VOLUME_MODE\" -p \"$STOWAGE_VOLUME_DIR\""],
                "env": [
                    {"name": "STOWAGE_ACTION", "value": action},
                    {"name": "STOWAGE_VOLUME_DIR", "value": dir},
                    {"name": "STOWAGE_VOLUME_MODE", "value": "0777"}
                ],
                "volumeMounts": [{"name": "base", "mountPath": "/stowage-base"}]
            }],
            "volumes": [{"name": "base", "hostPath": {"path": BASE, "type": "DirectoryOrCreate"}}]
        }
    })
}

fn phase(pod: Option<&Pod>) -> Option<&str> {
    pod?.status.as_ref()?.phase.as_deref()
}

/// (exit code, reason, message) of the first container's terminated state.
fn terminated(pod: &Pod) -> (i32, String, String) {
    let t = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .expect("terminated state");
    (
        t.exit_code,
        t.reason.clone().unwrap_or_default(),
        t.message.clone().unwrap_or_default(),
    )
}

/// Every path below `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("readable dir") {
            let path = entry.expect("dir entry").path();
            let rel = path.strip_prefix(base).expect("below base");
            out.push(rel.display().to_string());
            if path.is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("exists")
        .permissions()
        .mode()
        & 0o7777
}

#[tokio::test]
async fn create_makes_exactly_the_named_directory_with_its_mode() {
    let c = Cluster::start().await;
    within("create helper pods", async {
        c.node("n1", None).await;
        assert_eq!(c.emu.node_root("n1"), Some(c.root.path().join("n1")));
        c.create(helper(
            "stowage-create-pv1",
            "n1",
            "create",
            "/stowage-base/ns-claim-pv1",
        ))
        .await;
        let pod = c.finished("stowage-create-pv1").await;
        assert_eq!(phase(Some(&pod)), Some("Succeeded"), "{:?}", pod.status);
        assert_eq!(
            tree(c.root.path()),
            [
                "n1",
                "n1/var",
                "n1/var/lib",
                "n1/var/lib/stowage",
                "n1/var/lib/stowage/volumes",
                "n1/var/lib/stowage/volumes/ns-claim-pv1"
            ]
        );
        // Exactly the requested mode, whatever the umask.
        assert_eq!(mode(&c.base("n1").join("ns-claim-pv1")), 0o777);

        let mut nested = helper(
            "stowage-create-pv2",
            "n1",
            "create",
            "/stowage-base/a/b/pv2",
        );
        nested["spec"]["containers"][0]["env"][2]["value"] = json!("0750");
        c.create(nested).await;
        let pod = c.finished("stowage-create-pv2").await;
        assert_eq!(phase(Some(&pod)), Some("Succeeded"));
        assert_eq!(mode(&c.base("n1").join("a/b/pv2")), 0o750);
        assert!(!c.root.path().join("n1/a").exists());
    })
    .await;
}

#[tokio::test]
async fn delete_removes_exactly_the_named_tree() {
    let c = Cluster::start().await;
    within("delete helper pods", async {
        c.node("n1", None).await;
        let base = c.base("n1");
        std::fs::create_dir_all(base.join("gone/data")).expect("setup");
        std::fs::write(base.join("gone/data/file"), b"x").expect("setup");
        std::fs::create_dir_all(base.join("kept")).expect("setup");
        c.create(helper(
            "stowage-delete-pv1",
            "n1",
            "delete",
            "/stowage-base/gone",
        ))
        .await;
        let pod = c.finished("stowage-delete-pv1").await;
        assert_eq!(phase(Some(&pod)), Some("Succeeded"), "{:?}", pod.status);
        assert_eq!(tree(&base), ["kept"]);

        // A directory that is already gone is fine: rm -rf.
        c.create(helper(
            "stowage-delete-pv2",
            "n1",
            "delete",
            "/stowage-base/never",
        ))
        .await;
        let pod = c.finished("stowage-delete-pv2").await;
        assert_eq!(phase(Some(&pod)), Some("Succeeded"));
        assert_eq!(tree(&base), ["kept"]);
    })
    .await;
}

#[tokio::test]
async fn status_is_written_as_a_kubelet_would_and_watchers_see_it() {
    let c = Cluster::start().await;
    within("status write", async {
        c.node("n1", None).await;
        let created = c
            .create(helper(
                "stowage-create-pv1",
                "n1",
                "create",
                "/stowage-base/pv1",
            ))
            .await;
        let created_rv = created.metadata.resource_version.clone().expect("rv");
        let params = WatchParams::default().fields("metadata.name=stowage-create-pv1");
        let mut events = c
            .pods
            .watch(&params, &created_rv)
            .await
            .expect("watch")
            .boxed();
        let pod = loop {
            match events
                .try_next()
                .await
                .expect("watch ok")
                .expect("watch open")
            {
                WatchEvent::Modified(p) if phase(Some(&p)).is_some_and(|ph| ph != "Pending") => {
                    break p;
                }
                WatchEvent::Modified(_) | WatchEvent::Bookmark(_) => {}
                other => panic!("unexpected event {other:?}"),
            }
        };
        let rv: u64 = pod
            .metadata
            .resource_version
            .as_deref()
            .expect("rv")
            .parse()
            .expect("int");
        assert!(rv > created_rv.parse::<u64>().expect("int"));
        let status = pod.status.as_ref().expect("status");
        assert_eq!(status.phase.as_deref(), Some("Succeeded"));
        assert!(status.start_time.is_some());
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .expect("Ready condition");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("PodCompleted"))
        );
        let container = &status
            .container_statuses
            .as_ref()
            .expect("container statuses")[0];
        assert_eq!(
            (container.name.as_str(), container.image.as_str()),
            ("helper", "busybox:1.36")
        );
        assert!(!container.ready);
        let t = container
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .expect("terminated");
        assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
        assert!(t.started_at.is_some() && t.finished_at.is_some());
        // The spec is untouched; the write went through the status subresource as the kubelet.
        assert_eq!(pod.spec, created.spec);
        let managers: Vec<_> = pod
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|m| Some((m.manager.clone()?, m.subresource.clone())))
            .collect();
        assert!(
            managers.contains(&("kubelet".into(), Some("status".into()))),
            "{managers:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn escape_attempts_fail_with_a_message_and_touch_nothing() {
    let c = Cluster::start().await;
    within("refused helper pods", async {
        c.node("n1", None).await;
        let mut not_host_path = helper("empty-dir", "n1", "create", "/stowage-base/x");
        not_host_path["spec"]["volumes"][0] = json!({"name": "base", "emptyDir": {}});
        let mut host_up = helper("host-up", "n1", "create", "/stowage-base/x");
        host_up["spec"]["volumes"][0]["hostPath"]["path"] = json!("/var/../..");
        let cases = [
            (
                helper("dot-dot", "n1", "create", "/stowage-base/../../etc"),
                "contains '..'",
            ),
            (
                helper("dot-dot-delete", "n1", "delete", "/stowage-base/a/../.."),
                "contains '..'",
            ),
            (not_host_path, "is not a hostPath volume"),
            (
                helper("no-mount", "n1", "create", "/etc/x"),
                "not below any volumeMount",
            ),
            (
                helper("name-prefix", "n1", "create", "/stowage-basement/x"),
                "not below any volumeMount",
            ),
            (host_up, "contains '..'"),
        ];
        for (pod, want) in cases {
            let name = pod["metadata"]["name"].as_str().expect("name").to_string();
            c.create(pod).await;
            let pod = c.finished(&name).await;
            assert_eq!(phase(Some(&pod)), Some("Failed"), "{name}");
            let (code, reason, message) = terminated(&pod);
            assert_eq!((code, reason.as_str()), (1, "Error"), "{name}");
            assert!(
                message.contains(want),
                "{name}: {message:?} should contain {want:?}"
            );
            let pod_message = pod.status.as_ref().and_then(|s| s.message.clone());
            assert_eq!(pod_message.as_deref(), Some(message.as_str()));
        }
        assert!(tree(c.root.path()).is_empty(), "{:?}", tree(c.root.path()));
    })
    .await;
}

#[tokio::test]
async fn a_paused_node_keeps_its_pods_pending_until_unpaused() {
    let c = Cluster::start().await;
    within("paused node", async {
        c.node("paused", Some("paused")).await;
        c.node("n1", None).await;
        let waiting = c
            .create(helper(
                "stowage-create-pv1",
                "paused",
                "create",
                "/stowage-base/pv1",
            ))
            .await;
        c.barrier("n1", "sentinel").await;
        let pod = c.get("stowage-create-pv1").await;
        assert_eq!(phase(Some(&pod)), Some("Pending"));
        assert_eq!(
            pod.metadata.resource_version,
            waiting.metadata.resource_version
        );
        assert!(!c.root.path().join("paused").exists());

        let unpause = json!({"metadata": {"annotations": { NODE_AGENT_ANNOTATION: null }}});
        c.nodes
            .patch("paused", &PatchParams::default(), &Patch::Merge(&unpause))
            .await
            .expect("node patched");
        let pod = c.finished("stowage-create-pv1").await;
        assert_eq!(phase(Some(&pod)), Some("Succeeded"));
        assert!(c.base("paused").join("pv1").is_dir());
    })
    .await;
}

#[tokio::test]
async fn a_failing_node_fails_its_pods_with_exit_code_1() {
    let c = Cluster::start().await;
    within("failing node", async {
        c.node("broken", Some("fail")).await;
        c.create(helper(
            "stowage-create-pv1",
            "broken",
            "create",
            "/stowage-base/pv1",
        ))
        .await;
        let pod = c.finished("stowage-create-pv1").await;
        assert_eq!(phase(Some(&pod)), Some("Failed"));
        let (code, reason, message) = terminated(&pod);
        assert_eq!((code, reason.as_str()), (1, "Error"));
        assert!(message.contains("fail"), "{message}");
        assert!(tree(c.root.path()).is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_pod_on_a_missing_node_stays_pending_until_the_node_appears() {
    let c = Cluster::start().await;
    within("missing node", async {
        c.node("n1", None).await;
        let waiting = c
            .create(helper(
                "stowage-delete-pv1",
                "ghost",
                "delete",
                "/stowage-base/pv1",
            ))
            .await;
        c.barrier("n1", "sentinel").await;
        let pod = c.get("stowage-delete-pv1").await;
        assert_eq!(phase(Some(&pod)), Some("Pending"));
        assert_eq!(
            pod.metadata.resource_version,
            waiting.metadata.resource_version
        );
        assert!(!c.root.path().join("ghost").exists());

        c.node("ghost", None).await;
        let pod = c.finished("stowage-delete-pv1").await;
        assert_eq!(phase(Some(&pod)), Some("Succeeded"));
    })
    .await;
}

#[tokio::test]
async fn pods_that_are_not_helper_pods_are_untouched() {
    let c = Cluster::start().await;
    within("ordinary pods", async {
        c.node("n1", None).await;
        let mut ordinary = helper("ordinary", "n1", "create", "/stowage-base/x");
        ordinary["spec"]["containers"][0]["env"] = json!([{"name": "OTHER", "value": "create"}]);
        let mut unscheduled = helper("unscheduled", "n1", "create", "/stowage-base/y");
        unscheduled["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("nodeName");
        let mut second = helper("second-container", "n1", "create", "/stowage-base/z");
        let first = json!({"name": "main", "image": "busybox:1.36"});
        let helper_container = second["spec"]["containers"][0].take();
        second["spec"]["containers"] = json!([first, helper_container]);
        let before: Vec<Pod> =
            futures::future::join_all([ordinary, unscheduled, second].map(|p| c.create(p))).await;
        c.barrier("n1", "sentinel").await;
        for pod in before {
            let name = pod.metadata.name.clone().expect("name");
            let now = c.get(&name).await;
            assert_eq!(phase(Some(&now)), Some("Pending"), "{name}");
            assert_eq!(
                now.metadata.resource_version, pod.metadata.resource_version,
                "{name}"
            );
        }
        assert_eq!(tree(&c.base("n1")), ["sentinel"]);
    })
    .await;
}

#[tokio::test]
async fn without_a_node_agent_there_are_no_node_roots() {
    let emu = within("start", Emulator::start(EmulatorConfig::default()))
        .await
        .expect("emulator starts");
    assert_eq!(emu.node_root("n1"), None);
    within("shutdown", emu.shutdown()).await;
    let c = Cluster::start().await;
    assert_eq!(c.emu.node_root(".."), None);
    assert_eq!(c.emu.node_root("a/b"), None);
    within("shutdown", c.emu.shutdown()).await;
}
