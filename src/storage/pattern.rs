//! Volume directory names from a class's `pathPattern`: expansion of the variables and the checks
//! that keep every result a relative path under its base directory. Values come from users
//! (claim names, labels, annotations), so they are checked as carefully as the pattern itself.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The pattern used when a class sets none (nfs-subdir-external-provisioner's naming).
pub const DEFAULT_PATTERN: &str = "${namespace}-${pvc}-${pv}";

const ACCEPTED: &str = "${namespace}, ${pvc}, ${pv}, ${node}, ${.PVC.namespace}, ${.PVC.name}, \
                        ${.PVC.labels.<key>}, ${.PVC.annotations.<key>}";

/// Why a pattern (or its expansion) cannot name a volume directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("pathPattern {pattern:?} has `${{` without a closing `}}`; close it, as in ${{pvc}}")]
    Unclosed { pattern: String },
    #[error("pathPattern {pattern:?} uses unknown variable ${{{variable}}}; use one of {ACCEPTED}")]
    UnknownVariable { pattern: String, variable: String },
    #[error("pathPattern {pattern:?} contains a NUL byte; remove it")]
    Nul { pattern: String },
    #[error(
        "pathPattern {pattern:?} is absolute; write it relative to the base path, as in ${{namespace}}/${{pvc}}"
    )]
    Absolute { pattern: String },
    #[error(
        "pathPattern {pattern:?} contains a `..` component; remove it, volumes must stay under the base path"
    )]
    ParentComponent { pattern: String },
    #[error(
        "pathPattern {pattern:?} expands to an empty path; include ${{pv}} or another variable that is never empty"
    )]
    Empty { pattern: String },
    #[error(
        "pathPattern {pattern:?} uses ${{node}} but this volume has no node; drop ${{node}} from the pattern"
    )]
    NoNode { pattern: String },
    #[error(
        "${{{variable}}} is {value:?}, which contains `..` or a NUL byte and could leave the base path; change that value or the pathPattern"
    )]
    UnsafeValue { variable: String, value: String },
    #[error("{path:?} would leave {base:?}; only plain relative paths below the base are allowed")]
    Escapes { base: PathBuf, path: PathBuf },
}

/// The values a pattern may use. Build it from a claim with [`PatternVars::for_claim`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PatternVars<'a> {
    pub namespace: &'a str,
    pub pvc: &'a str,
    pub pv: &'a str,
    /// The node holding the data (hostPath); `None` for NFS.
    pub node: Option<&'a str>,
    pub labels: Option<&'a BTreeMap<String, String>>,
    pub annotations: Option<&'a BTreeMap<String, String>>,
}

impl<'a> PatternVars<'a> {
    pub fn for_claim(claim: &'a PersistentVolumeClaim, pv: &'a str, node: Option<&'a str>) -> Self {
        Self {
            namespace: claim.metadata.namespace.as_deref().unwrap_or(""),
            pvc: claim.metadata.name.as_deref().unwrap_or(""),
            pv,
            node,
            labels: claim.metadata.labels.as_ref(),
            annotations: claim.metadata.annotations.as_ref(),
        }
    }
}

enum Piece<'p> {
    Text(&'p str),
    Var(&'p str),
}

/// Splits a pattern into literal text and `${...}` variables (a lone `$` is literal).
fn pieces(pattern: &str) -> Result<Vec<Piece<'_>>, PatternError> {
    let mut out = Vec::new();
    let mut rest = pattern;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| PatternError::Unclosed {
            pattern: pattern.to_string(),
        })?;
        out.push(Piece::Var(&after[..end]));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// A variable's value; `Ok(None)` for a name that is not a variable.
