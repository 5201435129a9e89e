//! Stowage's typed configuration: YAML file, then `STOWAGE_*__*` environment variables, then flags.

mod cache;
mod mirror;
mod render;
mod serde_helpers;
mod storage;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Yaml};
use serde::{Deserialize, Serialize};

pub use cache::{CacheConfig, FamilyTtls, L1Config, RedisConfig};
pub use mirror::{BreakerConfig, ColumnConfig, ListMode, MirrorConfig, MirrorResource};
pub use render::Problem;
pub use storage::{HostPathConfig, NfsConfig, StorageControllerConfig};

/// File read when `--config` is not given and the file exists in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = ".config.yaml";

/// Prefix of configuration environment variables; nested keys are separated by `__`.
pub const ENV_PREFIX: &str = "STOWAGE_";

/// Shown instead of a non-empty secret by [`Config::redacted`].
pub const REDACTED: &str = "***";

/// Errors from loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config PATH` named a file that is not there.
    #[error("configuration file {} does not exist", path.display())]
    FileNotFound { path: PathBuf },
    /// `--config PATH` named something that is not a regular file.
    #[error("configuration path {} is not a file", path.display())]
    NotAFile { path: PathBuf },
    /// The sources parsed but some values are unusable; every problem names its key.
    #[error("invalid configuration:{}", render::bullet_list(problems))]
    Invalid { problems: Vec<Problem> },
    /// The effective configuration could not be rendered as YAML.
    #[error("cannot render the configuration as YAML")]
    Render {
        #[source]
        source: serde_yaml::Error,
    },
}

impl ConfigError {
    /// The individual problems when the configuration was rejected, empty otherwise.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid { problems } => problems,
            _ => &[],
        }
    }
}

/// Everything Stowage can be configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where mirrored objects are stored.
    pub storage: StorageConfig,
    /// Stowage's own HTTP server (health, readiness, metrics).
    pub server: ServerConfig,
    /// What is mirrored from the cluster into the store, and how.
    pub mirror: MirrorConfig,
    /// The read cache in front of the store (in-process L1, optional Redis L2).
    pub cache: CacheConfig,
}

/// The `storage` section: the mirror's store, and the storage controller's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Which backend is used.
    #[serde(rename = "type")]
    pub kind: StorageType,
    /// Settings used when `type: mysql`.
    pub mysql: MysqlConfig,
    /// Settings used when `type: etcd`.
    pub etcd: EtcdConfig,
    /// The storage controller also binds claims to volumes (clusters without
    /// kube-controller-manager, such as the emulator); `false` only provisions, expands and deletes.
    pub binder: bool,
    /// The storage controller: on/off, helper pods, leader election.
    pub controller: StorageControllerConfig,
    /// Base paths of hostPath volumes per node.
    pub hostpath: HostPathConfig,
    /// The NFS export as mounted into Stowage's pod.
    pub nfs: NfsConfig,
}

/// Storage backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    /// Keep everything in process memory (lost on restart).
    #[default]
    Memory,
    /// A MySQL-compatible database.
    Mysql,
    /// An etcd v3 cluster.
    Etcd,
}

impl StorageType {
    /// The name used in configuration files, e.g. `mysql`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Mysql => "mysql",
            Self::Etcd => "etcd",
        }
    }
}

impl std::fmt::Display for StorageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `storage.mysql` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MysqlConfig {
    #[serde(deserialize_with = "serde_helpers::lenient_string")]
    pub host: String,
    #[serde(deserialize_with = "serde_helpers::port")]
    pub port: u16,
    #[serde(deserialize_with = "serde_helpers::lenient_string")]
    pub user: String,
    #[serde(deserialize_with = "serde_helpers::lenient_string")]
    pub password: String,
    #[serde(deserialize_with = "serde_helpers::lenient_string")]
    pub database: String,
    /// Upper bound on open connections in the pool.
    pub max_open_conns: u32,
    /// Connections kept open while idle; at most `max_open_conns`.
    pub max_idle_conns: u32,
    /// How long soft-deleted rows (`deleted_at` set) are kept before they are purged, e.g. `24h`.
    #[serde(with = "serde_helpers::duration")]
    pub purge_after: Duration,
}

