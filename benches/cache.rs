//! Read cache benchmark, three parts:
//! 1. a hot list request end to end over HTTP answered from L1, beside the same list with the
//!    cache disabled and the server's trivial `/healthz`;
//! 2. an L2 hit (L1 emptied before each call, so the whole path runs: Redis GET, decode, L1
//!    fill, metrics) beside a raw Redis GET of the same value, alternated in the same run;
//! 3. a skewed (Zipf, s = 1) read mix over objects and list queries with a writer updating hot
//!    objects meanwhile: hit rate and store queries saved.
//!
//! Needs Redis on 127.0.0.1:6379 (`make services`); keys use a fresh `stowage-bench-*` prefix.
//! Run with `cargo bench -p stowage --bench cache`; `BENCH_OBJECTS`, `BENCH_REQUESTS`,
//! `BENCH_SAMPLES`, `BENCH_REDIS` (host:port).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use stowage::api::{ApiState, CACHE_HEADER, router};
use stowage::cache::{Cache, CacheMetrics, Keys, LoadError};
use stowage::config::CacheConfig;
use stowage::metrics::Metrics;
use stowage::mirror::health::MirrorHealth;
use stowage::mirror::kind::KindSpec;
use stowage::mirror::object::to_mirror_object;
use stowage::mirror::registry::Kinds;
use stowage::server::{Health, ServerBuilder};
use stowage::shutdown::Shutdown;
use stowage::store::memory::MemoryStore;
use stowage::store::{Store, WriteBatch, WriteOp};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Latencies in microseconds.
struct Sample(Vec<f64>);

impl Sample {
    fn pct(&mut self, p: f64) -> f64 {
        self.0.sort_by(f64::total_cmp);
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0.get(i).copied().unwrap_or(0.0)
    }

    fn line(&mut self, label: &str) -> String {
        format!(
            "{label:<44} p50 {:>8.1} µs   p99 {:>8.1} µs   ({} samples)",
            self.pct(0.50),
            self.pct(0.99),
            self.0.len()
        )
    }
}

/// Tiny deterministic PRNG (xorshift64*) so runs draw the same request sequence.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Rank sampler for a Zipf distribution over `n` items with exponent `s`.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 1..=n {
            total += 1.0 / (rank as f64).powf(s);
            cdf.push(total);
        }
        Self(cdf.into_iter().map(|c| c / total).collect())
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.next_f64();
        self.0.partition_point(|&c| c < u).min(self.0.len() - 1)
    }
}

fn configmap(kind: &KindSpec, i: u64, version: u64) -> WriteOp {
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("app-{i:06}"), "namespace": format!("ns-{}", i % 10),
            "uid": format!("uid-{i}"), "resourceVersion": version.to_string(),
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"app": format!("app-{}", i % 20), "tier": if i.is_multiple_of(2) { "web" } else { "db" }}},
        "data": {"payload": "x".repeat(900)}});
    WriteOp::Upsert(to_mirror_object(kind, obj).expect("valid object"))
}

async fn serve(state: ApiState) -> String {
    let app = ServerBuilder::new(Metrics::new().expect("metrics"), Health::new())
        .merge(router(state))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}")
}

/// Sequential GETs of `url`; checks the cache header when `expect` is given.
async fn timed_gets(
    client: &reqwest::Client,
    url: &str,
    samples: u64,
    expect: Option<&str>,
) -> Sample {
    let mut out = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        let t = Instant::now();
        let response = client.get(url).send().await.expect("request");
        assert!(response.status().is_success(), "{url}");
        if let Some(expect) = expect {
            let header = response.headers().get(CACHE_HEADER).cloned();
            assert_eq!(header.as_ref().and_then(|h| h.to_str().ok()), Some(expect));
        }
        let _ = response.bytes().await.expect("body");
        out.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    Sample(out)
}

#[derive(Debug)]
struct Never;

