//! REST list benchmark: `GET /api/v1/configmaps?namespace=..&labelSelector=..&search=..&limit=50`
//! over 100k mirrored objects, beside the same server's trivial `/healthz`, both driven by the
//! same in-process HTTP load (so the comparison shares every cost but the handler). Run with
//! `cargo bench -p stowage --bench rest_list`; `BENCH_OBJECTS`, `BENCH_SECONDS`, `BENCH_CONCURRENCY`.
//!
//! `BENCH_PROFILE=<n>` instead sends `n` `/healthz` then `n` list requests one after another and
//! calls [`stowage_bench_phase`] between the phases, for
//! `valgrind --tool=callgrind --dump-before=stowage_bench_phase` (one dump per phase).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use stowage::api::{ApiState, router};
use stowage::cache::{Cache, CacheMetrics};
use stowage::config::CacheConfig;
use stowage::metrics::Metrics;
use stowage::mirror::health::MirrorHealth;
use stowage::mirror::kind::KindSpec;
use stowage::mirror::object::to_mirror_object;
use stowage::mirror::registry::Kinds;
use stowage::server::{Health, ServerBuilder};
use stowage::store::memory::MemoryStore;
use stowage::store::{JsonPage, ListQuery, Store, WriteBatch, WriteOp};
use stowage_emulator::selectors::LabelSelector;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    requests: u64,
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

impl Run {
    fn pct(&mut self, p: f64) -> f64 {
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us.get(i).copied().unwrap_or(0) as f64 / 1000.0
    }

    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

async fn load(urls: Arc<Vec<String>>, concurrency: u64, seconds: u64) -> Run {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|w| {
            let client = client.clone();
            let urls = urls.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = w as usize;
                while Instant::now() < deadline {
                    let url = &urls[i % urls.len()];
                    i += concurrency as usize;
                    let t = Instant::now();
                    let resp = client.get(url).send().await.expect("request");
                    assert!(resp.status().is_success(), "{url}: {}", resp.status());
                    let _ = resp.bytes().await.expect("body");
                    lat.push(t.elapsed().as_micros() as u64);
                }
                lat
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.expect("worker"));
    }
    Run {
        requests: latencies_us.len() as u64,
        latencies_us,
        elapsed: started.elapsed(),
    }
}

/// CPU time of the calling thread (unaffected by waiting for a core on a busy machine).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given and nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The store's share of a list request in CPU time, for the same queries: `list_json` (what the
/// REST list calls) beside `list` plus encoding every object (what a backend without its own
/// `list_json` costs), one thread, no HTTP.
async fn store_cpu(store: &dyn Store, kind: &KindSpec, queries: &[ListQuery]) {
    for (label, raw) in [("list_json", true), ("list + encode", false)] {
        let mut samples = Vec::new();
        let mut returned = 0;
        for round in 0..5 {
            for query in queries {
                let started = thread_cpu();
                let bytes = if raw {
                    let page = store.list_json(kind, query).await.expect("list_json");
                    page.items.iter().map(|i| i.len()).sum::<usize>()
                } else {
                    let page = JsonPage::encode(store.list(kind, query).await.expect("list"))
                        .expect("encode");
                    page.items.iter().map(|i| i.len()).sum::<usize>()
                };
                returned += bytes;
                if round > 0 {
                    samples.push(thread_cpu() - started);
                }
            }
        }
        assert!(returned > 0, "the bench queries return objects");
        samples.sort_unstable();
        let pct = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
        println!(
            "store {label:<14} CPU per query: p50 {:.3} ms   p99 {:.3} ms",
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3
        );
    }
}

/// `list_json`'s median CPU for each of the three query shapes of [`bench_queries`] (query `q`
/// has shape `q % 3`), to show which one the store's time goes to.
async fn store_cpu_by_shape(store: &dyn Store, kind: &KindSpec, queries: &[ListQuery]) {
    let shapes = ["app+tier, 1 digit", "app, 2 digits", "tier, 2 digits"];
    for (shape, label) in shapes.iter().enumerate() {
        let mut samples = Vec::new();
        for round in 0..5 {
            for query in queries.iter().skip(shape).step_by(3) {
                let started = thread_cpu();
                let page = store.list_json(kind, query).await.expect("list_json");
                std::hint::black_box(page);
                if round > 0 {
                    samples.push(thread_cpu() - started);
                }
            }
        }
        samples.sort_unstable();
        println!(
            "store list_json CPU, {label:<18}: p50 {:.3} ms",
            samples[samples.len() / 2].as_secs_f64() * 1e3
        );
    }
}

