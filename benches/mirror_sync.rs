//! The mirror end to end against the in-process emulator: initial sync of 100k ConfigMaps (~1 KiB
//! each) into the memory store (wall time, peak RSS) beside a bare kube-runtime `reflector`
//! holding the same objects, then event → store lag at a steady 2k events/s.
//!
//! `cargo bench -p stowage --bench mirror_sync`. The emulator runs in the same process as what is
//! measured, so RSS figures include the emulator's copy of the objects: compare the growth over
//! the "seeded" line, not the absolute peak. The reflector baseline runs in a child process of
//! this binary (`BENCH_MODE=reflector`) with its own seeded emulator, so its RSS is separate.
//!
//! `BENCH_MODE=mirror-sync` runs only the mirror's initial sync. Both it and `BENCH_MODE=reflector`
//! call [`stowage_bench_phase`] when the sync starts and when it is done, so
//! `valgrind --tool=callgrind --dump-before=stowage_bench_phase` gives the sync its own dump.

use std::error::Error;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::{Value, json};
use stowage::config::{MirrorConfig, MirrorResource};
use stowage::metrics::Metrics;
use stowage::mirror::{Mirror, builtin};
use stowage::store::memory::MemoryStore;
use stowage::store::{ChangeType, Store};
use stowage_emulator::{Emulator, EmulatorConfig, RunningEmulator};

const NAMESPACES: usize = 10;
const STEADY_RATE: usize = 2_000;
const STEADY_SECONDS: u64 = 10;
const SENT_AT: &str = "bench.stowage.io/sent-at-ns";

/// ConfigMaps seeded: 100k, or `BENCH_OBJECTS` for a quick smoke run.
fn objects() -> usize {
    std::env::var("BENCH_OBJECTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000)
}

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match std::env::var("BENCH_MODE").as_deref() {
        Ok("reflector") => runtime.block_on(reflector_baseline()),
        Ok("mirror-sync") => runtime.block_on(mirror_bench(false)),
        _ => runtime.block_on(mirror_bench(true)),
    }
}

/// Marks a phase boundary for callgrind's `--dump-before`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn stowage_bench_phase(phase: u32) {
    std::hint::black_box(phase);
}

