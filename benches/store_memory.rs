//! Speed of the embedded `MemoryStore` at scale: 100k ConfigMap-like objects (~1 KiB each, 10
//! namespaces, 20 `app` label values) written in batches of 500, then list, keyset and get latencies
//! and the resident memory. Objects go through the mirror's own [`Processor`], so their columns are
//! what the pipeline would extract. `cargo bench -p stowage --bench store_memory`; arguments are
//! ignored.

use std::error::Error;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stowage::mirror::kind::{ColumnSpec, ColumnType, KindSpec};
use stowage::mirror::object::{ObjectError, Processor};
use stowage::store::memory::MemoryStore;
use stowage::store::{ListQuery, MirrorObject, Sort, SortField, Store, WriteBatch, WriteOp};
use stowage_emulator::selectors::LabelSelector;

const OBJECTS: usize = 100_000;
const NAMESPACES: usize = 10;
const APPS: usize = 20;
const BATCH: usize = 500;
const QUERIES: usize = 2_000;
const GETS: usize = 20_000;
const UPDATES: usize = 20_000;
/// The operator's default `mirror.history`.
const HISTORY: usize = 100_000;

fn main() -> Result<(), Box<dyn Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let store = MemoryStore::new(HISTORY);
    let kind = config_map_kind();
    let processor = Processor::new(&kind)?;
    store.register(&kind).await?;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);

    let sample = config_map(&processor, 0, "1", &mut XorShift(1))?;
    let sample_size = serde_json::to_vec(&sample.object)?.len();
    println!(
        "store_memory: {OBJECTS} objects of ~{sample_size} B JSON, {NAMESPACES} namespaces, {APPS} apps"
    );
    drop(sample);
    let before = memory("VmRSS:");
    println!("  RSS before inserts: {before}");

    // Inserts: build each batch outside the timed region, time only the write.
    let mut writing = Duration::ZERO;
    for start in (0..OBJECTS).step_by(BATCH) {
        let ops = (start..start + BATCH)
            .map(|i| config_map(&processor, i, "1", &mut rng).map(WriteOp::Upsert))
            .collect::<Result<_, _>>()?;
        let begun = Instant::now();
        let outcome = store.write(&kind, WriteBatch { ops, epoch: 1 }).await?;
        writing += begun.elapsed();
        assert_eq!(outcome.changed, BATCH, "every object is new");
    }
    report_rate("insert", OBJECTS, writing);
    println!("  RSS after inserts: {}", memory("VmRSS:"));

    // Updates (new resourceVersion): each one a Modified change retained in the history.
    let mut writing = Duration::ZERO;
    for start in (0..UPDATES).step_by(BATCH) {
        let ops = (start..start + BATCH)
            .map(|i| config_map(&processor, i * 5 % OBJECTS, "2", &mut rng).map(WriteOp::Upsert))
            .collect::<Result<_, _>>()?;
        let begun = Instant::now();
        store.write(&kind, WriteBatch { ops, epoch: 1 }).await?;
        writing += begun.elapsed();
    }
    report_rate("update", UPDATES, writing);
    println!(
        "  RSS after updates (old versions retained in the change history): {}",
        memory("VmRSS:")
    );

    // Filtered lists: namespace + label selector + name search, first page of 50.
    let mut latencies = Vec::with_capacity(QUERIES);
    let mut returned = 0;
    for _ in 0..QUERIES {
        let query = ListQuery {
            namespace: Some(format!("ns-{}", rng.below(NAMESPACES))),
            labels: Some(LabelSelector::parse(&format!(
                "app=app-{}",
                rng.below(APPS)
            ))?),
            search: Some(format!("{}", rng.below(100))),
            limit: 50,
            ..ListQuery::default()
        };
        let begun = Instant::now();
        let page = store.list(&kind, &query).await?;
        latencies.push(begun.elapsed());
        returned += page.items.len();
    }
    report_latency("list ns+labels+search limit 50", &mut latencies, returned);

    // Keyset paging over the whole kind, 50 per page, following `next` (restarting at the end).
    let mut latencies = Vec::with_capacity(QUERIES);
    let (mut returned, mut after) = (0, None);
    for _ in 0..QUERIES {
        let query = ListQuery {
            limit: 50,
            after: after.take(),
            ..ListQuery::default()
        };
        let begun = Instant::now();
        let page = store.list(&kind, &query).await?;
        latencies.push(begun.elapsed());
        returned += page.items.len();
        after = page.next;
    }
    report_latency("list limit 50 keyset continue", &mut latencies, returned);

    // Sorted by a column: every match is sorted (partially) before the page is cut.
    let mut latencies = Vec::with_capacity(QUERIES / 10);
    let mut returned = 0;
    for _ in 0..QUERIES / 10 {
        let query = ListQuery {
            namespace: Some(format!("ns-{}", rng.below(NAMESPACES))),
            sort: Sort {
                field: SortField::Column("size".to_owned()),
                descending: true,
            },
            limit: 50,
            offset: rng.below(1_000),
            ..ListQuery::default()
        };
        let begun = Instant::now();
        let page = store.list(&kind, &query).await?;
        latencies.push(begun.elapsed());
        returned += page.items.len();
    }
    report_latency(
        "list ns sorted by column, offset paging",
        &mut latencies,
        returned,
    );

    let mut latencies = Vec::with_capacity(GETS);
    let mut found = 0;
    for _ in 0..GETS {
        let i = rng.below(OBJECTS);
        let (namespace, name) = (namespace_of(i), name_of(i));
        let begun = Instant::now();
        let object = store.get(&kind, &namespace, &name).await?;
        latencies.push(begun.elapsed());
        found += usize::from(object.is_some());
    }
    report_latency("get by name", &mut latencies, found);

    let begun = Instant::now();
    let changes = store.changes(Some(&kind), 0, 1_000).await;
    println!(
        "  changes since 0 with {HISTORY} retained: {:?} ({:?})",
        changes.map(|c| c.len()),
        begun.elapsed()
    );

    println!(
        "  objects stored: {}, revision {}",
        store.count(&kind).await?,
        store.revision().await?
    );
    println!("  peak RSS (VmHWM): {}", memory("VmHWM:"));
    println!(
        "  total bench time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
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

fn namespace_of(i: usize) -> String {
    format!("ns-{}", i % NAMESPACES)
}

fn name_of(i: usize) -> String {
    format!("cm-{i:06}")
}

/// A ConfigMap-like object of about 1 KiB, as the mirror's processor turns it into a stored
/// object (its `tier` and `size` columns extracted from `data`).
fn config_map(
    processor: &Processor,
    i: usize,
    resource_version: &str,
    rng: &mut XorShift,
) -> Result<MirrorObject, ObjectError> {
    let (namespace, name) = (namespace_of(i), name_of(i));
    let app = format!("app-{}", rng.below(APPS));
    let tier = ["web", "api", "db"][i % 3];
    let size = rng.below(10_000) as i64;
    let uid = format!("{:08x}-0000-4000-8000-{:012x}", i, rng.next());
    let created = format!("2024-01-{:02}T{:02}:{:02}:00Z", 1 + i % 28, i % 24, i % 60);
    let mut data: serde_json::Map<String, Value> = (0..12)
        .map(|k| {
            (
                format!("key-{k}"),
                json!(format!("{k:02}-{}", "v".repeat(56))),
            )
        })
        .collect();
    data.insert("tier".to_owned(), json!(tier));
    data.insert("size".to_owned(), json!(size));
    processor.process(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name, "namespace": namespace, "uid": uid, "resourceVersion": resource_version,
            "creationTimestamp": created, "labels": { "app": app },
        },
        "data": data,
    }))
}

fn report_rate(what: &str, count: usize, took: Duration) {
    let rate = count as f64 / took.as_secs_f64().max(1e-9);
    println!(
        "  {what}: {count} objects in {:.0} ms in batches of {BATCH} = {rate:.0} objects/s",
        took.as_secs_f64() * 1e3
    );
}

fn report_latency(what: &str, latencies: &mut [Duration], items: usize) {
    latencies.sort_unstable();
    let at = |p: usize| {
        latencies
            .get(latencies.len() * p / 100)
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    println!(
        "  {what}: {} queries, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs ({items} items returned)",
        latencies.len(),
        at(50),
        at(99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
    );
}

/// A memory figure of this process from `/proc/self/status` (`VmRSS:`, `VmHWM:`), in MiB.
fn memory(field: &str) -> String {
    let kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with(field))?;
            line.trim_start_matches(field)
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        });
    kib.map_or_else(
        || "unavailable".to_owned(),
        |kib| format!("{:.0} MiB", kib / 1024.0),
    )
}

/// A tiny deterministic generator so runs are comparable without a `rand` dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
