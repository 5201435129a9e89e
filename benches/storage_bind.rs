//! Binder mode under load: 1000 claims created at once against 1000 free volumes in the
//! in-process emulator, each claim's time from its creation to phase Bound (p50, p99, max) and
//! the time until all are bound. Goal (issue 7): p99 ≤ 500 ms, all bound within 20 s.
//!
//! `cargo bench --bench storage_bind` (release). `BENCH_CLAIMS=100` for a quick smoke run.

use std::collections::HashMap;
use std::error::Error;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use stowage::config::Config;
use stowage::leader::{Election, ElectionSettings, LeaderMetrics};
use stowage::metrics::Metrics;
use stowage::shutdown::Shutdown;
use stowage::storage::controller::{self, ControllerSettings};
use stowage::storage::metrics::StorageMetrics;
use stowage_emulator::{Emulator, EmulatorConfig};

const NAMESPACE: &str = "bench";
/// Claims created concurrently (the API client's connections), all "at once".
const IN_FLIGHT: usize = 64;
const DEADLINE: Duration = Duration::from_secs(120);

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn claims() -> usize {
    std::env::var("BENCH_CLAIMS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

fn main() -> Result<()> {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench())
}

async fn bench() -> Result<()> {
    let count = claims();
    let emulator = Emulator::start(EmulatorConfig {
        history: 100_000,
        ..EmulatorConfig::default()
    })
    .await?;
    let client = stowage::sandbox::client_for(&emulator.url())?;
    for name in ["stowage", NAMESPACE] {
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await?;
    }
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    stream::iter(0..count)
        .map(|i| {
            let volumes = volumes.clone();
            async move {
                let volume: PersistentVolume = serde_json::from_value(json!({
                    "metadata": {"name": format!("pv-{i:05}")},
                    "spec": {
                        "capacity": {"storage": "1Gi"},
                        "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": "",
                        "hostPath": {"path": format!("/srv/volumes/pv-{i:05}")},
                    },
                }))?;
                volumes.create(&PostParams::default(), &volume).await?;
                Ok::<_, Box<dyn Error>>(())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;

    // The controller, as the sandbox runs it: binder mode, leading.
    let mut config = Config::default();
    config.storage.binder = true;
    let metrics = Metrics::new()?;
    let shutdown = Shutdown::new();
    let election_settings = ElectionSettings::from_config(&config.storage.controller);
    let election = Election::start(
        client.clone(),
        election_settings.clone(),
        LeaderMetrics::register(&metrics)?,
        shutdown.clone(),
    );
    let settings = ControllerSettings::from_config(&config, election_settings.identity);
    let task = tokio::spawn(controller::run(
        client.clone(),
        settings,
        StorageMetrics::register(&metrics)?,
        election.leading(),
        shutdown.clone(),
    ));
    election.leading().wait_for(|leads| *leads).await?;
    // The burst starts once the controller has seen every volume (and made it Available).
    let setup = Instant::now();
    loop {
        let available = volumes
            .list(&Default::default())
            .await?
            .items
            .iter()
            .filter(|v| v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Available"))
            .count();
        if available == count {
            break;
        }
        if setup.elapsed() > DEADLINE {
            return Err(format!("only {available} of {count} volumes became Available").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Watch for Bound before creating anything, so no transition is missed.
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NAMESPACE);
    let watch = watcher(claims_api.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let (bound_tx, mut bound_rx) = tokio::sync::mpsc::unbounded_channel();
    let watching = tokio::spawn(async move {
        let mut watch = watch;
        while let Some(Ok(claim)) = watch.next().await {
            let phase = claim.status.as_ref().and_then(|s| s.phase.clone());
            if phase.as_deref() == Some("Bound") {
                let _ = bound_tx.send((claim.metadata.name.unwrap_or_default(), Instant::now()));
            }
        }
    });

    let started = Instant::now();
    let cpu_at_start = process_cpu();
    let created: HashMap<String, Instant> = stream::iter(0..count)
        .map(|i| {
            let claims_api = claims_api.clone();
            async move {
                let name = format!("claim-{i:05}");
                let claim: PersistentVolumeClaim = serde_json::from_value(json!({
                    "metadata": {"name": name},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "",
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }))?;
                let sent = Instant::now();
                claims_api.create(&PostParams::default(), &claim).await?;
                Ok::<_, Box<dyn Error>>((name, sent))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;
    let all_created = started.elapsed();

    let mut bound: HashMap<String, Instant> = HashMap::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while bound.len() < count {
        match tokio::time::timeout_at(deadline, bound_rx.recv()).await {
            Ok(Some((name, at))) => {
                bound.entry(name).or_insert(at);
            }
            _ => break,
        }
    }
    let total = started.elapsed();
    let burst_cpu = process_cpu().saturating_sub(cpu_at_start);
    watching.abort();

    let mut latencies: Vec<Duration> = bound
        .iter()
        .filter_map(|(name, at)| Some(at.saturating_duration_since(*created.get(name)?)))
        .collect();
    latencies.sort();
    let quantile = |q: f64| -> Duration {
        if latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index]
    };
    let last_bound = bound.values().max().map(|at| at.duration_since(started));
    println!("storage_bind: {count} claims against {count} free 1Gi volumes (binder mode)");
    println!("  created all claims in      {:>9.1} ms", ms(all_created));
    println!("  bound                      {:>9} / {count}", bound.len());
    println!(
        "  time to Bound p50          {:>9.1} ms",
        ms(quantile(0.50))
    );
    println!(
        "  time to Bound p99          {:>9.1} ms",
        ms(quantile(0.99))
    );
    println!("  time to Bound max          {:>9.1} ms", ms(quantile(1.0)));
    println!(
        "  all bound after            {:>9.1} ms (from the first create)",
        ms(last_bound.unwrap_or(total))
    );
    // Every thread of the process: emulator, controller, the creating clients and the watcher.
    println!(
        "  process CPU, first create to all bound {:>6.1} ms ({:.2} cores on average)",
        ms(burst_cpu),
        burst_cpu.as_secs_f64() / total.as_secs_f64()
    );
    let volumes_bound = Api::<PersistentVolume>::all(client.clone())
        .list(&Default::default())
        .await?
        .items
        .iter()
        .filter(|v| v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
        .count();
    println!(
        "  volumes Bound              {:>9} / {count}",
        volumes_bound
    );

    shutdown.trigger();
    let _ = task.await;
    election.stopped().await;
    emulator.shutdown().await;
    if bound.len() < count {
        return Err(format!(
            "only {} of {count} claims bound within {DEADLINE:?}",
            bound.len()
        )
        .into());
    }
    Ok(())
}

/// CPU time (user + system) used by the whole process so far.
fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
