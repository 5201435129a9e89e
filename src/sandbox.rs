//! Local playgrounds: `stowage emulator` (just the API server emulator) and `stowage sandbox`
//! (a seeded emulator with the operator, the mirror, the REST API and the storage controller in
//! binder mode running against it; NFS volumes and the nodes' hostPath directories live in a
//! temporary directory, where the emulator's node agent runs the helper pods).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use stowage_emulator::{Emulator, EmulatorConfig, NodeAgentConfig, RunningEmulator};

use crate::config::Config;
use crate::operator::{self, OperatorError};
use crate::server::{self, ServerError};
use crate::shutdown::Shutdown;

/// Objects the sandbox starts with: multi-document YAML, applied in file order.
pub const SEED: &str = include_str!("sandbox/seed.yaml");

/// Errors from the local playground commands.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot start the Kubernetes API emulator")]
    Start {
        #[source]
        source: stowage_emulator::Error,
    },
    #[error("cannot write the kubeconfig")]
    Kubeconfig {
        #[source]
        source: stowage_emulator::Error,
    },
    #[error("seed document {index} is not valid YAML")]
    SeedParse {
        index: usize,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("the emulator rejected seed document {index} ({object})")]
    Seed {
        index: usize,
        object: String,
        #[source]
        source: stowage_emulator::Error,
    },
    #[error("cannot install the CRD {name} into the emulator: {reason}")]
    InstallCrd { name: String, reason: String },
    #[error("cannot build a Kubernetes client for the emulator at {url}")]
    Client {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot start Stowage's HTTP server (try --listen 127.0.0.1:0 for any free port)")]
    Listen {
        #[source]
        source: ServerError,
    },
    #[error("cannot create the sandbox's temporary storage directory")]
    TempDir {
        #[source]
        source: std::io::Error,
    },
    #[error("the operator stopped")]
    Operator {
        #[source]
        source: OperatorError,
    },
}

/// Settings of `stowage emulator`.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    pub listen: SocketAddr,
    pub kubeconfig: PathBuf,
    pub history: usize,
    pub token: Option<String>,
}

/// Runs only the emulator: writes the kubeconfig, prints the URL, waits for `shutdown`.
pub async fn run_emulator(
    options: EmulatorOptions,
    shutdown: Shutdown,
) -> Result<(), SandboxError> {
    let config = EmulatorConfig {
        listen: options.listen,
        history: options.history,
        token: options.token,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config)
        .await
        .map_err(|source| SandboxError::Start { source })?;
    let written = emulator.write_kubeconfig(&options.kubeconfig);
    if let Err(source) = written {
        emulator.shutdown().await;
        return Err(SandboxError::Kubeconfig { source });
    }
    tracing::info!(url = %emulator.url(), kubeconfig = %options.kubeconfig.display(), "emulator started");
    say(&format!(
        "Kubernetes API emulator listening on {url}\n\
         kubeconfig written to {path}\n\
         Try: kubectl --kubeconfig {path} get namespaces\n\
         Press Ctrl-C to stop.\n",
        url = emulator.url(),
        path = shell_word(&options.kubeconfig),
    ));
    shutdown.wait().await;
    emulator.shutdown().await;
    Ok(())
}

/// Runs a seeded emulator and the operator against it until `shutdown`.
pub async fn run_sandbox(
    config: &Config,
    kubeconfig: &Path,
    shutdown: Shutdown,
) -> Result<(), SandboxError> {
    // Refuse an unbuilt store backend before printing a welcome that would not come true.
    operator::build_store(config).map_err(|source| SandboxError::Operator { source })?;
    // Removed when the sandbox stops, like everything else it holds.
    let storage = tempfile::Builder::new()
        .prefix("stowage-sandbox-")
        .tempdir()
        .map_err(|source| SandboxError::TempDir { source })?;
    let config = sandbox_config(config, storage.path());
    // The node agent plays the kubelet for the storage controller's helper pods: each node's
    // filesystem is a directory under `storage/nodes`.
    let emulator = Emulator::start(EmulatorConfig {
        node_agent: Some(NodeAgentConfig::new(storage.path().join("nodes"))),
        ..EmulatorConfig::default()
    })
    .await
    .map_err(|source| SandboxError::Start { source })?;
    let result = run_against(&emulator, &config, kubeconfig, shutdown).await;
    emulator.shutdown().await;
    result
}

