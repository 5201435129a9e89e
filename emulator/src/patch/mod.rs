//! Patch engines: JSON merge (RFC 7386), JSON patch (RFC 6902), strategic merge and server-side apply.
//!
//! Everything here is pure: functions take the live object and the patch and return the new object.

pub mod apply;
pub mod json;
pub mod schema;
pub mod strategic;

/// Why a patch could not be applied; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// The patch document is malformed (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// The patch is well formed but cannot apply to this object, e.g. a failed `test` op (HTTP 422).
    #[error("{0}")]
    Invalid(String),
    /// The patch type is not supported for this kind, e.g. strategic merge on a custom resource (HTTP 415).
    #[error("{0}")]
    Unsupported(String),
    /// Server-side apply conflicts with fields owned by other managers (HTTP 409).
    #[error("Apply failed with {} conflict(s): {}", .0.len(), .0.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("; "))]
    Conflict(Vec<Conflict>),
}

/// One server-side apply conflict: `field` is owned by `manager` and would change value.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// Dotted path like `.spec.replicas` or `.spec.containers[name="app"].image`.
    pub field: String,
    /// The manager that currently owns the field.
    pub manager: String,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conflict with \"{}\": {}", self.manager, self.field)
    }
}
