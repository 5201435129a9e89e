//! The node agent's file work: what `mkdir -m MODE -p` and `rm -rf` do in a helper container, done
//! on the node's directory below the agent's root. Blocking; the agent calls it from `spawn_blocking`.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::plan::{Action, Job};

/// Runs `job` on the node directory `root/<node>/`; the error is the container's stderr.
pub fn execute(root: &Path, job: &Job) -> Result<(), String> {
    let node_root = root.join(&job.node);
    let base = node_root.join(&job.base);
    let target = base.join(&job.below);
    // The plan refuses `..`; a symlink is the other way out of the root, so none is followed.
    refuse_symlinks(&node_root, &target)?;
    let shown = &job.container_path;
    if job.create_base {
        std::fs::create_dir_all(&base)
            .map_err(|e| format!("hostPath {}: cannot create: {e}", job.base.display()))?;
    } else if !base.is_dir() {
        return Err(format!(
            "hostPath /{} does not exist or is not a directory",
            job.base.display()
        ));
    }
    match job.action {
        Action::Create { mode } => create(&target, mode).map_err(|e| format!("mkdir {shown}: {e}")),
        Action::Delete => delete(&target).map_err(|e| format!("rm -rf {shown}: {e}")),
    }
}

/// `mkdir -m MODE -p`: parents with the default mode, the directory itself with exactly `mode`
/// (not masked by the umask); an existing directory is left as it is.
fn create(target: &Path, mode: u32) -> std::io::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::create_dir(target) {
        Ok(()) => std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists && target.is_dir() => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(std::io::Error::new(
            ErrorKind::AlreadyExists,
            "File exists and is not a directory",
        )),
        Err(e) => Err(e),
    }
}

/// `rm -rf`: a missing path is fine, a file is removed like a tree.
fn delete(target: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(target),
        Ok(_) => std::fs::remove_file(target),
    }
}

/// Fails when `node_root` or any existing directory between it and `target` is a symlink.
fn refuse_symlinks(node_root: &Path, target: &Path) -> Result<(), String> {
    let mut path = PathBuf::from(node_root);
    let below = target.strip_prefix(node_root).unwrap_or(Path::new(""));
    for component in std::iter::once(None).chain(below.components().map(Some)) {
        if let Some(c) = component {
            path.push(c);
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!(
                    "{} is a symlink on the node; refusing to follow it",
                    path.display()
                ));
            }
            Ok(_) => {}
            // Nothing below a missing directory can be a symlink.
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}
