//! The REST API served in-process over a `MemoryStore` filled with a small cluster: lists and
//! their parameters, single objects, stats, status, the OpenAPI document, the change feed (NDJSON
//! and SSE) and every bad-input answer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use stowage::api::{ApiState, router};
use stowage::metrics::Metrics;
use stowage::mirror::health::{KindHealth, MirrorHealth, SyncState};
use stowage::mirror::kind::{ColumnSpec, ColumnType, KindSpec};
use stowage::mirror::registry::Kinds;
use stowage::server::{self, Health, ServerBuilder};
use stowage::shutdown::Shutdown;
use stowage::store::memory::MemoryStore;
use stowage::store::{
    Change, GroupBy, ListPage, ListQuery, MirrorObject, Revision, Store, StoreError, WriteBatch,
    WriteOp, WriteOutcome,
};
use tokio::sync::watch;
use tokio::time::timeout;

const TIMEOUT: Duration = Duration::from_secs(10);
const BOOKMARK_INTERVAL: Duration = Duration::from_millis(200);
const PODS: usize = 20;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn column(name: &str, path: &str, column_type: ColumnType) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        path: path.into(),
        column_type,
        index: true,
    }
}

fn kind(
    group: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    columns: Vec<ColumnSpec>,
) -> KindSpec {
    KindSpec {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
        prune: vec![],
        keep_secret_data: false,
        columns,
    }
}

fn pods() -> KindSpec {
    kind(
        "",
        "Pod",
        "pods",
        true,
        vec![
            column("phase", ".status.phase", ColumnType::String),
            column("node_name", ".spec.nodeName", ColumnType::String),
        ],
    )
}

fn deployments() -> KindSpec {
    kind(
        "apps",
        "Deployment",
        "deployments",
        true,
        vec![
            column("replicas", ".spec.replicas", ColumnType::Integer),
            column(
                "replicas_ready",
                ".status.readyReplicas",
                ColumnType::Integer,
            ),
        ],
    )
}

fn configmaps() -> KindSpec {
    kind("", "ConfigMap", "configmaps", true, vec![])
}

fn nodes() -> KindSpec {
    kind("", "Node", "nodes", false, vec![])
}

/// One seeded pod, described by its index.
#[derive(Debug, Clone)]
struct PodFixture {
    namespace: &'static str,
    name: String,
    phase: Option<&'static str>,
    node: String,
    app: &'static str,
    tier: &'static str,
    created_at: String,
}

/// 12 pods `web-00..web-11` in `shop`, 8 pods `db-12..db-19` in `data`; phases cycle
/// Running, Running, Pending, Failed except pod 7 has none; creation times are a permutation.
fn pod_fixtures() -> Vec<PodFixture> {
    (0..PODS)
        .map(|i| {
            let shop = i < 12;
            PodFixture {
                namespace: if shop { "shop" } else { "data" },
                name: if shop {
                    format!("web-{i:02}")
                } else {
                    format!("db-{i:02}")
                },
                phase: if i == 7 {
                    None
                } else {
                    Some(["Running", "Running", "Pending", "Failed"][i % 4])
                },
                node: format!("node-{}", i % 3),
                app: if shop { "web" } else { "db" },
                tier: if i % 2 == 0 { "front" } else { "back" },
                created_at: format!("2025-01-01T00:{:02}:00Z", (i * 7) % PODS),
            }
        })
        .collect()
}

fn uid(namespace: &str, name: &str) -> String {
    format!("uid-{namespace}-{name}")
}

fn pod_object(pod: &PodFixture, resource_version: &str) -> MirrorObject {
    let labels = BTreeMap::from([
        ("app".to_string(), pod.app.to_string()),
        ("tier".to_string(), pod.tier.to_string()),
    ]);
    MirrorObject {
        namespace: pod.namespace.into(),
        name: pod.name.clone(),
        uid: uid(pod.namespace, &pod.name),
        resource_version: resource_version.into(),
        labels: labels.clone(),
        annotations: BTreeMap::new(),
        created_at: Some(pod.created_at.clone()),
        columns: BTreeMap::from([
            (
                "phase".to_string(),
                pod.phase.map_or(Value::Null, |p| json!(p)),
            ),
            ("node_name".to_string(), json!(pod.node)),
        ]),
        object: json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod.name, "namespace": pod.namespace, "uid": uid(pod.namespace, &pod.name),
                "resourceVersion": resource_version, "labels": labels, "creationTimestamp": pod.created_at
            },
            "spec": {"nodeName": pod.node},
            "status": {"phase": pod.phase}
        }).into(),
    }
}

