//! The etcd store against real etcd servers: the shared conformance suite (each scenario on its
//! own private server, since the suite reads the change feed from revision 0), the exact key
//! layout read back with `etcdctl`, watch from a revision, compaction → `Expired`, transaction
//! splitting, oversized objects, authentication, etcd down at start and restarted mid-sync.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use stowage::mirror::kind::KindSpec;
use stowage::mirror::object::to_mirror_object;
use stowage::store::conformance::{self, sample_kind, sample_object};
use stowage::store::etcd::{EtcdSettings, EtcdStore};
use stowage::store::{
    ChangeType, MirrorObject, RevisionModel, Store, StoreError, WriteBatch, WriteOp, WriteOutcome,
};
use support::etcd::PrivateEtcd;

/// A store on `etcd` under `prefix`.
fn store_on(etcd: &PrivateEtcd, prefix: &str) -> EtcdStore {
    EtcdStore::new(EtcdSettings::new(vec![etcd.endpoint()], prefix))
}

/// The shared etcd `make services` started, for tests that need no private server.
fn shared_store(prefix: &str) -> EtcdStore {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let unique = format!("/stowage-test-{}-{nanos}{prefix}", std::process::id());
    EtcdStore::new(EtcdSettings::new(
        vec!["http://127.0.0.1:2379".into()],
        &unique,
    ))
}

async fn put(
    store: &dyn Store,
    kind: &KindSpec,
    object: MirrorObject,
) -> Result<WriteOutcome, StoreError> {
    let ops = vec![WriteOp::Upsert(object)];
    store.write(kind, WriteBatch { ops, epoch: 1 }).await
}

async fn timed<T>(what: &str, call: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(30), call).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: no answer within 30s"),
    }
}

stowage::conformance_tests!(scenario => {
    let etcd = PrivateEtcd::start().await;
    scenario(&store_on(&etcd, "/kubernetes")).await;
});

#[tokio::test]
async fn all_scenarios_share_one_store() {
    let etcd = PrivateEtcd::start().await;
    let store: Arc<dyn Store> = Arc::new(store_on(&etcd, "/kubernetes"));
    conformance::run_all(Arc::clone(&store)).await;
    conformance::run_all(store).await;
}

#[tokio::test]
async fn reports_its_backend_and_revision_model() {
    let store = shared_store("/meta");
    assert_eq!(store.backend(), "etcd");
    assert_eq!(store.revision_model(), RevisionModel::Shared);
}

fn pod(namespace: &str, name: &str, rv: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "namespace": namespace, "name": name, "uid": format!("uid-{name}"),
            "resourceVersion": rv, "labels": {"app": "web"},
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl"}]
        },
        "spec": {"nodeName": "node-1"},
        "status": {"phase": "Running"}
    })
}

fn core_kind(kind: &str, namespaced: bool) -> KindSpec {
    KindSpec {
        group: String::new(),
        version: "v1".into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
        namespaced,
        columns: vec![],
        ..sample_kind(kind)
    }
}

/// Keys are `{prefix}/{group}/{version}/{kind}/{namespace}/{name}` (cluster-scoped without the
/// namespace, core group as `core`) and values the pruned object JSON, as `etcdctl` shows them.
#[tokio::test]
async fn key_layout_read_back_with_etcdctl() {
    let etcd = PrivateEtcd::start().await;
    let store = store_on(&etcd, "/mirror-a");
    let pods = core_kind("Pod", true);
    let nodes = core_kind("Node", false);
    let mut apps = sample_kind("Deployment");
    apps.group = "apps".into();
    for kind in [&pods, &nodes, &apps] {
        timed("register", store.register(kind))
            .await
            .expect("register");
    }
    let mut node_json = pod("", "node-1", "6");
    let pod = to_mirror_object(&pods, pod("default", "web-0", "5")).expect("pod");
    node_json["metadata"]
        .as_object_mut()
        .map(|m| m.remove("namespace"));
    node_json["kind"] = json!("Node");
    let node = to_mirror_object(&nodes, node_json).expect("node");
    let deployment = sample_object("prod", "api", "7");
    timed("write pod", put(&store, &pods, pod.clone()))
        .await
        .expect("pod");
    timed("write node", put(&store, &nodes, node.clone()))
        .await
        .expect("node");
    timed("write deployment", put(&store, &apps, deployment))
        .await
        .expect("deployment");

    let keys = etcd.etcdctl_ok(&["get", "--prefix", "--keys-only", "/mirror-a/"]);
    let keys: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        keys,
        [
            "/mirror-a/.revision",
            "/mirror-a/apps/v1/Deployment/prod/api",
            "/mirror-a/core/v1/Node/node-1",
            "/mirror-a/core/v1/Pod/default/web-0",
        ],
        "etcdctl get --prefix /mirror-a/: the objects and the revision marker"
    );
    let value = etcd.etcdctl_ok(&[
        "get",
        "--print-value-only",
        "/mirror-a/core/v1/Pod/default/web-0",
    ]);
    let stored: Value = serde_json::from_str(value.trim()).expect("value is JSON");
    assert_eq!(stored, pod.object, "the value is the pruned object");
    assert!(stored["metadata"].get("managedFields").is_none(), "pruned");
    let found = timed("get", store.get(&pods, "default", "web-0"))
        .await
        .expect("get");
    assert_eq!(found, Some(pod), "read back through the store");
    let found = timed("get node", store.get(&nodes, "", "node-1"))
        .await
        .expect("get");
    assert_eq!(found, Some(node), "cluster-scoped read back");
}

