//! StorageClasses: which provisioner a class names and, for Stowage's own, its validated
//! parameters. Errors name the class, the parameter and what is allowed, so an admin can fix the
//! class from the Event text alone.

use crate::storage::pattern::{PatternError, check_pattern};
use k8s_openapi::api::storage::v1::StorageClass;

pub const HOSTPATH_PROVISIONER: &str = "stowage.io/hostpath";
pub const NFS_PROVISIONER: &str = "stowage.io/nfs";
pub const LONGHORN_PROVISIONER: &str = "driver.longhorn.io";

const HOSTPATH_PARAMETERS: &[&str] = &["pathPattern"];
const NFS_PARAMETERS: &[&str] = &[
    "server",
    "path",
    "pathPattern",
    "onDelete",
    "archiveOnDelete",
];

/// What a class is, as far as Stowage is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassKind {
    HostPath(HostPathParams),
    Nfs(NfsParams),
    /// CSI: Stowage validates it for expansion and raises requests, nothing more.
    Longhorn,
    /// Any other provisioner: not ours.
    Foreign,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostPathParams {
    /// `None`: [`crate::storage::pattern::DEFAULT_PATTERN`].
    pub path_pattern: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsParams {
    pub server: String,
    /// The export's absolute path on the server.
    pub path: String,
    /// `None`: [`crate::storage::pattern::DEFAULT_PATTERN`].
    pub path_pattern: Option<String>,
    pub on_delete: OnDelete,
}

/// What happens to an NFS volume's directory when the volume is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    Delete,
    Retain,
    /// Rename to `archived-<last component>` in place (the nested path stays intact).
    Archive,
}

/// Why a class of Stowage's cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassError {
    #[error("StorageClass {class:?}: unknown parameter {parameter:?} for {provisioner}; allowed: {}", allowed.join(", "))]
    UnknownParameter {
        class: String,
        provisioner: &'static str,
        parameter: String,
        allowed: &'static [&'static str],
    },
    #[error("StorageClass {class:?}: parameter {parameter:?} is required for {provisioner}")]
    MissingParameter {
        class: String,
        provisioner: &'static str,
        parameter: &'static str,
    },
    #[error("StorageClass {class:?}: parameter {parameter:?} is {value:?}; expected {expected}")]
    InvalidValue {
        class: String,
        parameter: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("StorageClass {class:?}: {source}")]
    UnsafePattern {
        class: String,
        #[source]
        source: PatternError,
    },
}

/// Stowage provisions volumes of this kind itself (hostPath, NFS).
pub fn is_ours(kind: &ClassKind) -> bool {
    matches!(kind, ClassKind::HostPath(_) | ClassKind::Nfs(_))
}

/// Classifies a class and validates the parameters of Stowage's own provisioners.
pub fn classify(class: &StorageClass) -> Result<ClassKind, ClassError> {
    let name = class.metadata.name.clone().unwrap_or_default();
    match class.provisioner.as_str() {
        HOSTPATH_PROVISIONER => {
            let params = Params::new(class, &name, HOSTPATH_PROVISIONER, HOSTPATH_PARAMETERS)?;
            Ok(ClassKind::HostPath(HostPathParams {
                path_pattern: params.pattern()?,
            }))
        }
        NFS_PROVISIONER => {
            let params = Params::new(class, &name, NFS_PROVISIONER, NFS_PARAMETERS)?;
            let server = params.required("server")?;
            let path = params.required("path")?;
            if !path.starts_with('/') || path.contains('\0') || path.split('/').any(|c| c == "..") {
                return Err(params.invalid(
                    "path",
                    path,
                    "an absolute export path without `..`, such as /exports/k8s",
                ));
            }
            Ok(ClassKind::Nfs(NfsParams {
                server: server.to_string(),
                path: path.to_string(),
                path_pattern: params.pattern()?,
                on_delete: params.on_delete()?,
            }))
        }
        LONGHORN_PROVISIONER => Ok(ClassKind::Longhorn),
        _ => Ok(ClassKind::Foreign),
    }
}

/// A class's parameters, already checked against the provisioner's allowed names.
struct Params<'a> {
    class: &'a StorageClass,
    name: &'a str,
    provisioner: &'static str,
}