fn plain_object(
    kind: &str,
    namespace: &str,
    name: &str,
    columns: BTreeMap<String, Value>,
) -> MirrorObject {
    MirrorObject {
        namespace: namespace.into(),
        name: name.into(),
        uid: uid(namespace, name),
        resource_version: "1".into(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        created_at: None,
        columns,
        object: json!({"kind": kind, "metadata": {"name": name, "namespace": namespace}}).into(),
    }
}

fn deployment(namespace: &str, name: &str, replicas: i64, ready: i64) -> MirrorObject {
    let columns = BTreeMap::from([
        ("replicas".to_string(), json!(replicas)),
        ("replicas_ready".to_string(), json!(ready)),
    ]);
    plain_object("Deployment", namespace, name, columns)
}

async fn write(store: &dyn Store, kind: &KindSpec, ops: Vec<WriteOp>) -> WriteOutcome {
    store
        .write(kind, WriteBatch { ops, epoch: 1 })
        .await
        .expect("write")
}

/// Registers every kind and writes pods (revisions 1..=20), deployments (21..=23), config maps
/// (24..=25) and nodes (26..=28).
async fn seed(store: &dyn Store) {
    for spec in [pods(), deployments(), configmaps(), nodes()] {
        store.register(&spec).await.expect("register");
    }
    let pod_ops = pod_fixtures()
        .iter()
        .map(|p| WriteOp::Upsert(pod_object(p, "1")))
        .collect();
    write(store, &pods(), pod_ops).await;
    let deployment_ops = vec![
        WriteOp::Upsert(deployment("shop", "frontend", 3, 2)),
        WriteOp::Upsert(deployment("shop", "api", 2, 2)),
        WriteOp::Upsert(deployment("data", "cache", 1, 0)),
    ];
    write(store, &deployments(), deployment_ops).await;
    let configmap_ops = ["shop", "data"]
        .into_iter()
        .map(|ns| WriteOp::Upsert(plain_object("ConfigMap", ns, "settings", BTreeMap::new())))
        .collect();
    write(store, &configmaps(), configmap_ops).await;
    let node_ops = (0..3)
        .map(|i| {
            WriteOp::Upsert(plain_object(
                "Node",
                "",
                &format!("node-{i}"),
                BTreeMap::new(),
            ))
        })
        .collect();
    write(store, &nodes(), node_ops).await;
}

/// A served API and the handles tests poke at.
struct Api {
    base: String,
    client: reqwest::Client,
    store: Arc<MemoryStore>,
    state: ApiState,
    shutdown: Shutdown,
    _kinds: watch::Sender<Arc<Kinds>>,
}

impl Api {
    /// Seeded store retaining `history` changes, served through [`ServerBuilder`].
    async fn start(history: usize) -> Self {
        let store = Arc::new(MemoryStore::new(history));
        seed(store.as_ref()).await;
        let (kinds, receiver) = watch::channel(Arc::new(Kinds::new([
            pods(),
            deployments(),
            configmaps(),
            nodes(),
        ])));
        let shutdown = Shutdown::new();
        let state = ApiState::new(store.clone(), receiver, MirrorHealth::new("memory"))
            .with_bookmark_interval(BOOKMARK_INTERVAL)
            .with_shutdown(shutdown.clone());
        let base = serve(state.clone(), &shutdown).await;
        Self {
            base,
            client: reqwest::Client::new(),
            store,
            state,
            shutdown,
            _kinds: kinds,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("{path}: not JSON ({err}): {text}"));
        (status, body)
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// Opens a change feed and checks its status and content type.
    async fn feed(&self, path: &str, headers: &[(&str, &str)]) -> Feed {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Feed {
            content_type: content_type.to_string(),
            stream: Box::pin(response.bytes_stream()),
            buffer: Vec::new(),
        }
    }
}

async fn serve(state: ApiState, shutdown: &Shutdown) -> String {
    let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let app = ServerBuilder::new(Metrics::new().expect("metrics"), Health::new())
        .merge(router(state))
        .build();
    let stop = shutdown.wait_owned();
    tokio::spawn(async move { server::serve(listener, app, stop).await.expect("serve") });
    format!("http://{addr}")
}

/// A streaming response read frame by frame.
struct Feed {
    content_type: String,
    stream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: Vec<u8>,
}

impl Feed {
    /// The next frame up to `separator`, or `None` when the stream ended.
    async fn frame(&mut self, separator: &[u8]) -> Option<String> {
        loop {
            if let Some(at) = self
                .buffer
                .windows(separator.len())
                .position(|w| w == separator)
            {
                let frame: Vec<u8> = self.buffer.drain(..at + separator.len()).collect();
                return Some(String::from_utf8(frame[..at].to_vec()).expect("utf8"));
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next NDJSON event.
    async fn event(&mut self) -> Value {
        let line = self.frame(b"\n").await.expect("feed ended early");
        serde_json::from_str(&line).unwrap_or_else(|err| panic!("bad line ({err}): {line}"))
    }

    /// The next `n` NDJSON events that are not bookmarks.
    async fn changes(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let event = self.event().await;
            if event["type"] != "BOOKMARK" {
                out.push(event);
            }
        }
        out
    }

    /// The next SSE block as its fields.
    async fn sse(&mut self) -> BTreeMap<String, String> {
        let block = self.frame(b"\n\n").await.expect("feed ended early");
        block
            .lines()
            .map(|line| {
                let (field, value) = line.split_once(": ").unwrap_or((line, ""));
                (field.to_string(), value.to_string())
            })
            .collect()
    }
}

/// The string at `pointer` in every item of a list.
fn values(list: &Value, pointer: &str) -> Vec<String> {
    let items = list["items"].as_array().expect("items");
    items
        .iter()
        .map(|item| {
            item.pointer(pointer)
                .and_then(Value::as_str)
                .expect(pointer)
                .to_string()
        })
        .collect()
}

fn names(list: &Value) -> Vec<String> {
    values(list, "/metadata/name")
}

fn sorted_pod_names(filter: impl Fn(&PodFixture) -> bool) -> Vec<String> {
    let mut names: Vec<(String, String)> = pod_fixtures()
        .into_iter()
        .filter(|p| filter(p))
        .map(|p| (p.namespace.to_string(), p.name))
        .collect();
    names.sort();
    names.into_iter().map(|(_, name)| name).collect()
}

/// Follows `continue` from `first_path` to the end; returns every page's names in order.
async fn follow_continue(api: &Api, first_path: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut body = api.ok(first_path).await;
    loop {
        pages.push(names(&body));
        assert_eq!(body["page"], pages.len(), "{body}");
        let Some(token) = body["continue"].as_str() else {
            break;
        };
        let separator = if first_path.contains('?') { '&' } else { '?' };
        body = api
            .ok(&format!("{first_path}{separator}continue={token}"))
            .await;
    }
    pages
}

// ---------------------------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn page_paging_visits_every_object_once_and_reports_totals() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        let first = api.ok("/api/v1/pods").await;
        assert_eq!(first["kind"], "PodList");
        assert_eq!(
            (
                first["total"].as_u64(),
                first["page"].as_u64(),
                first["limit"].as_u64()
            ),
            (Some(20), Some(1), Some(10))
        );
        assert_eq!(first["revision"], 28);
        assert_eq!(
            first["items"][0]["kind"], "Pod",
            "items are the stored objects"
        );

        let mut seen = Vec::new();
        for page in 1..=3 {
            let body = api.ok(&format!("/api/v1/pods?limit=8&page={page}")).await;
            assert_eq!(body["total"], 20);
            assert_eq!(body["page"], page);
            assert_eq!(body["limit"], 8);
            seen.extend(names(&body));
        }
        assert_eq!(
            seen,
            sorted_pod_names(|_| true),
            "default order is namespace, then name"
        );
        assert_eq!(
            names(&api.ok("/api/v1/pods?limit=8&page=4").await),
            Vec::<String>::new()
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn continue_paging_visits_every_object_once() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        let pages = follow_continue(&api, "/api/v1/pods?limit=7").await;
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![7, 7, 6]
        );
        assert_eq!(pages.concat(), sorted_pod_names(|_| true));

        // Filtered and sorted by a column, descending: still every match exactly once.
        let pages = follow_continue(
            &api,
            "/api/v1/pods?limit=3&namespace=shop&sort=-createdAt&labelSelector=tier%3Dfront",
        )
        .await;
        let mut expected: Vec<PodFixture> = pod_fixtures()
            .into_iter()
            .filter(|p| p.namespace == "shop" && p.tier == "front")
            .collect();
        expected.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        let expected: Vec<String> = expected.into_iter().map(|p| p.name).collect();
        assert_eq!(pages.concat(), expected);

        // Page numbers and continue tokens mix: page 2 by number continues to page 3.
        let second = api.ok("/api/v1/pods?limit=7&page=2").await;
        let token = second["continue"].as_str().expect("continue");
        let third = api
            .ok(&format!("/api/v1/pods?limit=7&continue={token}"))
            .await;
        assert_eq!(third["page"], 3);
        assert_eq!(names(&third), pages_of(&api, 7, 3).await);
        assert!(
            third.get("continue").is_none(),
            "last page has no token: {third}"
        );
    })
    .await
    .expect("timed out");
}

async fn pages_of(api: &Api, limit: usize, page: usize) -> Vec<String> {
    names(
        &api.ok(&format!("/api/v1/pods?limit={limit}&page={page}"))
            .await,
    )
}

#[tokio::test]
async fn filters_narrow_lists_and_totals() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        let check = |path: &'static str, expected: Vec<String>| {
            let api = &api;
            async move {
                let body = api.ok(path).await;
                assert_eq!(body["total"], expected.len(), "{path}: {body}");
                assert_eq!(names(&body), expected, "{path}");
            }
        };
        check(
            "/api/v1/pods?namespace=data&limit=50",
            sorted_pod_names(|p| p.namespace == "data"),
        )
        .await;
        check(
            "/api/v1/namespace/data/pods?limit=50",
            sorted_pod_names(|p| p.namespace == "data"),
        )
        .await;
        check(
            "/api/v1/pods?search=WEB-0&limit=50",
            sorted_pod_names(|p| p.name.starts_with("web-0")),
        )
        .await;
        check(
            "/api/v1/pods?labelSelector=app%3Ddb,tier%20in%20(front)&limit=50",
            sorted_pod_names(|p| p.app == "db" && p.tier == "front"),
        )
        .await;
        check(
            "/api/v1/pods?labelSelector=tier!%3Dfront&limit=50",
            sorted_pod_names(|p| p.tier != "front"),
        )
        .await;
        check(
            "/api/v1/pods?phase=Running&limit=50",
            sorted_pod_names(|p| p.phase == Some("Running")),
        )
        .await;
        check(
            "/api/v1/namespace/shop/pods?phase=Running&node_name=node-1&limit=50",
            sorted_pod_names(|p| {
                p.namespace == "shop" && p.phase == Some("Running") && p.node == "node-1"
            }),
        )
        .await;
        check("/api/v1/pods?search=nothing-like-this", vec![]).await;
        check(
            "/api/v1/nodes",
            vec!["node-0".into(), "node-1".into(), "node-2".into()],
        )
        .await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn sorts_by_name_creation_time_and_column() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        let by_name = names(
            &api.ok("/api/v1/namespace/shop/pods?sort=name&limit=50")
                .await,
        );
        let mut expected = sorted_pod_names(|p| p.namespace == "shop");
        assert_eq!(by_name, expected);
        expected.reverse();
        assert_eq!(
            names(
                &api.ok("/api/v1/namespace/shop/pods?sort=-name&limit=50")
                    .await
            ),
            expected
        );

        let mut by_created = pod_fixtures();
        by_created.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        let ascending: Vec<String> = by_created.iter().map(|p| p.name.clone()).collect();
        assert_eq!(
            names(&api.ok("/api/v1/pods?sort=createdAt&limit=50").await),
            ascending
        );
        let descending: Vec<String> = ascending.iter().rev().cloned().collect();
        assert_eq!(
            names(&api.ok("/api/v1/pods?sort=-createdAt&limit=50").await),
            descending
        );

        let nodes = values(
            &api.ok("/api/v1/pods?sort=node_name&limit=50").await,
            "/spec/nodeName",
        );
        let mut sorted = nodes.clone();
        sorted.sort();
        assert_eq!(nodes, sorted);
        let nodes = values(
            &api.ok("/api/v1/pods?sort=-node_name&limit=50").await,
            "/spec/nodeName",
        );
        sorted.reverse();
        assert_eq!(nodes, sorted);
    })
    .await
    .expect("timed out");
}

