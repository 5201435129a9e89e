//! The storage controller's part of the `storage` section: binder mode, the controller (namespace,
//! helper pods, leader Lease), hostPath base paths per node, and the NFS export's mount path.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Problem, serde_helpers};

/// `storage.controller`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageControllerConfig {
    /// Run the storage controller at all.
    pub enabled: bool,
    /// Namespace of the leader Lease and of the helper pods (the release namespace).
    #[serde(deserialize_with = "serde_helpers::lenient_string")]
    pub namespace: String,
    /// Image of the helper pods that create and remove hostPath directories (needs `/bin/sh`).
    #[serde(deserialize_with = "serde_helpers::lenient_string")]
    pub helper_image: String,
    /// Longest wait for one helper pod to finish.
    #[serde(with = "serde_helpers::duration")]
    pub helper_timeout: Duration,
    /// Name of the `coordination.k8s.io/v1` Lease the replicas compete for.
    #[serde(deserialize_with = "serde_helpers::lenient_string")]
    pub lease_name: String,
    /// How long a leader's Lease stays valid without renewal (whole seconds).
    #[serde(with = "serde_helpers::duration")]
    pub lease_duration: Duration,
    /// The leader renews its Lease this long after the last renewal (whole seconds, below
    /// `lease_duration`).
    #[serde(with = "serde_helpers::duration")]
    pub renew_deadline: Duration,
    /// Pause before trying again after the election itself failed (API errors).
    #[serde(with = "serde_helpers::duration")]
    pub retry_period: Duration,
}

impl Default for StorageControllerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            namespace: "stowage".into(),
            helper_image: "busybox:1.36".into(),
            helper_timeout: Duration::from_secs(120),
            lease_name: "stowage-storage".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// `storage.hostpath`: where hostPath volumes may live on each node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostPathConfig {
    /// Base directories of nodes not named in `node_paths`; the first one is used.
    pub default_paths: Vec<PathBuf>,
    /// Base directories by node name; an empty list refuses that node.
    pub node_paths: BTreeMap<String, Vec<PathBuf>>,
}

impl Default for HostPathConfig {
    fn default() -> Self {
        Self {
            default_paths: vec![PathBuf::from("/var/lib/stowage/volumes")],
            node_paths: BTreeMap::new(),
        }
    }
}

/// `storage.nfs`: the NFS export root as mounted into Stowage's pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NfsConfig {
    /// Where the export is mounted; unset refuses NFS claims with a Warning Event.
    pub mount_path: Option<PathBuf>,
}

/// Problems of the storage controller's keys, appended to `problems`.
pub(crate) fn problems(
    controller: &StorageControllerConfig,
    hostpath: &HostPathConfig,
    nfs: &NfsConfig,
    problems: &mut Vec<Problem>,
) {
    let at = |key: &str| format!("storage.controller.{key}");
    if !is_dns_label(&controller.namespace) {
        problems.push(Problem::new(
            at("namespace"),
            format!(
                "{:?} must be a namespace name: lowercase letters, digits and '-', at most 63",
                controller.namespace
            ),
        ));
    }
    if controller.helper_image.trim().is_empty() {
        problems.push(Problem::new(at("helper_image"), "must not be empty"));
    }
    if controller.helper_timeout.is_zero() {
        problems.push(Problem::new(
            at("helper_timeout"),
            "must be greater than zero",
        ));
    }
    if !is_dns_subdomain(&controller.lease_name) {
        problems.push(Problem::new(
            at("lease_name"),
            format!(
                "{:?} must be an object name: lowercase letters, digits, '-' and '.'",
                controller.lease_name
            ),
        ));
    }
    lease_timing(controller, problems);
    if controller.retry_period.is_zero() {
        problems.push(Problem::new(
            at("retry_period"),
            "must be greater than zero",
        ));
    }
    for (index, path) in hostpath.default_paths.iter().enumerate() {
        if !path.is_absolute() {
            problems.push(Problem::new(
                format!("storage.hostpath.default_paths[{index}]"),
                format!("{} must be an absolute path", path.display()),
            ));
        }
    }
    for (node, paths) in &hostpath.node_paths {
        for (index, path) in paths.iter().enumerate() {
            if !path.is_absolute() {
                problems.push(Problem::new(
                    format!("storage.hostpath.node_paths.{node}[{index}]"),
                    format!("{} must be an absolute path", path.display()),
                ));
            }
        }
    }
    if let Some(path) = &nfs.mount_path
        && !path.is_absolute()
    {
        problems.push(Problem::new(
            "storage.nfs.mount_path",
            format!("{} must be an absolute path", path.display()),
        ));
    }
}

/// The Lease counts whole seconds, and the leader must renew before its Lease runs out.
fn lease_timing(controller: &StorageControllerConfig, problems: &mut Vec<Problem>) {
    let whole = |value: Duration| value.subsec_nanos() == 0 && value.as_secs() > 0;
    let mut timing_ok = true;
    for (key, value) in [
        ("lease_duration", controller.lease_duration),
        ("renew_deadline", controller.renew_deadline),
    ] {
        if !whole(value) {
            timing_ok = false;
            problems.push(Problem::new(
                format!("storage.controller.{key}"),
                "must be a whole number of seconds, at least 1s",
            ));
        }
    }
    if timing_ok && controller.renew_deadline >= controller.lease_duration {
        problems.push(Problem::new(
            "storage.controller.renew_deadline",
            format!(
                "must be below lease_duration ({}s)",
                controller.lease_duration.as_secs()
            ),
        ));
    }
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(controller: &StorageControllerConfig) -> Vec<String> {
        let mut found = Vec::new();
        problems(
            controller,
            &HostPathConfig::default(),
            &NfsConfig::default(),
            &mut found,
        );
        found.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_are_valid() {
        assert!(messages(&StorageControllerConfig::default()).is_empty());
    }

    #[test]
    fn the_leader_renews_before_its_lease_runs_out() {
        let controller = StorageControllerConfig {
            renew_deadline: Duration::from_secs(15),
            ..StorageControllerConfig::default()
        };
        assert_eq!(
            messages(&controller),
            ["storage.controller.renew_deadline: must be below lease_duration (15s)"]
        );
        let controller = StorageControllerConfig {
            lease_duration: Duration::from_millis(1500),
            ..StorageControllerConfig::default()
        };
        assert_eq!(
            messages(&controller),
            ["storage.controller.lease_duration: must be a whole number of seconds, at least 1s"]
        );
    }

    #[test]
    fn names_must_be_kubernetes_names() {
        let controller = StorageControllerConfig {
            namespace: "Stowage".into(),
            lease_name: "".into(),
            ..StorageControllerConfig::default()
        };
        assert_eq!(messages(&controller).len(), 2);
        assert!(is_dns_subdomain("stowage-storage.v1"));
        assert!(!is_dns_label("-a"));
    }
}
