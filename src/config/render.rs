//! Turns figment's extraction errors into one readable line per offending key.

use std::fmt;

use figment::Source;
use figment::error::{Actual, Kind};

/// One rejected configuration value, e.g. `storage.mysql.port: expected an integer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `storage.mysql.port`; empty when the whole source is unusable.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
    /// Where the value came from (a file path or an environment variable), when known.
    pub origin: Option<String>,
}

impl Problem {
    /// A problem found after extraction (no single origin).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            origin: None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.path.is_empty(), &self.origin) {
            (false, None) => write!(f, "{}: {}", self.path, self.message),
            (false, Some(origin)) => write!(f, "{}: {} (from {origin})", self.path, self.message),
            (true, None) => f.write_str(&self.message),
            (true, Some(origin)) => write!(f, "{origin}: {}", self.message),
        }
    }
}

/// Renders problems as an indented list, one per line, for error messages.
pub(crate) fn bullet_list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|problem| format!("\n  {problem}"))
        .collect()
}

/// Every error figment chained together, each as a [`Problem`].
pub(crate) fn figment_problems(error: figment::Error) -> Vec<Problem> {
    error.into_iter().map(|err| figment_problem(&err)).collect()
}

fn figment_problem(err: &figment::Error) -> Problem {
    let mut path = err.path.clone();
    // Figment reports an unknown key at its parent; name the key itself.
    if let Kind::UnknownField(field, _) = &err.kind
        && path.last() != Some(field)
    {
        path.push(field.clone());
    }
    let origin = err.metadata.as_ref().map(|md| match &md.source {
        Some(Source::File(file)) => file.display().to_string(),
        _ if md.name.contains("environment variable") => {
            format!("environment variable {}", env_var(&path))
        }
        _ => md.name.to_string(),
    });
    Problem {
        path: path.join("."),
        message: kind_message(&err.kind),
        origin,
    }
}

/// The environment variable that sets the key at `path`.
fn env_var(path: &[String]) -> String {
    let keys: Vec<String> = path.iter().map(|key| key.to_ascii_uppercase()).collect();
    format!("{}{}", super::ENV_PREFIX, keys.join("__"))
}

fn kind_message(kind: &Kind) -> String {
    match kind {
        Kind::Message(message) => message.clone(),
        Kind::InvalidType(actual, expected) => {
            format!(
                "expected {}, found {}",
                expected_type(expected),
                actual_value(actual)
            )
        }
        Kind::InvalidValue(actual, expected) => {
            format!(
                "invalid value {}; expected {}",
                actual_value(actual),
                expected_value(expected)
            )
        }
        Kind::InvalidLength(len, expected) => format!("expected {expected}, found {len} elements"),
        Kind::UnknownVariant(value, allowed) => {
            format!(
                "unknown value {value:?}; expected one of: {}",
                allowed.join(", ")
            )
        }
        Kind::UnknownField(_, []) => "unknown key; no keys are allowed here".into(),
        Kind::UnknownField(_, allowed) => {
            format!("unknown key; allowed keys: {}", allowed.join(", "))
        }
        Kind::MissingField(_) => "missing required key".into(),
        Kind::DuplicateField(_) => "key given more than once".into(),
        Kind::ISizeOutOfRange(value) => format!("number {value} is out of range"),
        Kind::USizeOutOfRange(value) => format!("number {value} is out of range"),
        Kind::Unsupported(actual) => format!("unsupported value {}", actual_value(actual)),
        Kind::UnsupportedKey(actual, needed) => {
            format!(
                "unsupported key {}; keys must be {needed}",
                actual_value(actual)
            )
        }
    }
}

/// Serde's expectation for a type, in words a YAML author recognises.
fn expected_type(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64" | "i128"
        | "isize" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "a sequence" => "a list".into(),
        other if other.starts_with("struct ") || other == "a map" => "a mapping".into(),
        other => other.into(),
    }
}

/// Serde's expectation for a value, with integer ranges spelled out.
fn expected_value(expected: &str) -> String {
    match expected {
        "u8" => "an integer from 0 to 255".into(),
        "u16" => "an integer from 0 to 65535".into(),
        "u32" => "an integer from 0 to 4294967295".into(),
        "u64" | "u128" | "usize" => "a non-negative integer".into(),
        other => expected_type(other),
    }
}

fn actual_value(actual: &Actual) -> String {
    match actual {
        Actual::Str(value) => format!("string {value:?}"),
        Actual::Unsigned(value) => format!("number {value}"),
        Actual::Signed(value) => format!("number {value}"),
        Actual::Float(value) => format!("number {value}"),
        Actual::Bool(value) => format!("boolean {value}"),
        Actual::Seq => "a list".into(),
        Actual::Map => "a mapping".into(),
        Actual::Unit | Actual::Option => "null".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_types_read_as_integers() {
        assert_eq!(
            kind_message(&Kind::InvalidType(Actual::Str("abc".into()), "u16".into())),
            "expected an integer, found string \"abc\""
        );
    }

    #[test]
    fn out_of_range_names_the_range() {
        assert_eq!(
            kind_message(&Kind::InvalidValue(Actual::Unsigned(70000), "u16".into())),
            "invalid value number 70000; expected an integer from 0 to 65535"
        );
    }

    #[test]
    fn env_var_names_use_double_underscores() {
        let path = ["storage".to_owned(), "mysql".to_owned(), "port".to_owned()];
        assert_eq!(env_var(&path), "STOWAGE_STORAGE__MYSQL__PORT");
    }

    #[test]
    fn problem_without_path_leads_with_origin() {
        let problem = Problem {
            path: String::new(),
            message: "bad yaml".into(),
            origin: Some("a.yaml".into()),
        };
        assert_eq!(problem.to_string(), "a.yaml: bad yaml");
    }
}