// ---------------------------------------------------------------------------------------------
// Single objects, resources, stats, status, OpenAPI
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn single_objects_by_uid_and_by_namespace_and_name() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        let pod = api
            .ok(&format!("/api/v1/pods/{}", uid("shop", "web-03")))
            .await;
        assert_eq!(pod["metadata"]["name"], "web-03");
        let pod = api.ok("/api/v1/namespaces/data/pods/db-12").await;
        assert_eq!(pod["metadata"]["uid"], uid("data", "db-12"));
        let deployment = api.ok("/api/v1/namespaces/shop/deployments/frontend").await;
        assert_eq!(deployment["kind"], "Deployment");

        let (status, body) = api.get("/api/v1/pods/no-such-uid").await;
        assert_eq!(status, 404, "{body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("no-such-uid")),
            "{body}"
        );
        let (status, _) = api.get("/api/v1/namespaces/shop/pods/db-12").await;
        assert_eq!(status, 404);
        let (status, body) = api.get("/api/v1/foos/abc").await;
        assert_eq!(
            (status, body),
            (
                404,
                json!({"error": "unknown resource type \"foos\"", "parameter": "plural"})
            )
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn resources_list_every_kind_with_counts_and_state() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        api.state
            .health
            .update("core/v1/Pod", "pods", |h| h.state = SyncState::Synced);
        let body = api.ok("/api/v1/resources").await;
        let items = body["items"].as_array().expect("items");
        assert_eq!(items.len(), 4);
        let pod = items.iter().find(|i| i["plural"] == "pods").expect("pods");
        assert_eq!(pod["id"], "core/v1/Pod");
        assert_eq!(
            (
                pod["group"].as_str(),
                pod["version"].as_str(),
                pod["kind"].as_str()
            ),
            (Some(""), Some("v1"), Some("Pod"))
        );
        assert_eq!(pod["namespaced"], true);
        assert_eq!(pod["objects"], 20);
        assert_eq!(pod["state"], "synced");
        assert_eq!(
            pod["columns"][0],
            json!({"name": "phase", "path": ".status.phase", "type": "string", "index": true})
        );
        let node = items
            .iter()
            .find(|i| i["plural"] == "nodes")
            .expect("nodes");
        assert_eq!(
            (
                node["namespaced"].as_bool(),
                node["objects"].as_u64(),
                node["state"].as_str()
            ),
            (Some(false), Some(3), Some("pending"))
        );
        let configmap = items
            .iter()
            .find(|i| i["plural"] == "configmaps")
            .expect("configmaps");
        assert_eq!(configmap["columns"], json!([]));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn stats_overview_counts_everything() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        let stats = api.ok("/api/v1/stats/overview").await;
        assert_eq!(stats["revision"], 28);
        assert_eq!(stats["objects"], 28);
        assert_eq!(stats["byKind"]["core/v1/Pod"]["objects"], 20);
        assert_eq!(stats["byKind"]["apps/v1/Deployment"]["objects"], 3);
        assert_eq!(stats["byKind"]["core/v1/Node"]["objects"], 3);
        assert_eq!(stats["byNamespace"], json!({"data": 10, "shop": 15}));
        assert_eq!(
            stats["podsByPhase"],
            json!({"Failed": 4, "Pending": 5, "Running": 10, "Unknown": 1})
        );
        assert_eq!(
            stats["workloads"],
            json!({"Deployment": {"desired": 6, "ready": 4}})
        );
        assert_eq!(stats["workloadsTotal"], json!({"desired": 6, "ready": 4}));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn health_and_status() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        assert_eq!(api.ok("/api/v1/health").await, json!({"status": "ok"}));

        api.state
            .health
            .update("core/v1/Pod", "pods", |h: &mut KindHealth| {
                h.state = SyncState::Synced;
                h.objects = 20;
                h.last_event_time = Some("2020-01-01T00:00:00Z".into());
                h.resource_version = Some("4711".into());
                h.reconnects = 2;
                h.relists = 1;
                h.malformed = 3;
                h.last_error = Some("watch stream ended".into());
                h.initial_sync_done = true;
            });
        let status = api.ok("/api/v1/status").await;
        assert_eq!(status["store"]["backend"], "memory");
        assert_eq!(status["store"]["revision"], 28);
        assert_eq!(status["store"]["breaker"]["state"], "closed");
        let kinds = status["kinds"].as_array().expect("kinds");
        assert_eq!(kinds.len(), 4);
        let pod = kinds.iter().find(|k| k["plural"] == "pods").expect("pods");
        assert_eq!(pod["state"], "synced");
        assert_eq!(
            (
                pod["objects"].as_u64(),
                pod["reconnects"].as_u64(),
                pod["relists"].as_u64(),
                pod["malformed"].as_u64()
            ),
            (Some(20), Some(2), Some(1), Some(3))
        );
        assert_eq!(pod["resourceVersion"], "4711");
        assert_eq!(pod["lastError"], "watch stream ended");
        assert!(
            pod["lastEventAgeSeconds"]
                .as_i64()
                .is_some_and(|age| age > 86_400 * 365),
            "{pod}"
        );
        let node = kinds
            .iter()
            .find(|k| k["plural"] == "nodes")
            .expect("nodes");
        assert_eq!(
            (
                node["state"].as_str(),
                node["lastEventAgeSeconds"].is_null()
            ),
            (Some("pending"), true)
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        let doc = api.ok("/api/v1/openapi.json").await;
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.0"))
        );
        let paths: BTreeSet<&str> = doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .map(String::as_str)
            .collect();
        let expected = BTreeSet::from([
            "/api/v1/resources",
            "/api/v1/health",
            "/api/v1/status",
            "/api/v1/openapi.json",
            "/api/v1/stats/overview",
            "/api/v1/{plural}",
            "/api/v1/{plural}/{uid}",
            "/api/v1/namespace/{namespace}/{plural}",
            "/api/v1/namespaces/{namespace}/{plural}/{name}",
        ]);
        assert_eq!(paths, expected);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn static_segments_win_over_plural() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        assert_eq!(api.ok("/api/v1/health").await["status"], "ok");
        assert!(api.ok("/api/v1/resources").await["items"].is_array());
        assert!(api.ok("/api/v1/status").await["kinds"].is_array());
        assert!(api.ok("/api/v1/openapi.json").await["paths"].is_object());
        assert!(api.ok("/api/v1/stats/overview").await["byKind"].is_object());
        // `/stats/{x}` other than overview falls to `{plural}/{uid}`: an unknown resource type.
        assert_eq!(
            api.get("/api/v1/stats/other").await.1["parameter"],
            "plural"
        );
        // The namespace routes are not taken for `{plural}/{uid}`.
        assert_eq!(
            api.ok("/api/v1/namespace/shop/pods").await["kind"],
            "PodList"
        );
        assert_eq!(
            api.ok("/api/v1/namespaces/shop/pods/web-00").await["metadata"]["name"],
            "web-00"
        );
    })
    .await
    .expect("timed out");
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_input_is_a_400_naming_the_parameter() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        let token = api.ok("/api/v1/pods?limit=5&phase=Running").await["continue"]
            .as_str()
            .expect("token")
            .to_string();
        let cases: Vec<(String, &str)> = vec![
            ("/api/v1/pods?limit=0".into(), "limit"),
            ("/api/v1/pods?limit=501".into(), "limit"),
            ("/api/v1/pods?limit=ten".into(), "limit"),
            ("/api/v1/pods?page=0".into(), "page"),
            ("/api/v1/pods?page=first".into(), "page"),
            (
                "/api/v1/pods?labelSelector=app%20in%20(".into(),
                "labelSelector",
            ),
            ("/api/v1/pods?labelSelector=%3Dweb".into(), "labelSelector"),
            ("/api/v1/pods?colour=red".into(), "colour"),
            ("/api/v1/configmaps?phase=Running".into(), "phase"),
            ("/api/v1/pods?sort=colour".into(), "sort"),
            ("/api/v1/pods?sort=-uid".into(), "sort"),
            ("/api/v1/pods?continue=not-a-token".into(), "continue"),
            ("/api/v1/pods?continue=eyJ4IjoxfQ".into(), "continue"),
            (
                format!("/api/v1/pods?limit=5&phase=Pending&continue={token}"),
                "continue",
            ),
            (
                format!("/api/v1/pods?limit=5&phase=Running&sort=name&page=2&continue={token}"),
                "continue",
            ),
            (
                format!("/api/v1/namespace/shop/pods?limit=5&phase=Running&continue={token}"),
                "continue",
            ),
            ("/api/v1/pods?watch=true&since=yesterday".into(), "since"),
            ("/api/v1/pods?watch=true&since=-1".into(), "since"),
            ("/api/v1/pods?since=3".into(), "since"),
            ("/api/v1/pods?watch=maybe".into(), "watch"),
            ("/api/v1/pods?watch=true&limit=5".into(), "limit"),
            ("/api/v1/nodes?namespace=shop".into(), "namespace"),
            ("/api/v1/namespace/shop/nodes".into(), "namespace"),
            ("/api/v1/namespaces/shop/nodes/node-0".into(), "namespace"),
            (
                "/api/v1/namespace/shop/pods?namespace=data".into(),
                "namespace",
            ),
            ("/api/v1/pods?limit=5&limit=6".into(), "limit"),
        ];
        for (path, parameter) in cases {
            let (status, body) = api.get(&path).await;
            assert_eq!(status, 400, "{path}: {body}");
            assert_eq!(body["parameter"], parameter, "{path}: {body}");
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{path}: {body}"
            );
        }

        let response = api
            .client
            .get(api.url("/api/v1/pods?watch=true"))
            .header("Last-Event-ID", "latest")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 400);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["parameter"], "Last-Event-ID");

        for path in [
            "/api/v1/foos",
            "/api/v1/namespace/shop/foos",
            "/api/v1/namespaces/shop/foos/x",
            "/api/v1/foos?watch=true",
        ] {
            let (status, body) = api.get(path).await;
            assert_eq!(status, 404, "{path}");
            assert_eq!(body["parameter"], "plural", "{path}");
        }
    })
    .await
    .expect("timed out");
}