impl LoadError for Never {
    fn is_unavailable(&self) -> bool {
        false
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let objects = env("BENCH_OBJECTS", 20_000);
    let samples = env("BENCH_SAMPLES", 20_000);
    let requests = env("BENCH_REQUESTS", 40_000);
    let redis_address =
        std::env::var("BENCH_REDIS").unwrap_or_else(|_| "127.0.0.1:6379".to_string());
    let kind = stowage::mirror::builtin::kinds()
        .into_iter()
        .find(|k| k.kind == "ConfigMap")
        .expect("ConfigMap is built in");
    let store = Arc::new(MemoryStore::new(100_000));
    store.register(&kind).await.expect("register");
    for chunk in (0..objects).collect::<Vec<_>>().chunks(1000) {
        let ops = chunk.iter().map(|&i| configmap(&kind, i, 1)).collect();
        store
            .write(&kind, WriteBatch { ops, epoch: 1 })
            .await
            .expect("write");
    }
    let (_kinds_tx, kinds) = tokio::sync::watch::channel(Arc::new(Kinds::new([kind.clone()])));
    let shutdown = Shutdown::new();

    let prefix = format!("stowage-bench-{}", std::process::id());
    let mut config = CacheConfig {
        key_prefix: prefix.clone(),
        ..CacheConfig::default()
    };
    config.redis.enabled = true;
    config.redis.address = redis_address.clone();
    let cache = Cache::new(&config, CacheMetrics::unregistered().expect("metrics")).expect("cache");
    cache.follow(store.clone(), kinds.clone(), shutdown.clone());
    cache.listen(shutdown.clone());
    let health = MirrorHealth::new("memory");
    let cached = serve(
        ApiState::new(store.clone(), kinds.clone(), health.clone()).with_cache(cache.clone()),
    )
    .await;
    let uncached = serve(ApiState::new(store.clone(), kinds.clone(), health.clone())).await;
    let client = reqwest::Client::new();
    println!("objects: {objects} ConfigMaps of ~1.1 KB; Redis {redis_address}; prefix {prefix}");

    // 1. Hot list, end to end over HTTP.
    let list = "/api/v1/configmaps?namespace=ns-3&labelSelector=tier%3Ddb&limit=50";
    let body = client
        .get(format!("{cached}{list}"))
        .send()
        .await
        .expect("probe")
        .bytes()
        .await
        .expect("body");
    println!("hot list: {list} ({} bytes)", body.len());
    let _ = timed_gets(&client, &format!("{cached}/healthz"), 2_000, None).await;
    let mut trivial = timed_gets(&client, &format!("{cached}/healthz"), samples, None).await;
    let mut l1 = timed_gets(&client, &format!("{cached}{list}"), samples, Some("hit-l1")).await;
    let mut store_only =
        timed_gets(&client, &format!("{uncached}{list}"), samples / 10, None).await;
    println!("{}", trivial.line("GET /healthz (same server)"));
    println!("{}", l1.line("hot list, L1 hit, end to end"));
    println!("{}", store_only.line("same list, cache disabled (store)"));

    // 2. L2 hit beside a raw GET of the same value, alternated.
    let mut raw = redis::Client::open(format!("redis://{redis_address}/"))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let keys = Keys::new(&prefix);
    for (label, key, value) in [
        (
            "object (~1.2 KB)",
            keys.object(&kind.id(), "ns-1", "app-000001"),
            Bytes::from(vec![b'o'; 1_200]),
        ),
        (
            "list page (~55 KB)",
            keys.object(&kind.id(), "ns-1", "bench-list"),
            body.clone(),
        ),
    ] {
        let filled = cache
            .serve(&key, false, || async { Ok::<_, Never>(value.clone()) })
            .await
            .expect("fill");
        assert_eq!(filled.body.len(), value.len());
        let (mut via_cache, mut via_raw) = (Vec::new(), Vec::new());
        for _ in 0..samples / 4 {
            cache.clear_l1();
            let t = Instant::now();
            let served = cache
                .serve(&key, false, || async { Ok::<_, Never>(Bytes::new()) })
                .await
                .expect("serve");
            via_cache.push(t.elapsed().as_nanos() as f64 / 1000.0);
            assert_eq!(served.source.as_str(), "hit-l2");
            let t = Instant::now();
            let got: Vec<u8> = redis::cmd("GET")
                .arg(&key.text)
                .query_async(&mut raw)
                .await
                .expect("raw get");
            via_raw.push(t.elapsed().as_nanos() as f64 / 1000.0);
            assert!(got.len() > value.len());
        }
        let (mut via_cache, mut via_raw) = (Sample(via_cache), Sample(via_raw));
        println!("{}", via_raw.line(&format!("raw Redis GET, {label}")));
        println!("{}", via_cache.line(&format!("cache L2 hit, {label}")));
        println!(
            "  ratio L2 hit / raw GET: p50 {:.2}×   p99 {:.2}×",
            via_cache.pct(0.50) / via_raw.pct(0.50),
            via_cache.pct(0.99) / via_raw.pct(0.99)
        );
    }

    // 3. Zipf read mix with a writer.
    let distinct_objects = 2_000usize;
    let paths: Vec<String> = (0..distinct_objects)
        .map(|i| format!("/api/v1/namespaces/ns-{}/configmaps/app-{i:06}", i % 10))
        .chain((0..200).map(|q| {
            format!(
                "/api/v1/configmaps?namespace=ns-{}&labelSelector=app%3Dapp-{}&limit=20",
                q % 10,
                (q * 7) % 20
            )
        }))
        .collect();
    // Shuffle ranks so lists and objects mix at every popularity.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut order: Vec<usize> = (0..paths.len()).collect();
    for i in (1..order.len()).rev() {
        let j = (rng.next_f64() * (i + 1) as f64) as usize;
        order.swap(i, j);
    }
    let zipf = Zipf::new(paths.len(), 1.0);
    let before = cache.status();
    let writer_store = store.clone();
    let writer_kind = kind.clone();
    let stop = Shutdown::new();
    let writer_stop = stop.clone();
    let writer = tokio::spawn(async move {
        let mut writes = 0u64;
        let mut version = 2;
        let mut rng = Rng(7);
        while !writer_stop.is_triggered() {
            // Updates among the objects read, hot ones as often as cold ones.
            let i = (rng.next_f64() * distinct_objects as f64) as u64;
            let ops = vec![configmap(&writer_kind, i, version)];
            writer_store
                .write(&writer_kind, WriteBatch { ops, epoch: 1 })
                .await
                .expect("write");
            version += 1;
            writes += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        writes
    });
    let started = Instant::now();
    let workers = 4;
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let client = client.clone();
            let base = cached.clone();
            let picks: Vec<String> = (0..requests / workers)
                .map(|_| paths[order[zipf.sample(&mut rng)]].clone())
                .collect();
            tokio::spawn(async move {
                for path in picks {
                    let response = client
                        .get(format!("{base}{path}"))
                        .send()
                        .await
                        .expect("request");
                    assert!(response.status().is_success(), "{path}");
                    let _ = response.bytes().await.expect("body");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("worker");
    }
    let elapsed = started.elapsed();
    stop.trigger();
    let writes = writer.await.expect("writer");
    let after = cache.status();
    let served = after.requests - before.requests;
    let store_queries = after.store_queries - before.store_queries;
    let l1_hits = after.l1.hits - before.l1.hits;
    let l2_hits =
        after.l2.as_ref().map_or(0, |l| l.hits) - before.l2.as_ref().map_or(0, |l| l.hits);
    println!(
        "Zipf s=1 over {} keys ({distinct_objects} objects, 200 list queries), {served} requests in {:.1} s, {writes} updates meanwhile",
        paths.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "  hit rate {:.1}% (L1 {:.1}%, L2 {:.1}%); store queries {store_queries} of {served} ({:.1}% saved)",
        100.0 * (l1_hits + l2_hits) as f64 / served as f64,
        100.0 * l1_hits as f64 / served as f64,
        100.0 * l2_hits as f64 / served as f64,
        100.0 * (served - store_queries) as f64 / served as f64
    );
    shutdown.trigger();
}
