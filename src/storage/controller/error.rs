//! The storage controller's error type: what a reconcile could not do, with a stable category for
//! `stowage_storage_reconcile_errors_total{reason}` and the retry policy.

use crate::storage::provision::ProvisionError;

/// Why one reconcile of a claim or a volume failed; every variant is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A read or write of the API server failed.
    #[error("cannot {action}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// Creating or removing a volume's storage failed in a way retrying may fix.
    #[error("cannot {action}")]
    Provision {
        action: String,
        #[source]
        source: ProvisionError,
    },
}

impl ControllerError {
    /// Every category [`ControllerError::category`] can return (provisioning failures add
    /// theirs).
    pub const CATEGORIES: &'static [&'static str] = &["api", "conflict"];

    /// Metrics label.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Api { source, .. } => match source {
                kube::Error::Api(status) if status.code == 409 => "conflict",
                _ => "api",
            },
            Self::Provision { source, .. } => source.category(),
        }
    }

    /// Shorthand for [`ControllerError::Api`].
    pub fn api(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Api {
            action: action.into(),
            source,
        }
    }

    /// True for a write refused because the object changed meanwhile (retried at once).
    pub fn is_conflict(&self) -> bool {
        self.category() == "conflict"
    }
}
