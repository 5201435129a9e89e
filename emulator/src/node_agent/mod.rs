//! The emulator's optional node agent: the only "kubelet" the tests have. It runs Stowage's hostPath
//! helper pods against a directory per node, `root/<node name>/`, and writes their status back
//! through the same write path as the API, so watchers see MODIFIED events.
//!
//! A helper pod has `spec.nodeName`, no phase or `Pending`, and `STOWAGE_ACTION` (`create` or
//! `delete`) in the env of its first container. `STOWAGE_VOLUME_DIR` (a path inside the container)
//! is resolved through the container's `volumeMounts` to a `hostPath` volume and then to
//! `root/<node>/<hostPath.path>/<rest>`; `..`, a path outside every mount, a mount that is not a
//! hostPath volume and symlinks on the node fail the pod with a message. `create` is
//! `mkdir -m $STOWAGE_VOLUME_MODE -p` (default 0777), `delete` is `rm -rf`. Pods whose Node object
//! does not exist stay Pending; a Node annotated [`NODE_AGENT_ANNOTATION`]`: paused` keeps its pods
//! Pending and `: fail` fails them with exit code 1. Other pods are never touched.
//!
//! The agent reacts to the state's change notifications (no polling) and runs pods one at a time in
//! the order their changes happened.

mod fs;
mod plan;
mod pod_status;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::resources::ResourceType;
use crate::state::{Filter, ListQuery, State, Stored, WriteOptions};

/// Node annotation that steers the agent: `paused` leaves the node's helper pods Pending, `fail`
/// fails them with exit code 1.
pub const NODE_AGENT_ANNOTATION: &str = "emulator.stowage.io/node-agent";

/// Settings of the node agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAgentConfig {
    /// Directory holding one directory per node, `root/<node name>/`, standing in for its filesystem.
    pub root: PathBuf,
}

impl NodeAgentConfig {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory standing in for `node`'s filesystem (it may not exist yet); None when the
    /// name cannot be a single directory name.
    pub fn node_root(&self, node: &str) -> Option<PathBuf> {
        plan::is_path_component(node).then(|| self.root.join(node))
    }
}

/// Starts the agent on `state`; it runs until the task is aborted.
pub(crate) fn spawn(state: Arc<State>, config: NodeAgentConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match Agent::new(state, config.root) {
            Some(agent) => agent.run().await,
            None => tracing::error!("node agent: pods or nodes are not served; agent not started"),
        }
    })
}

/// A pod's namespace and name.
type PodKey = (String, String);

struct Agent {
    state: Arc<State>,
    root: PathBuf,
    pods: Arc<ResourceType>,
    nodes: Arc<ResourceType>,
}

impl Agent {
    fn new(state: Arc<State>, root: PathBuf) -> Option<Self> {
        let pods = state.resolve("", "v1", "pods")?;
        let nodes = state.resolve("", "v1", "nodes")?;
        Some(Self {
            state,
            root,
            pods,
            nodes,
        })
    }

    async fn run(self) {
        // Subscribe before the first scan, so no change between the two goes unnoticed.
        let mut notify = self.state.subscribe();
        let (mut cursor, mut queue) = self.all_pods();
        loop {
            for (ns, name) in std::mem::take(&mut queue) {
                self.process(&ns, &name).await;
            }
            if notify.changed().await.is_err() {
                return;
            }
            (cursor, queue) = self.changed_since(cursor);
        }
    }

    fn everything(rt: &ResourceType) -> Filter {
        Filter {
            namespace: None,
            label: Default::default(),
            field: Default::default(),
            storage: rt.storage.clone(),
        }
    }

    /// Every pod bound to a node (a start, or a restart after the history was compacted), and the
    /// resourceVersion they were read at.
    fn all_pods(&self) -> (u64, Vec<PodKey>) {
        self.pods_where(|_| true)
    }

    fn pods_where(&self, on_node: impl Fn(&str) -> bool) -> (u64, Vec<PodKey>) {
        let filter = Self::everything(&self.pods);
        match self.state.list(&self.pods, &filter, &ListQuery::default()) {
            Ok(page) => {
                let keys = page
                    .items
                    .iter()
                    .filter(|p| str_at(&p.value, "/spec/nodeName").is_some_and(&on_node))
                    .filter_map(|p| key_of(&p.value))
                    .collect();
                (page.rv, keys)
            }
            Err(e) => {
                tracing::error!(error = %e.message, "node agent: cannot list pods");
                (self.state.current_rv(), Vec::new())
            }
        }
    }

