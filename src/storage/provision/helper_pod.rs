//! The helper pod that creates or removes a hostPath volume's directory on its node (pure builder
//! and status reading; running it is `helper_run`). Protocol: CONTRACT.md "Helper pod protocol".

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    Container, EnvVar, HostPathVolumeSource, Pod, PodSpec, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Name of the pod's hostPath volume holding the base path.
pub const BASE_VOLUME: &str = "base";
/// Where the base path is mounted inside the helper container.
pub const BASE_MOUNT: &str = "/stowage-base";
/// Name of the helper container.
pub const CONTAINER: &str = "helper";
/// Label naming the volume a helper pod works for.
pub const LABEL_VOLUME: &str = "stowage.io/volume";
/// Mode of directories the helper creates.
pub const DEFAULT_MODE: u32 = 0o777;

const MAX_NAME: usize = 63;

/// What the helper pod does with the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelperAction {
    /// `mkdir -p` with the mode.
    Create,
    /// `rm -rf`.
    Delete,
}

impl HelperAction {
    /// `create` or `delete`: the value of `STOWAGE_ACTION` and part of the pod name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Delete => "delete",
        }
    }

    fn script(self) -> &'static str {
        match self {
            Self::Create => r#"mkdir -m "$STOWAGE_VOLUME_MODE" -p "$STOWAGE_VOLUME_DIR""#,
            Self::Delete => r#"rm -rf "$STOWAGE_VOLUME_DIR""#,
        }
    }
}

impl fmt::Display for HelperAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a helper pod depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperPodParams {
    /// Namespace of the pod (`storage.controller.namespace`).
    pub namespace: String,
    /// Image with `/bin/sh`, `mkdir` and `rm` (`storage.controller.helper_image`).
    pub image: String,
    /// Create or delete.
    pub action: HelperAction,
    /// The PersistentVolume the directory belongs to.
    pub pv_name: String,
    /// Node the pod runs on (`spec.nodeName`, no scheduler).
    pub node: String,
    /// Allowed base path on the node, mounted at [`BASE_MOUNT`].
    pub base_path: PathBuf,
    /// The volume's directory under the base path; already checked to stay inside it.
    pub relative_dir: PathBuf,
    /// Directory mode for `create` (octal in the env).
    pub mode: u32,
}

/// `stowage-{create|delete}-{pv}`, at most 63 characters: longer names keep a prefix and end in a
/// hash of the full name so two volumes never share a helper pod name.
pub fn helper_pod_name(action: HelperAction, pv_name: &str) -> String {
    bounded_name(&format!("stowage-{action}-{pv_name}"))
}

/// `name` when it fits in 63 characters, else a prefix + `-` + 8 hex digits of its hash.
fn bounded_name(name: &str) -> String {
    if name.len() <= MAX_NAME {
        return name.to_string();
    }
    let hash = xxhash_rust::xxh3::xxh3_64(name.as_bytes()) as u32;
    let mut prefix: String = name.chars().take(MAX_NAME - 9).collect();
    while prefix.ends_with(['-', '.']) {
        prefix.pop();
    }
    format!("{prefix}-{hash:08x}")
}

/// The directory as the container sees it: `/stowage-base/<relative dir>`.
pub fn container_dir(relative_dir: &Path) -> PathBuf {
    Path::new(BASE_MOUNT).join(relative_dir)
}

/// Builds the helper pod (see CONTRACT.md "Helper pod protocol"). Pure.
pub fn helper_pod(params: &HelperPodParams) -> Pod {
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "stowage".to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            "volume-helper".to_string(),
        ),
        (LABEL_VOLUME.to_string(), bounded_name(&params.pv_name)),
    ]);
    let env = [
        ("STOWAGE_ACTION", params.action.as_str().to_string()),
        (
            "STOWAGE_VOLUME_DIR",
            container_dir(&params.relative_dir).display().to_string(),
        ),
        ("STOWAGE_VOLUME_MODE", format!("{:04o}", params.mode)),
    ]
    .into_iter()
    .map(|(name, value)| EnvVar {
        name: name.to_string(),
        value: Some(value),
        value_from: None,
    })
    .collect();
    Pod {
        metadata: ObjectMeta {
            name: Some(helper_pod_name(params.action, &params.pv_name)),
            namespace: Some(params.namespace.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(params.node.clone()),
            restart_policy: Some("Never".to_string()),
            tolerations: Some(vec![Toleration {
                operator: Some("Exists".to_string()),
                ..Toleration::default()
            }]),
            automount_service_account_token: Some(false),
            containers: vec![Container {
                name: CONTAINER.to_string(),
                image: Some(params.image.clone()),
                command: Some(vec!["/bin/sh".to_string(), "-c".to_string()]),
                args: Some(vec![params.action.script().to_string()]),
                env: Some(env),
                volume_mounts: Some(vec![VolumeMount {
                    name: BASE_VOLUME.to_string(),
                    mount_path: BASE_MOUNT.to_string(),
                    ..VolumeMount::default()
                }]),
                ..Container::default()
            }],
            volumes: Some(vec![Volume {
                name: BASE_VOLUME.to_string(),
                host_path: Some(HostPathVolumeSource {
                    path: params.base_path.display().to_string(),
                    type_: Some("DirectoryOrCreate".to_string()),
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// How a helper pod ended, read from its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelperOutcome {
    /// Still pending or running.
    Running,
    /// Phase `Succeeded`.
    Succeeded,
    /// Phase `Failed`, with what the kubelet said (exit code, reason, message).
    Failed(String),
}

/// Reads phase and the helper container's termination state.
pub fn helper_outcome(pod: &Pod) -> HelperOutcome {
    let Some(status) = pod.status.as_ref() else {
        return HelperOutcome::Running;
    };
    match status.phase.as_deref() {
        Some("Succeeded") => HelperOutcome::Succeeded,
        Some("Failed") => {
            let terminated = status
                .container_statuses
                .iter()
                .flatten()
                .find(|c| c.name == CONTAINER)
                .and_then(|c| c.state.as_ref()?.terminated.as_ref());
            let mut parts = Vec::new();
            if let Some(t) = terminated {
                parts.push(format!("exit code {}", t.exit_code));
                parts.extend(t.reason.clone());
                parts.extend(t.message.clone());
            }
            // A kubelet often repeats the container's message on the pod: say it once.
            for extra in [&status.reason, &status.message].into_iter().flatten() {
                if !parts.contains(extra) {
                    parts.push(extra.clone());
                }
            }
            if parts.is_empty() {
                parts.push("phase Failed without a message".to_string());
            }
            HelperOutcome::Failed(parts.join(": "))
        }
        _ => HelperOutcome::Running,
    }
}

/// Label selector matching every helper pod.
pub const HELPER_SELECTOR: &str =
    "app.kubernetes.io/name=stowage,app.kubernetes.io/component=volume-helper";

/// True for a helper pod nobody waits for any more: finished, or older than twice the helper
/// timeout (every run deletes its own pod once the timeout has passed).
pub fn is_orphaned(
    pod: &Pod,
    now: k8s_openapi::jiff::Timestamp,
    helper_timeout: std::time::Duration,
) -> bool {
    if helper_outcome(pod) != HelperOutcome::Running {
        return true;
    }
    let Some(created) = pod.metadata.creation_timestamp.as_ref() else {
        return false;
    };
    let age = now.duration_since(created.0);
    let limit = helper_timeout.saturating_mul(2);
    age.is_positive() && age.unsigned_abs() > limit
}

#[cfg(test)]
#[path = "helper_pod_tests.rs"]
mod tests;
