//! The mirror against the in-process emulator over HTTP, with the memory store: changes reach the
//! store, watches recover from drops and 410s without ghosts, malformed objects are skipped,
//! ResourceMirrors add kinds at run time, Secrets are redacted, the store breaker loses nothing,
//! `/readyz` waits for the initial sync, and `/metrics` passes `promtool check metrics`.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, CustomResourceExt};
use serde_json::{Value, json};
use stowage::config::{BreakerConfig, Config, ListMode, MirrorConfig};
use stowage::crd::{ConditionStatus, ResourceMirror, ResourceMirrorStatus};
use stowage::metrics::Metrics;
use stowage::mirror::Mirror;
use stowage::mirror::health::BreakerState;
use stowage::mirror::kind::KindSpec;
use stowage::mirror::object::REDACTED;
use stowage::store::memory::MemoryStore;
use stowage::store::{
    Change, GroupBy, ListPage, ListQuery, MirrorObject, Revision, Store, StoreError, WriteBatch,
    WriteOutcome,
};
use stowage::{operator, sandbox, server, shutdown::Shutdown};
use stowage_emulator::{Emulator, EmulatorConfig, RunningEmulator};

const CONFIGMAPS: &str = "core/v1/ConfigMap";

// ---------------------------------------------------------------------------------------------
// Fixtures

/// Every async step is bounded.
async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s waiting for {what}"),
    }
}

/// Polls `check` every 25 ms until it is true, failing after `secs`.
async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(secs, what, async {
        let mut tick = tokio::time::interval(Duration::from_millis(25));
        loop {
            tick.tick().await;
            if check().await {
                return;
            }
        }
    })
    .await;
}

/// A `Store` that delegates to the memory store and fails writes (and registrations) on demand.
struct FlakyStore {
    inner: MemoryStore,
    failing: AtomicBool,
}

impl FlakyStore {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStore::new(100_000),
            failing: AtomicBool::new(false),
        })
    }

    fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable {
                message: "injected failure".into(),
                source: None,
            })
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Store for FlakyStore {
    fn backend(&self) -> &'static str {
        "flaky-memory"
    }
    async fn register(&self, kind: &KindSpec) -> Result<(), StoreError> {
        self.check()?;
        self.inner.register(kind).await
    }
    async fn unregister(&self, kind: &KindSpec) -> Result<(), StoreError> {
        self.inner.unregister(kind).await
    }
    async fn write(&self, kind: &KindSpec, batch: WriteBatch) -> Result<WriteOutcome, StoreError> {
        self.check()?;
        self.inner.write(kind, batch).await
    }
    async fn sweep(&self, kind: &KindSpec, epoch: u64) -> Result<usize, StoreError> {
        self.check()?;
        self.inner.sweep(kind, epoch).await
    }
    async fn get(
        &self,
        kind: &KindSpec,
        namespace: &str,
        name: &str,
    ) -> Result<Option<MirrorObject>, StoreError> {
        self.inner.get(kind, namespace, name).await
    }
    async fn get_by_uid(
        &self,
        kind: &KindSpec,
        uid: &str,
    ) -> Result<Option<MirrorObject>, StoreError> {
        self.inner.get_by_uid(kind, uid).await
    }
    async fn list(&self, kind: &KindSpec, query: &ListQuery) -> Result<ListPage, StoreError> {
        self.inner.list(kind, query).await
    }
    async fn count(&self, kind: &KindSpec) -> Result<usize, StoreError> {
        self.inner.count(kind).await
    }
    async fn group_count(
        &self,
        kind: &KindSpec,
        by: &GroupBy,
    ) -> Result<std::collections::BTreeMap<String, usize>, StoreError> {
        self.inner.group_count(kind, by).await
    }
    async fn column_sums(
        &self,
        kind: &KindSpec,
        columns: &[String],
    ) -> Result<std::collections::BTreeMap<String, i64>, StoreError> {
        self.inner.column_sums(kind, columns).await
    }
    async fn changes(
        &self,
        kind: Option<&KindSpec>,
        since: Revision,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        self.inner.changes(kind, since, limit).await
    }
    async fn revision(&self) -> Result<Revision, StoreError> {
        self.inner.revision().await
    }
    fn subscribe(&self) -> tokio::sync::watch::Receiver<Revision> {
        self.inner.subscribe()
    }
}