/// The mirror: initial sync, then (when `full`) the reflector child and steady-state lag.
async fn mirror_bench(full: bool) -> Result<()> {
    let emu = seeded_emulator().await?;
    let seeded = rss("VmRSS");
    reset_peak();
    let client = stowage::sandbox::client_for(&emu.url())?;
    let store = Arc::new(MemoryStore::new(100_000));
    let metrics = Metrics::new()?;
    let config = MirrorConfig {
        exclude: builtin::kind_names()
            .into_iter()
            .filter(|k| *k != "ConfigMap")
            .map(str::to_owned)
            .collect(),
        // `BENCH_COLUMNS=none`: the ConfigMap kind without its `data`/`binary_data` JSON columns,
        // to show what storing those copies costs.
        resources: if std::env::var("BENCH_COLUMNS").as_deref() == Ok("none") {
            vec![MirrorResource {
                group: String::new(),
                version: "v1".into(),
                kind: "ConfigMap".into(),
                plural: Some("configmaps".into()),
                namespaced: Some(true),
                prune: vec![],
                keep_secret_data: false,
                columns: vec![],
            }]
        } else {
            vec![]
        },
        ..MirrorConfig::default()
    };
    stowage_bench_phase(1);
    let started = Instant::now();
    let mirror = Mirror::start(client.clone(), &config, store.clone(), &metrics)?;
    while mirror.initial_sync().is_err() {
        if started.elapsed() > Duration::from_secs(600) {
            return Err("initial sync did not finish within 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sync_time = started.elapsed();
    stowage_bench_phase(2);
    let kinds = mirror.kinds();
    let kind = kinds
        .borrow()
        .by_id("core/v1/ConfigMap")
        .cloned()
        .ok_or("ConfigMap kind missing")?;
    let stored = store.count(&kind).await?;
    println!(
        "mirror_sync: {} ConfigMaps of ~1 KiB in {NAMESPACES} namespaces",
        objects()
    );
    let sample = serde_json::to_vec(&config_map("ns-0", "cm-0", 0))?.len();
    println!(
        "  ({sample} B JSON each before the API server's metadata; emulator in the same process;"
    );
    println!("   streaming list on the emulator's v1.33)");
    println!(
        "mirror initial sync into MemoryStore ({} ConfigMap columns):",
        if config.resources.is_empty() {
            "built-in data/binary_data"
        } else {
            "no"
        }
    );
    println!(
        "  wall time:            {:.2} s ({stored} objects stored)",
        sync_time.as_secs_f64()
    );
    println!("  RSS after seeding:    {seeded}");
    println!("  peak RSS during sync: {}", rss("VmHWM"));
    println!("  RSS after sync:       {}", rss("VmRSS"));
    // Batches and relists of the sync: a sync of many small batches, or one that listed twice,
    // shows here (the wall time alone cannot tell why a run is slow).
    let exposition = metrics.encode()?;
    let metric = |name: &str| {
        exposition
            .lines()
            .filter(|l| l.starts_with(name) && l.contains("ConfigMap"))
            .map(|l| l.rsplit(' ').next().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  store batches:        {} ({} operations); relists: {}",
        metric("stowage_mirror_batch_size_count"),
        metric("stowage_mirror_batch_size_sum"),
        metric("stowage_mirror_relists_total")
    );
    if !full {
        mirror.shutdown().await;
        emu.shutdown().await;
        return Ok(());
    }

    let child = Command::new(std::env::current_exe()?)
        .env("BENCH_MODE", "reflector")
        .output()?;
    println!(
        "bare kube-runtime reflector (typed ConfigMap, same list strategy, separate process):"
    );
    print!("{}", String::from_utf8_lossy(&child.stdout));
    if !child.status.success() {
        println!(
            "  reflector run failed: {}",
            String::from_utf8_lossy(&child.stderr)
        );
    }

    let before = pipeline_lag(&metrics);
    steady_state(&emu, store.as_ref(), &kind).await?;
    let after = pipeline_lag(&metrics);
    let (sum, count) = (after.0 - before.0, after.1 - before.1);
    if count > 0 {
        println!(
            "  inside the mirror (watch event received -> committed, mirror_sync_lag_seconds): mean {:.1} ms over {count} events",
            sum / count as f64 * 1e3
        );
    }
    mirror.shutdown().await;
    emu.shutdown().await;
    Ok(())
}

/// Inserts `STEADY_RATE` new ConfigMaps per second (timestamp inside each) and measures when the
/// store's change feed shows them.
async fn steady_state(
    emu: &RunningEmulator,
    store: &MemoryStore,
    kind: &stowage::mirror::kind::KindSpec,
) -> Result<()> {
    emu.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "steady"}}))
        .map_err(|e| e.to_string())?;
    let total = STEADY_RATE * STEADY_SECONDS as usize;
    let mut since = store.revision().await?;
    let mut wake = store.subscribe();
    let reader = async {
        let mut lags: Vec<f64> = Vec::with_capacity(total);
        let deadline = Instant::now() + Duration::from_secs(STEADY_SECONDS + 30);
        while lags.len() < total && Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(100), wake.changed()).await;
            let changes = store.changes(Some(kind), since, 10_000).await?;
            let seen = now_ns();
            for change in changes {
                since = change.revision;
                let sent = change
                    .object
                    .annotations
                    .get(SENT_AT)
                    .and_then(|s| s.parse::<u128>().ok());
                if let (ChangeType::Added, Some(sent)) = (change.change, sent) {
                    lags.push((seen.saturating_sub(sent)) as f64 / 1e6);
                }
            }
        }
        Ok::<_, Box<dyn Error>>(lags)
    };
    let writer = async {
        let started = Instant::now();
        let per_tick = STEADY_RATE / 100;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut sent = 0;
        while sent < total {
            tick.tick().await;
            for _ in 0..per_tick {
                let mut object = config_map("steady", &format!("steady-{sent}"), sent);
                object["metadata"]["annotations"] = json!({SENT_AT: now_ns().to_string()});
                emu.insert(object).map_err(|e| e.to_string())?;
                sent += 1;
            }
        }
        Ok::<_, Box<dyn Error>>(started.elapsed())
    };
    let (lags, elapsed) = tokio::join!(reader, writer);
    let (mut lags, elapsed) = (lags?, elapsed?);
    lags.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lags.get(((lags.len() as f64 * p) as usize).min(lags.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "steady state: {total} creates inserted into the emulator over {:.1} s",
        elapsed.as_secs_f64()
    );
    println!(
        "  event -> store change feed lag: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} of {total} seen)",
        pct(0.50),
        pct(0.99),
        lags.last().copied().unwrap_or(f64::NAN),
        lags.len()
    );
    Ok(())
}