impl<'a> Params<'a> {
    fn new(
        class: &'a StorageClass,
        name: &'a str,
        provisioner: &'static str,
        allowed: &'static [&'static str],
    ) -> Result<Self, ClassError> {
        if let Some(unknown) = class
            .parameters
            .iter()
            .flatten()
            .map(|(k, _)| k)
            .find(|k| !allowed.contains(&k.as_str()))
        {
            return Err(ClassError::UnknownParameter {
                class: name.to_string(),
                provisioner,
                parameter: unknown.clone(),
                allowed,
            });
        }
        Ok(Self {
            class,
            name,
            provisioner,
        })
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.class.parameters.as_ref()?.get(key).map(String::as_str)
    }

    fn required(&self, key: &'static str) -> Result<&'a str, ClassError> {
        match self.get(key).map(str::trim) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(ClassError::MissingParameter {
                class: self.name.to_string(),
                provisioner: self.provisioner,
                parameter: key,
            }),
        }
    }

    fn invalid(&self, parameter: &'static str, value: &str, expected: &'static str) -> ClassError {
        ClassError::InvalidValue {
            class: self.name.to_string(),
            parameter,
            value: value.to_string(),
            expected,
        }
    }

    fn pattern(&self) -> Result<Option<String>, ClassError> {
        let Some(pattern) = self.get("pathPattern") else {
            return Ok(None);
        };
        check_pattern(pattern).map_err(|source| ClassError::UnsafePattern {
            class: self.name.to_string(),
            source,
        })?;
        Ok(Some(pattern.to_string()))
    }

    /// `onDelete` wins over the older `archiveOnDelete`; with neither, archive (the peer
    /// nfs-subdir-external-provisioner's default, and the one that loses no data).
    fn on_delete(&self) -> Result<OnDelete, ClassError> {
        let archive = match self.get("archiveOnDelete") {
            None => None,
            Some(value) => Some(
                parse_bool(value)
                    .ok_or_else(|| self.invalid("archiveOnDelete", value, "true or false"))?,
            ),
        };
        match self.get("onDelete") {
            Some("delete") => Ok(OnDelete::Delete),
            Some("retain") => Ok(OnDelete::Retain),
            Some("archive") => Ok(OnDelete::Archive),
            Some(other) => Err(self.invalid("onDelete", other, "delete, retain or archive")),
            None => Ok(match archive {
                Some(false) => OnDelete::Delete,
                Some(true) | None => OnDelete::Archive,
            }),
        }
    }
}

