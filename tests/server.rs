//! Stowage's HTTP endpoints served in-process: health, readiness before and after, metrics.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use stowage::metrics::Metrics;
use stowage::server::{self, Health, ServerBuilder};
use stowage::shutdown::Shutdown;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A served router on a free loopback port, stopped when the returned [`Shutdown`] fires.
async fn serve(app: Router) -> (SocketAddr, Shutdown, tokio::task::JoinHandle<()>) {
    let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let shutdown = Shutdown::new();
    let stop = shutdown.wait_owned();
    let task =
        tokio::spawn(async move { server::serve(listener, app, stop).await.expect("serve") });
    (addr, shutdown, task)
}

async fn get_text(url: String) -> (u16, String) {
    let response = reqwest::get(url).await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn healthz_readyz_and_metrics() {
    tokio::time::timeout(TIMEOUT, async {
        let metrics = Metrics::new().expect("metrics");
        let health = Health::new();
        health.set_not_ready("apiserver", "waiting for the Kubernetes API server");
        let (addr, shutdown, task) =
            serve(ServerBuilder::new(metrics.clone(), health.clone()).build()).await;
        let base = format!("http://{addr}");

        assert_eq!(
            get_text(format!("{base}/healthz")).await,
            (200, "ok".to_owned())
        );

        let (status, body) = get_text(format!("{base}/readyz")).await;
        assert_eq!(status, 503);
        let body: serde_json::Value = serde_json::from_str(&body).expect("readyz answers JSON");
        assert_eq!(body["status"], "not ready");
        assert_eq!(
            body["reason"],
            "apiserver: waiting for the Kubernetes API server"
        );

        health.set_ready("apiserver");
        metrics.set_apiserver_up(true);
        let (status, body) = get_text(format!("{base}/readyz")).await;
        assert_eq!(status, 200, "{body}");

        let response = reqwest::get(format!("{base}/metrics"))
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(content_type.as_deref(), Some("text/plain; version=0.0.4"));
        let text = response.text().await.expect("body");
        assert!(
            text.contains(&format!(
                "stowage_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(text.contains("stowage_apiserver_up 1"), "{text}");
        assert!(
            text.contains(
                "stowage_http_requests_total{code=\"503\",method=\"GET\",route=\"/readyz\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains(
            "stowage_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\"} 1"
        ));

        shutdown.trigger();
        task.await.expect("server task");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn merged_routes_are_served_and_counted_unknown_paths_are_404() {
    tokio::time::timeout(TIMEOUT, async {
        let metrics = Metrics::new().expect("metrics");
        let extra = Router::new().route("/api/v1/things/{name}", get(|| async { "thing" }));
        let app = ServerBuilder::new(metrics.clone(), Health::new()).merge(extra).build();
        let (addr, shutdown, task) = serve(app).await;
        let base = format!("http://{addr}");

        assert_eq!(get_text(format!("{base}/api/v1/things/a")).await, (200, "thing".to_owned()));
        assert_eq!(get_text(format!("{base}/api/v1/things/b")).await.0, 200);
        assert_eq!(get_text(format!("{base}/nope")).await.0, 404);
        assert_eq!(get_text(format!("{base}/readyz")).await.0, 200, "no checks registered means ready");

        let text = metrics.encode().expect("encode");
        assert!(
            text.contains("stowage_http_requests_total{code=\"200\",method=\"GET\",route=\"/api/v1/things/{name}\"} 2"),
            "routes are labelled by template: {text}"
        );
        assert!(text.contains("stowage_http_requests_total{code=\"404\",method=\"GET\",route=\"unmatched\"} 1"));

        shutdown.trigger();
        task.await.expect("server task");
    })
    .await
    .expect("test timed out");
}