/// The sandbox's changes to `config`: the storage controller runs in binder mode (the emulator
/// has no controller manager), with the NFS export in `storage/nfs`.
fn sandbox_config(config: &Config, storage: &Path) -> Config {
    let mut config = config.clone();
    config.storage.binder = true;
    config.storage.controller.enabled = true;
    if config.storage.nfs.mount_path.is_none() {
        let export = storage.join("nfs");
        if std::fs::create_dir_all(&export).is_ok() {
            config.storage.nfs.mount_path = Some(export);
        }
    }
    config
}

async fn run_against(
    emulator: &RunningEmulator,
    config: &Config,
    kubeconfig: &Path,
    shutdown: Shutdown,
) -> Result<(), SandboxError> {
    // Stowage's own CRDs first, as if Stowage were installed: ResourceMirrors can be tried.
    for definition in crate::crd::all() {
        let name = definition.metadata.name.clone().unwrap_or_default();
        let object = serde_json::to_value(&definition).map_err(|err| SandboxError::InstallCrd {
            name: name.clone(),
            reason: err.to_string(),
        })?;
        emulator
            .insert(object)
            .map_err(|err| SandboxError::InstallCrd {
                name,
                reason: err.to_string(),
            })?;
    }
    let objects = seed_objects(SEED)?;
    for (index, object) in objects.into_iter().enumerate() {
        let described = describe(&object);
        emulator
            .insert(object)
            .map_err(|source| SandboxError::Seed {
                index,
                object: described,
                source,
            })?;
    }
    emulator
        .write_kubeconfig(kubeconfig)
        .map_err(|source| SandboxError::Kubeconfig { source })?;
    let client = client_for(&emulator.url())?;
    let listener = server::bind(config.server.listen)
        .await
        .map_err(|source| SandboxError::Listen { source })?;
    let http = listener.local_addr().unwrap_or(config.server.listen);
    tracing::info!(url = %emulator.url(), objects = emulator.object_count(), "sandbox emulator seeded");
    say(&welcome(&emulator.url(), kubeconfig, http));
    operator::run(client, config, listener, shutdown)
        .await
        .map_err(|source| SandboxError::Operator { source })
}

/// A kube client for an emulator at `url` (plain HTTP, no credentials).
pub fn client_for(url: &str) -> Result<kube::Client, SandboxError> {
    let error = |source: Box<dyn std::error::Error + Send + Sync>| SandboxError::Client {
        url: url.to_owned(),
        source,
    };
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|err: axum::http::uri::InvalidUri| error(Box::new(err)))?;
    kube::Client::try_from(kube::Config::new(uri)).map_err(|err| error(Box::new(err)))
}

