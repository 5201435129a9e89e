//! The one error type of the provisioners: each variant says what to fix, has a stable metric
//! category and tells the controller whether retrying can help.

use std::path::PathBuf;
use std::time::Duration;

use crate::storage::pattern::PatternError;

/// Why creating or removing a volume's storage failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The class handed to a provisioner is not one it serves, or its parameters cannot work.
    #[error("storage class {class}: {message}")]
    InvalidClass { class: String, message: String },

    /// The claim asks for something these provisioners cannot give (Block mode, a selector, no size).
    #[error("claim {claim}: {message}")]
    InvalidClaim { claim: String, message: String },

    /// The volume was not made the way the provisioner makes volumes (wrong source, no node).
    #[error("volume {volume}: {message}")]
    InvalidVolume { volume: String, message: String },

    /// The directory would leave the base path / export, or is the base itself.
    #[error("{context}: {source}")]
    UnsafePath {
        context: String,
        #[source]
        source: PatternError,
    },

    /// A path that is not (or no longer) under an allowed base path; never touched.
    #[error("{message}")]
    PathNotAllowed { message: String },

    /// The node has an empty list of base paths.
    #[error(
        "node {node} has no allowed hostPath base path: add it under storage.hostpath.node_paths \
         or storage.hostpath.default_paths"
    )]
    NoAllowedPath { node: String },

    /// No node to put the volume on (selected node gone, or no Ready node with an allowed path).
    #[error("{message}")]
    NoNode { message: String },

    /// `storage.nfs.mount_path` is unset or not a directory.
    #[error("{message}")]
    NfsNotConfigured { message: String },

    /// The helper pod did not finish in time; it has been deleted.
    #[error(
        "helper pod {namespace}/{pod} on node {node} did not finish within {timeout:?}: check that \
         node {node} is Ready and can pull image {image} (storage.controller.helper_image), or raise \
         storage.controller.helper_timeout"
    )]
    HelperTimeout {
        namespace: String,
        pod: String,
        node: String,
        image: String,
        timeout: Duration,
    },

    /// The helper pod ran and failed; it has been deleted.
    #[error("helper pod {namespace}/{pod} on node {node} failed: {message}")]
    HelperFailed {
        namespace: String,
        pod: String,
        node: String,
        message: String,
    },

    /// A filesystem operation on the NFS mount failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A call to the API server failed.
    #[error("cannot {action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },

    /// Watching the helper pod failed.
    #[error("cannot watch helper pod {namespace}/{pod}: {source}")]
    Watch {
        namespace: String,
        pod: String,
        #[source]
        source: kube::runtime::wait::Error,
    },
}

impl ProvisionError {
    /// Stable label for the `reason` of `stowage_storage_operations_total` and reconcile errors.
    pub fn category(&self) -> &'static str {
        match self {
            Self::InvalidClass { .. } => "invalid-class",
            Self::InvalidClaim { .. } => "invalid-claim",
            Self::InvalidVolume { .. } => "invalid-volume",
            Self::UnsafePath { .. } | Self::PathNotAllowed { .. } => "unsafe-path",
            Self::NoAllowedPath { .. } => "no-allowed-path",
            Self::NoNode { .. } => "no-node",
            Self::NfsNotConfigured { .. } => "nfs-not-configured",
            Self::HelperTimeout { .. } => "helper-timeout",
            Self::HelperFailed { .. } => "helper-failed",
            Self::Io { .. } => "io",
            Self::Api { .. } | Self::Watch { .. } => "api",
        }
    }

    /// True when only a change by the user or admin (class, claim, configuration) can fix it;
    /// false when retrying later may succeed (node, API server, filesystem, helper pod).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::InvalidClass { .. }
                | Self::InvalidClaim { .. }
                | Self::InvalidVolume { .. }
                | Self::UnsafePath { .. }
                | Self::PathNotAllowed { .. }
                | Self::NoAllowedPath { .. }
                | Self::NfsNotConfigured { .. }
        )
    }

    pub(crate) fn api(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Api {
            action: action.into(),
            source,
        }
    }
}