/// A store that is always down.
struct DownStore(watch::Sender<Revision>);

fn down() -> StoreError {
    StoreError::Unavailable {
        message: "connection refused".into(),
        source: None,
    }
}

#[async_trait::async_trait]
impl Store for DownStore {
    fn backend(&self) -> &'static str {
        "mysql"
    }
    async fn register(&self, _: &KindSpec) -> Result<(), StoreError> {
        Err(down())
    }
    async fn unregister(&self, _: &KindSpec) -> Result<(), StoreError> {
        Err(down())
    }
    async fn write(&self, _: &KindSpec, _: WriteBatch) -> Result<WriteOutcome, StoreError> {
        Err(down())
    }
    async fn sweep(&self, _: &KindSpec, _: u64) -> Result<usize, StoreError> {
        Err(down())
    }
    async fn get(
        &self,
        _: &KindSpec,
        _: &str,
        _: &str,
    ) -> Result<Option<MirrorObject>, StoreError> {
        Err(down())
    }
    async fn get_by_uid(&self, _: &KindSpec, _: &str) -> Result<Option<MirrorObject>, StoreError> {
        Err(down())
    }
    async fn list(&self, _: &KindSpec, _: &ListQuery) -> Result<ListPage, StoreError> {
        Err(down())
    }
    async fn count(&self, _: &KindSpec) -> Result<usize, StoreError> {
        Err(down())
    }
    async fn group_count(
        &self,
        _: &KindSpec,
        _: &GroupBy,
    ) -> Result<BTreeMap<String, usize>, StoreError> {
        Err(down())
    }
    async fn column_sums(
        &self,
        _: &KindSpec,
        _: &[String],
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        Err(down())
    }
    async fn changes(
        &self,
        _: Option<&KindSpec>,
        _: Revision,
        _: usize,
    ) -> Result<Vec<Change>, StoreError> {
        Err(down())
    }
    async fn revision(&self) -> Result<Revision, StoreError> {
        Err(down())
    }
    fn subscribe(&self) -> watch::Receiver<Revision> {
        self.0.subscribe()
    }
}