/// `changes` follows etcd's watch from any revision. A multi-transaction batch of distinct keys
/// sends its transactions together, so they may commit in any order among themselves; a batch
/// that touches a key twice keeps its order.
#[tokio::test]
async fn watch_from_a_revision_and_split_batches() {
    let store = Arc::new(shared_store("/watch"));
    let kind = sample_kind("WatchSplit");
    timed("register", store.register(&kind))
        .await
        .expect("register");
    let first = store
        .write(
            &kind,
            WriteBatch {
                ops: vec![WriteOp::Upsert(sample_object("ns", "first", "1"))],
                epoch: 1,
            },
        )
        .await
        .expect("first write");
    let ops: Vec<WriteOp> = (0..300)
        .map(|i| WriteOp::Upsert(sample_object("ns", &format!("o{i:03}"), "1")))
        .collect();
    let outcome = timed(
        "300 objects",
        store.write(&kind, WriteBatch { ops, epoch: 1 }),
    )
    .await
    .expect("write 300");
    assert_eq!(outcome.changed, 300);
    let feed = timed(
        "feed",
        store.changes(Some(&kind), first.revision, usize::MAX),
    )
    .await
    .expect("feed");
    let mut names: Vec<&str> = feed.iter().map(|c| c.object.name.as_str()).collect();
    names.sort_unstable();
    let expected: Vec<String> = (0..300).map(|i| format!("o{i:03}")).collect();
    assert_eq!(names, expected, "everything after the revision, once each");
    let mut revisions: Vec<u64> = feed.iter().map(|c| c.revision).collect();
    assert!(revisions.is_sorted(), "the feed is in revision order");
    revisions.dedup();
    assert_eq!(
        revisions.len(),
        3,
        "300 operations take three transactions of at most 128 (127 objects and the marker)"
    );
    assert_eq!(revisions.last(), Some(&outcome.revision));
    assert!(feed.iter().all(|c| c.change == ChangeType::Added));
    assert_eq!(
        timed("count", store.count(&kind)).await.expect("count"),
        301
    );

    // A key in two transactions of one batch: applied in order, the last operation wins.
    let mut ops: Vec<WriteOp> = (0..200)
        .map(|i| WriteOp::Upsert(sample_object("ns", &format!("o{i:03}"), "2")))
        .collect();
    ops.push(WriteOp::Upsert(sample_object("ns", "o000", "3")));
    let repeated = store
        .write(&kind, WriteBatch { ops, epoch: 1 })
        .await
        .expect("write with a repeated key");
    let feed = store
        .changes(Some(&kind), outcome.revision, usize::MAX)
        .await
        .expect("feed");
    let names: Vec<String> = feed.iter().map(|c| c.object.name.clone()).collect();
    let mut expected: Vec<String> = (0..200).map(|i| format!("o{i:03}")).collect();
    expected.push("o000".into());
    assert_eq!(names, expected, "in operation order");
    assert_eq!(feed.last().map(|c| c.revision), Some(repeated.revision));
    let stored = store
        .get(&kind, "ns", "o000")
        .await
        .expect("get")
        .expect("o000 stored");
    assert_eq!(stored.resource_version, "3", "the batch's last upsert wins");

    // Waking subscribers: a write elsewhere in the prefix moves the published revision.
    let mut receiver = store.subscribe();
    receiver.borrow_and_update();
    let later = store
        .write(
            &kind,
            WriteBatch {
                ops: vec![delete("ns", "first")],
                epoch: 1,
            },
        )
        .await
        .expect("delete");
    timed("wake-up", receiver.wait_for(|r| *r >= later.revision))
        .await
        .expect("subscribe");
}