/// A mirror configuration that reacts quickly.
fn fast() -> MirrorConfig {
    MirrorConfig {
        batch_interval: Duration::from_millis(20),
        rediscover_interval: Duration::from_millis(200),
        breaker: BreakerConfig {
            failures: 2,
            cooldown: Duration::from_millis(200),
            buffer: 10_000,
        },
        ..MirrorConfig::default()
    }
}

/// An emulator, a client, the store and a running mirror.
struct Harness {
    emu: RunningEmulator,
    client: kube::Client,
    store: Arc<FlakyStore>,
    mirror: Mirror,
    metrics: Metrics,
}

impl Harness {
    async fn start(config: MirrorConfig) -> Self {
        Self::start_with(config, EmulatorConfig::default(), |_| {}).await
    }

    /// Starts the emulator, lets `seed` insert objects, then starts the mirror.
    async fn start_with(
        config: MirrorConfig,
        emulator: EmulatorConfig,
        seed: impl FnOnce(&RunningEmulator),
    ) -> Self {
        let emu = Emulator::start(emulator).await.expect("emulator starts");
        seed(&emu);
        let client = sandbox::client_for(&emu.url()).expect("client");
        let store = FlakyStore::new();
        let metrics = Metrics::new().expect("metrics");
        let mirror =
            Mirror::start(client.clone(), &config, store.clone(), &metrics).expect("mirror starts");
        Self {
            emu,
            client,
            store,
            mirror,
            metrics,
        }
    }

    async fn synced(&self) {
        eventually(30, "the initial sync", || async {
            self.mirror.initial_sync().is_ok()
        })
        .await;
    }

    fn spec(&self, id: &str) -> Option<KindSpec> {
        self.mirror.kinds().borrow().by_id(id).cloned()
    }

    async fn stored(&self, id: &str, namespace: &str, name: &str) -> Option<MirrorObject> {
        let spec = self.spec(id)?;
        self.store
            .get(&spec, namespace, name)
            .await
            .expect("store get")
    }

    /// `(namespace, name, resourceVersion)` of every stored object of a kind.
    async fn stored_set(&self, id: &str) -> BTreeSet<(String, String, String)> {
        let Some(spec) = self.spec(id) else {
            return BTreeSet::new();
        };
        let query = ListQuery {
            limit: 100_000,
            ..ListQuery::default()
        };
        let page = self.store.list(&spec, &query).await.expect("store list");
        page.items
            .into_iter()
            .map(|o| (o.namespace, o.name, o.resource_version))
            .collect()
    }

    /// The same for the cluster's config maps.
    async fn cluster_configmaps(&self) -> BTreeSet<(String, String, String)> {
        let api: Api<ConfigMap> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default())
            .await
            .expect("list config maps");
        list.items
            .into_iter()
            .map(|cm| {
                let m = cm.metadata;
                (
                    m.namespace.unwrap_or_default(),
                    m.name.unwrap_or_default(),
                    m.resource_version.unwrap_or_default(),
                )
            })
            .collect()
    }

    async fn mirrors_the_cluster(&self) -> bool {
        self.stored_set(CONFIGMAPS).await == self.cluster_configmaps().await
    }

    fn configmaps(&self, namespace: &str) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn stop(self) {
        self.mirror.shutdown().await;
        self.emu.shutdown().await;
    }
}

fn config_map(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        data: Some([("key".to_owned(), value.to_owned())].into()),
        ..ConfigMap::default()
    }
}

async fn create(api: &Api<ConfigMap>, name: &str, value: &str) {
    api.create(&PostParams::default(), &config_map(name, value))
        .await
        .expect("create config map");
}

// ---------------------------------------------------------------------------------------------
// Following the cluster