#[tokio::test]
async fn an_unavailable_store_is_a_503_with_the_reason() {
    timeout(TIMEOUT, async {
        let (_kinds, receiver) = watch::channel(Arc::new(Kinds::new([pods()])));
        let shutdown = Shutdown::new();
        let state = ApiState::new(
            Arc::new(DownStore(watch::Sender::new(0))),
            receiver,
            MirrorHealth::new("mysql"),
        );
        let base = serve(state, &shutdown).await;
        let client = reqwest::Client::new();
        for path in [
            "/api/v1/pods",
            "/api/v1/pods/u1",
            "/api/v1/namespaces/shop/pods/web",
            "/api/v1/resources",
            "/api/v1/stats/overview",
            "/api/v1/pods?watch=true",
        ] {
            let response = client
                .get(format!("{base}{path}"))
                .send()
                .await
                .expect("request");
            assert_eq!(response.status().as_u16(), 503, "{path}");
            let body: Value = response.json().await.expect("json");
            assert!(
                body["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("connection refused")),
                "{path}: {body}"
            );
        }
        let status: Value = client
            .get(format!("{base}/api/v1/status"))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        assert_eq!(status["store"]["backend"], "mysql");
        assert!(status["store"]["revision"].is_null());
        assert!(
            status["store"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("connection refused"))
        );
        shutdown.trigger();
    })
    .await
    .expect("timed out");
}

// ---------------------------------------------------------------------------------------------
// Change feed
// ---------------------------------------------------------------------------------------------

fn revisions(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["revision"].as_u64().expect("revision"))
        .collect()
}

