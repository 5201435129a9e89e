//! MySQL store benchmark, one run on the MariaDB at 127.0.0.1:3306 (a fresh database, dropped
//! afterwards):
//! 1. initial sync of `BENCH_OBJECTS` (100k) Pods through `MysqlStore::write` in pipeline-sized
//!    batches (500), beside (a) the same rows written by one autocommitted upsert per row (the
//!    first `BENCH_SINGLE_ROWS`, 10k) and (b) a raw sqlx multi-row `INSERT` of the same rows into
//!    a table of the same shape, 500 rows per statement; `BENCH_ROUNDS` (3) rounds of store and
//!    raw, alternating which goes first (the machine is shared, so compare within a round);
//! 2. label counts: JSON functions on `labels` (what the store did), a label side table (built
//!    here from the same rows, plus the cost of writing it) and the list index (`labels_short`,
//!    what the store does);
//! 3. REST list `GET /api/v1/pods?namespace=..&labelSelector=..&search=..&limit=50` over the
//!    synced rows, `BENCH_CONCURRENCY` (8) clients for `BENCH_SECONDS` (10): p50 and p99.
//!
//! Run with `cargo bench -p stowage --bench store_mysql`; `BENCH_KEEP_DB=1` keeps the database
//! (to look at query plans).

#[path = "support/cpu.rs"]
mod cpu;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use serde_json::value::RawValue;
use sqlx::mysql::MySqlPoolOptions;
use sqlx::{MySqlPool, Row};
use stowage::api::{ApiState, router};
use stowage::metrics::Metrics;
use stowage::mirror::health::MirrorHealth;
use stowage::mirror::kind::KindSpec;
use stowage::mirror::object::Processor;
use stowage::mirror::registry::Kinds;
use stowage::server::{Health, ServerBuilder};
use stowage::store::mysql::{MysqlOptions, MysqlStore};
use stowage::store::{MirrorObject, Store, WriteBatch, WriteOp};

use cpu::cpu_seconds;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const BATCH: usize = 500;

fn pod(i: u64, namespaces: u64) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("web-{i:06}"), "namespace": format!("ns-{:03}", i % namespaces),
            "uid": format!("6f1c2d3e-0000-4000-8000-{i:012}"), "resourceVersion": (i + 1).to_string(),
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"app": format!("app-{}", i % 20), "tier": if i.is_multiple_of(2) { "web" } else { "db" },
                "pod-template-hash": format!("{:08x}", i % 97)},
            "annotations": {"kubernetes.io/psp": "restricted"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("web-{}", i % 97),
                "uid": "0a0b0c0d", "controller": true}]},
        "spec": {"nodeName": format!("node-{}", i % 50), "restartPolicy": "Always",
            "containers": [{"name": "app", "image": "registry.example.com/app:1.2.3",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                "env": [{"name": "MODE", "value": "production"}]}]},
        "status": {"phase": if i.is_multiple_of(10) { "Pending" } else { "Running" }, "podIP": format!("10.0.{}.{}", i / 250 % 250, i % 250),
            "hostIP": "192.168.0.1", "startTime": "2025-01-01T00:00:05Z",
            "conditions": [{"type": "Ready", "status": "True"}]}})
}

/// The MariaDB server's process id on this machine, if it runs here.
fn server_pid() -> Option<String> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            matches!(comm.trim(), "mariadbd" | "mysqld")
                .then(|| entry.file_name().to_string_lossy().into_owned())
        })
}

/// CPU seconds of this process and of the server, to split a phase's wall time (the client
/// and the server mostly take turns: every statement waits for its answer).
#[derive(Clone, Copy)]
struct Cpu {
    client: f64,
    server: f64,
}

impl Cpu {
    fn now(server: Option<&str>) -> Self {
        Self {
            client: cpu_seconds("self").unwrap_or(0.0),
            server: server.and_then(cpu_seconds).unwrap_or(0.0),
        }
    }

    /// "client X s, server Y s" since `self`.
    fn since(self, server: Option<&str>) -> String {
        let now = Self::now(server);
        format!(
            "client CPU {:.2} s, server CPU {:.2} s",
            now.client - self.client,
            now.server - self.server
        )
    }
}

fn pct(latencies: &mut [u64], p: f64) -> f64 {
    latencies.sort_unstable();
    let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
    latencies.get(i).copied().unwrap_or(0) as f64 / 1000.0
}