fn delete(namespace: &str, name: &str) -> WriteOp {
    WriteOp::Delete {
        namespace: namespace.into(),
        name: name.into(),
    }
}

/// A revision etcd compacted away is `Expired` naming the compaction revision; resuming from
/// just before it works.
#[tokio::test]
async fn compaction_gives_expired() {
    let etcd = PrivateEtcd::start().await;
    let store = store_on(&etcd, "/kubernetes");
    let kind = sample_kind("Compacted");
    timed("register", store.register(&kind))
        .await
        .expect("register");
    let start = store.revision().await.expect("revision");
    let mut last = 0;
    for i in 0..10 {
        let object = sample_object("ns", &format!("o{i}"), "1");
        last = store
            .write(
                &kind,
                WriteBatch {
                    ops: vec![WriteOp::Upsert(object)],
                    epoch: 1,
                },
            )
            .await
            .expect("write")
            .revision;
    }
    let compact_at = last - 3;
    etcd.etcdctl_ok(&["compaction", &compact_at.to_string()]);
    let error = timed("expired feed", store.changes(None, start, 100))
        .await
        .expect_err("compacted");
    let StoreError::Expired { requested, oldest } = error else {
        panic!("expected Expired, got {error}");
    };
    assert_eq!((requested, oldest), (start, compact_at));
    let resumed = timed("resume", store.changes(None, oldest - 1, 100))
        .await
        .expect("resume");
    let revisions: Vec<u64> = resumed.iter().map(|c| c.revision).collect();
    assert_eq!(
        revisions,
        (compact_at..=last).collect::<Vec<_>>(),
        "retained changes"
    );
}

/// An object larger than one etcd request is refused alone; the rest of the batch is stored.
#[tokio::test]
async fn oversized_object_is_rejected_alone() {
    let store = shared_store("/big");
    let kind = sample_kind("Oversized");
    timed("register", store.register(&kind))
        .await
        .expect("register");
    let mut big = sample_object("ns", "big", "1");
    big.annotations
        .insert("blob".into(), "x".repeat(2 * 1024 * 1024));
    let ops = vec![
        WriteOp::Upsert(sample_object("ns", "a", "1")),
        WriteOp::Upsert(big),
        WriteOp::Upsert(sample_object("ns", "b", "1")),
    ];
    let error = timed("write", store.write(&kind, WriteBatch { ops, epoch: 1 }))
        .await
        .expect_err("the big object is refused");
    let StoreError::Rejected { name, reason, .. } = &error else {
        panic!("expected Rejected, got {error}");
    };
    assert_eq!(name, "big");
    assert!(reason.contains("max_request_bytes"), "{reason}");
    assert!(!error.is_transient(), "not retried");
    assert_eq!(
        store.count(&kind).await.expect("count"),
        2,
        "a and b stored"
    );
    assert_eq!(store.get(&kind, "ns", "big").await.expect("get"), None);
}

/// Names that would break the key layout are refused, not stored under another object's key.
#[tokio::test]
async fn slashes_in_names_are_rejected() {
    let store = shared_store("/slash");
    let kind = sample_kind("Slashes");
    timed("register", store.register(&kind))
        .await
        .expect("register");
    let ops = vec![WriteOp::Upsert(sample_object("a/b", "c", "1"))];
    let error = store
        .write(&kind, WriteBatch { ops, epoch: 1 })
        .await
        .expect_err("refused");
    assert!(matches!(error, StoreError::Rejected { .. }), "{error}");
    assert_eq!(store.count(&kind).await.expect("count"), 0);
}

