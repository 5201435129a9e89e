//! `stowage run` with `storage.type: mysql` against an in-process emulator: a database that is down
//! at start does not stop the operator and `/api/v1/status` says why; with the database up the
//! cluster is mirrored into it and served by the REST API.

mod mysql_support;

use std::net::SocketAddr;
use std::time::Duration;

use mysql_support::TestDb;
use serde_json::{Value, json};
use stowage::config::{Config, StorageType};
use stowage::operator;
use stowage::sandbox::client_for;
use stowage::server;
use stowage::shutdown::Shutdown;
use stowage_emulator::{Emulator, EmulatorConfig};

const TIMEOUT: Duration = Duration::from_secs(60);

fn mysql_config(port: u16, database: &str) -> Config {
    let mut config = Config::default();
    config.storage.kind = StorageType::Mysql;
    config.storage.mysql.host = "127.0.0.1".into();
    config.storage.mysql.port = port;
    config.storage.mysql.database = database.into();
    config.storage.mysql.max_open_conns = 8;
    config.storage.mysql.max_idle_conns = 0;
    config
}

/// Polls `url` until `check` accepts its JSON body; returns that body.
async fn poll_json(url: &str, check: impl Fn(&Value) -> bool) -> Value {
    loop {
        if let Ok(response) = reqwest::get(url).await
            && let Ok(body) = response.json::<Value>().await
            && check(&body)
        {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn mysql_down_at_start_is_retried_and_shown_in_status() {
    tokio::time::timeout(TIMEOUT, async {
        let emulator = Emulator::start(EmulatorConfig::default())
            .await
            .expect("emulator");
        // A port nobody listens on: the database is down.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let config = mysql_config(port, "kubernetes");
        let client = client_for(&emulator.url()).expect("client");
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let task =
            tokio::spawn(async move { operator::run(client, &config, listener, stop).await });
        let status = poll_json(&format!("{base}/api/v1/status"), |body| {
            body["store"]["error"].is_string()
        })
        .await;
        assert_eq!(status["store"]["backend"], "mysql");
        let error = status["store"]["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("unavailable"),
            "the reason is shown: {error}"
        );
        assert!(
            !task.is_finished(),
            "the operator keeps running while the database is down"
        );
        shutdown.trigger();
        task.await
            .expect("operator task")
            .expect("operator stops cleanly");
        emulator.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn the_cluster_is_mirrored_into_mysql_and_served() {
    tokio::time::timeout(TIMEOUT, async {
        let db = TestDb::create();
        let emulator = Emulator::start(EmulatorConfig::default())
            .await
            .expect("emulator");
        emulator
            .insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "seeded", "namespace": "default", "labels": {"app": "web"}},
                "data": {"k": "v"}}))
            .expect("seed");
        let config = mysql_config(mysql_support::PORT, &db.name);
        let client = client_for(&emulator.url()).expect("client");
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let task =
            tokio::spawn(async move { operator::run(client, &config, listener, stop).await });
        let url = format!("{base}/api/v1/namespace/default/configmaps?labelSelector=app%3Dweb");
        let list = poll_json(&url, |body| body["total"] == 1).await;
        assert_eq!(list["items"][0]["metadata"]["name"], "seeded", "{list}");
        let stored = db.sql("SELECT name FROM k8s_core_v1_configmap WHERE deleted_at IS NULL");
        assert!(stored.lines().any(|l| l == "seeded"), "{stored}");
        shutdown.trigger();
        task.await
            .expect("operator task")
            .expect("operator stops cleanly");
        emulator.shutdown().await;
    })
    .await
    .expect("test timed out");
}