/// 200 queries `(namespace, labelSelector, search)`, each matching some objects: a workload's
/// objects (`app` and `tier`, 250 per namespace) with a one-digit search, an app (500) with a
/// two-digit search, a whole tier (5 000) with a two-digit search. About half return a full page.
fn bench_queries() -> Vec<(String, String, String)> {
    (0..200_usize)
        .map(|q| {
            let app = format!("app-{}", (q * 7) % 20);
            let tier = if (q / 3) % 2 == 0 { "web" } else { "db" };
            let (selector, search) = match q % 3 {
                0 => (
                    format!("app={app},tier={tier}"),
                    format!("{}", (q * 3 + 1) % 10),
                ),
                1 => (
                    format!("app={app}"),
                    format!("{}{}", (q * 3) % 10, (q / 3) % 10),
                ),
                _ => (
                    format!("tier={tier}"),
                    format!("{}{}", (q / 3) % 10, (q * 7) % 10),
                ),
            };
            (format!("ns-{}", q % 10), selector, search)
        })
        .collect()
}

/// Prints how many objects the queries match and return (every query must match some).
async fn describe_matches(store: &dyn Store, kind: &KindSpec, queries: &[ListQuery]) {
    let mut totals = Vec::new();
    let mut full = 0;
    for query in queries {
        let page = store.list_json(kind, query).await.expect("list_json");
        assert!(page.total > 0, "every bench query matches objects");
        full += usize::from(page.items.len() == query.limit);
        totals.push(page.total);
    }
    totals.sort_unstable();
    println!(
        "{} queries: matches min {} median {} max {}; {full} return a full page",
        queries.len(),
        totals[0],
        totals[totals.len() / 2],
        totals[totals.len() - 1]
    );
}

/// Marks a phase boundary for callgrind's `--dump-before`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn stowage_bench_phase(phase: u32) {
    std::hint::black_box(phase);
}

