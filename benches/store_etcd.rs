//! Speed of the etcd store against a private etcd (Debian's `etcd` 3.4 on loopback, temporary
//! data dir): 100k ConfigMap-like objects (~1 KiB each) synced through the store in the mirror's
//! default batches of 500, beside raw etcd-client transactions of the very same keys and values
//! (128 puts each, etcd's default `--max-txn-ops`) in the same run; then the change feed's watch
//! delivery lag (write → change read through `subscribe` + `changes`), p50/p99.
//! `cargo bench -p stowage --bench store_etcd`; arguments are ignored.

#[path = "support/cpu.rs"]
mod cpu;
#[path = "../tests/support/etcd.rs"]
mod etcd_support;

use std::collections::HashMap;
use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Txn, TxnOp};
use parking_lot::Mutex;
use serde_json::json;
use stowage::mirror::kind::{ColumnSpec, ColumnType, KindSpec};
use stowage::mirror::object::Processor;
use stowage::store::etcd::{EtcdSettings, EtcdStore};
use stowage::store::{MirrorObject, Store, WriteBatch, WriteOp};

use cpu::cpu_seconds;
use etcd_support::PrivateEtcd;

const OBJECTS: usize = 100_000;
const BATCH: usize = 500;
const RAW_TXN_OPS: usize = 128;
const LAG_SAMPLES: usize = 2_000;
/// Even, so each order (raw first, store first) runs equally often.
const ROUNDS: usize = 4;

