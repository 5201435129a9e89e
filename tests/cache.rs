//! The read cache against real Redis (127.0.0.1:6379, a fresh key prefix per test; one test runs
//! its own `redis-server` to stop and restart it): hits and misses per tier, TTL expiry,
//! invalidation of updates and deletes, two replicas sharing Redis, Redis going away and coming
//! back, foreign values in Redis, and stale answers while the store's breaker is open.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stowage::api::{ApiState, CACHE_HEADER, STALE_HEADER, router};
use stowage::cache::{Cache, CacheMetrics};
use stowage::config::CacheConfig;
use stowage::metrics::Metrics;
use stowage::mirror::health::{BreakerHealth, BreakerState, MirrorHealth};
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

const TIMEOUT: Duration = Duration::from_secs(30);
/// How soon a change must be visible through every replica's cache.
const INVALIDATION_BOUND: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn pods() -> KindSpec {
    KindSpec {
        group: String::new(),
        version: "v1".into(),
        kind: "Pod".into(),
        plural: "pods".into(),
        namespaced: true,
        prune: vec![],
        keep_secret_data: false,
        columns: vec![ColumnSpec {
            name: "phase".into(),
            path: ".status.phase".into(),
            column_type: ColumnType::String,
            index: true,
        }],
    }
}

fn pod(name: &str, version: &str, phase: &str) -> MirrorObject {
    MirrorObject {
        namespace: "shop".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        resource_version: version.into(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        created_at: None,
        columns: BTreeMap::from([("phase".to_string(), json!(phase))]),
        object: json!({
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "resourceVersion": version},
            "status": {"phase": phase}
        }).into(),
    }
}

/// A memory store that counts reads and can be told to fail them (its change feed keeps working,
/// like a store whose queries time out while the mirror's writes are buffered).
struct Counted {
    inner: MemoryStore,
    reads: AtomicUsize,
    failing: AtomicBool,
}

impl Counted {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStore::new(10_000),
            reads: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
        })
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    fn read(&self) -> Result<(), StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable {
                message: "injected".into(),
                source: None,
            });
        }
        Ok(())
    }

    async fn put(&self, object: MirrorObject) {
        self.write_ops(vec![WriteOp::Upsert(object)]).await;
    }

    async fn write_ops(&self, ops: Vec<WriteOp>) {
        self.inner
            .write(&pods(), WriteBatch { ops, epoch: 1 })
            .await
            .expect("write");
    }
}

#[async_trait::async_trait]
impl Store for Counted {
    fn backend(&self) -> &'static str {
        "memory"
    }
    async fn register(&self, kind: &KindSpec) -> Result<(), StoreError> {
        self.inner.register(kind).await
    }
    async fn unregister(&self, kind: &KindSpec) -> Result<(), StoreError> {
        self.inner.unregister(kind).await
    }
    async fn write(&self, kind: &KindSpec, batch: WriteBatch) -> Result<WriteOutcome, StoreError> {
        self.inner.write(kind, batch).await
    }
    async fn sweep(&self, kind: &KindSpec, epoch: u64) -> Result<usize, StoreError> {
        self.inner.sweep(kind, epoch).await
    }
    async fn get(
        &self,
        kind: &KindSpec,
        namespace: &str,
        name: &str,
    ) -> Result<Option<MirrorObject>, StoreError> {
        self.read()?;
        self.inner.get(kind, namespace, name).await
    }
    async fn get_by_uid(
        &self,
        kind: &KindSpec,
        uid: &str,
    ) -> Result<Option<MirrorObject>, StoreError> {
        self.read()?;
        self.inner.get_by_uid(kind, uid).await
    }
    async fn list(&self, kind: &KindSpec, query: &ListQuery) -> Result<ListPage, StoreError> {
        self.read()?;
        self.inner.list(kind, query).await
    }
    async fn count(&self, kind: &KindSpec) -> Result<usize, StoreError> {
        self.read()?;
        self.inner.count(kind).await
    }
    async fn group_count(
        &self,
        kind: &KindSpec,
        by: &GroupBy,
    ) -> Result<BTreeMap<String, usize>, StoreError> {
        self.read()?;
        self.inner.group_count(kind, by).await
    }
    async fn column_sums(
        &self,
        kind: &KindSpec,
        columns: &[String],
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        self.read()?;
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
        self.read()?;
        self.inner.revision().await
    }
    fn subscribe(&self) -> watch::Receiver<Revision> {
        self.inner.subscribe()
    }
}