/// Child process: a bare reflector over the same objects.
async fn reflector_baseline() -> Result<()> {
    let emu = seeded_emulator().await?;
    let seeded = rss("VmRSS");
    reset_peak();
    let client = stowage::sandbox::client_for(&emu.url())?;
    stowage_bench_phase(1);
    let started = Instant::now();
    let (reader, writer) = reflector::store::<ConfigMap>();
    let api: Api<ConfigMap> = Api::all(client);
    let stream = reflector::reflector(
        writer,
        watcher::watcher(api, watcher::Config::default().streaming_lists()),
    )
    .default_backoff()
    .for_each(|_| async {});
    let follow = tokio::spawn(stream);
    tokio::time::timeout(Duration::from_secs(600), reader.wait_until_ready()).await??;
    let sync_time = started.elapsed();
    stowage_bench_phase(2);
    println!(
        "  wall time:            {:.2} s ({} objects held)",
        sync_time.as_secs_f64(),
        reader.state().len()
    );
    println!("  RSS after seeding:    {seeded}");
    println!("  peak RSS during sync: {}", rss("VmHWM"));
    println!("  RSS after sync:       {}", rss("VmRSS"));
    follow.abort();
    emu.shutdown().await;
    Ok(())
}

/// An emulator holding [`objects`] ConfigMaps spread over `NAMESPACES` namespaces.
async fn seeded_emulator() -> Result<RunningEmulator> {
    let emu = Emulator::start(EmulatorConfig::default()).await?;
    for ns in 0..NAMESPACES {
        emu.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{ns}")}}))
            .map_err(|e| e.to_string())?;
    }
    for i in 0..objects() {
        emu.insert(config_map(
            &format!("ns-{}", i % NAMESPACES),
            &format!("cm-{i}"),
            i,
        ))
        .map_err(|e| e.to_string())?;
    }
    Ok(emu)
}

/// A ConfigMap of about 1 KiB as JSON.
fn config_map(namespace: &str, name: &str, i: usize) -> Value {
    let filler = format!("{i:08}").repeat(12);
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": name, "namespace": namespace,
            "labels": {"app": format!("app-{}", i % 20), "tier": "backend"},
        },
        "data": {
            "config.yaml": format!("replicas: {}\nimage: registry.example.com/app:{}\n{filler}", i % 7, i % 13),
            "a": filler.clone(), "b": filler.clone(), "c": filler.clone(), "d": filler,
        }
    })
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Resets the kernel's peak-RSS counter (VmHWM) to the current RSS (Linux ≥ 4.0).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A `/proc/self/status` memory line (`VmRSS`, `VmHWM`) in MiB.
fn rss(field: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or_else(
            || "unavailable".to_owned(),
            |kib| format!("{:.0} MiB", kib / 1024.0),
        )
}

/// `(sum, count)` of `stowage_mirror_sync_lag_seconds` across kinds.
fn pipeline_lag(metrics: &Metrics) -> (f64, u64) {
    metrics
        .registry()
        .gather()
        .iter()
        .filter(|family| family.name() == "stowage_mirror_sync_lag_seconds")
        .flat_map(|family| family.get_metric().iter())
        .map(|metric| {
            let histogram = metric.get_histogram();
            (histogram.get_sample_sum(), histogram.get_sample_count())
        })
        .fold((0.0, 0), |(s, c), (ms, mc)| (s + ms, c + mc))
}