#[tokio::test]
async fn creates_updates_and_deletes_are_mirrored() {
    let h = Harness::start(fast()).await;
    h.synced().await;
    let cms = h.configmaps("default");
    create(&cms, "settings", "one").await;
    eventually(10, "the new config map in the store", || async {
        h.stored(CONFIGMAPS, "default", "settings")
            .await
            .is_some_and(|o| o.columns["data"] == json!({"key": "one"}))
    })
    .await;
    let patch = json!({"data": {"key": "two"}});
    cms.patch("settings", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    eventually(10, "the update in the store", || async {
        h.stored(CONFIGMAPS, "default", "settings")
            .await
            .is_some_and(|o| o.object["data"]["key"] == "two")
    })
    .await;
    let stored = h
        .stored(CONFIGMAPS, "default", "settings")
        .await
        .expect("stored");
    assert_eq!(stored.object["metadata"].get("managedFields"), None);
    cms.delete("settings", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(10, "the deletion in the store", || async {
        h.stored(CONFIGMAPS, "default", "settings").await.is_none()
    })
    .await;
    let health = h.mirror.health().kind(CONFIGMAPS).expect("health");
    assert_eq!(health.relists, 1);
    assert!(
        health.last_event_time.is_some() && health.resource_version.is_some(),
        "{health:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn dropped_watches_resume_and_count_as_reconnects() {
    let h = Harness::start(fast()).await;
    h.synced().await;
    h.emu.faults().drop_watches();
    eventually(15, "a counted reconnect", || async {
        h.mirror
            .health()
            .kind(CONFIGMAPS)
            .is_some_and(|k| k.reconnects >= 1)
    })
    .await;
    create(&h.configmaps("default"), "after-drop", "x").await;
    eventually(10, "the change after the reconnect", || async {
        h.stored(CONFIGMAPS, "default", "after-drop")
            .await
            .is_some()
    })
    .await;
    let health = h.mirror.health().kind(CONFIGMAPS).expect("health");
    assert_eq!(health.relists, 1, "resuming needs no relist: {health:?}");
    let metrics = h.metrics.encode().expect("metrics");
    assert!(
        metrics.contains(&format!(
            "stowage_mirror_reconnects_total{{kind=\"{CONFIGMAPS}\"}}"
        )),
        "{metrics}"
    );
    h.stop().await;
}

/// Deletions while the watch is down and the history is trimmed (410) leave no ghosts; run with
/// paged lists (streaming lists are covered by the other tests on this 1.33 emulator).
#[tokio::test]
async fn relist_after_410_leaves_no_ghosts() {
    let emulator = EmulatorConfig {
        history: 20,
        ..EmulatorConfig::default()
    };
    let config = MirrorConfig {
        list: ListMode::Paged,
        ..fast()
    };
    let h = Harness::start_with(config, emulator, |_| {}).await;
    h.synced().await;
    let cms = h.configmaps("default");
    for i in 0..10 {
        create(&cms, &format!("cm-{i}"), "v").await;
    }
    eventually(10, "ten config maps mirrored", || h.mirrors_the_cluster()).await;

    h.emu.faults().fail(&["watch"], 500, Duration::from_secs(2));
    h.emu.faults().drop_watches();
    for i in 0..5 {
        cms.delete(&format!("cm-{i}"), &DeleteParams::default())
            .await
            .expect("delete");
    }
    for round in 0..30 {
        let patch = json!({"data": {"key": format!("{round}")}});
        cms.patch("cm-9", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch");
    }
    h.emu.compact_history(5);

    eventually(30, "a relist", || async {
        h.mirror
            .health()
            .kind(CONFIGMAPS)
            .is_some_and(|k| k.relists >= 2)
    })
    .await;
    eventually(20, "the store to equal the cluster", || {
        h.mirrors_the_cluster()
    })
    .await;
    assert!(
        h.stored(CONFIGMAPS, "default", "cm-0").await.is_none(),
        "no ghost of a deleted object"
    );
    h.stop().await;
}

#[tokio::test]
async fn malformed_objects_are_counted_and_skipped() {
    let bad = |name: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "default", "labels": "not-a-map"},
               "data": {"a": "b"}})
    };
    let h = Harness::start_with(fast(), EmulatorConfig::default(), |emu| {
        emu.insert(bad("listed-bad")).expect("insert malformed");
        emu.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "good", "namespace": "default"}}))
            .expect("insert good");
    })
    .await;
    h.synced().await;
    assert!(h.stored(CONFIGMAPS, "default", "good").await.is_some());
    assert!(
        h.stored(CONFIGMAPS, "default", "listed-bad")
            .await
            .is_none()
    );

    h.emu.insert(bad("watched-bad")).expect("insert malformed");
    create(&h.configmaps("default"), "still-syncing", "yes").await;
    eventually(10, "the kind to keep syncing", || async {
        h.stored(CONFIGMAPS, "default", "still-syncing")
            .await
            .is_some()
    })
    .await;
    let health = h.mirror.health().kind(CONFIGMAPS).expect("health");
    assert_eq!(health.malformed, 2, "{health:?}");
    assert!(
        h.stored(CONFIGMAPS, "default", "watched-bad")
            .await
            .is_none()
    );
    let metrics = h.metrics.encode().expect("metrics");
    assert!(
        metrics.contains(&format!(
            "stowage_mirror_events_total{{kind=\"{CONFIGMAPS}\",type=\"malformed\"}} 2"
        )),
        "{metrics}"
    );
    h.stop().await;
}

