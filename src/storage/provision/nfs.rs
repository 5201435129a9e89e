//! The NFS sub-directory provisioner (`stowage.io/nfs`): one directory per volume on the export
//! mounted in Stowage's pod, named from `pathPattern`; removed, kept or archived on delete.
//! Paths are decided by pure functions; the filesystem work runs in `spawn_blocking` with a
//! deadline, so a hung NFS mount cannot hang the controller.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{NFSVolumeSource, PersistentVolume};
use kube::ResourceExt;

use super::error::ProvisionError;
use super::volume::{check_claim, claim_key, class_name, new_volume, relative_inside};
use super::{DeleteOutcome, ProvisionRequest, Provisioner};
use crate::storage::class::{ClassKind, NfsParams, OnDelete};
use crate::storage::pattern::{DEFAULT_PATTERN, PatternVars, expand_pattern, join_under};

/// Mode of the volume directories (the peer's behaviour: any pod user may write).
pub const DIR_MODE: u32 = 0o777;
/// Longest a single filesystem operation on the mount may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Prefix of archived directories.
pub const ARCHIVE_PREFIX: &str = "archived-";

/// Configuration of the NFS provisioner (`storage.nfs.*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NfsSettings {
    /// Where the export root is mounted in Stowage's pod; `None` refuses NFS classes.
    pub mount_path: Option<PathBuf>,
}

/// Where one NFS volume lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsDirs {
    /// Relative to the export root.
    pub relative: PathBuf,
    /// On Stowage's mount.
    pub local: PathBuf,
    /// On the server (the PV's `nfs.path`).
    pub export: PathBuf,
}

/// The directories of a new volume: `pathPattern` (default `${namespace}-${pvc}-${pv}`) under
/// the mount and under the class's export path; refuses anything that would leave them.
pub fn new_volume_dirs(
    request: &ProvisionRequest,
    params: &NfsParams,
    mount: &Path,
) -> Result<NfsDirs, ProvisionError> {
    let pattern = params.path_pattern.as_deref().unwrap_or(DEFAULT_PATTERN);
    let vars = PatternVars::for_claim(&request.claim, &request.pv_name, None);
    let unsafe_path = |source| ProvisionError::UnsafePath {
        context: format!(
            "storage class {}, claim {}",
            class_name(request),
            claim_key(&request.claim)
        ),
        source,
    };
    let relative = expand_pattern(pattern, &vars).map_err(unsafe_path)?;
    let local = join_under(mount, &relative).map_err(unsafe_path)?;
    let export = join_under(Path::new(&params.path), &relative).map_err(unsafe_path)?;
    Ok(NfsDirs {
        relative,
        local,
        export,
    })
}

/// The directories of an existing NFS PV of this class; refuses PVs on another server or outside
/// the class's export path.
pub fn existing_volume_dirs(
    volume: &PersistentVolume,
    params: &NfsParams,
    mount: &Path,
) -> Result<NfsDirs, ProvisionError> {
    let name = volume.name_any();
    let nfs = volume
        .spec
        .as_ref()
        .and_then(|s| s.nfs.as_ref())
        .ok_or_else(|| ProvisionError::InvalidVolume {
            volume: name.clone(),
            message: "is not an NFS volume: delete its data and the PV by hand".to_string(),
        })?;
    if nfs.server != params.server {
        return Err(ProvisionError::InvalidVolume {
            volume: name,
            message: format!(
                "is on NFS server {} but its class uses {}; Stowage only touches the export it \
                 mounts: remove the data by hand and delete the PV",
                nfs.server, params.server
            ),
        });
    }
    let export = PathBuf::from(&nfs.path);
    let relative = relative_inside(Path::new(&params.path), &export).ok_or_else(|| {
        ProvisionError::PathNotAllowed {
            message: format!(
                "volume {name}: {} is not inside the class's export path {}, so Stowage will not \
                 touch it: remove the data by hand and delete the PV",
                export.display(),
                params.path
            ),
        }
    })?;
    let local = mount.join(&relative);
    Ok(NfsDirs {
        relative,
        local,
        export,
    })
}

/// `a/b/c` → `a/b/archived-c` (the nested path stays intact); `n` > 0 appends `-n`.
pub fn archive_path(local: &Path, n: u32) -> PathBuf {
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let archived = if n == 0 {
        format!("{ARCHIVE_PREFIX}{name}")
    } else {
        format!("{ARCHIVE_PREFIX}{name}-{n}")
    };
    local.with_file_name(archived)
}

/// The NFS provisioner.
pub struct NfsProvisioner {
    settings: NfsSettings,
}

impl NfsProvisioner {
    /// A provisioner working on `settings.mount_path`.
    pub fn new(settings: NfsSettings) -> Self {
        Self { settings }
    }

    fn mount(&self, class: &str) -> Result<PathBuf, ProvisionError> {
        self.settings
            .mount_path
            .clone()
            .ok_or_else(|| ProvisionError::NfsNotConfigured {
                message: format!(
                    "storage class {class} uses stowage.io/nfs but storage.nfs.mount_path is not \
                     set: mount the class's export in Stowage's pod and set storage.nfs.mount_path"
                ),
            })
    }
}

fn nfs_params<'a>(kind: &'a ClassKind, class: &str) -> Result<&'a NfsParams, ProvisionError> {
    match kind {
        ClassKind::Nfs(params) => Ok(params),
        _ => Err(ProvisionError::InvalidClass {
            class: class.to_string(),
            message: "is not a stowage.io/nfs class".to_string(),
        }),
    }
}