impl Default for MysqlConfig {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 3306,
            user: "root".into(),
            password: String::new(),
            database: "kubernetes".into(),
            max_open_conns: 100,
            max_idle_conns: 10,
            purge_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// The `storage.etcd` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `http://localhost:2379`.
    pub endpoints: Vec<String>,
    /// How long to wait for a connection, e.g. `5s`.
    #[serde(with = "serde_helpers::duration")]
    pub dial_timeout: Duration,
    #[serde(deserialize_with = "serde_helpers::lenient_string")]
    pub username: String,
    #[serde(deserialize_with = "serde_helpers::lenient_string")]
    pub password: String,
    /// Key prefix of this mirror's objects, so several mirrors can share one cluster.
    #[serde(deserialize_with = "serde_helpers::lenient_string")]
    pub prefix: String,
    /// Operations per transaction: the cluster's `--max-txn-ops`.
    pub max_txn_ops: usize,
    /// Bytes per request: the cluster's `--max-request-bytes`.
    pub max_request_bytes: usize,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://localhost:2379".into()],
            dial_timeout: Duration::from_secs(5),
            username: String::new(),
            password: String::new(),
            prefix: "/kubernetes".into(),
            max_txn_ops: 128,
            max_request_bytes: 1_572_864,
        }
    }
}

/// The `server` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of Stowage's HTTP server.
    #[serde(deserialize_with = "serde_helpers::socket_addr")]
    pub listen: SocketAddr,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
        }
    }
}

/// Values from command-line flags; they win over the file and the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen`: replaces `server.listen`.
    pub listen: Option<SocketAddr>,
}

impl Config {
    /// Loads the configuration: `file` (or `.config.yaml` in the working directory when present),
    /// then `STOWAGE_<SECTION>__<KEY>` environment variables, then `overrides`; then validates it.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut config =
            figment(file)?
                .extract::<Config>()
                .map_err(|err| ConfigError::Invalid {
                    problems: render::figment_problems(err),
                })?;
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    /// Replaces values with those given on the command line.
    pub fn apply(&mut self, overrides: &Overrides) {
        if let Some(listen) = overrides.listen {
            self.server.listen = listen;
        }
    }

    /// Checks relations and ranges the types cannot express; every problem names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = validate::problems(self);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { problems })
        }
    }

    /// A copy with every non-empty password replaced by [`REDACTED`].
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        for secret in [
            &mut copy.storage.mysql.password,
            &mut copy.storage.etcd.password,
            &mut copy.cache.redis.password,
        ] {
            if !secret.is_empty() {
                *secret = REDACTED.to_owned();
            }
        }
        copy
    }

    /// The configuration as YAML with passwords redacted, as `stowage config print` shows it.
    pub fn to_redacted_yaml(&self) -> Result<String, ConfigError> {
        serde_yaml::to_string(&self.redacted()).map_err(|source| ConfigError::Render { source })
    }
}

/// The layered sources, before extraction.
fn figment(file: Option<&Path>) -> Result<Figment, ConfigError> {
    let mut figment = Figment::new();
    match file {
        Some(path) if !path.exists() => {
            return Err(ConfigError::FileNotFound {
                path: path.to_owned(),
            });
        }
        Some(path) if !path.is_file() => {
            return Err(ConfigError::NotAFile {
                path: path.to_owned(),
            });
        }
        Some(path) => figment = figment.merge(Yaml::file_exact(path)),
        None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
            figment = figment.merge(Yaml::file_exact(DEFAULT_CONFIG_FILE));
        }
        None => {}
    }
    // Only `__`-separated names are configuration keys; `STOWAGE_LISTEN` and friends are flags.
    let env = Env::prefixed(ENV_PREFIX)
        .filter(|key| key.as_str().contains("__"))
        .split("__");
    Ok(figment.merge(env))
}
