//! The operator process: build the store, start the mirror, serve Stowage's HTTP endpoints (health,
//! metrics and the REST API over the store), stop on signal.
//!
//! `/readyz` turns 200 once the API server answered `/version` and every mirrored kind finished
//! its initial sync. With `storage.controller.enabled` the storage controller runs beside the
//! mirror, writing only while this replica holds the leader Lease.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::api::{self, ApiState};
use crate::cache::{Cache, CacheError, CacheMetrics};
use crate::config::{Config, StorageType};
use crate::leader::{Election, ElectionSettings, LeaderMetrics};
use crate::metrics::{Metrics, MetricsError};
use crate::mirror::{Mirror, MirrorError};
use crate::server::{self, Health, ServerBuilder, ServerError};
use crate::shutdown::Shutdown;
use crate::storage::controller::{self, ControllerSettings};
use crate::storage::metrics::StorageMetrics;
use crate::store::Store;
use crate::store::etcd::{EtcdSettings, EtcdStore};
use crate::store::memory::MemoryStore;
use crate::store::mysql::{MysqlOptions, MysqlStore};

/// Name of the readiness check that waits for the API server.
pub const APISERVER_CHECK: &str = "apiserver";
/// Name of the readiness check that waits for the mirror's initial sync.
pub const MIRROR_CHECK: &str = "mirror";
/// How often the mirror's readiness is looked at until it is ready.
const MIRROR_READY_POLL: Duration = Duration::from_millis(100);

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
    #[error("cannot set up the read cache")]
    Cache {
        #[source]
        source: CacheError,
    },
    #[error("cannot start the mirror")]
    Mirror {
        #[source]
        source: MirrorError,
    },
}

impl OperatorError {
    /// Metrics and log label.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Metrics { .. } => "metrics",
            Self::ListenerAddr { .. } | Self::Server { .. } | Self::ServerTask { .. } => "server",
            Self::Mirror { .. } => "mirror",
            Self::Cache { .. } => "cache",
        }
    }
}

/// The store `storage.type` names. Neither remote store needs its backend up at start: the
/// MySQL store connects in the background with backoff (logged, and shown in `/api/v1/status`),
/// the etcd store on first use; meanwhile the mirror's registration retries and its breaker wait.
/// Must be called inside a Tokio runtime.
pub fn build_store(config: &Config) -> Result<Arc<dyn Store>, OperatorError> {
    match config.storage.kind {
        StorageType::Memory => Ok(Arc::new(MemoryStore::new(config.mirror.history))),
        StorageType::Mysql => {
            let options = MysqlOptions::from_config(&config.storage.mysql, config.mirror.history);
            let store = Arc::new(MysqlStore::new(options));
            tokio::spawn(Arc::clone(&store).connect_with_backoff());
            Ok(store)
        }
        StorageType::Etcd => Ok(Arc::new(EtcdStore::new(EtcdSettings::from_config(
            &config.storage.etcd,
        )))),
    }
}

/// Runs the operator against `client` with the store `storage.type` names, serving HTTP on
/// `listener`, until `shutdown` fires or the HTTP server fails. A store backend that is not
/// built yet is an error before anything starts.
pub async fn run(
    client: Client,
    config: &Config,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), OperatorError> {
    let store = build_store(config)?;
    run_with_store(client, config, store, listener, shutdown).await
}