fn main() -> Result<(), Box<dyn Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<(), Box<dyn Error>> {
    let etcd = PrivateEtcd::start().await;
    let kind = config_map_kind();
    let processor = Processor::new(&kind)?;
    // As the pipeline hands them to the store: processed from the JSON text off the wire.
    let objects: Vec<MirrorObject> = (0..OBJECTS)
        .map(|i| processed(&processor, config_map(i, "1")))
        .collect::<Result<_, _>>()?;
    let bytes: usize = objects
        .iter()
        .map(|o| serde_json::to_vec(&o.object).map_or(0, |v| v.len()))
        .sum();
    println!(
        "store_etcd: {OBJECTS} objects, {} bytes of JSON on average, etcd {}",
        bytes / OBJECTS,
        etcd.endpoint()
    );

    // Each round runs raw etcd-client transactions of the same keys (under another prefix) and
    // values beside the store on a fresh prefix of the same server, and the rounds alternate
    // which goes first: etcd's database grows with every sync, so whatever always ran second
    // would always write into a larger one. The machine is shared, so every round is printed.
    let mut raw = Vec::new();
    let mut synced = Vec::new();
    let mut store = None;
    let pid = etcd.pid().map_or_else(String::new, |p| p.to_string());
    for round in 0..ROUNDS {
        let raw_round = || {
            let prefix = format!("/raw-{round}");
            let endpoint = etcd.endpoint();
            let objects = &objects;
            timed("raw", &pid, async move {
                raw_sync_at(&endpoint, objects, &prefix).await
            })
        };
        if round % 2 == 0 {
            raw.push(raw_round().await?);
        }
        let prefix = format!("/kubernetes-{round}");
        let fresh = EtcdStore::new(EtcdSettings::new(vec![etcd.endpoint()], &prefix));
        fresh.register(&kind).await?;
        synced.push(timed("store", &pid, store_sync(&fresh, &kind, &objects)).await?);
        assert_eq!(fresh.count(&kind).await?, OBJECTS, "every object stored");
        store = Some(fresh);
        if round % 2 == 1 {
            raw.push(raw_round().await?);
        }
    }
    let rates = |times: &[Duration]| {
        times
            .iter()
            .map(|t| format!("{:.0}", rate(*t)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let best = |times: &[Duration]| rate(times.iter().copied().min().unwrap_or_default());
    println!(
        "sync 100k, raw etcd-client txns ({RAW_TXN_OPS} puts): best {:.0} objects/s (rounds: {})",
        best(&raw),
        rates(&raw)
    );
    println!(
        "sync 100k, EtcdStore batches of {BATCH}: best {:.0} objects/s (rounds: {}); best/best {:.2}x raw",
        best(&synced),
        rates(&synced),
        best(&synced) / best(&raw)
    );
    let ratios: Vec<String> = raw
        .iter()
        .zip(&synced)
        .map(|(r, s)| format!("{:.2}", r.as_secs_f64() / s.as_secs_f64()))
        .collect();
    println!("store/raw per round: {}", ratios.join(", "));
    let store = store.ok_or("no round ran")?;

    let (p50, p99) = watch_lag(Arc::new(store), &kind, &processor).await?;
    println!(
        "watch delivery lag ({LAG_SAMPLES} single-object writes): p50 {:.2} ms, p99 {:.2} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    Ok(())
}

/// Wall time of writing `objects` as the mirror does: batches of [`BATCH`].
async fn store_sync(
    store: &EtcdStore,
    kind: &KindSpec,
    objects: &[MirrorObject],
) -> Result<Duration, Box<dyn Error>> {
    // The pipeline hands the store owned batches: build them before the clock starts.
    let batches: Vec<WriteBatch> = objects
        .chunks(BATCH)
        .map(|chunk| WriteBatch {
            ops: chunk.iter().cloned().map(WriteOp::Upsert).collect(),
            epoch: 1,
        })
        .collect();
    let started = Instant::now();
    for batch in batches {
        store.write(kind, batch).await?;
    }
    Ok(started.elapsed())
}

/// Wall time of putting the same values with plain etcd-client transactions; getting each value's
/// bytes is counted, as the store must do it too (the pipeline's objects are JSON text, so for
/// both it is a copy of that text).
async fn raw_sync_at(
    endpoint: &str,
    objects: &[MirrorObject],
    prefix: &str,
) -> Result<Duration, Box<dyn Error>> {
    let mut client = Client::connect([endpoint], None).await?;
    let started = Instant::now();
    for chunk in objects.chunks(RAW_TXN_OPS) {
        let mut ops = Vec::with_capacity(chunk.len());
        for object in chunk {
            let key = format!(
                "{prefix}/core/v1/ConfigMap/{}/{}",
                object.namespace, object.name
            );
            ops.push(TxnOp::put(key, serde_json::to_vec(&object.object)?, None));
        }
        client.txn(Txn::new().and_then(ops)).await?;
    }
    Ok(started.elapsed())
}

/// `object` as the mirror's pipeline converts it: from its JSON text.
fn processed(
    processor: &Processor,
    object: serde_json::Value,
) -> Result<MirrorObject, Box<dyn Error>> {
    let text = serde_json::value::RawValue::from_string(object.to_string())?;
    Ok(processor.process_text(&text)?)
}

/// Runs `phase`, printing its wall time and the CPU time this process and etcd spent in it.
async fn timed<F>(label: &str, etcd: &str, phase: F) -> Result<Duration, Box<dyn Error>>
where
    F: Future<Output = Result<Duration, Box<dyn Error>>>,
{
    let (client, server) = (
        cpu_seconds("self").unwrap_or(0.0),
        cpu_seconds(etcd).unwrap_or(0.0),
    );
    let elapsed = phase.await?;
    println!(
        "  {label:<6} {:.2} s: client CPU {:.2} s, etcd CPU {:.2} s",
        elapsed.as_secs_f64(),
        cpu_seconds("self").unwrap_or(0.0) - client,
        cpu_seconds(etcd).unwrap_or(0.0) - server
    );
    Ok(elapsed)
}

fn rate(elapsed: Duration) -> f64 {
    OBJECTS as f64 / elapsed.as_secs_f64()
}

/// Time from starting a single-object write until the change feed hands out that change, read
/// the way the REST feed reads it (wake on `subscribe`, then `changes` since the last revision).
async fn watch_lag(
    store: Arc<EtcdStore>,
    kind: &KindSpec,
    processor: &Processor,
) -> Result<(Duration, Duration), Box<dyn Error>> {
    let started_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut since = store.revision().await?;
    let mut receiver = store.subscribe();
    receiver.borrow_and_update();
    let reader = {
        let (store, kind, started_at) = (Arc::clone(&store), kind.clone(), Arc::clone(&started_at));
        tokio::spawn(async move {
            let mut lags = Vec::with_capacity(LAG_SAMPLES);
            while lags.len() < LAG_SAMPLES {
                if receiver.changed().await.is_err() {
                    break;
                }
                let Ok(changes) = store.changes(Some(&kind), since, usize::MAX).await else {
                    continue;
                };
                let now = Instant::now();
                for change in changes {
                    since = since.max(change.revision);
                    if let Some(t0) = started_at.lock().get(&change.object.name) {
                        lags.push(now - *t0);
                    }
                }
            }
            lags
        })
    };
    for i in 0..LAG_SAMPLES {
        let object = processed(processor, config_map(i, "2"))?;
        started_at
            .lock()
            .insert(object.name.clone(), Instant::now());
        let ops = vec![WriteOp::Upsert(object)];
        store.write(kind, WriteBatch { ops, epoch: 1 }).await?;
        // Paced like a busy cluster's trickle of events, not a bulk load.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut lags = tokio::time::timeout(Duration::from_secs(60), reader).await??;
    lags.sort();
    let at = |q: f64| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)];
    Ok((at(0.50), at(0.99)))
}

fn config_map_kind() -> KindSpec {
    let column = |name: &str, path: &str, column_type: ColumnType| ColumnSpec {
        name: name.to_owned(),
        path: path.to_owned(),
        column_type,
        index: false,
    };
    KindSpec {
        group: String::new(),
        version: "v1".to_owned(),
        kind: "ConfigMap".to_owned(),
        plural: "configmaps".to_owned(),
        namespaced: true,
        prune: vec![],
        keep_secret_data: false,
        columns: vec![
            column("tier", ".data.tier", ColumnType::String),
            column("size", ".data.size", ColumnType::Integer),
        ],
    }
}

/// A ConfigMap-like object of about 1 KiB.
fn config_map(i: usize, resource_version: &str) -> serde_json::Value {
    let tier = ["web", "api", "db"][i % 3];
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "namespace": format!("ns-{}", i % 10),
            "name": format!("cm-{i:06}"),
            "uid": format!("00000000-0000-4000-8000-{i:012}"),
            "resourceVersion": resource_version,
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": {"app": format!("app-{}", i % 20), "tier": tier},
            "annotations": {"note": "x".repeat(200)}
        },
        "data": {
            "tier": tier,
            "size": (i % 1000).to_string(),
            "config.yaml": format!("key: value-{i}\n{}", "line: some configuration text\n".repeat(18))
        }
    })
}
