//! The operator against an in-process emulator: `/readyz` turns 200 once `/version` answers, and
//! stays 503 with a reason while the API server is unreachable.

use std::net::SocketAddr;
use std::time::Duration;

use stowage::config::Config;
use stowage::operator;
use stowage::sandbox::client_for;
use stowage::server;
use stowage::shutdown::Shutdown;
use stowage_emulator::{Emulator, EmulatorConfig};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Starts the operator against `api_url`; returns Stowage's base URL, the shutdown and the task.
async fn start_operator(
    api_url: &str,
) -> (
    String,
    Shutdown,
    tokio::task::JoinHandle<Result<(), operator::OperatorError>>,
) {
    let client = client_for(api_url).expect("client");
    let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let task =
        tokio::spawn(
            async move { operator::run(client, &Config::default(), listener, stop).await },
        );
    (base, shutdown, task)
}

/// Polls `/readyz` until it answers `want`; returns the last body.
async fn readyz_until(base: &str, want: u16) -> String {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        if let Ok(response) = reqwest::get(format!("{base}/readyz")).await
            && response.status().as_u16() == want
        {
            return response.text().await.expect("body");
        }
    }
}

#[tokio::test]
async fn ready_once_the_api_server_answers() {
    tokio::time::timeout(TIMEOUT, async {
        let emulator = Emulator::start(EmulatorConfig::default())
            .await
            .expect("emulator");
        let (base, shutdown, task) = start_operator(&emulator.url()).await;

        readyz_until(&base, 200).await;
        let metrics = reqwest::get(format!("{base}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("body");
        assert!(metrics.contains("stowage_apiserver_up 1"), "{metrics}");

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
async fn not_ready_with_a_reason_while_the_api_server_is_unreachable() {
    tokio::time::timeout(TIMEOUT, async {
        // A port that was free a moment ago: nothing answers there.
        let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let api_url = format!("http://{}", unused.local_addr().expect("addr"));
        drop(unused);
        let (base, shutdown, task) = start_operator(&api_url).await;

        let body = readyz_until(&base, 503).await;
        let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(body["status"], "not ready");
        let reason = body["reason"].as_str().expect("reason");
        assert!(reason.starts_with("apiserver: "), "{reason}");
        assert_eq!(
            reqwest::get(format!("{base}/healthz"))
                .await
                .expect("healthz")
                .status()
                .as_u16(),
            200
        );

        shutdown.trigger();
        task.await
            .expect("operator task")
            .expect("operator stops cleanly");
    })
    .await
    .expect("test timed out");
}