/// [`run`] with a given store (tests wrap the memory store to inject failures). `/readyz` answers
/// 503 until the API server has answered `/version` and the mirror's initial sync is done.
pub async fn run_with_store(
    client: Client,
    config: &Config,
    store: Arc<dyn Store>,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), OperatorError> {
    let metrics = Metrics::new().map_err(|source| OperatorError::Metrics { source })?;
    let health = Health::new();
    health.set_not_ready(
        APISERVER_CHECK,
        "waiting for the Kubernetes API server to answer /version",
    );
    health.set_not_ready(MIRROR_CHECK, "waiting for the initial sync");
    let addr = listener
        .local_addr()
        .map_err(|source| OperatorError::ListenerAddr { source })?;
    // One Lease for every writer: ResourceMirror statuses and the storage controller.
    let storage = start_storage(&client, config, &metrics, &shutdown)?;
    let mirror = match &storage {
        Some(storage) => Mirror::start_with_leader(
            client.clone(),
            &config.mirror,
            store,
            &metrics,
            storage.election.leading(),
        ),
        None => Mirror::start(client.clone(), &config.mirror, store, &metrics),
    }
    .map_err(|source| OperatorError::Mirror { source })?;
    let cache = build_cache(config, &metrics)?;
    // Invalidation follows the store the mirror writes; pub/sub carries other replicas' changes.
    cache.follow(mirror.store(), mirror.kinds(), shutdown.clone());
    cache.listen(shutdown.clone());
    let rest = ApiState::new(mirror.store(), mirror.kinds(), mirror.health())
        .with_shutdown(shutdown.clone())
        .with_cache(cache);
    let app = ServerBuilder::new(metrics.clone(), health.clone())
        .merge(api::router(rest))
        .build();
    let mut server = tokio::spawn(server::serve(listener, app, shutdown.wait_owned()));
    info!(
        %addr,
        storage = %config.storage.kind,
        "serving /healthz, /readyz, /metrics and the REST API under /api/v1"
    );

    let connect = async {
        wait_for_apiserver(&client, &metrics, &health).await;
        wait_for_mirror(&mirror, &health).await;
        std::future::pending::<()>().await;
    };
    let ended_early = tokio::select! {
        ended = &mut server => Some(ended),
        () = connect => None,
        () = shutdown.wait() => None,
    };
    mirror.shutdown().await;
    let result = match ended_early {
        // The server only returns before shutdown on failure; stop everything else too.
        Some(ended) => {
            shutdown.trigger();
            server_result(ended)
        }
        None => server_result(server.await),
    };
    if let Some(storage) = storage {
        storage.stopped().await;
    }
    result
}

/// The storage controller and its leader election, while both run.
struct StorageTasks {
    election: Election,
    controller: tokio::task::JoinHandle<()>,
}

impl StorageTasks {
    /// Waits for the controller to stop writing, then for the Lease to be released.
    async fn stopped(self) {
        if let Err(err) = self.controller.await {
            warn!(error = %err, "the storage controller task ended abnormally");
        }
        self.election.stopped().await;
    }
}

/// Starts the leader election and the storage controller when `storage.controller.enabled`.
fn start_storage(
    client: &Client,
    config: &Config,
    metrics: &Metrics,
    shutdown: &Shutdown,
) -> Result<Option<StorageTasks>, OperatorError> {
    if !config.storage.controller.enabled {
        return Ok(None);
    }
    let metrics_error = |source| OperatorError::Metrics { source };
    let leader_metrics = LeaderMetrics::register(metrics).map_err(metrics_error)?;
    let storage_metrics = StorageMetrics::register(metrics).map_err(metrics_error)?;
    let election_settings = ElectionSettings::from_config(&config.storage.controller);
    let settings = ControllerSettings::from_config(config, election_settings.identity.clone());
    info!(
        mode = ?settings.mode,
        lease = %election_settings.lease_name,
        namespace = %election_settings.namespace,
        "storage controller enabled"
    );
    let election = Election::start(
        client.clone(),
        election_settings,
        leader_metrics,
        shutdown.clone(),
    );
    let controller = tokio::spawn(controller::run(
        client.clone(),
        settings,
        storage_metrics,
        election.leading(),
        shutdown.clone(),
    ));
    Ok(Some(StorageTasks {
        election,
        controller,
    }))
}

/// The read cache `cache` configures, its metrics registered with `metrics`.
fn build_cache(config: &Config, metrics: &Metrics) -> Result<Cache, OperatorError> {
    let cache_metrics =
        CacheMetrics::register(metrics).map_err(|source| OperatorError::Metrics { source })?;
    let cache = Cache::new(&config.cache, cache_metrics)
        .map_err(|source| OperatorError::Cache { source })?;
    info!(
        enabled = config.cache.enabled,
        redis = config.cache.redis.enabled,
        "read cache configured"
    );
    Ok(cache)
}

/// Keeps the mirror's readiness check current until the initial sync is done; after that the
/// check stays ready (a `ResourceMirror` added later does not take the pod out of service).
async fn wait_for_mirror(mirror: &Mirror, health: &Health) {
    let mut tick = tokio::time::interval(MIRROR_READY_POLL);
    loop {
        tick.tick().await;
        match mirror.initial_sync() {
            Ok(()) => {
                info!("initial sync complete");
                health.set_ready(MIRROR_CHECK);
                return;
            }
            Err(reason) => health.set_not_ready(MIRROR_CHECK, reason),
        }
    }
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
