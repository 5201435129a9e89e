//! Provisioners: the I/O edge that creates and removes a volume's storage (hostPath directories
//! through helper pods, NFS sub-directories on the mounted export) and builds the PV objects.
//! The controller picks one with [`Provisioners::for_kind`] and writes what it returns.

mod error;
#[cfg(test)]
mod fixtures;
pub mod helper_pod;
mod helper_run;
pub mod hostpath;
pub mod nfs;
mod volume;

use std::fmt;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;

pub use error::ProvisionError;
pub use hostpath::{HostPathProvisioner, HostPathSettings};
pub use nfs::{NfsProvisioner, NfsSettings};

use crate::storage::class::ClassKind;

/// One claim to provision.
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    /// The claim (name, namespace and uid end up in the PV's claimRef).
    pub claim: PersistentVolumeClaim,
    /// Its class.
    pub class: StorageClass,
    /// The class, classified (`class::classify`).
    pub kind: ClassKind,
    /// Name of the PV to create (the controller derives it, e.g. `pvc-<claim uid>`).
    pub pv_name: String,
    /// `volume.kubernetes.io/selected-node` of the claim (WaitForFirstConsumer).
    pub selected_node: Option<String>,
}

/// What deleting a volume's storage did. Every variant means the PV may now be removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The directory was removed (or was already gone).
    Removed {
        /// Path on the node (hostPath) or on Stowage's NFS mount.
        path: PathBuf,
    },
    /// Nothing was there any more (a retried delete, or removed by hand).
    AlreadyGone {
        /// Path on Stowage's NFS mount.
        path: PathBuf,
    },
    /// NFS `onDelete: retain`: left as it is.
    Retained {
        /// Path on Stowage's NFS mount.
        path: PathBuf,
    },
    /// NFS `onDelete: archive`: renamed.
    Archived {
        /// Old path on Stowage's NFS mount.
        from: PathBuf,
        /// New path (`…/archived-<last component>`).
        to: PathBuf,
    },
    /// hostPath whose Node object no longer exists: nothing was run, the data (if the machine
    /// still exists) is left behind. Worth a Warning event.
    NodeGone {
        /// The node the volume was pinned to.
        node: String,
        /// Path on that node.
        path: PathBuf,
    },
}

impl DeleteOutcome {
    /// A message for a Warning event when the outcome leaves data behind unexpectedly.
    pub fn warning(&self) -> Option<String> {
        match self {
            Self::NodeGone { node, path } => Some(format!(
                "node {node} no longer exists, so {} was not removed from it; if the machine comes \
                 back, remove the directory by hand",
                path.display()
            )),
            _ => None,
        }
    }
}

impl fmt::Display for DeleteOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Removed { path } => write!(f, "removed {}", path.display()),
            Self::AlreadyGone { path } => write!(f, "{} was already gone", path.display()),
            Self::Retained { path } => write!(f, "retained {} (onDelete: retain)", path.display()),
            Self::Archived { from, to } => {
                write!(f, "archived {} as {}", from.display(), to.display())
            }
            Self::NodeGone { node, path } => {
                write!(
                    f,
                    "left {} on node {node}, which no longer exists",
                    path.display()
                )
            }
        }
    }
}

/// Creates and removes the storage behind volumes of one kind of class.
#[async_trait::async_trait]
pub trait Provisioner: Send + Sync {
    /// Creates the volume's storage and returns the PV to create (claimRef set to the claim: name,
    /// namespace, uid; annotation pv.kubernetes.io/provisioned-by; reclaim policy, mount options,
    /// storageClassName, capacity, accessModes, volumeMode from claim/class).
    async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<PersistentVolume, ProvisionError>;

    /// Removes (or retains/archives, per class) the volume's storage. Idempotent.
    async fn delete(
        &self,
        volume: &PersistentVolume,
        kind: &ClassKind,
    ) -> Result<DeleteOutcome, ProvisionError>;
}

/// Settings of all provisioners, from `storage.controller`, `storage.hostpath` and `storage.nfs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionerSettings {
    /// hostPath provisioner (helper pods).
    pub hostpath: HostPathSettings,
    /// NFS provisioner (mounted export).
    pub nfs: NfsSettings,
}

/// Stowage's provisioners, one per class kind it serves.
pub struct Provisioners {
    hostpath: HostPathProvisioner,
    nfs: NfsProvisioner,
}

impl Provisioners {
    /// Both provisioners; the hostPath one writes helper pods through `client`.
    pub fn new(client: kube::Client, settings: ProvisionerSettings) -> Self {
        Self {
            hostpath: HostPathProvisioner::new(client, settings.hostpath),
            nfs: NfsProvisioner::new(settings.nfs),
        }
    }

    /// Deletes helper pods left behind by an earlier leader (finished, or older than twice the
    /// helper timeout); call when becoming leader. Returns their names.
    pub async fn remove_orphaned_helper_pods(&self) -> Result<Vec<String>, ProvisionError> {
        self.hostpath.remove_orphaned_helper_pods().await
    }

    /// The provisioner for a class kind; `None` for Longhorn and foreign classes.
    pub fn for_kind(&self, kind: &ClassKind) -> Option<&dyn Provisioner> {
        match kind {
            ClassKind::HostPath(_) => Some(&self.hostpath),
            ClassKind::Nfs(_) => Some(&self.nfs),
            _ => None,
        }
    }
}