/// A store with pods `web-0..web-4`.
async fn seeded() -> Arc<Counted> {
    let store = Counted::new();
    store.register(&pods()).await.expect("register");
    let ops = (0..5)
        .map(|i| WriteOp::Upsert(pod(&format!("web-{i}"), "1", "Running")))
        .collect();
    store.write_ops(ops).await;
    store
}

/// A cache configuration with its own key prefix, Redis on `redis` (or none).
fn config(prefix: &str, redis: Option<u16>) -> CacheConfig {
    let mut config = CacheConfig {
        key_prefix: prefix.into(),
        ..CacheConfig::default()
    };
    if let Some(port) = redis {
        config.redis.enabled = true;
        config.redis.address = format!("127.0.0.1:{port}");
    }
    config
}

fn prefix() -> String {
    format!("stowage-test-{}-{}", std::process::id(), uuid_like(),)
}

fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    format!("{:016x}", hasher.finish())
}

/// One API replica: its cache, served over HTTP.
struct Replica {
    base: String,
    client: reqwest::Client,
    cache: Cache,
    health: MirrorHealth,
    metrics: Metrics,
    shutdown: Shutdown,
    _kinds: watch::Sender<Arc<Kinds>>,
}

/// An answer: status, body, the cache header and the stale headers.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    cache: String,
    stale: Option<String>,
    age: Option<u64>,
}

impl Replica {
    /// `follow`: this replica's mirror sees the store's changes (otherwise only pub/sub tells it).
    async fn start(store: Arc<Counted>, config: &CacheConfig, follow: bool) -> Self {
        let metrics = Metrics::new().expect("metrics");
        let cache = Cache::new(
            config,
            CacheMetrics::register(&metrics).expect("cache metrics"),
        )
        .expect("cache");
        let (kinds, receiver) = watch::channel(Arc::new(Kinds::new([pods()])));
        let shutdown = Shutdown::new();
        if follow {
            cache.follow(store.clone(), receiver.clone(), shutdown.clone());
        }
        cache.listen(shutdown.clone());
        let health = MirrorHealth::new("memory");
        let state = ApiState::new(store, receiver, health.clone())
            .with_shutdown(shutdown.clone())
            .with_cache(cache.clone());
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = ServerBuilder::new(metrics.clone(), Health::new())
            .merge(router(state))
            .build();
        let stop = shutdown.wait_owned();
        tokio::spawn(async move { server::serve(listener, app, stop).await.expect("serve") });
        Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            cache,
            health,
            metrics,
            shutdown,
            _kinds: kinds,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let cache = header(CACHE_HEADER).unwrap_or_default();
        let stale = header(STALE_HEADER);
        let age = header("age").and_then(|v| v.parse().ok());
        let status = response.status().as_u16();
        let body = response.json().await.expect("JSON body");
        Answer {
            status,
            body,
            cache,
            stale,
            age,
        }
    }