/// Go's `strconv.ParseBool`, which the peer uses for `archiveOnDelete`.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn class(provisioner: &str, params: &[(&str, &str)]) -> StorageClass {
        StorageClass {
            metadata: ObjectMeta {
                name: Some("c".to_string()),
                ..Default::default()
            },
            provisioner: provisioner.to_string(),
            parameters: (!params.is_empty()).then(|| {
                params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>()
            }),
            ..Default::default()
        }
    }

    fn nfs(server: &str, path: &str, pattern: Option<&str>, on_delete: OnDelete) -> ClassKind {
        ClassKind::Nfs(NfsParams {
            server: server.to_string(),
            path: path.to_string(),
            path_pattern: pattern.map(str::to_string),
            on_delete,
        })
    }

    const NFS_OK: [(&str, &str); 2] = [("server", "10.0.0.5"), ("path", "/exports")];

    fn with_nfs(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        NFS_OK.iter().chain(extra).copied().collect()
    }

    #[test]
    fn classifies_and_reads_parameters() {
        let cases: Vec<(&str, StorageClass, ClassKind)> = vec![
            (
                "hostPath without parameters",
                class(HOSTPATH_PROVISIONER, &[]),
                ClassKind::HostPath(HostPathParams { path_pattern: None }),
            ),
            (
                "hostPath with a pattern",
                class(HOSTPATH_PROVISIONER, &[("pathPattern", "${node}/${pv}")]),
                ClassKind::HostPath(HostPathParams {
                    path_pattern: Some("${node}/${pv}".to_string()),
                }),
            ),
            (
                "NFS defaults to archive",
                class(NFS_PROVISIONER, &NFS_OK),
                nfs("10.0.0.5", "/exports", None, OnDelete::Archive),
            ),
            (
                "NFS onDelete delete",
                class(NFS_PROVISIONER, &with_nfs(&[("onDelete", "delete")])),
                nfs("10.0.0.5", "/exports", None, OnDelete::Delete),
            ),
            (
                "NFS onDelete retain",
                class(NFS_PROVISIONER, &with_nfs(&[("onDelete", "retain")])),
                nfs("10.0.0.5", "/exports", None, OnDelete::Retain),
            ),
            (
                "NFS onDelete archive",
                class(NFS_PROVISIONER, &with_nfs(&[("onDelete", "archive")])),
                nfs("10.0.0.5", "/exports", None, OnDelete::Archive),
            ),
            (
                "NFS archiveOnDelete false deletes",
                class(NFS_PROVISIONER, &with_nfs(&[("archiveOnDelete", "false")])),
                nfs("10.0.0.5", "/exports", None, OnDelete::Delete),
            ),
            (
                "NFS archiveOnDelete true archives",
                class(NFS_PROVISIONER, &with_nfs(&[("archiveOnDelete", "True")])),
                nfs("10.0.0.5", "/exports", None, OnDelete::Archive),
            ),
            (
                "onDelete wins over archiveOnDelete",
                class(
                    NFS_PROVISIONER,
                    &with_nfs(&[("onDelete", "retain"), ("archiveOnDelete", "false")]),
                ),
                nfs("10.0.0.5", "/exports", None, OnDelete::Retain),
            ),
            (
                "NFS pattern",
                class(
                    NFS_PROVISIONER,
                    &with_nfs(&[("pathPattern", "${.PVC.namespace}/${.PVC.name}")]),
                ),
                nfs(
                    "10.0.0.5",
                    "/exports",
                    Some("${.PVC.namespace}/${.PVC.name}"),
                    OnDelete::Archive,
                ),
            ),
            (
                "Longhorn parameters are Longhorn's business",
                class(LONGHORN_PROVISIONER, &[("numberOfReplicas", "3")]),
                ClassKind::Longhorn,
            ),
            (
                "anything else is foreign",
                class("ebs.csi.aws.com", &[("type", "gp3")]),
                ClassKind::Foreign,
            ),
        ];
        for (what, class, want) in cases {
            assert_eq!(classify(&class), Ok(want), "{what}");
        }
    }

    #[test]
    fn refuses_bad_classes_with_the_fix_in_the_message() {
        let cases: Vec<(&str, StorageClass, &str)> = vec![
            (
                "unknown hostPath parameter",
                class(HOSTPATH_PROVISIONER, &[("path", "/data")]),
                "StorageClass \"c\": unknown parameter \"path\" for stowage.io/hostpath; allowed: \
                 pathPattern",
            ),
            (
                "unknown NFS parameter",
                class(NFS_PROVISIONER, &with_nfs(&[("mountOptions", "vers=4")])),
                "StorageClass \"c\": unknown parameter \"mountOptions\" for stowage.io/nfs; \
                 allowed: server, path, pathPattern, onDelete, archiveOnDelete",
            ),
            (
                "NFS without server",
                class(NFS_PROVISIONER, &[("path", "/exports")]),
                "StorageClass \"c\": parameter \"server\" is required for stowage.io/nfs",
            ),
            (
                "NFS with an empty server",
                class(NFS_PROVISIONER, &[("server", " "), ("path", "/exports")]),
                "StorageClass \"c\": parameter \"server\" is required for stowage.io/nfs",
            ),
            (
                "NFS without path",
                class(NFS_PROVISIONER, &[("server", "nfs")]),
                "StorageClass \"c\": parameter \"path\" is required for stowage.io/nfs",
            ),
            (
                "NFS relative path",
                class(NFS_PROVISIONER, &[("server", "nfs"), ("path", "exports")]),
                "StorageClass \"c\": parameter \"path\" is \"exports\"; expected an absolute \
                 export path without `..`, such as /exports/k8s",
            ),
            (
                "NFS path with ..",
                class(
                    NFS_PROVISIONER,
                    &[("server", "nfs"), ("path", "/exports/../etc")],
                ),
                "StorageClass \"c\": parameter \"path\" is \"/exports/../etc\"; expected an \
                 absolute export path without `..`, such as /exports/k8s",
            ),
            (
                "bad onDelete",
                class(NFS_PROVISIONER, &with_nfs(&[("onDelete", "Delete")])),
                "StorageClass \"c\": parameter \"onDelete\" is \"Delete\"; expected delete, \
                 retain or archive",
            ),
            (
                "bad archiveOnDelete",
                class(NFS_PROVISIONER, &with_nfs(&[("archiveOnDelete", "yes")])),
                "StorageClass \"c\": parameter \"archiveOnDelete\" is \"yes\"; expected true or \
                 false",
            ),
            (
                "pattern that can never be safe",
                class(HOSTPATH_PROVISIONER, &[("pathPattern", "../${pv}")]),
                "StorageClass \"c\": pathPattern \"../${pv}\" contains a `..` component; remove \
                 it, volumes must stay under the base path",
            ),
            (
                "absolute pattern",
                class(NFS_PROVISIONER, &with_nfs(&[("pathPattern", "/${pv}")])),
                "StorageClass \"c\": pathPattern \"/${pv}\" is absolute; write it relative to the \
                 base path, as in ${namespace}/${pvc}",
            ),
        ];
        for (what, class, want) in cases {
            assert_eq!(
                classify(&class).map_err(|e| e.to_string()),
                Err(want.to_string()),
                "{what}"
            );
        }
        let unknown = classify(&class(HOSTPATH_PROVISIONER, &[("pathPatern", "${pv}")]));
        assert_eq!(
            unknown,
            Err(ClassError::UnknownParameter {
                class: "c".to_string(),
                provisioner: HOSTPATH_PROVISIONER,
                parameter: "pathPatern".to_string(),
                allowed: HOSTPATH_PARAMETERS,
            })
        );
    }

    #[test]
    fn only_hostpath_and_nfs_are_ours() {
        assert!(is_ours(&ClassKind::HostPath(HostPathParams {
            path_pattern: None
        })));
        assert!(is_ours(&nfs("s", "/p", None, OnDelete::Retain)));
        assert!(!is_ours(&ClassKind::Longhorn));
        assert!(!is_ours(&ClassKind::Foreign));
    }
}