/// With authentication on, the configured user and password work; a wrong password is an
/// `Unavailable` answer naming the cause, not a crash.
#[tokio::test]
async fn authentication_with_user_and_password() {
    let etcd = PrivateEtcd::start().await;
    etcd.etcdctl_ok(&["user", "add", "root:rootpw"]);
    etcd.etcdctl_ok(&["user", "add", "stowage:s3cret"]);
    etcd.etcdctl_ok(&["role", "add", "mirror"]);
    etcd.etcdctl_ok(&[
        "role",
        "grant-permission",
        "mirror",
        "--prefix=true",
        "readwrite",
        "/auth/",
    ]);
    etcd.etcdctl_ok(&["user", "grant-role", "stowage", "mirror"]);
    etcd.etcdctl_ok(&["auth", "enable"]);

    let settings = |password: &str| EtcdSettings {
        username: "stowage".into(),
        password: password.into(),
        ..EtcdSettings::new(vec![etcd.endpoint()], "/auth")
    };
    let store = EtcdStore::new(settings("s3cret"));
    let kind = sample_kind("Authenticated");
    timed("register", store.register(&kind))
        .await
        .expect("register with a password");
    let outcome = store
        .write(
            &kind,
            WriteBatch {
                ops: vec![WriteOp::Upsert(sample_object("ns", "a", "1"))],
                epoch: 1,
            },
        )
        .await
        .expect("write as stowage");
    assert_eq!(outcome.changed, 1);
    let feed = store
        .changes(Some(&kind), 0, 10)
        .await
        .expect("feed as stowage");
    assert_eq!(feed.len(), 1);
    let read = etcd.etcdctl_ok(&[
        "--user=stowage:s3cret",
        "get",
        "--prefix",
        "--keys-only",
        "/auth/",
    ]);
    assert!(
        read.contains("/auth/conformance.stowage.dev/v1/Authenticated/ns/a"),
        "{read}"
    );

    let wrong = EtcdStore::new(settings("wrong"));
    let error = timed("wrong password", wrong.register(&kind))
        .await
        .expect_err("refused");
    assert!(error.is_transient(), "{error}");
    assert!(
        error.to_string().contains("authentication failed"),
        "names the cause: {error}"
    );
    let anonymous = store_on(&etcd, "/auth");
    let error = timed("anonymous", anonymous.register(&kind))
        .await
        .expect_err("refused");
    assert!(error.is_transient(), "{error}");
}

/// etcd down at start: calls answer `Unavailable` within the dial timeout; once etcd is up the
/// same store works.
#[tokio::test]
async fn etcd_down_at_start() {
    let mut etcd = PrivateEtcd::start().await;
    etcd.stop();
    let store = EtcdStore::new(EtcdSettings {
        dial_timeout: Duration::from_secs(1),
        ..EtcdSettings::new(vec![etcd.endpoint()], "/kubernetes")
    });
    let kind = sample_kind("LateEtcd");
    let error = timed("register while down", store.register(&kind))
        .await
        .expect_err("down");
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error}");
    etcd.resume().await;
    let registered = retry("register after start", || store.register(&kind)).await;
    let () = registered;
    let outcome = store
        .write(
            &kind,
            WriteBatch {
                ops: vec![WriteOp::Upsert(sample_object("ns", "a", "1"))],
                epoch: 1,
            },
        )
        .await
        .expect("write");
    assert_eq!(outcome.changed, 1);
}

/// Retries a transient failure like the mirror's breaker does, for up to 30 s.
async fn retry<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match call().await {
            Ok(value) => return value,
            Err(error) if error.is_transient() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("{what}: {error}"),
        }
    }
}

