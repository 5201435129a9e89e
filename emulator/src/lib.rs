//! An in-process Kubernetes API server emulator that unmodified kube-rs and kubectl clients accept.
//!
//! Start one with [`Emulator::start`]; it serves plain HTTP on loopback, keeps every object in memory
//! behind one global resourceVersion counter, and implements lists, watches, patches, server-side
//! apply, subresources, finalizers, CRDs and discovery the way kube-apiserver does.
//!
//! With [`EmulatorConfig::node_agent`] set it also runs a node agent (see [`NodeAgentConfig`]): the
//! kubelet of every Node object for Stowage's hostPath helper pods, acting on `root/<node name>/`.

pub mod events;
pub mod faults;
pub mod kubeconfig;
pub mod patch;
pub mod selectors;

mod http;
mod node_agent;
mod resources;
mod state;
mod status;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use faults::Faults;
pub use node_agent::{NODE_AGENT_ANNOTATION, NodeAgentConfig};

/// Settings for one emulator instance.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to bind; port 0 lets the OS choose.
    pub listen: SocketAddr,
    /// How many change events are kept for watches that resume from a resourceVersion.
    pub history: usize,
    /// When set, every request must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Interval between BOOKMARK events on watches that asked for them.
    pub bookmark_interval: Duration,
    /// When set, a node agent runs Stowage's helper pods against `root/<node name>/` (off by default).
    pub node_agent: Option<NodeAgentConfig>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            history: 10_000,
            token: None,
            bookmark_interval: Duration::from_secs(5),
            node_agent: None,
        }
    }
}

/// Errors from starting or seeding the emulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot bind {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write kubeconfig {path}")]
    Kubeconfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("seed object rejected: {0}")]
    Seed(String),
}

/// A running emulator. Dropping it does not stop the server; call [`RunningEmulator::shutdown`].
pub struct RunningEmulator {
    addr: SocketAddr,
    state: Arc<state::State>,
    faults: Faults,
    token: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    node_agent: Option<(NodeAgentConfig, tokio::task::JoinHandle<()>)>,
}

/// Entry point.
pub struct Emulator;

impl Emulator {
    /// Binds the listener and serves in a background task.
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, Error> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let state = Arc::new(state::State::new(config.history));
        let faults = Faults::default();
        let app = http::router(http::AppContext {
            state: state.clone(),
            faults: faults.clone(),
            token: config.token.clone(),
            bookmark_interval: config.bookmark_interval,
        });
        let node_agent = config
            .node_agent
            .map(|agent| (agent.clone(), node_agent::spawn(state.clone(), agent)));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = rx.await;
            });
            if let Err(err) = serve.await {
                tracing::error!(error = %err, "emulator server stopped");
            }
        });
        Ok(RunningEmulator {
            addr,
            state,
            faults,
            token: config.token,
            shutdown: Some(tx),
            task: Some(task),
            node_agent,
        })
    }
}

impl RunningEmulator {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Fault injection handle (drop watches, failing verbs, latency).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Kubeconfig YAML pointing at this emulator (with the bearer token when one is set).
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig::render(&self.url(), self.token.as_deref())
    }

    /// Writes the kubeconfig to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        std::fs::write(path, self.kubeconfig_yaml()).map_err(|source| Error::Kubeconfig {
            path: path.display().to_string(),
            source,
        })
    }

    /// Creates an object as a POST would (namespaces are not created implicitly).
    pub fn insert(&self, object: serde_json::Value) -> Result<serde_json::Value, Error> {
        self.state
            .seed(object)
            .map_err(|status| Error::Seed(status.message))
    }

    /// Current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state.current_rv()
    }

    /// Number of objects currently held, across all kinds.
    pub fn object_count(&self) -> usize {
        self.state.object_count()
    }

    /// Drops change history older than the newest `keep` events, so resuming watches get 410.
    pub fn compact_history(&self, keep: usize) {
        self.state.compact(keep)
    }

    /// The directory standing in for `node`'s filesystem when the node agent runs (it may not exist
    /// yet); None without a node agent or for a name that is not a single directory name.
    pub fn node_root(&self, node: &str) -> Option<PathBuf> {
        self.node_agent.as_ref()?.0.node_root(node)
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some((_, agent)) = self.node_agent.take() {
            agent.abort();
            let _ = agent.await;
        }
        self.faults.drop_watches();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