    /// Pods to look at again after `cursor`, in the order of their changes: changed pods, and every
    /// pod on a changed node (a node that appears or is unpaused may let its pods start).
    fn changed_since(&self, cursor: u64) -> (u64, Vec<PodKey>) {
        let pod_filter = Self::everything(&self.pods);
        let node_filter = Self::everything(&self.nodes);
        let changes = self.state.read(|inner| {
            let pods = inner
                .changes_after(&self.pods.storage, cursor, &pod_filter)
                .ok()?;
            let nodes = inner
                .changes_after(&self.nodes.storage, cursor, &node_filter)
                .ok()?;
            Some((pods, nodes))
        });
        let Some(((pods, rv), (nodes, _))) = changes else {
            tracing::info!("node agent: change history compacted; rescanning every pod");
            return self.all_pods();
        };
        let mut events: Vec<(u64, Change)> = pods
            .iter()
            .filter_map(|(_, s)| key_of(&s.value).map(|k| (s.rv, Change::Pod(k))))
            .chain(nodes.iter().filter_map(|(_, s)| {
                let name = str_at(&s.value, "/metadata/name")?;
                Some((s.rv, Change::Node(name.to_string())))
            }))
            .collect();
        events.sort_by_key(|(rv, _)| *rv);
        let mut seen = HashSet::new();
        let mut queue = Vec::new();
        for (_, change) in events {
            let keys = match change {
                Change::Pod(key) => vec![key],
                Change::Node(node) => self.pods_where(|n| n == node).1,
            };
            queue.extend(keys.into_iter().filter(|k| seen.insert(k.clone())));
        }
        (rv, queue)
    }

    /// Runs one pod if it is a helper pod that may start, and records how it ended.
    async fn process(&self, ns: &str, name: &str) {
        let Ok(pod) = self.state.get(&self.pods, ns, name) else {
            return;
        };
        let node = str_at(&pod.value, "/spec/nodeName")
            .and_then(|n| self.state.get(&self.nodes, "", n).ok());
        let started = now();
        let result = match plan::decide(&pod.value, node.as_ref().map(|n| &n.value)) {
            plan::Verdict::Ignore | plan::Verdict::Wait => return,
            plan::Verdict::Fail(message) => Err(message),
            plan::Verdict::Run(job) => {
                let root = self.root.clone();
                tokio::task::spawn_blocking(move || fs::execute(&root, &job))
                    .await
                    .unwrap_or_else(|e| Err(format!("node agent task failed: {e}")))
            }
        };
        match &result {
            Ok(()) => tracing::info!(
                namespace = ns,
                pod = name,
                "node agent: helper pod succeeded"
            ),
            Err(message) => {
                tracing::info!(
                    namespace = ns,
                    pod = name,
                    message,
                    "node agent: helper pod failed"
                )
            }
        }
        self.write_status(&pod, &started, result);
    }

    /// Writes the finished status with the pod's resourceVersion as precondition: a pod changed in
    /// the meantime conflicts, and that newer change brings it back to `process`.
    fn write_status(&self, pod: &Stored, started: &str, result: Result<(), String>) {
        let Some((ns, name)) = key_of(&pod.value) else {
            return;
        };
        let mut body = pod.value.clone();
        body["status"] = pod_status::finished(&pod.value, started, &now(), result);
        let opts = WriteOptions {
            manager: "kubelet".into(),
            ..WriteOptions::system()
        };
        let written = self
            .state
            .write(|inner| inner.update(&self.pods, &ns, &name, body, Some("status"), &opts));
        match written {
            Ok(_) => {}
            Err(e) if e.code == 404 || e.code == 409 => {
                tracing::debug!(
                    namespace = ns,
                    pod = name,
                    "node agent: pod changed while running"
                )
            }
            Err(e) => {
                tracing::warn!(namespace = ns, pod = name, error = %e.message, "node agent: cannot write pod status")
            }
        }
    }
}

enum Change {
    Pod(PodKey),
    Node(String),
}

fn key_of(pod: &Value) -> Option<PodKey> {
    let ns = str_at(pod, "/metadata/namespace")?;
    let name = str_at(pod, "/metadata/name")?;
    Some((ns.to_string(), name.to_string()))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