/// etcd killed and restarted in the middle of a sync: writes fail as `Unavailable` while it is
/// down, retried batches complete after the restart, nothing is lost or duplicated, and the feed
/// and sweep work on the same store instance.
#[tokio::test]
async fn restart_during_a_sync() {
    let mut etcd = PrivateEtcd::start().await;
    let store = store_on(&etcd, "/kubernetes");
    let kind = sample_kind("Restarted");
    timed("register", store.register(&kind))
        .await
        .expect("register");
    let start = store.revision().await.expect("revision");
    let batch = |b: usize| WriteBatch {
        ops: (0..50)
            .map(|i| WriteOp::Upsert(sample_object("ns", &format!("b{b:02}-{i:02}"), "1")))
            .collect(),
        epoch: 2,
    };
    let mut failures = 0;
    for b in 0..20 {
        if b == 8 {
            etcd.stop();
        }
        if b == 8 {
            match store.write(&kind, batch(b)).await {
                Err(StoreError::Unavailable { .. }) => failures += 1,
                other => panic!("write while etcd is down: {other:?}"),
            }
            etcd.resume().await;
        }
        retry("write after restart", || store.write(&kind, batch(b))).await;
    }
    assert_eq!(
        failures, 1,
        "the write during the outage failed as Unavailable"
    );
    assert_eq!(
        store.count(&kind).await.expect("count"),
        1000,
        "every object stored"
    );
    let feed = retry("feed", || store.changes(Some(&kind), start, usize::MAX)).await;
    assert_eq!(
        feed.len(),
        1000,
        "one Added change per object, none duplicated"
    );
    // A leftover from before the relist is swept on the same store after the restart.
    store
        .write(
            &kind,
            WriteBatch {
                ops: vec![WriteOp::Upsert(sample_object("ns", "stale", "1"))],
                epoch: 1,
            },
        )
        .await
        .expect("stale write");
    assert_eq!(store.sweep(&kind, 2).await.expect("sweep"), 1);
    assert_eq!(store.count(&kind).await.expect("count"), 1000);
}

/// Two mirrors sharing one etcd under different prefixes (one a string prefix of the other) see
/// only their own objects and changes.
#[tokio::test]
async fn mirrors_with_different_prefixes_share_one_etcd() {
    let etcd = PrivateEtcd::start().await;
    let a = store_on(&etcd, "/mirror");
    let b = store_on(&etcd, "/mirror-b");
    let kind = sample_kind("Shared");
    for store in [&a, &b] {
        timed("register", store.register(&kind))
            .await
            .expect("register");
    }
    put(&a, &kind, sample_object("ns", "only-a", "1"))
        .await
        .expect("write a");
    put(&b, &kind, sample_object("ns", "only-b", "1"))
        .await
        .expect("write b");
    put(&b, &kind, sample_object("ns", "also-b", "1"))
        .await
        .expect("write b");
    assert_eq!(a.count(&kind).await.expect("count a"), 1);
    assert_eq!(b.count(&kind).await.expect("count b"), 2);
    let feed_a = a.changes(None, 0, 100).await.expect("feed a");
    let names: Vec<&str> = feed_a.iter().map(|c| c.object.name.as_str()).collect();
    assert_eq!(names, ["only-a"], "mirror a's feed");
    let feed_b = b.changes(None, 0, 100).await.expect("feed b");
    assert_eq!(feed_b.len(), 2, "mirror b's feed");
    assert!(
        feed_b[0].revision > feed_a[0].revision,
        "one revision sequence, with gaps"
    );
}

/// `storage.type: etcd` builds the etcd store without contacting etcd, so an unreachable etcd
/// at start is an `Unavailable` answer the mirror retries, not a failed start.
#[tokio::test]
async fn operator_builds_the_etcd_store_while_etcd_is_down() {
    let mut config = stowage::config::Config::default();
    config.storage.kind = stowage::config::StorageType::Etcd;
    config.storage.etcd.endpoints = vec!["http://127.0.0.1:9".into()];
    config.storage.etcd.dial_timeout = Duration::from_millis(500);
    let store = stowage::operator::build_store(&config).expect("built while etcd is down");
    assert_eq!(store.backend(), "etcd");
    let error = timed("register", store.register(&sample_kind("Down")))
        .await
        .expect_err("etcd is down");
    assert!(error.is_transient(), "retried by the mirror: {error}");
}

