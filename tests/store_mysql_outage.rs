//! MariaDB stopped and started during a sync loses nothing. The shared server on 127.0.0.1:3306
//! is never touched: the test installs a private, throwaway server in a temporary directory
//! (`mariadb-install-db`, then `mariadbd` on a free port) and stops and starts that one while the
//! mirror syncs ConfigMaps from the emulator into it.

mod mysql_support;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use mysql_support::TestDb;
use serde_json::json;
use stowage::config::{BreakerConfig, MirrorConfig};
use stowage::metrics::Metrics;
use stowage::mirror::Mirror;
use stowage::mirror::builtin;
use stowage::mirror::health::BreakerState;
use stowage::sandbox;
use stowage::store::{ListQuery, Store};
use stowage_emulator::{Emulator, EmulatorConfig};
use tempfile::TempDir;

/// A MariaDB server of this test's own.
struct PrivateServer {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl PrivateServer {
    fn install() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let data = dir.path().join("data");
        let output = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .args(["--auth-root-authentication-method=normal"])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .expect("mariadb-install-db runs");
        assert!(
            output.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self {
            dir,
            port,
            child: None,
        }
    }

    fn start(&mut self) {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        let child = Command::new("mariadbd")
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .args(["--skip-grant-tables", "--innodb-buffer-pool-size=32M"])
            .arg(format!("--datadir={}", path("data")))
            .arg(format!("--port={}", self.port))
            .arg(format!("--socket={}", path("mysqld.sock")))
            .arg(format!("--pid-file={}", path("mysqld.pid")))
            .arg(format!("--log-error={}", path("error.log")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd starts");
        self.child = Some(child);
        for _ in 0..600 {
            let ready = Command::new("mariadb")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-P",
                    &self.port.to_string(),
                    "-u",
                    "root",
                ])
                .args(["-e", "SELECT 1"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the private MariaDB did not answer within 60 s");
    }

    /// Stops the server the way an orchestrator does (SIGTERM) and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let wait = async {
        loop {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(secs), wait)
        .await
        .is_err()
    {
        panic!("{what}: not within {secs} s");
    }
}

fn config_map(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "outage"}},
        "data": {"k": "v"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_stopped_and_started_during_a_sync_loses_nothing() {
    let mut server = PrivateServer::install();
    server.start();
    let db = TestDb::create_on(server.port);
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    for i in 0..200 {
        emu.insert(config_map(&format!("before-{i:03}")))
            .expect("seed");
    }
    let client = sandbox::client_for(&emu.url()).expect("client");
    let config = MirrorConfig {
        exclude: builtin::kind_names()
            .into_iter()
            .filter(|k| *k != "ConfigMap")
            .map(str::to_owned)
            .collect(),
        batch_interval: Duration::from_millis(20),
        breaker: BreakerConfig {
            failures: 2,
            cooldown: Duration::from_millis(300),
            buffer: 100_000,
        },
        ..MirrorConfig::default()
    };
    let store = Arc::new(db.store(100_000));
    let metrics = Metrics::new().expect("metrics");
    let mirror = Mirror::start(client.clone(), &config, store.clone(), &metrics).expect("mirror");
    let spec = builtin::kinds()
        .into_iter()
        .find(|k| k.kind == "ConfigMap")
        .expect("ConfigMap");
    let stored = || {
        let store = Arc::clone(&store);
        let spec = spec.clone();
        async move {
            let query = ListQuery {
                limit: 100_000,
                ..ListQuery::default()
            };
            match store.list(&spec, &query).await {
                Ok(page) => Some(
                    page.items
                        .into_iter()
                        .map(|o| (o.name, o.resource_version))
                        .collect::<BTreeSet<_>>(),
                ),
                Err(_) => None,
            }
        }
    };
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cluster = || {
        let api = api.clone();
        async move {
            api.list(&ListParams::default())
                .await
                .expect("list ConfigMaps")
                .items
                .into_iter()
                .map(|c| {
                    let meta = c.metadata;
                    (
                        meta.name.unwrap_or_default(),
                        meta.resource_version.unwrap_or_default(),
                    )
                })
                .collect::<BTreeSet<_>>()
        }
    };
    eventually(60, "the initial sync into MariaDB", || async {
        stored().await.is_some_and(|s| s.len() == 200)
    })
    .await;

    // The database goes away in the middle of a stream of changes.
    server.stop();
    for i in 0..100 {
        emu.insert(config_map(&format!("during-{i:03}")))
            .expect("insert while down");
    }
    for i in 0..10 {
        api.delete(&format!("before-{i:03}"), &DeleteParams::default())
            .await
            .expect("delete while down");
        let patch = json!({"data": {"k": format!("changed-{i}")}});
        api.patch(
            &format!("before-{:03}", 100 + i),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("patch while down");
    }
    eventually(30, "the breaker opens", || async {
        mirror.health().breaker().state != BreakerState::Closed
    })
    .await;
    assert!(
        store.revision().await.is_err(),
        "the store reports the outage"
    );

    server.start();
    let expected = cluster().await;
    assert_eq!(expected.len(), 290);
    eventually(90, "the store catches up after MariaDB is back", || async {
        stored().await.is_some_and(|s| s == expected)
    })
    .await;
    eventually(30, "the breaker closes", || async {
        mirror.health().breaker().state == BreakerState::Closed
    })
    .await;
    let revision = store.revision().await.expect("revision");
    let feed = store.changes(None, 0, usize::MAX).await.expect("feed");
    let revisions: Vec<u64> = feed.iter().map(|c| c.revision).collect();
    assert_eq!(
        revisions,
        (1..=revision).collect::<Vec<_>>(),
        "the feed has every change once"
    );
    drop(mirror);
    drop(db);
    server.stop();
}