/// The bound values of one row, as the raw baselines write them (the store's own encoding).
fn raw_values(object: &MirrorObject) -> Vec<Option<String>> {
    let mut values = vec![
        Some(object.namespace.clone()),
        Some(object.name.clone()),
        Some(object.uid.clone()),
        Some(object.resource_version.clone()),
        Some(serde_json::to_string(&object.labels).expect("labels")),
        Some(serde_json::to_string(&object.annotations).expect("annotations")),
        object.created_at.clone(),
        Some("1".to_owned()),
        Some(serde_json::to_string(&object.object).expect("object")),
    ];
    for name in ["phase", "node_name", "spec", "status"] {
        values.push(match &object.columns[name] {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) if name != "spec" && name != "status" => Some(s.clone()),
            other => Some(other.to_string()),
        });
    }
    values
}

const RAW_COLUMNS: &str = "`namespace`, `name`, `uid`, `resource_version`, `labels`, `annotations`, \
    `created_at`, `seen_epoch`, `object`, `phase`, `node_name`, `spec`, `status`, `updated_at`";

fn placeholders(rows: usize) -> String {
    vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOW(6))"; rows].join(", ")
}

async fn raw_insert(pool: &MySqlPool, table: &str, rows: &[Vec<Option<String>>], upsert: bool) {
    let mut sql = format!(
        "INSERT INTO `{table}` ({RAW_COLUMNS}) VALUES {}",
        placeholders(rows.len())
    );
    if upsert {
        sql.push_str(" ON DUPLICATE KEY UPDATE `resource_version` = VALUES(`resource_version`), \
            `labels` = VALUES(`labels`), `annotations` = VALUES(`annotations`), `object` = VALUES(`object`), \
            `phase` = VALUES(`phase`), `node_name` = VALUES(`node_name`), `spec` = VALUES(`spec`), \
            `status` = VALUES(`status`), `updated_at` = NOW(6), `deleted_at` = NULL");
    }
    let mut query = sqlx::query(&sql);
    for row in rows {
        for value in row {
            query = query.bind(value.as_deref());
        }
    }
    query
        .persistent(false)
        .execute(pool)
        .await
        .expect("raw insert");
}

fn renamed(kind: &KindSpec, name: &str) -> KindSpec {
    KindSpec {
        kind: name.to_owned(),
        plural: format!("{}s", name.to_lowercase()),
        ..kind.clone()
    }
}

