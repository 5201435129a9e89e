//! The operator process: connect to the API server, serve Stowage's HTTP endpoints, stop on signal.
//!
//! Mirroring and the storage controller are later additions; today the operator proves it can
//! reach the cluster (`/readyz` turns 200) and exposes health and metrics.

use std::time::Duration;

use kube::Client;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::config::Config;
use crate::metrics::{Metrics, MetricsError};
use crate::server::{self, Health, ServerBuilder, ServerError};
use crate::shutdown::Shutdown;

/// Name of the readiness check that waits for the API server.
pub const APISERVER_CHECK: &str = "apiserver";

/// How long one `/version` request may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);
/// First and largest pause between attempts to reach the API server.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Errors that stop the operator.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("cannot set up metrics")]
    Metrics {
        #[source]
        source: MetricsError,
    },
    #[error("cannot read the HTTP listener's address")]
    ListenerAddr {
        #[source]
        source: std::io::Error,
    },
    #[error("Stowage's HTTP server stopped")]
    Server {
        #[source]
        source: ServerError,
    },
    #[error("Stowage's HTTP server task ended abnormally")]
    ServerTask {
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Runs the operator against `client`, serving HTTP on `listener`, until `shutdown` fires or the
/// HTTP server fails. `/readyz` answers 503 until the API server has answered `/version`.
pub async fn run(
    client: Client,
    config: &Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), OperatorError> {
    let metrics = Metrics::new().map_err(|source| OperatorError::Metrics { source })?;
    let health = Health::new();
    health.set_not_ready(
        APISERVER_CHECK,
        "waiting for the Kubernetes API server to answer /version",
    );
    let addr = listener
        .local_addr()
        .map_err(|source| OperatorError::ListenerAddr { source })?;
    let app = ServerBuilder::new(metrics.clone(), health.clone()).build();
    let mut server = tokio::spawn(server::serve(listener, app, shutdown.wait_owned()));
    info!(%addr, storage = %config.storage.kind, "serving /healthz, /readyz and /metrics");

    info!(
        "mirroring (ResourceMirror) and the storage controller are not built yet: Stowage only \
         checks the API server and serves health and metrics"
    );

    let connect = async {
        wait_for_apiserver(&client, &metrics, &health).await;
        std::future::pending::<()>().await;
    };
    tokio::select! {
        ended = &mut server => {
            // The server only returns before shutdown on failure; stop everything else too.
            shutdown.trigger();
            return server_result(ended);
        }
        () = connect => {}
        () = shutdown.wait() => {}
    }
    server_result(server.await)
}

fn server_result(
    joined: Result<Result<(), ServerError>, tokio::task::JoinError>,
) -> Result<(), OperatorError> {
    joined
        .map_err(|source| OperatorError::ServerTask { source })?
        .map_err(|source| OperatorError::Server { source })
}

/// Asks for `/version` until the API server answers, backing off between attempts.
async fn wait_for_apiserver(client: &Client, metrics: &Metrics, health: &Health) {
    let mut delay = RETRY_MIN;
    loop {
        let reason = match tokio::time::timeout(VERSION_TIMEOUT, client.apiserver_version()).await {
            Ok(Ok(version)) => {
                info!(
                    version = %version.git_version,
                    platform = %version.platform,
                    "connected to the Kubernetes API server"
                );
                metrics.set_apiserver_up(true);
                health.set_ready(APISERVER_CHECK);
                return;
            }
            Ok(Err(err)) => crate::report::chain(&err),
            Err(_) => format!("no answer within {}s", VERSION_TIMEOUT.as_secs()),
        };
        warn!(error = %reason, retry_in = ?delay, "the Kubernetes API server did not answer /version");
        metrics.set_apiserver_up(false);
        health.set_not_ready(
            APISERVER_CHECK,
            format!("the Kubernetes API server did not answer /version: {reason}"),
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_MAX);
    }
}
