//! Label and field selectors with kube-apiserver's syntax, validation and matching rules.
//!
//! Parsing follows `k8s.io/apimachinery/pkg/labels` and `pkg/fields`; error texts mimic the Go
//! server so clients that surface them see familiar messages.
//!
//! Field selectors name *selectable fields*, not JSON paths. [`FieldSelector::matches`] reads
//! each name as a dotted path, which is right for most kinds; [`FieldSelector::matches_for`]
//! goes through [`field_value`], which knows the per-resource aliases (events, jobs) and the Go
//! zero-value renderings (`false`, `0`); [`FieldSelector::matches_with`] takes any resolver.

mod field;
mod label;
mod label_parser;
mod selectable;
#[cfg(test)]
mod tests;
mod validation;

use serde_json::Value;

pub use field::FieldSelector;
pub use label::{LabelOp, LabelSelector, Requirement};
pub use selectable::{field_value, lookup_path, supported_fields};

/// Why a selector string was rejected; the HTTP layer answers 400 with this message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SelectorError {
    /// A token appeared where the grammar expects something else.
    #[error("unable to parse requirement: found '{found}', expected: {expected}")]
    UnexpectedToken {
        found: String,
        expected: &'static str,
    },
    /// A label key is not a qualified name.
    #[error("unable to parse requirement: invalid label key \"{key}\": {reason}")]
    InvalidKey { key: String, reason: String },
    /// A label value is not a valid label value.
    #[error(
        "unable to parse requirement: invalid label value \"{value}\" for key \"{key}\": {reason}"
    )]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    /// `k in ()` / `k notin ()`.
    #[error(
        "unable to parse requirement: for 'in', 'notin' operators, values set can't be empty (key \"{key}\")"
    )]
    EmptyValues { key: String },
    /// `k > v` / `k < v` with a non-integer `v`.
    #[error(
        "unable to parse requirement: for 'gt', 'lt' operators, the value must be an integer (key \"{key}\", value \"{value}\")"
    )]
    NotAnInteger { key: String, value: String },
    /// A field selector term without `=`, `==` or `!=`, or with an empty field name.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    InvalidFieldTerm { selector: String, term: String },
    /// A field selector value with a bad escape or an unescaped `,`/`=`.
    #[error("invalid field selector: {0}")]
    InvalidFieldValue(String),
    /// A field the resource does not index.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

/// Label and field values are strings; anything else is compared by its JSON text.
fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