/// 300 counts of `sql`, which binds namespace, app label and search pattern `times` times.
async fn timed_queries(
    pool: &MySqlPool,
    sql: &str,
    namespaces: u64,
    times: usize,
) -> (f64, f64, i64) {
    let mut latencies = Vec::new();
    let mut matched = 0;
    for i in 0..300_u64 {
        let started = Instant::now();
        let mut query = sqlx::query(sql);
        for _ in 0..times {
            query = query
                .bind(format!("ns-{:03}", i % namespaces))
                .bind(format!("app-{}", (i * 7) % 20))
                .bind(format!("%{}%", i % 10));
        }
        let row = query.fetch_one(pool).await.expect("label query");
        matched = row.try_get::<i64, _>(0).expect("count");
        latencies.push(started.elapsed().as_micros() as u64);
    }
    (pct(&mut latencies, 0.5), pct(&mut latencies, 0.99), matched)
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let objects = env("BENCH_OBJECTS", 100_000);
    let single_rows = env("BENCH_SINGLE_ROWS", 10_000).min(objects) as usize;
    let namespaces = env("BENCH_NAMESPACES", 100);
    let seconds = env("BENCH_SECONDS", 10);
    let concurrency = env("BENCH_CONCURRENCY", 8);
    let rounds = env("BENCH_ROUNDS", 3).max(1);
    let database = format!("stowage_bench_{}", std::process::id());
    let admin = MySqlPoolOptions::new()
        .max_connections(2)
        .connect("mysql://root@127.0.0.1:3306/")
        .await
        .expect("MariaDB on 127.0.0.1:3306");
    sqlx::query(&format!("CREATE DATABASE `{database}`"))
        .execute(&admin)
        .await
        .expect("create database");

    let kind = stowage::mirror::builtin::kinds()
        .into_iter()
        .find(|k| k.kind == "Pod")
        .expect("Pod is built in");
    // As the pipeline hands them to the store: processed from the JSON text off the wire.
    let processor = Processor::new(&kind).expect("valid kind");
    let pods: Vec<MirrorObject> = (0..objects)
        .map(|i| {
            let text = RawValue::from_string(pod(i, namespaces).to_string()).expect("JSON");
            processor.process_text(&text).expect("valid pod")
        })
        .collect();
    let object_bytes: usize = pods
        .iter()
        .map(|p| p.object.to_string().len())
        .sum::<usize>()
        / pods.len();
    let store = Arc::new(MysqlStore::new(MysqlOptions {
        host: "127.0.0.1".into(),
        port: 3306,
        user: "root".into(),
        password: String::new(),
        database: database.clone(),
        max_open_conns: 16,
        max_idle_conns: 4,
        purge_after: Duration::from_secs(3600),
        history: 100_000,
    }));
    let pool = store.pool().clone();
    store.register(&kind).await.expect("register");
    let single_kind = renamed(&kind, "PodSingle");
    store.register(&single_kind).await.expect("register single");
    println!(
        "objects: {objects} Pods in {namespaces} namespaces, ~{object_bytes} bytes of JSON each"
    );

    // 1. The store's initial sync, as the pipeline drives it (batches of 500, one after another),
    // beside (b) the raw multi-row INSERT of the same rows, alternating which goes first. Round 0
    // syncs the Pod kind the REST part reads; later rounds use fresh tables, dropped afterwards.
    let rows: Vec<Vec<Option<String>>> = pods.iter().map(raw_values).collect();
    let server = server_pid();
    let server = server.as_deref();
    let mut store_rates = Vec::new();
    let mut raw_rates = Vec::new();
    for round in 0..rounds {
        let store_kind = if round == 0 {
            kind.clone()
        } else {
            let k = renamed(&kind, &format!("PodRound{round}"));
            store.register(&k).await.expect("register round");
            k
        };
        let raw_kind = renamed(&kind, &format!("PodRaw{round}"));
        store.register(&raw_kind).await.expect("register raw");
        let mut store_rate = 0.0;
        let mut raw_rate = 0.0;
        for step in 0..2 {
            if (step + round) % 2 == 0 {
                // The batches are built before the clock starts, as the raw rows are: the
                // pipeline hands the store objects it owns, cloning them is no part of a write.
                let batches: Vec<WriteBatch> = pods
                    .chunks(BATCH)
                    .map(|chunk| WriteBatch {
                        ops: chunk.iter().cloned().map(WriteOp::Upsert).collect(),
                        epoch: 1,
                    })
                    .collect();
                let cpu = Cpu::now(server);
                let started = Instant::now();
                for batch in batches {
                    store.write(&store_kind, batch).await.expect("write");
                }
                let written = started.elapsed();
                store.sweep(&store_kind, 1).await.expect("sweep");
                let elapsed = started.elapsed();
                store_rate = objects as f64 / elapsed.as_secs_f64();
                println!(
                    "  store: {:.2} s ({:.2} s writes, {:.2} s sweep), {}",
                    elapsed.as_secs_f64(),
                    written.as_secs_f64(),
                    (elapsed - written).as_secs_f64(),
                    cpu.since(server)
                );
            } else {
                let cpu = Cpu::now(server);
                let started = Instant::now();
                for chunk in rows.chunks(BATCH) {
                    raw_insert(&pool, &raw_kind.table_name(), chunk, false).await;
                }
                let elapsed = started.elapsed();
                raw_rate = objects as f64 / elapsed.as_secs_f64();
                println!(
                    "  raw:   {:.2} s, {}",
                    elapsed.as_secs_f64(),
                    cpu.since(server)
                );
            }
        }
        println!(
            "round {round}: store {store_rate:>8.0} rows/s   raw {raw_rate:>8.0} rows/s   store/raw {:.2}",
            store_rate / raw_rate
        );
        store_rates.push(store_rate);
        raw_rates.push(raw_rate);
        // Round 0's tables stay (as in earlier runs of this benchmark, which kept them during the
        // reads); later rounds' are dropped directly, only their timing matters.
        let drop = if round == 0 {
            vec![]
        } else {
            vec![raw_kind.table_name(), store_kind.table_name()]
        };
        for table in drop {
            sqlx::query(&format!("DROP TABLE `{table}`"))
                .execute(&pool)
                .await
                .expect("drop round table");
        }
    }
    let best = |rates: &[f64]| rates.iter().copied().fold(0.0, f64::max);
    let store_rate = best(&store_rates);
    let raw_rate = best(&raw_rates);

    // (a) One upsert per row, autocommitted.
    let cpu = Cpu::now(server);
    let started = Instant::now();
    for row in &rows[..single_rows] {
        raw_insert(
            &pool,
            "k8s_core_v1_podsingle",
            std::slice::from_ref(row),
            true,
        )
        .await;
    }
    let single_rate = single_rows as f64 / started.elapsed().as_secs_f64();
    println!("  single rows: {}", cpu.since(server));
    println!(
        "initial sync, MysqlStore::write (batches of {BATCH}, with change feed): {store_rate:>8.0} rows/s (best of {rounds})"
    );
    println!(
        "(a) one upsert per row ({single_rows} rows):                       {single_rate:>8.0} rows/s   store is {:.1}× faster",
        store_rate / single_rate
    );
    println!(
        "(b) raw sqlx multi-row INSERT ({BATCH} rows/statement):           {raw_rate:>8.0} rows/s   store is {:.2}× its rate (best/best)",
        store_rate / raw_rate
    );

    // 2. Label strategies on the same rows: JSON functions against a side table.
    sqlx::query(
        "CREATE TABLE bench_pod_labels (`object_id` BIGINT UNSIGNED NOT NULL, \
        `k` VARCHAR(317) NOT NULL, `v` VARCHAR(63) NOT NULL, PRIMARY KEY (`k`, `v`, `object_id`), \
        KEY (`object_id`)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    )
    .execute(&pool)
    .await
    .expect("side table");
    let started = Instant::now();
    sqlx::query("INSERT INTO bench_pod_labels SELECT p.id, j.k, JSON_VALUE(p.labels, CONCAT('$.\"', j.k, '\"')) \
        FROM k8s_core_v1_pod p, JSON_TABLE(JSON_KEYS(p.labels), '$[*]' COLUMNS (k VARCHAR(317) PATH '$')) j")
        .execute(&pool).await.expect("fill side table");
    let side_fill = started.elapsed();
    let json_sql = "SELECT COUNT(*) FROM k8s_core_v1_pod WHERE deleted_at IS NULL AND namespace = ? \
        AND JSON_VALUE(labels, '$.\"app\"') = ? AND JSON_VALUE(labels, '$.\"tier\"') = 'web' AND LOWER(name) LIKE ?";
    let side_sql = "SELECT COUNT(*) FROM k8s_core_v1_pod p WHERE p.deleted_at IS NULL AND p.namespace = ? \
        AND p.id IN (SELECT object_id FROM bench_pod_labels WHERE k = 'app' AND v = ?) \
        AND p.id IN (SELECT object_id FROM bench_pod_labels WHERE k = 'tier' AND v = 'web') AND LOWER(p.name) LIKE ?";
    // What the store's count does: labels evaluated in the list index when they are short.
    let count = |column: &str, long: &str| {
        format!(
            "SELECT COUNT(*) FROM k8s_core_v1_pod FORCE INDEX (ix_list) WHERE deleted_at IS NULL \
             AND namespace = ? AND labels_short IS {long} AND JSON_VALUE({column}, '$.\"app\"') = ? \
             AND JSON_VALUE({column}, '$.\"tier\"') = 'web' AND LOWER(name) LIKE ?"
        )
    };
    let index_sql = format!(
        "SELECT CAST(({}) + ({}) AS SIGNED)",
        count("labels_short", "NOT NULL"),
        count("labels", "NULL")
    );
    let (json_p50, json_p99, json_matched) = timed_queries(&pool, json_sql, namespaces, 1).await;
    let (side_p50, side_p99, side_matched) = timed_queries(&pool, side_sql, namespaces, 1).await;
    let (index_p50, index_p99, index_matched) =
        timed_queries(&pool, &index_sql, namespaces, 2).await;
    assert_eq!(json_matched, side_matched, "both strategies agree");
    assert_eq!(json_matched, index_matched, "all strategies agree");
    println!(
        "label filter, JSON functions (count, ns+label+search): p50 {json_p50:.3} ms   p99 {json_p99:.3} ms"
    );
    println!(
        "label filter, side table     (count, ns+label+search): p50 {side_p50:.3} ms   p99 {side_p99:.3} ms   (filling it: {:.0} label rows/s, {:.1} s for {objects} Pods)",
        objects as f64 * 3.0 / side_fill.as_secs_f64(),
        side_fill.as_secs_f64()
    );
    println!(
        "label filter, list index     (count, ns+label+search): p50 {index_p50:.3} ms   p99 {index_p99:.3} ms"
    );

    // 3. REST list through the API router.
    let (_tx, kinds) = tokio::sync::watch::channel(Arc::new(Kinds::new([kind])));
    let state = ApiState::new(store.clone(), kinds, MirrorHealth::new("mysql"));
    let app = ServerBuilder::new(Metrics::new().expect("metrics"), Health::new())
        .merge(router(state))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let urls: Arc<Vec<String>> = Arc::new(
        (0..300)
            .map(|i| format!(
                "http://{addr}/api/v1/pods?namespace=ns-{:03}&labelSelector=app%3Dapp-{},tier%3Dweb&search={}&limit=50",
                i % namespaces, (i * 7) % 20, i % 10))
            .collect(),
    );
    let client = reqwest::Client::new();
    let probe: serde_json::Value = client
        .get(&urls[0])
        .send()
        .await
        .expect("probe")
        .json()
        .await
        .expect("json");
    println!(
        "REST sample query matches {} Pods, returns {}",
        probe["total"],
        probe["items"].as_array().map_or(0, Vec::len)
    );
    if let Some(ms) = std::env::var("BENCH_SLOW_LOG_MS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    {
        // Every pooled connection logs its statements slower than `ms` with their plans and
        // InnoDB counters (the server's slow log must be on: SET GLOBAL slow_query_log = 1).
        let mut held = Vec::new();
        for _ in 0..16 {
            let mut conn = pool.acquire().await.expect("connection");
            sqlx::query(&format!(
                "SET SESSION slow_query_log = 1, long_query_time = {},                  log_slow_verbosity = 'query_plan,innodb,explain'",
                ms / 1000.0
            ))
            .execute(&mut *conn)
            .await
            .expect("slow log");
            held.push(conn);
        }
    }
    let cpu = Cpu::now(server);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let client = client.clone();
            let urls = Arc::clone(&urls);
            tokio::spawn(async move {
                // (latency, whether the URL matches Pods: 1 in 10, the rest match none)
                let mut latencies = Vec::new();
                let mut i = w as usize;
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let response = client
                        .get(&urls[i % urls.len()])
                        .send()
                        .await
                        .expect("request");
                    assert!(response.status().is_success());
                    let _ = response.bytes().await.expect("body");
                    latencies.push((started.elapsed().as_micros() as u64, i.is_multiple_of(10)));
                    i += concurrency as usize;
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    let requests = all.len();
    let mut latencies: Vec<u64> = all.iter().map(|(l, _)| *l).collect();
    let mut matching: Vec<u64> = all.iter().filter(|(_, m)| *m).map(|(l, _)| *l).collect();
    let mut empty: Vec<u64> = all.iter().filter(|(_, m)| !*m).map(|(l, _)| *l).collect();
    println!(
        "REST list (ns+label+search, limit 50, {concurrency} clients): {:>6.0} req/s   p50 {:.3} ms   p99 {:.3} ms",
        requests as f64 / seconds as f64,
        pct(&mut latencies, 0.5),
        pct(&mut latencies, 0.99)
    );
    println!(
        "  p90 {:.3} ms   max {:.3} ms; matching URLs p50 {:.3} p99 {:.3} ms; matching none p50 {:.3} p99 {:.3} ms",
        pct(&mut latencies, 0.9),
        pct(&mut latencies, 1.0),
        pct(&mut matching, 0.5),
        pct(&mut matching, 0.99),
        pct(&mut empty, 0.5),
        pct(&mut empty, 0.99)
    );
    println!("  REST phase: {}", cpu.since(server));
    pool.close().await;
    if std::env::var_os("BENCH_KEEP_DB").is_some() {
        println!("kept database {database}");
        return;
    }
    sqlx::query(&format!("DROP DATABASE `{database}`"))
        .execute(&admin)
        .await
        .expect("drop database");
}