/// The change feed answered from the follower's recent events equals the answer of a watch
/// opened from the same revision (a second store on the same prefix, whose follower started
/// after the writes, has to open one), for every `since`, with and without a kind and a limit.
#[tokio::test]
async fn feed_from_memory_matches_a_watch() {
    let store = shared_store("/recent");
    let pods = sample_kind("RecentA");
    let jobs = sample_kind("RecentB");
    for kind in [&pods, &jobs] {
        timed("register", store.register(kind))
            .await
            .expect("register");
    }
    // The first feed read starts the follower in the background: wait until a feed answer comes
    // from memory. Each probe is a new revision (the follower holds what came after its start).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut probe = 0u32;
    let start = loop {
        probe += 1;
        let written = put(
            &store,
            &pods,
            sample_object("ns", "probe", &probe.to_string()),
        )
        .await
        .expect("probe write");
        let answered = store.feed_answers_from_memory();
        timed("probe feed", store.changes(None, written.revision - 1, 10))
            .await
            .expect("probe feed");
        if store.feed_answers_from_memory() > answered {
            break written.revision;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the follower never answered"
        );
    };
    let mut revisions = vec![start];
    for round in 0..6u32 {
        let kind = if round % 2 == 0 { &pods } else { &jobs };
        let mut ops: Vec<WriteOp> = (0..(round * 7 + 3))
            .map(|i| {
                let rv = (round + 2).to_string();
                WriteOp::Upsert(sample_object("ns", &format!("o{i}"), &rv))
            })
            .collect();
        if round > 1 {
            ops.push(delete("ns", "o0"));
        }
        let outcome = timed("write", store.write(kind, WriteBatch { ops, epoch: 1 }))
            .await
            .expect("write");
        revisions.push(outcome.revision);
    }
    let from_memory = store.feed_answers_from_memory();
    let other = shared_store_at(&store);
    for kind in [&pods, &jobs] {
        timed("register", other.register(kind))
            .await
            .expect("register on the second store");
    }
    let mut queries = 0;
    for &since in &revisions[..revisions.len() - 1] {
        for kind in [None, Some(&pods), Some(&jobs)] {
            for limit in [1, 5, usize::MAX] {
                let mine = timed("memory feed", store.changes(kind, since, limit))
                    .await
                    .expect("memory feed");
                let theirs = timed("watch feed", other.changes(kind, since, limit))
                    .await
                    .expect("watch feed");
                let key = |c: &stowage::store::Change| {
                    (
                        c.revision,
                        c.change,
                        c.object.name.clone(),
                        c.object.resource_version.clone(),
                    )
                };
                assert_eq!(
                    mine.iter().map(key).collect::<Vec<_>>(),
                    theirs.iter().map(key).collect::<Vec<_>>(),
                    "since {since}, kind {:?}, limit {limit}",
                    kind.map(KindSpec::id)
                );
                queries += 1;
            }
        }
    }
    assert_eq!(
        store.feed_answers_from_memory() - from_memory,
        queries,
        "every answer of the first store came from memory"
    );
    assert_eq!(
        other.feed_answers_from_memory(),
        0,
        "the second store's follower started after the writes"
    );
}

/// A second store on the same etcd prefix as `store`.
fn shared_store_at(store: &EtcdStore) -> EtcdStore {
    let prefix = store.layout().root();
    EtcdStore::new(EtcdSettings::new(
        vec!["http://127.0.0.1:2379".into()],
        prefix.trim_end_matches('/'),
    ))
}

/// The follower watch streams every written value back from etcd, so it runs only while the
/// change feed is read: a store nobody reads from does not watch; a subscription starts the
/// watch, and changes written by another store on the same prefix then wake the subscriber.
#[tokio::test]
async fn the_follower_watches_only_while_the_feed_is_read() {
    let store = shared_store("/demand");
    let kind = sample_kind("Demand");
    timed("register", store.register(&kind))
        .await
        .expect("register");
    for i in 0..3 {
        put(&store, &kind, sample_object("ns", &format!("o{i}"), "1"))
            .await
            .expect("write");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!store.is_following(), "nobody reads the feed: no watch");
    let mut subscription = store.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !store.is_following() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a subscription starts the follower"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    subscription.borrow_and_update();
    // Only the follower hears another process's writes.
    let other = shared_store_at(&store);
    timed("register", other.register(&kind))
        .await
        .expect("register on the second store");
    let written = put(&other, &kind, sample_object("ns", "elsewhere", "1"))
        .await
        .expect("write elsewhere");
    timed("wake", subscription.wait_for(|at| *at >= written.revision))
        .await
        .expect("the subscriber is woken by the other store's write");
    let changes = timed("feed", store.changes(Some(&kind), written.revision - 1, 10))
        .await
        .expect("feed");
    let names: Vec<&str> = changes.iter().map(|c| c.object.name.as_str()).collect();
    assert_eq!(names, ["elsewhere"]);
}