#[tokio::test]
async fn secret_data_is_redacted_by_default() {
    let h = Harness::start(fast()).await;
    h.synced().await;
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), "default");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("creds".into()),
            ..ObjectMeta::default()
        },
        string_data: Some([("password".to_owned(), "hunter2".to_owned())].into()),
        data: Some(
            [(
                "token".to_owned(),
                k8s_openapi::ByteString(b"s3cret".to_vec()),
            )]
            .into(),
        ),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
    eventually(10, "the secret in the store", || async {
        h.stored("core/v1/Secret", "default", "creds")
            .await
            .is_some()
    })
    .await;
    let stored = h
        .stored("core/v1/Secret", "default", "creds")
        .await
        .expect("stored");
    let text = serde_json::to_string(&stored).expect("json");
    assert!(
        !text.contains("hunter2") && !text.contains("czNjcmV0"),
        "{text}"
    );
    for (field, map) in stored.object.as_object().expect("object") {
        if field == "data" || field == "stringData" {
            assert!(
                map.as_object()
                    .expect("map")
                    .values()
                    .all(|v| v == REDACTED),
                "{text}"
            );
        }
    }
    assert_eq!(stored.columns["type"], "Opaque");
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// ResourceMirrors

fn widget_crd(kind: &str, plural: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.example.com")},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .expect("CRD")
}

fn resource_mirror(name: &str, kind: &str) -> Value {
    json!({
        "apiVersion": "stowage.io/v1alpha1", "kind": "ResourceMirror", "metadata": {"name": name},
        "spec": {"group": "example.com", "version": "v1", "kind": kind,
                 "columns": [{"name": "size", "path": ".spec.size", "type": "integer"}]}
    })
}

async fn create_crd(client: &kube::Client, crd: &CustomResourceDefinition) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.create(&PostParams::default(), crd)
        .await
        .expect("create CRD");
}

async fn create_custom(client: &kube::Client, kind: &str, plural: &str, name: &str, size: i64) {
    let gvk = GroupVersionKind::gvk("example.com", "v1", kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": kind,
        "metadata": {"name": name, "namespace": "default"}, "spec": {"size": size}
    }))
    .expect("object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("create custom resource");
}

async fn mirror_status(client: &kube::Client, name: &str) -> Option<ResourceMirrorStatus> {
    let api: Api<ResourceMirror> = Api::all(client.clone());
    api.get(name).await.ok().and_then(|m| m.status)
}

fn synced_condition(status: &ResourceMirrorStatus) -> Option<(ConditionStatus, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Synced")
        .map(|c| (c.status, c.reason.clone()))
}