/// The documents of a multi-document YAML stream, skipping empty ones, in order.
pub fn seed_objects(text: &str) -> Result<Vec<serde_json::Value>, SandboxError> {
    let mut objects = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize(document)
            .map_err(|source| SandboxError::SeedParse { index, source })?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// `Kind namespace/name` of a seed object, for error messages.
fn describe(object: &serde_json::Value) -> String {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    let namespace = text("/metadata/namespace");
    let name = text("/metadata/name");
    let kind = text("/kind");
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

/// What a newcomer can do next, with only URLs that exist.
pub fn welcome(emulator_url: &str, kubeconfig: &Path, http: SocketAddr) -> String {
    let base = format!("http://{}", reachable(http));
    let kubeconfig = shell_word(kubeconfig);
    format!(
        "Stowage sandbox is running.\n\
         \n  Kubernetes API (emulated, seeded):  {emulator_url}\
         \n  kubeconfig:                         {kubeconfig}\
         \n  Stowage HTTP:                       {base}\n\
         \nTry:\
         \n  kubectl --kubeconfig {kubeconfig} get pods -A\
         \n  curl {base}/healthz\
         \n  curl {base}/readyz\
         \n  curl {base}/metrics\n\
         \nThe mirrored cluster, from Stowage's store (REST API):\
         \n  curl {base}/api/v1/resources\
         \n  curl '{base}/api/v1/pods?namespace=shop'\
         \n  curl {base}/api/v1/status\n\
         \nStorage (the controller runs in binder mode; class stowage-hostpath binds at once):\
         \n  kubectl --kubeconfig {kubeconfig} get pvc,pv,storageclass -A\
         \n  kubectl --kubeconfig {kubeconfig} -n default apply -f - <<'YAML'\
         \n  {{apiVersion: v1, kind: PersistentVolumeClaim, metadata: {{name: demo}},\
         \n   spec: {{storageClassName: stowage-hostpath, accessModes: [ReadWriteOnce],\
         \n          resources: {{requests: {{storage: 1Gi}}}}}}}}\
         \n  YAML\n\
         \nStores: memory (default), MySQL and etcd (storage.type); read cache: L1, optional Redis.\
         \nPress Ctrl-C to stop.\n"
    )
}

/// An address a local client can connect to: wildcard binds are reached through loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// A path as one shell word, quoted when it has characters a shell would split or expand.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Prints to stdout and flushes; a closed stdout must not stop the servers.
fn say(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_parses_and_starts_with_namespaces() -> Result<(), SandboxError> {
        let objects = seed_objects(SEED)?;
        assert!(!objects.is_empty(), "seed.yaml holds no objects");
        let first_other = objects
            .iter()
            .position(|o| o["kind"] != "Namespace")
            .unwrap_or(objects.len());
        assert!(
            objects[first_other..]
                .iter()
                .all(|o| o["kind"] != "Namespace"),
            "namespaces must come first"
        );
        Ok(())
    }

    #[test]
    fn empty_documents_are_skipped() -> Result<(), SandboxError> {
        let objects = seed_objects("---\n---\nkind: Namespace\nmetadata: {name: a}\n---\n")?;
        assert_eq!(objects.len(), 1);
        assert_eq!(describe(&objects[0]), "Namespace a");
        Ok(())
    }

    #[test]
    fn welcome_points_at_loopback_for_wildcard_binds() {
        let text = welcome(
            "http://127.0.0.1:4000",
            Path::new("./sandbox.kubeconfig"),
            "0.0.0.0:8080".parse().unwrap(),
        );
        assert!(text.contains("kubectl --kubeconfig ./sandbox.kubeconfig get pods -A"));
        assert!(text.contains("curl http://127.0.0.1:8080/healthz"));
        assert!(text.contains("curl 'http://127.0.0.1:8080/api/v1/pods?namespace=shop'"));
        assert!(text.contains("curl http://127.0.0.1:8080/api/v1/resources"));
        assert!(text.contains("storageClassName: stowage-hostpath"));
        assert!(!text.contains("Not built yet"), "{text}");
    }

    #[test]
    fn the_sandbox_binds_and_keeps_nfs_in_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let config = sandbox_config(&Config::default(), dir.path());
        assert!(config.storage.binder);
        assert!(config.storage.controller.enabled);
        assert_eq!(config.storage.nfs.mount_path, Some(dir.path().join("nfs")));
        assert!(dir.path().join("nfs").is_dir());
    }

    #[test]
    fn odd_paths_are_quoted() {
        assert_eq!(shell_word(Path::new("/tmp/my dir/k")), "'/tmp/my dir/k'");
    }
}
