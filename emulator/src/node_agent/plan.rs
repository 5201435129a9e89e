//! Pure decisions of the node agent: is a pod a helper pod, may it run, and which host directory does
//! its `STOWAGE_VOLUME_DIR` name. No I/O here; `fs.rs` does what this module decides.

use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::NODE_AGENT_ANNOTATION;

/// What a helper pod asks for, with every path already resolved to one below the node's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub node: String,
    pub action: Action,
    /// The hostPath volume's path, relative to the node's root.
    pub base: PathBuf,
    /// Whether the kubelet creates `base` first (hostPath type `DirectoryOrCreate` or unset).
    pub create_base: bool,
    /// The directory the action works on, relative to `base`; never empty, never `..`.
    pub below: PathBuf,
    /// `STOWAGE_VOLUME_DIR` as the container sees it, for messages.
    pub container_path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `mkdir -m <mode> -p`.
    Create { mode: u32 },
    /// `rm -rf`.
    Delete,
}

/// What the agent does with one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not a helper pod, not bound to a node, finished or being deleted.
    Ignore,
    /// A helper pod that cannot start: its node object is missing or paused.
    Wait,
    /// A helper pod the agent refuses (or a node told to fail); the message says why.
    Fail(String),
    Run(Job),
}

const DEFAULT_MODE: u32 = 0o777;

/// Decides what to do with `pod`, given the Node object its `spec.nodeName` names (if it exists).
pub fn decide(pod: &Value, node: Option<&Value>) -> Verdict {
    let Some(node_name) = str_at(pod, "/spec/nodeName").filter(|n| !n.is_empty()) else {
        return Verdict::Ignore;
    };
    if !matches!(str_at(pod, "/status/phase"), None | Some("" | "Pending"))
        || pod.pointer("/metadata/deletionTimestamp").is_some()
    {
        return Verdict::Ignore;
    }
    let Some(container) = pod.pointer("/spec/containers/0") else {
        return Verdict::Ignore;
    };
    let Some(action) = env(container, "STOWAGE_ACTION") else {
        return Verdict::Ignore;
    };
    let Some(node) = node else {
        return Verdict::Wait;
    };
    let annotation = node
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(NODE_AGENT_ANNOTATION))
        .and_then(Value::as_str);
    match annotation {
        Some("paused") => return Verdict::Wait,
        Some("fail") => {
            return Verdict::Fail(format!(
                "node {node_name} is annotated {NODE_AGENT_ANNOTATION}=fail"
            ));
        }
        _ => {}
    }
    match job(pod, container, node_name, action) {
        Ok(job) => Verdict::Run(job),
        Err(message) => Verdict::Fail(message),
    }
}

fn job(pod: &Value, container: &Value, node: &str, action: &str) -> Result<Job, String> {
    if !is_path_component(node) {
        return Err(format!(
            "node name {node:?} cannot be used as a directory name"
        ));
    }
    let action = match action {
        "create" => Action::Create {
            mode: match env(container, "STOWAGE_VOLUME_MODE") {
                None | Some("") => DEFAULT_MODE,
                Some(mode) => parse_mode(mode)?,
            },
        },
        "delete" => Action::Delete,
        other => {
            return Err(format!(
                "STOWAGE_ACTION {other:?} is not supported (create or delete)"
            ));
        }
    };
    let container_path = env(container, "STOWAGE_VOLUME_DIR")
        .filter(|d| !d.is_empty())
        .ok_or("STOWAGE_VOLUME_DIR is not set")?;
    let dir = absolute_components(container_path)
        .map_err(|why| format!("STOWAGE_VOLUME_DIR {container_path:?} {why}"))?;
    let (mount, rest) = matching_mount(container, &dir).ok_or_else(|| {
        format!(
            "STOWAGE_VOLUME_DIR {container_path:?} is not below any volumeMount of the container"
        )
    })?;
    let volume_name = str_at(mount, "/name").unwrap_or_default();
    let volume = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| str_at(v, "/name") == Some(volume_name)))
        .ok_or_else(|| format!("volumeMount {volume_name:?} names no volume of the pod"))?;
    let host_path = volume
        .get("hostPath")
        .ok_or_else(|| format!("volume {volume_name:?} is not a hostPath volume"))?;
    let host = str_at(host_path, "/path").unwrap_or_default();
    let base = absolute_components(host)
        .map_err(|why| format!("hostPath {host:?} of volume {volume_name:?} {why}"))?;
    let create_base = match str_at(host_path, "/type").unwrap_or_default() {
        "" | "DirectoryOrCreate" => true,
        "Directory" => false,
        other => {
            return Err(format!(
                "hostPath type {other:?} of volume {volume_name:?} is not a directory type"
            ));
        }
    };
    let sub_path = str_at(mount, "/subPath").unwrap_or_default();
    let mut below = relative_components(sub_path)
        .map_err(|why| format!("subPath {sub_path:?} of volumeMount {volume_name:?} {why}"))?;
    below.extend(rest);
    if below.is_empty() && action == Action::Delete {
        return Err(format!(
            "STOWAGE_VOLUME_DIR {container_path:?} is the volume itself; refusing to delete it"
        ));
    }
    Ok(Job {
        node: node.to_string(),
        action,
        base: base.iter().collect(),
        create_base,
        below: below.iter().collect(),
        container_path: container_path.to_string(),
    })
}

/// The volumeMount whose mountPath is the deepest ancestor of `dir` (as in the container's mount
/// table), and the components of `dir` below it.
fn matching_mount<'a>(container: &'a Value, dir: &[String]) -> Option<(&'a Value, Vec<String>)> {
    container
        .get("volumeMounts")
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|m| {
            let mount = absolute_components(str_at(m, "/mountPath")?).ok()?;
            dir.starts_with(&mount)
                .then(|| (m, mount.len(), dir[mount.len()..].to_vec()))
        })
        .max_by_key(|(_, depth, _)| *depth)
        .map(|(m, _, rest)| (m, rest))
}

/// Components of an absolute path; `.` and repeated slashes vanish, `..` is refused outright
/// (not resolved) because it only ever shows up in an attempt to leave the volume.
fn absolute_components(path: &str) -> Result<Vec<String>, &'static str> {
    if !path.starts_with('/') {
        return Err("is not an absolute path");
    }
    relative_components(path)
}

fn relative_components(path: &str) -> Result<Vec<String>, &'static str> {
    if path.contains('\0') {
        return Err("contains a NUL byte");
    }
    let mut out = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(c) => out.push(c.to_string_lossy().into_owned()),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err("contains '..'"),
            Component::Prefix(_) => return Err("is not a plain path"),
        }
    }
    Ok(out)
}

/// Whether `name` is one safe directory name (node names become `root/<node>`).
pub fn is_path_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

fn parse_mode(mode: &str) -> Result<u32, String> {
    u32::from_str_radix(mode, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("STOWAGE_VOLUME_MODE {mode:?} is not an octal mode like 0777"))
}

fn env<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container
        .get("env")
        .and_then(Value::as_array)?
        .iter()
        .find(|e| str_at(e, "/name") == Some(name))
        .map(|e| str_at(e, "/value").unwrap_or_default())
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