fn lookup<'v>(
    pattern: &str,
    name: &str,
    vars: &PatternVars<'v>,
) -> Result<Option<&'v str>, PatternError> {
    let from = |map: Option<&'v BTreeMap<String, String>>, key: &str| {
        // A missing label or annotation expands to "", as in nfs-subdir-external-provisioner.
        map.and_then(|m| m.get(key)).map_or("", String::as_str)
    };
    Ok(Some(match name {
        "namespace" | ".PVC.namespace" => vars.namespace,
        "pvc" | ".PVC.name" => vars.pvc,
        "pv" => vars.pv,
        "node" => vars.node.ok_or_else(|| PatternError::NoNode {
            pattern: pattern.to_string(),
        })?,
        _ => match name
            .strip_prefix(".PVC.labels.")
            .map(|k| (vars.labels, k))
            .or_else(|| {
                name.strip_prefix(".PVC.annotations.")
                    .map(|k| (vars.annotations, k))
            }) {
            Some((_, "")) | None => return Ok(None),
            Some((map, key)) => from(map, key),
        },
    }))
}

/// Static checks of a pattern, before any value is known: syntax, known variables, no NUL, not
/// absolute, no literal `..` component. A class whose pattern fails here can never provision.
pub fn check_pattern(pattern: &str) -> Result<(), PatternError> {
    let probe_labels = BTreeMap::new();
    let vars = PatternVars {
        namespace: "ns",
        pvc: "pvc",
        pv: "pv",
        node: Some("node"),
        labels: Some(&probe_labels),
        annotations: Some(&probe_labels),
    };
    let mut probe = String::new();
    for piece in pieces(pattern)? {
        match piece {
            Piece::Text(text) => probe.push_str(text),
            Piece::Var(name) => match lookup(pattern, name, &vars)? {
                Some(_) => probe.push('v'),
                None => {
                    return Err(PatternError::UnknownVariable {
                        pattern: pattern.to_string(),
                        variable: name.to_string(),
                    });
                }
            },
        }
    }
    if probe.contains('\0') {
        return Err(PatternError::Nul {
            pattern: pattern.to_string(),
        });
    }
    if probe.starts_with('/') {
        return Err(PatternError::Absolute {
            pattern: pattern.to_string(),
        });
    }
    if probe.split('/').any(|c| c == "..") {
        return Err(PatternError::ParentComponent {
            pattern: pattern.to_string(),
        });
    }
    Ok(())
}

/// Expands `pattern` with `vars` into a normalised relative path (no `.`, `..` or empty
/// components). Values may contain `/` to nest directories, never a `..` component or NUL.
pub fn expand_pattern(pattern: &str, vars: &PatternVars) -> Result<PathBuf, PatternError> {
    check_pattern(pattern)?;
    let mut expanded = String::new();
    for piece in pieces(pattern)? {
        match piece {
            Piece::Text(text) => expanded.push_str(text),
            Piece::Var(name) => {
                let value = lookup(pattern, name, vars)?.unwrap_or("");
                if value.contains('\0') || value.split('/').any(|c| c == "..") {
                    return Err(PatternError::UnsafeValue {
                        variable: name.to_string(),
                        value: value.to_string(),
                    });
                }
                // A value that makes the whole path absolute is a mistake worth reporting; an
                // empty value before a literal `/` (a missing label) only collapses.
                if expanded.is_empty() && value.starts_with('/') {
                    return Err(PatternError::Absolute {
                        pattern: pattern.to_string(),
                    });
                }
                expanded.push_str(value);
            }
        }
    }
    // Values can join literal text into a new `..` (".${pvc}" with pvc "."): check the whole.
    let mut path = PathBuf::new();
    for component in expanded.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                return Err(PatternError::ParentComponent {
                    pattern: pattern.to_string(),
                });
            }
            normal => path.push(normal),
        }
    }
    if path.as_os_str().is_empty() {
        return Err(PatternError::Empty {
            pattern: pattern.to_string(),
        });
    }
    Ok(path)
}