async fn condition_is(
    client: &kube::Client,
    name: &str,
    status: ConditionStatus,
    reason: &str,
) -> bool {
    mirror_status(client, name)
        .await
        .and_then(|s| synced_condition(&s))
        .is_some_and(|(s, r)| s == status && r == reason)
}

#[tokio::test]
async fn resource_mirrors_add_kinds_at_run_time() {
    let config = MirrorConfig {
        builtin: false,
        ..fast()
    };
    let h = Harness::start(config).await;
    h.synced().await;
    assert!(
        h.mirror.kinds().borrow().is_empty(),
        "nothing configured yet"
    );
    // The ResourceMirror CRD was missing at start: not fatal, picked up once installed.
    create_crd(&h.client, &ResourceMirror::crd()).await;
    create_crd(&h.client, &widget_crd("Widget", "widgets")).await;
    let mirrors: Api<DynamicObject> =
        Api::all_with(h.client.clone(), &ApiResource::erase::<ResourceMirror>(&()));
    let widgets: DynamicObject =
        serde_json::from_value(resource_mirror("widgets", "Widget")).expect("mirror");
    mirrors
        .create(&PostParams::default(), &widgets)
        .await
        .expect("create ResourceMirror");
    create_custom(&h.client, "Widget", "widgets", "w1", 3).await;

    let id = "example.com/v1/Widget";
    eventually(30, "the custom resource in the store", || async {
        h.stored(id, "default", "w1").await.is_some()
    })
    .await;
    assert_eq!(
        h.stored(id, "default", "w1")
            .await
            .map(|o| o.columns["size"].clone()),
        Some(json!(3))
    );
    assert_eq!(
        h.spec(id).map(|s| (s.plural, s.namespaced)),
        Some(("widgets".into(), true)),
        "found through discovery"
    );
    eventually(15, "ResourceMirror status Synced=True", || {
        condition_is(&h.client, "widgets", ConditionStatus::True, "Synced")
    })
    .await;
    eventually(15, "the object count in the status", || async {
        mirror_status(&h.client, "widgets")
            .await
            .is_some_and(|s| s.objects == Some(1) && s.observed_generation == Some(1))
    })
    .await;

    // Disabling removes the kind from mirroring.
    let off = json!({"spec": {"enabled": false}});
    mirrors
        .patch("widgets", &PatchParams::default(), &Patch::Merge(&off))
        .await
        .expect("disable");
    eventually(15, "the kind to be switched off", || async {
        h.spec(id).is_none()
    })
    .await;
    eventually(15, "status Disabled", || {
        condition_is(&h.client, "widgets", ConditionStatus::False, "Disabled")
    })
    .await;
    h.stop().await;
}