#[async_trait::async_trait]
impl Provisioner for NfsProvisioner {
    async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<PersistentVolume, ProvisionError> {
        let class = class_name(request);
        let params = nfs_params(&request.kind, &class)?;
        check_claim(request)?;
        let mount = self.mount(&class)?;
        let dirs = new_volume_dirs(request, params, &mount)?;
        let relative = dirs.relative.clone();
        let created = blocking(move || create_dir(&mount, &relative)).await?;
        tracing::info!(pv = %request.pv_name, path = %dirs.local.display(), created, "NFS volume directory ready");
        let mut pv = new_volume(request);
        if let Some(spec) = pv.spec.as_mut() {
            spec.nfs = Some(NFSVolumeSource {
                server: params.server.clone(),
                path: dirs.export.display().to_string(),
                read_only: None,
            });
        }
        Ok(pv)
    }

    async fn delete(
        &self,
        volume: &PersistentVolume,
        kind: &ClassKind,
    ) -> Result<DeleteOutcome, ProvisionError> {
        let class = volume
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone())
            .unwrap_or_default();
        let params = nfs_params(kind, &class)?;
        let mount = self.mount(&class)?;
        let dirs = existing_volume_dirs(volume, params, &mount)?;
        let on_delete = params.on_delete;
        let outcome = blocking(move || remove_dir(&mount, &dirs.relative, on_delete)).await?;
        tracing::info!(pv = %volume.name_any(), %outcome, "NFS volume deleted");
        Ok(outcome)
    }
}

/// Runs blocking filesystem work off the runtime, bounded by [`IO_TIMEOUT`].
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ProvisionError> + Send + 'static,
) -> Result<T, ProvisionError> {
    let task = tokio::task::spawn_blocking(work);
    match tokio::time::timeout(IO_TIMEOUT, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(ProvisionError::Io {
            action: "finish filesystem work on",
            path: PathBuf::from("the NFS mount"),
            source: io::Error::other(join.to_string()),
        }),
        Err(_elapsed) => Err(ProvisionError::Io {
            action: "finish filesystem work in time on",
            path: PathBuf::from("the NFS mount"),
            source: io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {IO_TIMEOUT:?}"),
            ),
        }),
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ProvisionError {
    let path = path.to_path_buf();
    move |source| ProvisionError::Io {
        action,
        path,
        source,
    }
}

/// The mount must be an existing directory: never create it (that would write to the pod's own
/// disk when the export is not mounted).
fn check_mount(mount: &Path) -> Result<(), ProvisionError> {
    match fs::metadata(mount) {
        Ok(meta) if meta.is_dir() => Ok(()),
        _ => Err(ProvisionError::NfsNotConfigured {
            message: format!(
                "storage.nfs.mount_path {} is not a directory: mount the NFS export there",
                mount.display()
            ),
        }),
    }
}

/// Refuses a relative path of which an existing component is a symbolic link (it could point
/// out of the export). Components that do not exist yet are fine.
fn check_no_symlinks(mount: &Path, relative: &Path) -> Result<(), ProvisionError> {
    let mut path = mount.to_path_buf();
    for component in relative.components() {
        path.push(component);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(ProvisionError::PathNotAllowed {
                    message: format!(
                        "{} is a symbolic link; Stowage does not follow links on the NFS export: \
                         remove the link or change the class's pathPattern",
                        path.display()
                    ),
                });
            }
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(io_error("inspect", &path)(err)),
        }
    }
    Ok(())
}

/// Creates `mount/relative` with [`DIR_MODE`]; an existing directory is re-used as it is (a
/// cluster rebuilt over old data). Returns whether it was created.
fn create_dir(mount: &Path, relative: &Path) -> Result<bool, ProvisionError> {
    check_mount(mount)?;
    check_no_symlinks(mount, relative)?;
    let path = mount.join(relative);
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => return Ok(false),
        Ok(_) => {
            return Err(ProvisionError::Io {
                action: "create directory",
                path,
                source: io::Error::new(io::ErrorKind::AlreadyExists, "a file is in the way"),
            });
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_error("inspect", &path)(err)),
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(&path)
        .map_err(io_error("create directory", &path))?;
    // The umask trimmed the mode: set it exactly.
    fs::set_permissions(&path, fs::Permissions::from_mode(DIR_MODE))
        .map_err(io_error("set the mode of", &path))?;
    Ok(true)
}

/// Deletes, keeps or archives `mount/relative` per `on_delete`; a missing directory is fine.
fn remove_dir(
    mount: &Path,
    relative: &Path,
    on_delete: OnDelete,
) -> Result<DeleteOutcome, ProvisionError> {
    let path = mount.join(relative);
    if on_delete == OnDelete::Retain {
        return Ok(DeleteOutcome::Retained { path });
    }
    check_mount(mount)?;
    check_no_symlinks(mount, relative)?;
    match fs::symlink_metadata(&path) {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Ok(DeleteOutcome::AlreadyGone { path });
        }
        Err(err) => return Err(io_error("inspect", &path)(err)),
    }
    if on_delete == OnDelete::Delete {
        fs::remove_dir_all(&path).map_err(io_error("remove", &path))?;
        return Ok(DeleteOutcome::Removed { path });
    }
    for n in 0..1000 {
        let to = archive_path(&path, n);
        if fs::symlink_metadata(&to).is_ok() {
            continue;
        }
        fs::rename(&path, &to).map_err(io_error("archive", &path))?;
        return Ok(DeleteOutcome::Archived { from: path, to });
    }
    Err(ProvisionError::Io {
        action: "archive",
        path,
        source: io::Error::new(
            io::ErrorKind::AlreadyExists,
            "1000 archived copies already exist next to it: clean some up",
        ),
    })
}

#[cfg(test)]
#[path = "nfs_tests.rs"]
mod tests;