/// `requests` sequential `/healthz` requests, then as many list requests, on one connection.
async fn profile(base: &str, list_urls: &[String], requests: usize) {
    let client = reqwest::Client::new();
    let healthz = format!("{base}/healthz");
    for url in [&healthz, &list_urls[0]] {
        let _ = client.get(url).send().await.expect("warm-up");
    }
    stowage_bench_phase(1);
    for _ in 0..requests {
        let resp = client.get(&healthz).send().await.expect("request");
        let _ = resp.bytes().await.expect("body");
    }
    stowage_bench_phase(2);
    for url in list_urls.iter().cycle().take(requests) {
        let resp = client.get(url).send().await.expect("request");
        assert!(resp.status().is_success());
        let _ = resp.bytes().await.expect("body");
    }
    stowage_bench_phase(3);
    println!("profiled {requests} /healthz and {requests} list requests");
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let objects = env("BENCH_OBJECTS", 100_000);
    let seconds = env("BENCH_SECONDS", 10);
    let concurrency = env("BENCH_CONCURRENCY", 8);
    let kind = stowage::mirror::builtin::kinds()
        .into_iter()
        .find(|k| k.kind == "ConfigMap")
        .expect("ConfigMap is built in");
    let store = Arc::new(MemoryStore::new(10_000));
    store.register(&kind).await.expect("register");
    let payload = "x".repeat(900);
    let mut batch = Vec::new();
    for i in 0..objects {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("app-{i:06}"), "namespace": format!("ns-{}", i % 10),
                "uid": format!("uid-{i}"), "resourceVersion": (i + 1).to_string(),
                "creationTimestamp": "2025-01-01T00:00:00Z",
                "labels": {"app": format!("app-{}", (i / 10) % 20),
                    "tier": if (i / 200) % 2 == 0 { "web" } else { "db" }}},
            "data": {"payload": payload}});
        batch.push(WriteOp::Upsert(
            to_mirror_object(&kind, obj).expect("valid object"),
        ));
        if batch.len() == 1000 {
            store
                .write(
                    &kind,
                    WriteBatch {
                        ops: std::mem::take(&mut batch),
                        epoch: 1,
                    },
                )
                .await
                .expect("write");
        }
    }
    if !batch.is_empty() {
        store
            .write(
                &kind,
                WriteBatch {
                    ops: batch,
                    epoch: 1,
                },
            )
            .await
            .expect("write");
    }
    let (_tx, kinds) = tokio::sync::watch::channel(Arc::new(Kinds::new([kind.clone()])));
    let state = ApiState::new(store.clone(), kinds.clone(), MirrorHealth::new("memory"));
    // For reference beside the list: the same API behind the read cache as configured by
    // default (L1 only), and a handler that only returns a fixed list answer (what moving the
    // answer's bytes costs, with no query work at all).
    let cache = Cache::new(
        &CacheConfig::default(),
        CacheMetrics::unregistered().expect("metrics"),
    )
    .expect("cache");
    let cached = ApiState::new(store.clone(), kinds, MirrorHealth::new("memory")).with_cache(cache);
    let fixed: Arc<OnceLock<Bytes>> = Arc::default();
    let fixed_body = fixed.clone();
    let extra = axum::Router::new().nest("/cached", router(cached)).route(
        "/bench/fixed",
        axum::routing::get(move || {
            let body = fixed_body.get().cloned().unwrap_or_default();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    let metrics = Metrics::new().expect("metrics");
    let app = ServerBuilder::new(metrics, Health::new())
        .merge(router(state))
        .merge(extra)
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let base = format!("http://{addr}");
    let queries = bench_queries();
    let list_urls: Vec<String> = queries
        .iter()
        .map(|(ns, selector, search)| {
            format!(
                "{base}/api/v1/configmaps?namespace={ns}&labelSelector={}&search={search}&limit=50",
                selector.replace('=', "%3D")
            )
        })
        .collect();
    // The same queries as the store sees them.
    let store_queries: Vec<ListQuery> = queries
        .iter()
        .map(|(ns, selector, search)| ListQuery {
            namespace: Some(ns.clone()),
            labels: Some(LabelSelector::parse(selector).expect("selector")),
            search: Some(search.clone()),
            limit: 50,
            ..ListQuery::default()
        })
        .collect();
    if let Some(requests) = std::env::var("BENCH_PROFILE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        profile(&base, &list_urls, requests).await;
        return;
    }
    describe_matches(&*store, &kind, &store_queries).await;
    let probe: serde_json::Value = reqwest::get(&list_urls[0])
        .await
        .expect("probe")
        .json()
        .await
        .expect("json");
    println!(
        "objects: {objects}; sample query matches {} objects, returns {}",
        probe["total"],
        probe["items"].as_array().map_or(0, Vec::len)
    );
    // The fixed answer: the first full page of the bench queries, as the list route sends it.
    for url in &list_urls {
        let body = reqwest::get(url)
            .await
            .expect("list")
            .bytes()
            .await
            .expect("body");
        let page: serde_json::Value = serde_json::from_slice(&body).expect("json");
        if page["items"].as_array().map_or(0, Vec::len) == 50 {
            println!("fixed answer: a full page of {} bytes", body.len());
            let _ = fixed.set(body);
            break;
        }
    }
    store_cpu(&*store, &kind, &store_queries).await;
    store_cpu_by_shape(&*store, &kind, &store_queries).await;
    let _ = load(Arc::new(list_urls.clone()), concurrency, 1).await; // warm-up
    let mut trivial = load(
        Arc::new(vec![format!("{base}/healthz")]),
        concurrency,
        seconds,
    )
    .await;
    let mut list = load(Arc::new(list_urls.clone()), concurrency, seconds).await;
    let mut fixed_run = load(
        Arc::new(vec![format!("{base}/bench/fixed")]),
        concurrency,
        seconds,
    )
    .await;
    let cached_urls: Vec<String> = list_urls
        .iter()
        .map(|url| url.replacen("/api/v1/", "/cached/api/v1/", 1))
        .collect();
    let _ = load(Arc::new(cached_urls.clone()), concurrency, 1).await; // fills L1
    let mut cached_run = load(Arc::new(cached_urls), concurrency, seconds).await;
    println!(
        "trivial /healthz:   {:>8.0} req/s   p50 {:.3} ms   p99 {:.3} ms",
        trivial.rate(),
        trivial.pct(0.50),
        trivial.pct(0.99)
    );
    println!(
        "REST list (ns+label+search, limit 50): {:>8.0} req/s   p50 {:.3} ms   p99 {:.3} ms   ({:.2}× the trivial rate)",
        list.rate(),
        list.pct(0.50),
        list.pct(0.99),
        list.rate() / trivial.rate()
    );
    println!(
        "fixed full page, no query work:  {:>8.0} req/s   p50 {:.3} ms   p99 {:.3} ms   ({:.2}× the trivial rate)",
        fixed_run.rate(),
        fixed_run.pct(0.50),
        fixed_run.pct(0.99),
        fixed_run.rate() / trivial.rate()
    );
    println!(
        "REST list through L1 (default cache config, all hits): {:>8.0} req/s   p50 {:.3} ms   p99 {:.3} ms   ({:.2}× the trivial rate)",
        cached_run.rate(),
        cached_run.pct(0.50),
        cached_run.pct(0.99),
        cached_run.rate() / trivial.rate()
    );
}