/// Only the replica holding the Lease writes `ResourceMirror` statuses: a follower mirrors the
/// kind but leaves the status alone; once it leads, it writes it.
#[tokio::test]
async fn only_the_leader_writes_resource_mirror_statuses() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let client = sandbox::client_for(&emu.url()).expect("client");
    create_crd(&client, &ResourceMirror::crd()).await;
    create_crd(&client, &widget_crd("Widget", "widgets")).await;
    let mirrors: Api<DynamicObject> =
        Api::all_with(client.clone(), &ApiResource::erase::<ResourceMirror>(&()));
    let widgets: DynamicObject =
        serde_json::from_value(resource_mirror("widgets", "Widget")).expect("mirror");
    mirrors
        .create(&PostParams::default(), &widgets)
        .await
        .expect("create ResourceMirror");
    create_custom(&client, "Widget", "widgets", "w1", 3).await;

    let (leader_tx, leading) = tokio::sync::watch::channel(false);
    let config = MirrorConfig {
        builtin: false,
        ..fast()
    };
    let store = FlakyStore::new();
    let metrics = Metrics::new().expect("metrics");
    let mirror =
        Mirror::start_with_leader(client.clone(), &config, store.clone(), &metrics, leading)
            .expect("mirror starts");
    let id = "example.com/v1/Widget";
    eventually(
        30,
        "the custom resource mirrored by the follower",
        || async {
            let spec = mirror.kinds().borrow().by_id(id).cloned();
            match spec {
                Some(spec) => store
                    .get(&spec, "default", "w1")
                    .await
                    .ok()
                    .flatten()
                    .is_some(),
                None => false,
            }
        },
    )
    .await;
    // Two status rounds (every 2 s) pass; a writing follower would have written by then.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        mirror_status(&client, "widgets").await,
        None,
        "a follower does not write statuses"
    );
    leader_tx.send_replace(true);
    eventually(15, "status Synced=True once leading", || {
        condition_is(&client, "widgets", ConditionStatus::True, "Synced")
    })
    .await;
    mirror.shutdown().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn a_mirror_of_a_missing_crd_reports_not_served_until_it_appears() {
    let config = MirrorConfig {
        builtin: false,
        ..fast()
    };
    let h = Harness::start_with(config, EmulatorConfig::default(), |emu| {
        let crd = serde_json::to_value(ResourceMirror::crd()).expect("CRD json");
        emu.insert(crd).expect("ResourceMirror CRD");
        emu.insert(resource_mirror("gadgets", "Gadget"))
            .expect("ResourceMirror");
    })
    .await;
    h.synced().await;
    let id = "example.com/v1/Gadget";
    eventually(15, "status NotServed", || {
        condition_is(&h.client, "gadgets", ConditionStatus::False, "NotServed")
    })
    .await;
    let health = h.mirror.health().kind(id).expect("health entry");
    assert_eq!(health.state, stowage::mirror::health::SyncState::NotServed);
    assert!(
        h.mirror.initial_sync().is_ok(),
        "a kind that is not served does not hold up readiness"
    );

    create_crd(&h.client, &widget_crd("Gadget", "gadgets")).await;
    create_custom(&h.client, "Gadget", "gadgets", "g1", 1).await;
    eventually(15, "the kind picked up once its CRD exists", || async {
        h.stored(id, "default", "g1").await.is_some()
    })
    .await;
    eventually(15, "status Synced=True", || {
        condition_is(&h.client, "gadgets", ConditionStatus::True, "Synced")
    })
    .await;
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The store breaker

#[tokio::test]
async fn breaker_opens_and_nothing_is_lost() {
    let h = Harness::start(fast()).await;
    h.synced().await;
    h.store.fail(true);
    let cms = h.configmaps("default");
    for i in 0..20 {
        create(&cms, &format!("during-{i}"), "v").await;
    }
    eventually(10, "the breaker to open", || async {
        h.mirror.health().breaker().state == BreakerState::Open
    })
    .await;
    let metrics = h.metrics.encode().expect("metrics");
    assert!(
        metrics.contains("stowage_store_breaker_state 2"),
        "{metrics}"
    );
    assert!(h.mirror.health().breaker().buffered > 0);
    h.store.fail(false);
    eventually(10, "the breaker to close", || async {
        h.mirror.health().breaker().state == BreakerState::Closed
    })
    .await;
    eventually(10, "every buffered write applied", || {
        h.mirrors_the_cluster()
    })
    .await;
    let health = h.mirror.health().kind(CONFIGMAPS).expect("health");
    assert_eq!(health.relists, 1, "no resync was needed: {health:?}");
    assert_eq!(h.mirror.health().breaker().buffered, 0);
    h.stop().await;
}

#[tokio::test]
async fn overflowing_the_buffer_resyncs_to_the_cluster_state() {
    let mut config = fast();
    config.batch_size = 5;
    config.breaker.buffer = 5;
    let h = Harness::start(config).await;
    h.synced().await;
    let cms = h.configmaps("default");
    create(&cms, "doomed", "v").await;
    eventually(10, "the first object", || h.mirrors_the_cluster()).await;
    h.store.fail(true);
    for i in 0..30 {
        create(&cms, &format!("burst-{i}"), "v").await;
    }
    cms.delete("doomed", &DeleteParams::default())
        .await
        .expect("delete");
    let resync = format!("stowage_mirror_resyncs_total{{kind=\"{CONFIGMAPS}\"}} 1");
    eventually(10, "the overflow", || async {
        h.metrics.encode().is_ok_and(|m| m.contains(&resync))
    })
    .await;
    assert_eq!(
        h.mirror.health().breaker().buffered,
        0,
        "the overflowing buffer was dropped"
    );
    h.store.fail(false);
    eventually(20, "a resync relist", || async {
        h.mirror
            .health()
            .kind(CONFIGMAPS)
            .is_some_and(|k| k.relists >= 2)
    })
    .await;
    eventually(20, "the store to equal the cluster", || {
        h.mirrors_the_cluster()
    })
    .await;
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The operator: readiness and metrics

/// Starts the operator against `emu` with `store`; returns Stowage's base URL, the shutdown and
/// the task.
async fn start_operator(
    emu: &RunningEmulator,
    store: Arc<dyn Store>,
) -> (
    String,
    Shutdown,
    tokio::task::JoinHandle<Result<(), operator::OperatorError>>,
) {
    let client = sandbox::client_for(&emu.url()).expect("client");
    let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let config = Config {
        mirror: fast(),
        ..Config::default()
    };
    let task = tokio::spawn(async move {
        operator::run_with_store(client, &config, store, listener, stop).await
    });
    (base, shutdown, task)
}

async fn readyz(base: &str) -> (u16, Value) {
    match reqwest::get(format!("{base}/readyz")).await {
        Ok(response) => {
            let code = response.status().as_u16();
            (code, response.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

#[tokio::test]
async fn readyz_turns_ready_only_after_the_initial_sync() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    emu.insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seeded", "namespace": "default"}}))
        .expect("seed");
    let store = FlakyStore::new();
    store.fail(true);
    let (base, shutdown, task) = start_operator(&emu, store.clone()).await;
    // The API server answers, but the store takes no writes: not ready, because of the mirror.
    eventually(15, "the mirror to be the only reason for 503", || async {
        let (code, body) = readyz(&base).await;
        code == 503
            && body["checks"].get("apiserver").is_none()
            && body["checks"].get("mirror").is_some()
    })
    .await;
    store.fail(false);
    eventually(20, "/readyz 200", || async { readyz(&base).await.0 == 200 }).await;
    let resources = reqwest::get(format!("{base}/api/v1/resources"))
        .await
        .expect("REST API")
        .status();
    assert_eq!(
        resources.as_u16(),
        200,
        "the REST API is merged into the server"
    );
    shutdown.trigger();
    within(10, "the operator to stop", task)
        .await
        .expect("task")
        .expect("clean stop");
    emu.shutdown().await;
}

#[tokio::test]
async fn metrics_pass_promtool() {
    let Some(promtool) = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!("promtool not installed; skipping");
        return;
    };
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let (base, shutdown, task) = start_operator(&emu, FlakyStore::new()).await;
    eventually(20, "/readyz 200", || async { readyz(&base).await.0 == 200 }).await;
    let client = sandbox::client_for(&emu.url()).expect("client");
    create(&Api::namespaced(client, "default"), "for-metrics", "v").await;
    let text = within(20, "mirror metrics with samples", async {
        loop {
            let text = reqwest::get(format!("{base}/metrics"))
                .await
                .expect("metrics")
                .text()
                .await
                .expect("body");
            if text.contains("stowage_mirror_sync_lag_seconds_bucket")
                && text.contains("type=\"applied\"")
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    for name in [
        "stowage_mirror_events_total",
        "stowage_mirror_objects",
        "stowage_mirror_batch_size",
        "stowage_store_write_duration_seconds",
        "stowage_store_breaker_state",
        "stowage_mirror_relists_total",
        "stowage_mirror_queue_depth",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(text.as_bytes())
            .await
            .expect("write metrics");
    }
    let out = within(20, "promtool", child.wait_with_output())
        .await
        .expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    shutdown.trigger();
    within(10, "the operator to stop", task)
        .await
        .expect("task")
        .expect("clean stop");
    emu.shutdown().await;
}
