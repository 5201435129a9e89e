//! The connection to etcd: settings from `storage.etcd`, a lazily established client (etcd down
//! at start is an `Unavailable` answer, retried by the caller, never a crash), per-call timeouts
//! and the mapping of client errors to store errors.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions, KvClient, WatchClient};
use tokio::sync::Mutex;

use super::keys::DEFAULT_PREFIX;
use super::split::Limits;
use crate::config::EtcdConfig;
use crate::store::StoreError;

/// Bound on one unary call; longer means the cluster is unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response accepted (tonic's default of 4 MiB is below one range page of big objects).
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Everything the etcd store is configured with.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    pub endpoints: Vec<String>,
    pub dial_timeout: Duration,
    /// Empty: no authentication.
    pub username: String,
    pub password: String,
    /// Key prefix of this mirror (`storage.etcd.prefix`).
    pub prefix: String,
    /// The server's transaction limits (`storage.etcd.max_txn_ops`, `max_request_bytes`).
    pub limits: Limits,
}

impl EtcdSettings {
    /// Settings for `endpoints` with the defaults of `storage.etcd`.
    pub fn new(endpoints: Vec<String>, prefix: &str) -> Self {
        Self {
            endpoints,
            dial_timeout: Duration::from_secs(5),
            username: String::new(),
            password: String::new(),
            prefix: prefix.to_owned(),
            limits: Limits::default(),
        }
    }

    pub fn from_config(config: &EtcdConfig) -> Self {
        Self {
            endpoints: config.endpoints.clone(),
            dial_timeout: config.dial_timeout,
            username: config.username.clone(),
            password: config.password.clone(),
            prefix: config.prefix.clone(),
            limits: Limits {
                max_ops: config.max_txn_ops,
                max_request_bytes: config.max_request_bytes,
            },
        }
    }
}

impl Default for EtcdSettings {
    fn default() -> Self {
        Self::new(vec!["http://127.0.0.1:2379".to_owned()], DEFAULT_PREFIX)
    }
}

/// The clients of one connection.
#[derive(Clone)]
pub struct Clients {
    pub kv: KvClient,
    pub watch: WatchClient,
}

/// A connection made on first use and kept; a failed attempt is retried on the next call.
pub struct Connection {
    settings: EtcdSettings,
    clients: Mutex<Option<Clients>>,
}

impl Connection {
    pub fn new(settings: EtcdSettings) -> Self {
        Self {
            settings,
            clients: Mutex::new(None),
        }
    }

    pub fn settings(&self) -> &EtcdSettings {
        &self.settings
    }

    /// The clients, connecting (and authenticating) first when needed.
    pub async fn clients(&self) -> Result<Clients, StoreError> {
        let mut slot = self.clients.lock().await;
        if let Some(clients) = &*slot {
            return Ok(clients.clone());
        }
        let settings = &self.settings;
        let mut options = ConnectOptions::new()
            .with_connect_timeout(settings.dial_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        if !settings.username.is_empty() {
            options = options
                .with_user(&settings.username, &settings.password)
                .with_auto_token_refresh(true);
        }
        let connect = Client::connect(&settings.endpoints, Some(options));
        let client = match tokio::time::timeout(settings.dial_timeout, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => return Err(unavailable("connecting to etcd", error)),
            Err(_) => {
                return Err(StoreError::Unavailable {
                    message: format!(
                        "connecting to etcd at {}: no answer within {:?}",
                        settings.endpoints.join(","),
                        settings.dial_timeout
                    ),
                    source: None,
                });
            }
        };
        let clients = Clients {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
        };
        *slot = Some(clients.clone());
        Ok(clients)
    }
}

/// Runs one etcd call within [`CALL_TIMEOUT`]; failures are `Unavailable` (retried).
pub async fn call<T>(
    what: &str,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(unavailable(what, error)),
        Err(_) => Err(StoreError::Unavailable {
            message: format!("{what}: no answer from etcd within {CALL_TIMEOUT:?}"),
            source: None,
        }),
    }
}

pub fn unavailable(what: &str, error: etcd_client::Error) -> StoreError {
    StoreError::Unavailable {
        message: format!("{what}: {error}"),
        source: Some(Box::new(error)),
    }
}