/// `base` joined with `relative`, refusing anything but plain components below `base` (the last
/// line of defence before a directory is created or removed).
pub fn join_under(base: &Path, relative: &Path) -> Result<PathBuf, PatternError> {
    let escapes = || PatternError::Escapes {
        base: base.to_path_buf(),
        path: relative.to_path_buf(),
    };
    let mut out = base.to_path_buf();
    let mut depth = 0;
    for component in relative.components() {
        match component {
            Component::Normal(part) => {
                if part.as_encoded_bytes().contains(&0) {
                    return Err(escapes());
                }
                out.push(part);
                depth += 1;
            }
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(escapes());
            }
        }
    }
    // The base itself is never a volume directory: removing it would remove every volume.
    if depth == 0 {
        return Err(escapes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([("team".to_string(), "data".to_string())])
    }

    fn annotations() -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "nfs.io/storage-path".to_string(),
                "shared/reports".to_string(),
            ),
            ("evil".to_string(), "x/../../etc".to_string()),
            ("dots".to_string(), "..".to_string()),
            ("dot".to_string(), ".".to_string()),
            ("nul".to_string(), "a\0b".to_string()),
            ("abs".to_string(), "/etc".to_string()),
        ])
    }

    fn expand(pattern: &str, node: Option<&str>) -> Result<PathBuf, PatternError> {
        let (labels, annotations) = (labels(), annotations());
        let vars = PatternVars {
            namespace: "shop",
            pvc: "db",
            pv: "pvc-123",
            node,
            labels: Some(&labels),
            annotations: Some(&annotations),
        };
        expand_pattern(pattern, &vars)
    }

    #[test]
    fn expands_every_variable() {
        let cases: &[(&str, &str)] = &[
            (DEFAULT_PATTERN, "shop-db-pvc-123"),
            ("${namespace}/${pvc}", "shop/db"),
            ("${node}/${pv}", "n1/pvc-123"),
            ("${.PVC.namespace}/${.PVC.name}", "shop/db"),
            ("${.PVC.labels.team}-${pv}", "data-pvc-123"),
            ("${.PVC.annotations.nfs.io/storage-path}", "shared/reports"),
            ("${.PVC.labels.missing}/${pv}", "pvc-123"),
            ("./a//b/./${pv}/", "a/b/pvc-123"),
            ("cost$-${pv}", "cost$-pvc-123"),
            ("${namespace}/${.PVC.annotations.abs}", "shop/etc"),
            ("x${.PVC.annotations.dot}${.PVC.annotations.dot}", "x.."),
        ];
        for (pattern, want) in cases {
            assert_eq!(
                expand(pattern, Some("n1")),
                Ok(PathBuf::from(want)),
                "{pattern}"
            );
        }
    }

    #[test]
    fn refuses_unsafe_patterns_and_values() {
        let err = |e: PatternError| Err::<PathBuf, _>(e);
        let p = |s: &str| s.to_string();
        let cases: Vec<(&str, Result<PathBuf, PatternError>)> = vec![
            (
                "${namespace}/../${pv}",
                err(PatternError::ParentComponent {
                    pattern: p("${namespace}/../${pv}"),
                }),
            ),
            (
                "..",
                err(PatternError::ParentComponent { pattern: p("..") }),
            ),
            (
                "/srv/${pv}",
                err(PatternError::Absolute {
                    pattern: p("/srv/${pv}"),
                }),
            ),
            (
                "${pv}\0x",
                err(PatternError::Nul {
                    pattern: p("${pv}\0x"),
                }),
            ),
            (
                "${user}",
                err(PatternError::UnknownVariable {
                    pattern: p("${user}"),
                    variable: p("user"),
                }),
            ),
            (
                "${.PVC.labels.}",
                err(PatternError::UnknownVariable {
                    pattern: p("${.PVC.labels.}"),
                    variable: p(".PVC.labels."),
                }),
            ),
            ("${pv", err(PatternError::Unclosed { pattern: p("${pv") })),
            ("", err(PatternError::Empty { pattern: p("") })),
            ("./", err(PatternError::Empty { pattern: p("./") })),
            (
                "${.PVC.labels.missing}",
                err(PatternError::Empty {
                    pattern: p("${.PVC.labels.missing}"),
                }),
            ),
            (
                "${.PVC.annotations.evil}",
                err(PatternError::UnsafeValue {
                    variable: p(".PVC.annotations.evil"),
                    value: p("x/../../etc"),
                }),
            ),
            (
                "${.PVC.annotations.dots}/x",
                err(PatternError::UnsafeValue {
                    variable: p(".PVC.annotations.dots"),
                    value: p(".."),
                }),
            ),
            (
                "${.PVC.annotations.nul}",
                err(PatternError::UnsafeValue {
                    variable: p(".PVC.annotations.nul"),
                    value: p("a\0b"),
                }),
            ),
            (
                "${.PVC.annotations.abs}",
                err(PatternError::Absolute {
                    pattern: p("${.PVC.annotations.abs}"),
                }),
            ),
            // Two harmless values that only form `..` together.
            (
                "${.PVC.annotations.dot}${.PVC.annotations.dot}/x",
                err(PatternError::ParentComponent {
                    pattern: p("${.PVC.annotations.dot}${.PVC.annotations.dot}/x"),
                }),
            ),
        ];
        for (pattern, want) in cases {
            assert_eq!(expand(pattern, Some("n1")), want, "{pattern:?}");
        }
        assert_eq!(
            expand("${node}/${pv}", None),
            Err(PatternError::NoNode {
                pattern: p("${node}/${pv}")
            })
        );
    }

    #[test]
    fn errors_say_what_to_fix() {
        assert_eq!(
            expand("${user}/${pv}", None).unwrap_err().to_string(),
            "pathPattern \"${user}/${pv}\" uses unknown variable ${user}; use one of ${namespace}, \
             ${pvc}, ${pv}, ${node}, ${.PVC.namespace}, ${.PVC.name}, ${.PVC.labels.<key>}, \
             ${.PVC.annotations.<key>}"
        );
        assert_eq!(
            expand("${.PVC.annotations.evil}", None)
                .unwrap_err()
                .to_string(),
            "${.PVC.annotations.evil} is \"x/../../etc\", which contains `..` or a NUL byte and \
             could leave the base path; change that value or the pathPattern"
        );
        assert_eq!(
            check_pattern("/data/${pv}").unwrap_err().to_string(),
            "pathPattern \"/data/${pv}\" is absolute; write it relative to the base path, as in \
             ${namespace}/${pvc}"
        );
    }

    #[test]
    fn check_pattern_accepts_what_can_be_safe() {
        for ok in [
            DEFAULT_PATTERN,
            "${node}/${pv}",
            "${.PVC.annotations.a/b}",
            "a..b/${pv}",
        ] {
            assert_eq!(check_pattern(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn for_claim_reads_the_claim() {
        let claim = PersistentVolumeClaim {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("db".to_string()),
                namespace: Some("shop".to_string()),
                labels: Some(labels()),
                ..Default::default()
            },
            ..Default::default()
        };
        let vars = PatternVars::for_claim(&claim, "pvc-9", Some("n2"));
        assert_eq!(
            expand_pattern(
                "${node}/${namespace}-${.PVC.labels.team}-${pvc}-${pv}",
                &vars
            ),
            Ok(PathBuf::from("n2/shop-data-db-pvc-9"))
        );
    }

    #[test]
    fn join_under_never_leaves_the_base() {
        let base = Path::new("/var/lib/stowage");
        assert_eq!(
            join_under(base, Path::new("shop/db")),
            Ok(PathBuf::from("/var/lib/stowage/shop/db"))
        );
        assert_eq!(
            join_under(base, Path::new("./a/./b")),
            Ok(PathBuf::from("/var/lib/stowage/a/b"))
        );
        for bad in ["../etc", "a/../../etc", "/etc", "", ".", "a/.."] {
            assert_eq!(
                join_under(base, Path::new(bad)),
                Err(PatternError::Escapes {
                    base: base.to_path_buf(),
                    path: PathBuf::from(bad),
                }),
                "{bad:?}"
            );
        }
        assert!(join_under(base, Path::new("a\0b")).is_err());
    }
}