    /// Waits (bounded) until the pub/sub listener is subscribed.
    async fn subscribed(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.cache.is_subscribed() {
            assert!(Instant::now() < deadline, "never subscribed to Redis");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn status(&self) -> Value {
        self.get("/api/v1/status").await.body["cache"].clone()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Polls `path` on `replica` until `done` holds, failing after `bound`; returns how long it took.
async fn within(
    bound: Duration,
    replica: &Replica,
    path: &str,
    done: impl Fn(&Answer) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let answer = replica.get(path).await;
        if done(&answer) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < bound,
            "{path} still {answer:?} after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

const WEB0: &str = "/api/v1/namespaces/shop/pods/web-0";
const LIST: &str = "/api/v1/pods?sort=name&limit=10";

fn version(answer: &Answer) -> &str {
    answer.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
}

async fn redis_connection(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis")
}

/// `promtool check metrics` accepts `text` (skipped when promtool is not installed).
async fn promtool_check(text: &str) {
    use tokio::io::AsyncWriteExt;
    let Some(promtool) = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!("promtool not installed; skipping");
        return;
    };
    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(text.as_bytes())
        .await
        .expect("write metrics");
    drop(stdin);
    let out = child.wait_with_output().await.expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn l1_hits_after_a_miss_and_expires_after_its_ttl() {
    timeout(TIMEOUT, async {
        let store = seeded().await;
        let mut config = config(&prefix(), None);
        config.ttl.list = Some(Duration::from_millis(300));
        let replica = Replica::start(store.clone(), &config, true).await;

        let first = replica.get(LIST).await;
        assert_eq!((first.status, first.cache.as_str()), (200, "miss"));
        assert_eq!(first.body["total"], 5);
        let reads = store.reads();
        let second = replica.get(LIST).await;
        assert_eq!(second.cache, "hit-l1");
        assert_eq!(second.body, first.body, "a hit serves the same document");
        assert_eq!(store.reads(), reads, "a hit does not touch the store");
        // Other parameters are another key.
        assert_eq!(
            replica.get("/api/v1/pods?limit=10&sort=name").await.cache,
            "hit-l1"
        );
        assert_eq!(
            replica.get("/api/v1/pods?sort=name&limit=2").await.cache,
            "miss"
        );

        // Objects use the default TTL (300 s) and stay cached meanwhile.
        assert_eq!(replica.get(WEB0).await.cache, "miss");
        tokio::time::sleep(Duration::from_millis(350)).await;
        let expired = replica.get(LIST).await;
        assert_eq!(expired.cache, "miss", "the list TTL has passed");
        assert_eq!(replica.get(WEB0).await.cache, "hit-l1");

        let status = replica.status().await;
        assert_eq!(status["enabled"], true);
        assert!(status["l2"].is_null(), "no Redis configured: {status}");
        assert!(
            status["hitRate"]
                .as_f64()
                .is_some_and(|r| r > 0.0 && r < 1.0)
        );
        let text = replica.metrics.encode().expect("metrics");
        assert!(
            text.contains(
                r#"stowage_cache_requests_total{family="list",result="hit",tier="l1"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"stowage_cache_store_queries_total{family="list"} 3"#));
        assert!(text.contains("stowage_cache_redis_up 0"));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_second_replica_hits_l2_then_its_own_l1() {
    timeout(TIMEOUT, async {
        let store = seeded().await;
        let config = config(&prefix(), Some(6379));
        let a = Replica::start(store.clone(), &config, true).await;
        let b = Replica::start(store.clone(), &config, true).await;

        for path in [
            LIST,
            WEB0,
            "/api/v1/pods/uid-web-1",
            "/api/v1/stats/overview",
            "/api/v1/resources",
        ] {
            let first = a.get(path).await;
            assert_eq!(
                (first.status, first.cache.as_str()),
                (200, "miss"),
                "{path}"
            );
            let reads = store.reads();
            let from_redis = b.get(path).await;
            assert_eq!(from_redis.cache, "hit-l2", "{path}");
            assert_eq!(from_redis.body, first.body, "{path}");
            assert_eq!(b.get(path).await.cache, "hit-l1", "{path}");
            assert_eq!(store.reads(), reads, "{path}: answered without the store");
        }
        let status = b.status().await;
        assert_eq!(status["l2"]["hits"], 5);
        assert_eq!(status["l2"]["redis"]["up"], true);
        let text = b.metrics.encode().expect("metrics");
        for line in [
            r#"stowage_cache_requests_total{family="object",result="hit",tier="l2"} 2"#,
            r#"stowage_cache_requests_total{family="list",result="hit",tier="l1"} 1"#,
            "stowage_cache_redis_up 1",
            r#"stowage_cache_redis_duration_seconds_count{operation="get"}"#,
            "stowage_cache_l1_entries",
            "stowage_cache_l1_bytes",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        promtool_check(&text).await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn updates_and_deletes_invalidate_objects_lists_and_stats_within_the_bound() {
    timeout(TIMEOUT, async {
        let store = seeded().await;
        let replica = Replica::start(store.clone(), &config(&prefix(), Some(6379)), true).await;
        for path in [
            WEB0,
            LIST,
            "/api/v1/stats/overview",
            "/api/v1/pods/uid-web-0",
        ] {
            replica.get(path).await;
            assert_eq!(replica.get(path).await.cache, "hit-l1", "{path}");
        }

        store.put(pod("web-0", "2", "Failed")).await;
        let took = within(INVALIDATION_BOUND, &replica, WEB0, |a| version(a) == "2").await;
        println!("update visible after {took:?}");
        within(
            INVALIDATION_BOUND,
            &replica,
            "/api/v1/pods/uid-web-0",
            |a| version(a) == "2",
        )
        .await;
        within(INVALIDATION_BOUND, &replica, LIST, |a| {
            a.body["items"][0]["status"]["phase"] == "Failed"
        })
        .await;

        store
            .write_ops(vec![WriteOp::Delete {
                namespace: "shop".into(),
                name: "web-0".into(),
            }])
            .await;
        within(INVALIDATION_BOUND, &replica, WEB0, |a| a.status == 404).await;
        within(INVALIDATION_BOUND, &replica, LIST, |a| a.body["total"] == 4).await;
        within(
            INVALIDATION_BOUND,
            &replica,
            "/api/v1/stats/overview",
            |a| a.body["objects"] == 4,
        )
        .await;
        // Not-found answers are not cached: the object comes back as soon as it is written.
        store.put(pod("web-0", "3", "Running")).await;
        within(INVALIDATION_BOUND, &replica, WEB0, |a| version(a) == "3").await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn replicas_sharing_redis_see_each_others_invalidations() {
    timeout(TIMEOUT, async {
        let store = seeded().await;
        let config = config(&prefix(), Some(6379));
        // Only `a`'s mirror sees the change; `b` hears about it on pub/sub.
        let a = Replica::start(store.clone(), &config, true).await;
        let b = Replica::start(store.clone(), &config, false).await;
        a.subscribed().await;
        b.subscribed().await;
        for path in [WEB0, LIST] {
            a.get(path).await;
            b.get(path).await;
            assert_eq!(b.get(path).await.cache, "hit-l1", "{path}");
        }

        store.put(pod("web-0", "2", "Failed")).await;
        let took = within(INVALIDATION_BOUND, &b, WEB0, |a| version(a) == "2").await;
        println!("other replica saw the update after {took:?}");
        within(INVALIDATION_BOUND, &b, LIST, |a| {
            a.body["items"][0]["status"]["phase"] == "Failed"
        })
        .await;
        // And `b` caches the new state again.
        assert_eq!(b.get(WEB0).await.cache, "hit-l1");
        assert_eq!(version(&b.get(WEB0).await), "2");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn malformed_or_foreign_values_in_redis_are_misses() {
    timeout(TIMEOUT, async {
        let store = seeded().await;
        let prefix = prefix();
        let replica = Replica::start(store.clone(), &config(&prefix, Some(6379)), true).await;
        let mut redis = redis_connection(6379).await;
        let key = format!("{prefix}:core/v1/Pod:obj:shop:web-0");
        let uid_key = format!("{prefix}:core/v1/Pod:uid:uid-web-1");
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("not ours")
            .query_async(&mut redis)
            .await
            .expect("set");
        // Our magic, but truncated.
        let _: () = redis::cmd("SET")
            .arg(&uid_key)
            .arg(b"STC1\x00\x01".as_slice())
            .query_async(&mut redis)
            .await
            .expect("set");
        // A counter that is not a number.
        let _: () = redis::cmd("SET")
            .arg(format!("{prefix}:core/v1/Pod:gen"))
            .arg("many")
            .query_async(&mut redis)
            .await
            .expect("set");

        let answer = replica.get(WEB0).await;
        assert_eq!((answer.status, answer.cache.as_str()), (200, "miss"));
        assert_eq!(version(&answer), "1");
        let by_uid = replica.get("/api/v1/pods/uid-web-1").await;
        assert_eq!((by_uid.status, by_uid.cache.as_str()), (200, "miss"));
        assert_eq!(by_uid.body["metadata"]["name"], "web-1");
        let list = replica.get(LIST).await;
        assert_eq!((list.status, list.body["total"].clone()), (200, json!(5)));

        // The foreign value was replaced by a real one that another replica can use.
        let raw: Vec<u8> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .expect("get");
        assert!(
            raw.starts_with(b"STC1"),
            "{:?}",
            String::from_utf8_lossy(&raw)
        );
        let other = Replica::start(store.clone(), &config(&prefix, Some(6379)), true).await;
        assert_eq!(other.get(WEB0).await.cache, "hit-l2");
        // A value of another type (a list) under a key is a miss too, and Redis stays up.
        let list_key = format!("{prefix}:core/v1/Pod:obj:shop:web-2");
        let _: () = redis::cmd("RPUSH")
            .arg(&list_key)
            .arg("x")
            .query_async(&mut redis)
            .await
            .expect("rpush");
        let typed = replica.get("/api/v1/namespaces/shop/pods/web-2").await;
        assert_eq!((typed.status, typed.cache.as_str()), (200, "miss"));
        // Invalidation still works with the counter repaired: it jumps past any count so far.
        store.put(pod("web-0", "2", "Failed")).await;
        within(INVALIDATION_BOUND, &other, WEB0, |a| version(a) == "2").await;
        let generation: String = redis::cmd("GET")
            .arg(format!("{prefix}:core/v1/Pod:gen"))
            .query_async(&mut redis)
            .await
            .expect("get");
        assert!(
            generation.parse::<u64>().is_ok_and(|g| g > 1_000_000),
            "{generation}"
        );
        let status = replica.status().await;
        assert_eq!(
            status["l2"]["redis"]["up"], true,
            "a foreign value is no Redis outage: {status}"
        );
        assert_eq!(status["l2"]["pendingInvalidations"], 0, "{status}");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn an_open_store_breaker_serves_cached_answers_marked_stale() {
    timeout(TIMEOUT, async {
        let store = seeded().await;
        let mut config = config(&prefix(), None);
        config.ttl.object = Some(Duration::from_millis(200));
        let replica = Replica::start(store.clone(), &config, true).await;
        assert_eq!(replica.get(WEB0).await.cache, "miss");
        let fresh = replica.get(WEB0).await;
        assert_eq!(
            (fresh.cache.as_str(), fresh.stale.as_deref()),
            ("hit-l1", None)
        );

        replica.health.set_breaker(BreakerHealth {
            state: BreakerState::Open,
            consecutive_failures: 5,
            last_error: Some("store down".into()),
            buffered: 10,
        });
        let stale = replica.get(WEB0).await;
        assert_eq!(stale.status, 200);
        assert_eq!(stale.cache, "hit-l1");
        assert_eq!(stale.stale.as_deref(), Some("true"));
        assert!(stale.age.is_some(), "Age header: {stale:?}");

        // Past its TTL and the store failing: still answered, marked stale, rather than a 503.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        store.failing.store(true, Ordering::SeqCst);
        replica.health.set_breaker(BreakerHealth {
            state: BreakerState::Closed,
            consecutive_failures: 0,
            last_error: None,
            buffered: 0,
        });
        let old = replica.get(WEB0).await;
        assert_eq!((old.status, old.stale.as_deref()), (200, Some("true")));
        assert!(old.age.is_some_and(|age| age >= 1), "{old:?}");
        assert_eq!(version(&old), "1");
        // Nothing cached for this one: the store's error stands.
        let uncached = replica.get("/api/v1/namespaces/shop/pods/web-3").await;
        assert_eq!(uncached.status, 503);
        assert_eq!(replica.status().await["staleServed"], 2);
    })
    .await
    .expect("timed out");
}

/// A `redis-server` of this test's own, on a free port, that can be stopped and started again.
struct PrivateRedis {
    port: u16,
    child: Option<tokio::process::Child>,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut redis = Self { port, child: None };
        redis.resume().await;
        redis
    }

    async fn resume(&mut self) {
        let child = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("stop redis-server");
        }
    }
}

#[tokio::test]
async fn redis_stopped_and_restarted_mid_run() {
    timeout(TIMEOUT, async {
        let mut redis = PrivateRedis::start().await;
        let store = seeded().await;
        let mut config = config(&prefix(), Some(redis.port));
        config.redis.timeout = Duration::from_millis(100);
        let replica = Replica::start(store.clone(), &config, true).await;
        replica.subscribed().await;
        assert_eq!(replica.get(WEB0).await.cache, "miss");
        assert_eq!(replica.get(WEB0).await.cache, "hit-l1");

        redis.stop().await;
        // A change while Redis is gone still reaches this replica's L1 ...
        store.put(pod("web-0", "2", "Failed")).await;
        within(INVALIDATION_BOUND, &replica, WEB0, |a| version(a) == "2").await;
        // ... and every request is answered (L1 and the store), quickly once the breaker opened.
        for i in 0..20 {
            let answer = replica
                .get(&format!("/api/v1/pods?limit={}", i % 5 + 1))
                .await;
            assert_eq!(answer.status, 200, "{answer:?}");
        }
        let down = replica.status().await;
        assert_eq!(down["l2"]["redis"]["up"], false, "{down}");
        assert!(down["l2"]["redis"]["lastError"].is_string(), "{down}");
        let started = Instant::now();
        assert_eq!(replica.get("/api/v1/pods?limit=7").await.status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "no Redis timeout per request once the breaker is open"
        );
        let text = replica.metrics.encode().expect("metrics");
        assert!(text.contains("stowage_cache_redis_up 0"), "{text}");
        assert!(text.contains("stowage_cache_redis_errors_total{"), "{text}");

        redis.resume().await;
        // Back: the breaker closes, the missed invalidation is replayed, L2 fills again.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = replica.status().await;
            if status["l2"]["redis"]["up"] == true && status["l2"]["pendingInvalidations"] == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "Redis never came back: {status}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        replica.subscribed().await;
        let path = "/api/v1/namespaces/shop/pods/web-1";
        within(Duration::from_secs(5), &replica, path, |a| {
            a.cache == "miss"
        })
        .await;
        let other = Replica::start(store.clone(), &config, true).await;
        assert_eq!(other.get(path).await.cache, "hit-l2");
        let current = other.get(WEB0).await;
        assert_eq!(
            version(&current),
            "2",
            "no stale value from before the outage"
        );
        redis.stop().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn redis_comes_back_into_use_without_pending_invalidations() {
    timeout(TIMEOUT, async {
        let mut redis = PrivateRedis::start().await;
        let store = seeded().await;
        let mut config = config(&prefix(), Some(redis.port));
        config.redis.timeout = Duration::from_millis(100);
        let replica = Replica::start(store.clone(), &config, true).await;
        replica.subscribed().await;
        assert_eq!(replica.get(WEB0).await.cache, "miss");

        // Redis goes away while nothing changes: reads keep working and open its breaker.
        redis.stop().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut i = 0;
        while replica.status().await["l2"]["redis"]["up"] == true {
            assert!(Instant::now() < deadline, "the breaker never opened");
            i += 1;
            let answer = replica
                .get(&format!("/api/v1/pods?limit={}", i % 5 + 1))
                .await;
            assert_eq!(answer.status, 200);
        }
        assert_eq!(replica.status().await["l2"]["pendingInvalidations"], 0);

        // Back: reads alone probe it and close the breaker again.
        redis.resume().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while replica.status().await["l2"]["redis"]["up"] != true {
            assert!(Instant::now() < deadline, "Redis never came back into use");
            i += 1;
            let answer = replica
                .get(&format!("/api/v1/pods?limit={}", i % 5 + 1))
                .await;
            assert_eq!(answer.status, 200);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let path = "/api/v1/namespaces/shop/pods/web-4";
        assert_eq!(replica.get(path).await.cache, "miss");
        let other = Replica::start(store.clone(), &config, true).await;
        assert_eq!(
            other.get(path).await.cache,
            "hit-l2",
            "the value was written to Redis"
        );
        redis.stop().await;
    })
    .await
    .expect("timed out");
}