#[tokio::test]
async fn feed_replays_from_zero_in_order_then_bookmarks() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        let mut feed = api.feed("/api/v1/pods?watch=true&since=0", &[]).await;
        assert_eq!(feed.content_type, "application/x-ndjson");
        let events = feed.changes(PODS).await;
        assert_eq!(revisions(&events), (1..=20).collect::<Vec<u64>>());
        assert!(events.iter().all(|e| e["type"] == "ADDED"));
        let names: Vec<&str> = events
            .iter()
            .map(|e| e["object"]["metadata"]["name"].as_str().expect("name"))
            .collect();
        let fixtures = pod_fixtures();
        assert_eq!(
            names,
            fixtures.iter().map(|p| p.name.as_str()).collect::<Vec<_>>()
        );
        // Quiet now: a bookmark at the store's revision (other kinds' changes included).
        assert_eq!(
            feed.event().await,
            json!({"type": "BOOKMARK", "revision": 28})
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn feed_resumes_mid_history_and_follows_live_changes() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        let mut feed = api.feed("/api/v1/pods?watch=true&since=12", &[]).await;
        assert_eq!(
            revisions(&feed.changes(8).await),
            (13..=20).collect::<Vec<u64>>()
        );

        let fixtures = pod_fixtures();
        write(
            api.store.as_ref(),
            &pods(),
            vec![WriteOp::Upsert(pod_object(&fixtures[0], "2"))],
        )
        .await;
        write(
            api.store.as_ref(),
            &configmaps(),
            vec![WriteOp::Delete {
                namespace: "shop".into(),
                name: "settings".into(),
            }],
        )
        .await;
        write(
            api.store.as_ref(),
            &pods(),
            vec![WriteOp::Delete {
                namespace: "shop".into(),
                name: "web-01".into(),
            }],
        )
        .await;
        let live = feed.changes(2).await;
        assert_eq!(
            revisions(&live),
            vec![29, 31],
            "other kinds' changes are not sent"
        );
        assert_eq!(
            (
                live[0]["type"].as_str(),
                live[0]["object"]["metadata"]["resourceVersion"].as_str()
            ),
            (Some("MODIFIED"), Some("2"))
        );
        assert_eq!(
            (
                live[1]["type"].as_str(),
                live[1]["object"]["metadata"]["name"].as_str()
            ),
            (Some("DELETED"), Some("web-01"))
        );

        // A second client resuming from the first live change sees exactly the rest.
        let mut resumed = api.feed("/api/v1/pods?watch=true&since=29", &[]).await;
        assert_eq!(revisions(&resumed.changes(1).await), vec![31]);
        assert_eq!(
            resumed.event().await,
            json!({"type": "BOOKMARK", "revision": 31})
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn feed_without_since_sends_only_new_changes() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        let mut feed = api
            .feed("/api/v1/namespace/shop/pods?watch=true", &[])
            .await;
        let fixtures = pod_fixtures();
        // Changes in `data` are filtered out; the one in `shop` arrives.
        write(
            api.store.as_ref(),
            &pods(),
            vec![WriteOp::Upsert(pod_object(&fixtures[15], "2"))],
        )
        .await;
        write(
            api.store.as_ref(),
            &pods(),
            vec![WriteOp::Upsert(pod_object(&fixtures[4], "2"))],
        )
        .await;
        let event = feed.changes(1).await.remove(0);
        assert_eq!(
            (
                event["revision"].as_u64(),
                event["object"]["metadata"]["name"].as_str()
            ),
            (Some(30), Some("web-04"))
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn feed_filters_by_label_selector_and_column() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        let mut feed = api
            .feed(
                "/api/v1/pods?watch=true&since=0&labelSelector=tier%3Dback&phase=Failed",
                &[],
            )
            .await;
        let expected: Vec<String> = pod_fixtures()
            .into_iter()
            .filter(|p| p.tier == "back" && p.phase == Some("Failed"))
            .map(|p| p.name)
            .collect();
        let events = feed.changes(expected.len()).await;
        let names: Vec<&str> = events
            .iter()
            .map(|e| e["object"]["metadata"]["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, expected);
        assert_eq!(
            feed.event().await["type"],
            "BOOKMARK",
            "nothing else matches"
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn expired_revision_is_a_410_before_streaming() {
    timeout(TIMEOUT, async {
        let api = Api::start(5).await;
        let (status, body) = api.get("/api/v1/pods?watch=true&since=3").await;
        assert_eq!(status, 410, "{body}");
        assert_eq!(body["reason"], "Expired");
        assert_eq!(body["oldestRevision"], 24);
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains("relist")),
            "{body}"
        );

        // The oldest retained revision still resumes (nothing of this kind left to send).
        let mut feed = api.feed("/api/v1/nodes?watch=true&since=25", &[]).await;
        assert_eq!(revisions(&feed.changes(3).await), vec![26, 27, 28]);

        // A revision the store has never reached (store reset): relist too.
        let (status, body) = api.get("/api/v1/pods?watch=true&since=1000").await;
        assert_eq!((status, body["reason"].as_str()), (410, Some("Expired")));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn server_sent_events_and_last_event_id() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        let mut feed = api
            .feed(
                "/api/v1/pods?watch=true&since=18",
                &[("Accept", "text/event-stream")],
            )
            .await;
        assert_eq!(feed.content_type, "text/event-stream");
        for revision in [19, 20] {
            let block = feed.sse().await;
            assert_eq!(block["id"], revision.to_string());
            assert_eq!(block["event"], "ADDED");
            let data: Value = serde_json::from_str(&block["data"]).expect("data");
            assert_eq!(
                (data["type"].as_str(), data["revision"].as_u64()),
                (Some("ADDED"), Some(revision))
            );
        }
        let bookmark = feed.sse().await;
        assert_eq!(
            (bookmark["id"].as_str(), bookmark["event"].as_str()),
            ("28", "BOOKMARK")
        );

        // A reconnecting EventSource repeats its URL; Last-Event-ID wins over `since`.
        let mut resumed = api
            .feed(
                "/api/v1/pods?watch=true&since=0",
                &[("Accept", "text/event-stream"), ("Last-Event-ID", "19")],
            )
            .await;
        assert_eq!(resumed.sse().await["id"], "20");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn feeds_end_when_clients_disconnect_or_the_server_stops() {
    timeout(TIMEOUT, async {
        let api = Api::start(1000).await;
        let mut feed = api.feed("/api/v1/pods?watch=true", &[]).await;
        assert_eq!(feed.event().await["type"], "BOOKMARK");
        assert_eq!(api.state.feeds.current(), 1);
        drop(feed);
        api.state.feeds.wait_for(0).await;

        let mut feed = api.feed("/api/v1/pods?watch=true", &[]).await;
        assert_eq!(feed.event().await["type"], "BOOKMARK");
        api.shutdown.trigger();
        while feed.frame(b"\n").await.is_some() {}
        api.state.feeds.wait_for(0).await;
    })
    .await
    .expect("timed out");
}
