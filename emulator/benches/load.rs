//! Emulator load benchmark: hold 100k ConfigMaps, then sustain 2k writes/s while several watchers
//! follow, reporting throughput, watch delivery lag and memory. Run with `make bench`
//! (or `cargo bench -p stowage-emulator --bench load`); `BENCH_OBJECTS`, `BENCH_RATE`,
//! `BENCH_SECONDS` and `BENCH_WATCHERS` scale it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use stowage_emulator::{Emulator, EmulatorConfig};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

fn config_map(i: u64) -> ConfigMap {
    // ~1 KiB of data per object.
    let payload: String = format!("{i:08}-").repeat(100);
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(format!("cm-{i:06}")),
            labels: Some(BTreeMap::from([(
                "shard".to_string(),
                (i % 16).to_string(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("payload".to_string(), payload)])),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() {
    let objects = env("BENCH_OBJECTS", 100_000);
    let rate = env("BENCH_RATE", 2_000);
    let seconds = env("BENCH_SECONDS", 15);
    let watchers = env("BENCH_WATCHERS", 4);
    let emu = Emulator::start(EmulatorConfig {
        history: 50_000,
        ..Default::default()
    })
    .await
    .expect("start");
    let client =
        kube::Client::try_from(kube::Config::new(emu.url().parse().expect("url"))).expect("client");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let started = Instant::now();
    stream::iter(0..objects)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &config_map(i))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("creates");
    let load = started.elapsed();
    println!(
        "created {objects} ConfigMaps over HTTP in {:.1}s ({:.0}/s)",
        load.as_secs_f64(),
        objects as f64 / load.as_secs_f64()
    );

    let started = Instant::now();
    let mut listed = 0usize;
    let mut lp = ListParams::default().limit(500);
    loop {
        let page = api.list(&lp).await.expect("list");
        listed += page.items.len();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    let list = started.elapsed();
    println!(
        "paged list (limit 500) of {listed} objects in {:.2}s",
        list.as_secs_f64()
    );

    let rv = emu.resource_version().to_string();
    let lags = Arc::new(parking_lot_free::Lags::default());
    let total_writes = rate * seconds;
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let api = api.clone();
        let rv = rv.clone();
        let lags = lags.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = 0u64;
            let mut s = api
                .watch(&WatchParams::default().timeout(290), &rv)
                .await
                .expect("watch")
                .boxed();
            while seen < total_writes {
                match s.try_next().await {
                    Ok(Some(WatchEvent::Modified(cm))) => {
                        seen += 1;
                        if let Some(sent) = cm
                            .metadata
                            .annotations
                            .and_then(|a| a.get("bench/sent").and_then(|v| v.parse::<u64>().ok()))
                        {
                            lags.push(now_micros().saturating_sub(sent));
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            seen
        }));
    }

    let started = Instant::now();
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    let mut interval = tokio::time::interval(tick);
    let mut written = 0u64;
    let writer_api = api.clone();
    while written < total_writes {
        interval.tick().await;
        let batch: Vec<u64> = (written..(written + per_tick).min(total_writes)).collect();
        written += batch.len() as u64;
        let api = writer_api.clone();
        tokio::spawn(async move {
            for i in batch {
                let patch = serde_json::json!({"metadata": {"annotations": {"bench/sent": now_micros().to_string()}}});
                let _ = api
                    .patch(
                        &format!("cm-{:06}", i % objects),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await;
            }
        });
    }
    let mut delivered = 0;
    for t in tasks {
        delivered += tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
    }
    let elapsed = started.elapsed();
    let mut lags = lags.take();
    lags.sort_unstable();
    println!(
        "steady state: {total_writes} merge patches in {:.1}s ({:.0} writes/s) with {watchers} watchers; {delivered} events delivered",
        elapsed.as_secs_f64(),
        total_writes as f64 / elapsed.as_secs_f64()
    );
    println!(
        "watch delivery lag (write sent → event decoded): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&lags, 0.50),
        percentile(&lags, 0.99),
        percentile(&lags, 1.0)
    );
    println!(
        "objects held: {}; peak RSS of the process (emulator + client): {:.0} MiB",
        emu.object_count(),
        peak_rss_mib()
    );
    emu.shutdown().await;
}

/// A tiny lock-protected sample buffer (std Mutex; contention is negligible at these rates).
mod parking_lot_free {
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct Lags(Mutex<Vec<u64>>);

    impl Lags {
        pub fn push(&self, v: u64) {
            if let Ok(mut g) = self.0.lock() {
                g.push(v);
            }
        }

        pub fn take(&self) -> Vec<u64> {
            self.0
                .lock()
                .map(|mut g| std::mem::take(&mut *g))
                .unwrap_or_default()
        }
    }
}
