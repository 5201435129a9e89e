//! Label and field selectors with kube-apiserver's syntax, validation and matching rules.
//!
//! Parsing follows `k8s.io/apimachinery/pkg/labels` and `pkg/fields`; error texts mimic the Go
//! server so clients that surface them see familiar messages.
//!
//! Field selectors name *selectable fields*, not JSON paths. [`FieldSelector::matches`] reads
//! each name as a dotted path, which is right for most kinds; [`FieldSelector::matches_for`]
//! goes through [`field_value`], which knows the per-resource aliases (events, jobs) and the Go
//! zero-value renderings (`false`, `0`); [`FieldSelector::matches_with`] takes any resolver.

use serde_json::{Map, Value};

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

// ---------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------

/// A parsed label selector: a conjunction of requirements. Empty matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: LabelOp,
}

#[derive(Debug, Clone, PartialEq)]
enum LabelOp {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    GreaterThan(i64),
    LessThan(i64),
}

impl LabelSelector {
    /// Kubernetes label selector syntax: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
    /// `k` (exists), `!k` (not exists), plus `k>n` / `k<n` (integers) as the Go parser allows;
    /// comma = AND; whitespace tolerant; empty string = everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parser = LabelParser {
            tokens: lex(s),
            pos: 0,
        };
        let mut requirements = Vec::new();
        loop {
            match parser.peek() {
                Tok::End => break,
                Tok::Ident(_) | Tok::Not => {}
                other => {
                    return Err(unexpected(other, "!, identifier, or 'end of string'"));
                }
            }
            requirements.push(parser.requirement()?);
            match parser.next() {
                Tok::End => break,
                Tok::Comma => match parser.peek() {
                    Tok::Ident(_) | Tok::Not => {}
                    other => return Err(unexpected(other, "identifier after ','")),
                },
                other => return Err(unexpected(other, "',' or 'end of string'")),
            }
        }
        Ok(Self { requirements })
    }

    /// Whether every requirement holds for `labels` (absent labels behave like an empty map).
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True for the selector that matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl Requirement {
    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels.and_then(|m| m.get(&self.key)).map(scalar_string);
        match (&self.op, value) {
            (LabelOp::Exists, v) => v.is_some(),
            (LabelOp::DoesNotExist, v) => v.is_none(),
            (LabelOp::Equals(want), Some(v)) => *want == v,
            (LabelOp::In(set), Some(v)) => set.contains(&v),
            // Like Go: a missing label satisfies `!=` and `notin`.
            (LabelOp::NotEquals(want), v) => v.is_none_or(|v| *want != v),
            (LabelOp::NotIn(set), v) => v.is_none_or(|v| !set.contains(&v)),
            (LabelOp::GreaterThan(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v > *n),
            (LabelOp::LessThan(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v < *n),
            (_, None) => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    Ident(&'a str),
    Not,
    NotEquals,
    Equals,
    DoubleEquals,
    In,
    NotIn,
    Open,
    Close,
    Comma,
    Greater,
    Less,
    End,
}

impl std::fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Tok::Ident(s) => s,
            Tok::Not => "!",
            Tok::NotEquals => "!=",
            Tok::Equals => "=",
            Tok::DoubleEquals => "==",
            Tok::In => "in",
            Tok::NotIn => "notin",
            Tok::Open => "(",
            Tok::Close => ")",
            Tok::Comma => ",",
            Tok::Greater => ">",
            Tok::Less => "<",
            Tok::End => "end of string",
        };
        f.write_str(s)
    }
}

fn unexpected(found: Tok<'_>, expected: &'static str) -> SelectorError {
    SelectorError::UnexpectedToken {
        found: found.to_string(),
        expected,
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '(' | ')' | ',' | '<' | '>')
}

/// Tokenizes like the Go lexer: identifiers run until whitespace or a special character.
fn lex(s: &str) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start();
        let Some(c) = rest.chars().next() else { break };
        let (tok, len) = match c {
            '!' if rest.starts_with("!=") => (Tok::NotEquals, 2),
            '!' => (Tok::Not, 1),
            '=' if rest.starts_with("==") => (Tok::DoubleEquals, 2),
            '=' => (Tok::Equals, 1),
            '(' => (Tok::Open, 1),
            ')' => (Tok::Close, 1),
            ',' => (Tok::Comma, 1),
            '>' => (Tok::Greater, 1),
            '<' => (Tok::Less, 1),
            _ => {
                let len = rest
                    .find(|c: char| c.is_whitespace() || is_special(c))
                    .unwrap_or(rest.len());
                let word = &rest[..len];
                let tok = match word {
                    "in" => Tok::In,
                    "notin" => Tok::NotIn,
                    _ => Tok::Ident(word),
                };
                (tok, len)
            }
        };
        out.push(tok);
        rest = &rest[len..];
    }
    out
}

struct LabelParser<'a> {
    tokens: Vec<Tok<'a>>,
    pos: usize,
}

impl<'a> LabelParser<'a> {
    fn peek(&self) -> Tok<'a> {
        self.tokens.get(self.pos).copied().unwrap_or(Tok::End)
    }

    fn next(&mut self) -> Tok<'a> {
        let tok = self.peek();
        self.pos += 1;
        tok
    }

    /// In value position the keywords are ordinary words (`k=in` is valid), as in Go.
    fn peek_value(&self) -> Tok<'a> {
        match self.peek() {
            Tok::In => Tok::Ident("in"),
            Tok::NotIn => Tok::Ident("notin"),
            other => other,
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let negated = self.peek() == Tok::Not;
        if negated {
            self.pos += 1;
        }
        let key = match self.next() {
            Tok::Ident(k) => k.to_string(),
            other => return Err(unexpected(other, "identifier")),
        };
        validate_key(&key)?;
        if negated {
            return Ok(Requirement {
                key,
                op: LabelOp::DoesNotExist,
            });
        }
        if matches!(self.peek(), Tok::End | Tok::Comma) {
            return Ok(Requirement {
                key,
                op: LabelOp::Exists,
            });
        }
        let op = match self.next() {
            Tok::Equals | Tok::DoubleEquals => LabelOp::Equals(self.exact_value(&key)?),
            Tok::NotEquals => LabelOp::NotEquals(self.exact_value(&key)?),
            Tok::In => LabelOp::In(self.value_set(&key)?),
            Tok::NotIn => LabelOp::NotIn(self.value_set(&key)?),
            Tok::Greater => LabelOp::GreaterThan(self.integer(&key)?),
            Tok::Less => LabelOp::LessThan(self.integer(&key)?),
            other => return Err(unexpected(other, "in, notin, =, ==, !=, gt, lt")),
        };
        Ok(Requirement { key, op })
    }

    /// The value after `=`, `==` or `!=`; nothing before `,`/end means the empty value.
    fn raw_value(&mut self) -> Result<&'a str, SelectorError> {
        match self.peek_value() {
            Tok::End | Tok::Comma => Ok(""),
            Tok::Ident(v) => {
                self.pos += 1;
                Ok(v)
            }
            other => Err(unexpected(other, "identifier")),
        }
    }

    fn exact_value(&mut self, key: &str) -> Result<String, SelectorError> {
        let value = self.raw_value()?;
        validate_value(key, value)?;
        Ok(value.to_string())
    }

    fn integer(&mut self, key: &str) -> Result<i64, SelectorError> {
        let value = self.raw_value()?;
        value.parse().map_err(|_| SelectorError::NotAnInteger {
            key: key.to_string(),
            value: value.to_string(),
        })
    }

    /// `( v1, v2, ... )`; empty slots between commas are the empty value, as in Go.
    fn value_set(&mut self, key: &str) -> Result<Vec<String>, SelectorError> {
        match self.next() {
            Tok::Open => {}
            other => return Err(unexpected(other, "'('")),
        }
        if self.peek() == Tok::Close {
            return Err(SelectorError::EmptyValues {
                key: key.to_string(),
            });
        }
        let mut values = Vec::new();
        loop {
            let value = match self.peek_value() {
                Tok::Ident(v) => {
                    self.pos += 1;
                    v
                }
                Tok::Comma | Tok::Close => "",
                other => return Err(unexpected(other, "',', ')' or identifier")),
            };
            validate_value(key, value)?;
            values.push(value.to_string());
            match self.next() {
                Tok::Comma => {}
                Tok::Close => return Ok(values),
                other => return Err(unexpected(other, "',' or ')'")),
            }
        }
    }
}

const NAME_MAX: usize = 63;
const PREFIX_MAX: usize = 253;

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, the shape shared by label names and values.
fn is_label_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// RFC 1123 subdomain: dot-separated lowercase labels, each alphanumeric at both ends.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= PREFIX_MAX
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            match (b.first(), b.last()) {
                (Some(first), Some(last)) => {
                    (first.is_ascii_lowercase() || first.is_ascii_digit())
                        && (last.is_ascii_lowercase() || last.is_ascii_digit())
                        && b.iter()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                }
                _ => false,
            }
        })
}

fn validate_key(key: &str) -> Result<(), SelectorError> {
    let invalid = |reason: &str| SelectorError::InvalidKey {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() {
                return Err(invalid("prefix part must be non-empty"));
            }
            if !is_dns_subdomain(prefix) {
                return Err(invalid(
                    "prefix part must be a lowercase RFC 1123 subdomain of at most 253 characters",
                ));
            }
            name
        }
        None => key,
    };
    if name.is_empty() {
        return Err(invalid("name part must be non-empty"));
    }
    if name.len() > NAME_MAX {
        return Err(invalid("name part must be no more than 63 characters"));
    }
    if !is_label_name(name) {
        return Err(invalid(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        ));
    }
    Ok(())
}

fn validate_value(key: &str, value: &str) -> Result<(), SelectorError> {
    let invalid = |reason: &str| SelectorError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > NAME_MAX {
        return Err(invalid("must be no more than 63 characters"));
    }
    if !is_label_name(value) {
        return Err(invalid(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        ));
    }
    Ok(())
}

/// Label and field values are strings; anything else is compared by its JSON text.
fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------

/// A parsed field selector: a conjunction of `field=value` / `field!=value` terms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

#[derive(Debug, Clone, PartialEq)]
struct FieldTerm {
    field: String,
    value: String,
    negated: bool,
}

/// Fields every resource supports.
const META_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

impl FieldSelector {
    /// `field=value`, `field==value`, `field!=value`, comma = AND; `\,`, `\=` and `\\` escape
    /// inside values as in Go. `allowed` lists the fields the kind supports besides
    /// `metadata.name` and `metadata.namespace`; any other field is
    /// [`SelectorError::UnsupportedField`]. Unlike Go, whitespace around field names and values
    /// is ignored (Go would reject `a = b` with "field label not supported: a ").
    pub fn parse(s: &str, allowed: &[&str]) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for raw in split_unescaped(s, ',') {
            if raw.trim().is_empty() {
                continue;
            }
            let Some((field, negated, value)) = split_term(raw) else {
                return Err(SelectorError::InvalidFieldTerm {
                    selector: s.to_string(),
                    term: raw.to_string(),
                });
            };
            let field = field.trim();
            if field.is_empty() {
                return Err(SelectorError::InvalidFieldTerm {
                    selector: s.to_string(),
                    term: raw.to_string(),
                });
            }
            if !META_FIELDS.contains(&field) && !allowed.contains(&field) {
                return Err(SelectorError::UnsupportedField(field.to_string()));
            }
            let value = unescape(value.trim())?;
            terms.push(FieldTerm {
                field: field.to_string(),
                value,
                negated,
            });
        }
        Ok(Self { terms })
    }

    /// Matches by reading each selector field as a dotted JSON path of `object`; a missing field
    /// compares as "". Use [`FieldSelector::matches_for`] when the resource is known.
    pub fn matches(&self, object: &Value) -> bool {
        self.matches_with(|field| lookup_path(object, field))
    }

    /// Matches with per-resource field resolution ([`field_value`]): event aliases, and Go's
    /// rendering of unset booleans/integers as `false`/`0`.
    pub fn matches_for(&self, group: &str, plural: &str, object: &Value) -> bool {
        self.matches_with(|field| field_value(group, plural, object, field))
    }

    /// Matches with values supplied by `resolve` (selector field name → value; `None` is "").
    pub fn matches_with(&self, resolve: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|t| {
            let actual = resolve(&t.field).unwrap_or_default();
            (actual == t.value) != t.negated
        })
    }

    /// True for the selector that matches everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

/// Splits on `sep` where it is not preceded by a backslash escape.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Finds the first unescaped operator (`!=`, `==`, `=`), returning (field, negated, raw value).
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        let rest = &term[i..];
        if c == '\\' {
            escaped = true;
        } else if rest.starts_with("!=") {
            return Some((&term[..i], true, &term[i + 2..]));
        } else if rest.starts_with("==") {
            return Some((&term[..i], false, &term[i + 2..]));
        } else if c == '=' {
            return Some((&term[..i], false, &term[i + 1..]));
        }
    }
    None
}

/// Go's `fields.UnescapeValue`: only `\\`, `\,` and `\=` are escapes; bare `,`/`=` are errors.
fn unescape(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => {
                    return Err(SelectorError::InvalidFieldValue(format!(
                        "invalid escape sequence: \\{e}"
                    )));
                }
                None => {
                    return Err(SelectorError::InvalidFieldValue(
                        "invalid escape sequence: \\".to_string(),
                    ));
                }
            },
            ',' | '=' => {
                return Err(SelectorError::InvalidFieldValue(format!(
                    "unescaped character '{c}' in value \"{s}\""
                )));
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Reads a dotted path (`status.phase`) from `object`; scalars become their string form,
/// null/missing/objects/arrays are `None`.
pub fn lookup_path(object: &Value, path: &str) -> Option<String> {
    let mut cur = object;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    match cur {
        Value::Null | Value::Object(_) | Value::Array(_) => None,
        other => Some(scalar_string(other)),
    }
}

const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// Field selectors the real API server supports per resource (plural, group), beyond
/// `metadata.name`/`metadata.namespace`. `events.k8s.io` events accept the core event names
/// (`involvedObject.*`, `source`, `reportingComponent`), since Go serves both from one storage;
/// [`field_value`] maps them onto the events.k8s.io/v1 fields.
pub fn supported_fields(group: &str, plural: &str) -> &'static [&'static str] {
    match (group, plural) {
        ("", "pods") => POD_FIELDS,
        ("", "events") | ("events.k8s.io", "events") => EVENT_FIELDS,
        ("", "secrets") => &["type"],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "namespaces") => &["status.phase"],
        ("", "services") => &["spec.clusterIP", "spec.type"],
        ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        _ => &[],
    }
}

/// The value of selectable `field` on `object` of resource (group, plural), as Go's
/// `ToSelectableFields` computes it:
/// - core events: `source` is `source.component`;
/// - events.k8s.io events: `involvedObject.X` is `regarding.X`, `reportingComponent` is
///   `reportingController`, `source` is `deprecatedSource.component`, falling back to
///   `reportingController` (the same value [`crate::events`] puts in the core `source.component`);
/// - jobs: `status.successful` is `status.succeeded`;
/// - unset booleans (`spec.hostNetwork`, `spec.unschedulable`) are `false`, unset counters
///   (`status.replicas`, `status.successful`) are `0`, as Go formats the Go zero values;
/// - everything else is the dotted path itself.
pub fn field_value(group: &str, plural: &str, object: &Value, field: &str) -> Option<String> {
    let found = match (group, plural, field) {
        ("", "events", "source") => lookup_path(object, "source.component"),
        ("events.k8s.io", "events", _) => match field {
            "source" => lookup_path(object, "deprecatedSource.component")
                .filter(|s| !s.is_empty())
                .or_else(|| lookup_path(object, "reportingController")),
            "reportingComponent" => lookup_path(object, "reportingController"),
            _ => match field.strip_prefix("involvedObject.") {
                Some(rest) => lookup_path(object, &format!("regarding.{rest}")),
                None => lookup_path(object, field),
            },
        },
        ("batch", "jobs", "status.successful") => lookup_path(object, "status.succeeded"),
        _ => lookup_path(object, field),
    };
    found.or_else(|| zero_value(group, plural, field).map(str::to_string))
}

/// Go's rendering of an unset non-string selectable field.
fn zero_value(group: &str, plural: &str, field: &str) -> Option<&'static str> {
    match (group, plural, field) {
        ("", "pods", "spec.hostNetwork") | ("", "nodes", "spec.unschedulable") => Some("false"),
        ("apps", "replicasets", "status.replicas") | ("batch", "jobs", "status.successful") => {
            Some("0")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("labels must be an object"),
        }
    }

    #[test]
    fn label_selector_matching_table() {
        let l = labels(
            json!({"app": "web", "tier": "front", "example.com/team": "a", "n": "5", "empty": ""}),
        );
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("   ", true),
            ("app=web", true),
            ("app==web", true),
            ("app = web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in ( db , api )", false),
            ("app notin (db)", true),
            ("app notin (web)", false),
            ("missing notin (x)", true),
            ("missing in (x)", false),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("! app", false),
            ("app=web,tier=front", true),
            ("app=web, tier=back", false),
            ("app=web,!missing,tier in (front)", true),
            ("example.com/team=a", true),
            ("empty=", true),
            ("empty in (,x)", true),
            ("app=", false),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("app>1", false),
            ("missing<100", false),
            ("app in (in,notin,web)", true),
        ];
        for (sel, want) in cases {
            let parsed = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel:?}: {e}"));
            assert_eq!(parsed.matches(Some(&l)), *want, "selector {sel:?}");
        }
    }

    #[test]
    fn label_selector_without_labels() {
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("a", false),
            ("!a", true),
            ("a!=b", true),
            ("a=b", false),
        ];
        for (sel, want) in cases {
            let parsed = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel:?}: {e}"));
            assert_eq!(parsed.matches(None), *want, "selector {sel:?}");
        }
    }

    #[test]
    fn label_selector_rejects_garbage() {
        let cases: &[(&str, &str)] = &[
            ("a in b", "found 'b', expected: '('"),
            ("=x", "found '=', expected: !, identifier"),
            ("a in (b", "found 'end of string', expected: ',' or ')'"),
            ("a in (b))", "found ')', expected: ',' or 'end of string'"),
            ("a in ()", "values set can't be empty"),
            ("a=b,", "expected: identifier after ','"),
            (",a=b", "found ','"),
            ("a b", "found 'b', expected: in, notin"),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            ("a=(b)", "found '(', expected: identifier"),
            ("a=b c", "found 'c'"),
            ("a>x", "must be an integer"),
            ("-a=b", "invalid label key \"-a\""),
            ("/a=b", "prefix part must be non-empty"),
            ("Example.com/a=b", "invalid label key"),
            ("a/b/c=d", "invalid label key"),
            ("a=-b", "invalid label value \"-b\""),
            ("a in (ok,b@d)", "invalid label value \"b@d\""),
            ("in=b", "found 'in'"),
        ];
        for (sel, needle) in cases {
            match LabelSelector::parse(sel) {
                Ok(s) => panic!("{sel:?} parsed as {s:?}"),
                Err(e) => assert!(
                    e.to_string().contains(needle),
                    "{sel:?}: {e} lacks {needle:?}"
                ),
            }
        }
        let long = format!("a={}", "x".repeat(64));
        assert!(LabelSelector::parse(&long).is_err());
    }

    #[test]
    fn label_selector_is_empty() {
        assert!(
            LabelSelector::parse("")
                .map(|s| s.is_empty())
                .unwrap_or(false)
        );
        assert!(
            !LabelSelector::parse("a")
                .map(|s| s.is_empty())
                .unwrap_or(true)
        );
    }

    #[test]
    fn field_selector_parse_and_match_table() {
        let pod = json!({
            "metadata": {"name": "p1", "namespace": "ns"},
            "spec": {"nodeName": "n1", "hostNetwork": true},
            "status": {"phase": "Running"}
        });
        let allowed = supported_fields("", "pods");
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("metadata.name=p1", true),
            ("metadata.name==p1", true),
            ("metadata.name!=p1", false),
            ("metadata.name=p2", false),
            ("metadata.namespace=ns,status.phase=Running", true),
            ("metadata.namespace=ns,status.phase!=Running", false),
            ("spec.nodeName=n1", true),
            ("spec.nodeName=", false),
            ("status.podIP=", true),
            ("status.podIP!=", false),
            ("spec.hostNetwork=true", true),
            ("spec.hostNetwork!=false", true),
            (" metadata.name = p1 ", true),
            ("metadata.name=p1,", true),
        ];
        for (sel, want) in cases {
            let parsed =
                FieldSelector::parse(sel, allowed).unwrap_or_else(|e| panic!("{sel:?}: {e}"));
            assert_eq!(parsed.matches(&pod), *want, "selector {sel:?}");
            assert_eq!(
                parsed.matches_for("", "pods", &pod),
                *want,
                "selector {sel:?} via matches_for"
            );
        }
    }

    #[test]
    fn field_selector_escapes() {
        let obj = json!({"metadata": {"name": "a,b=c\\d"}});
        let sel = FieldSelector::parse("metadata.name=a\\,b\\=c\\\\d", &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(sel.matches(&obj));
        let cases: &[(&str, &str)] = &[
            ("metadata.name=a\\x", "invalid escape sequence: \\x"),
            ("metadata.name=a\\", "invalid escape sequence"),
            ("metadata.name=a=b", "unescaped character '='"),
        ];
        for (sel, needle) in cases {
            match FieldSelector::parse(sel, &[]) {
                Ok(s) => panic!("{sel:?} parsed as {s:?}"),
                Err(e) => assert!(
                    e.to_string().contains(needle),
                    "{sel:?}: {e} lacks {needle:?}"
                ),
            }
        }
    }

    #[test]
    fn field_selector_rejects_unsupported_and_malformed() {
        let cases: &[(&str, &[&str], SelectorError)] = &[
            (
                "spec.foo=x",
                &[],
                SelectorError::UnsupportedField("spec.foo".into()),
            ),
            (
                "status.phase=Running",
                &[],
                SelectorError::UnsupportedField("status.phase".into()),
            ),
            (
                "metadata.name",
                &[],
                SelectorError::InvalidFieldTerm {
                    selector: "metadata.name".into(),
                    term: "metadata.name".into(),
                },
            ),
            (
                "=x",
                &[],
                SelectorError::InvalidFieldTerm {
                    selector: "=x".into(),
                    term: "=x".into(),
                },
            ),
        ];
        for (sel, allowed, want) in cases {
            assert_eq!(
                FieldSelector::parse(sel, allowed).as_ref(),
                Err(want),
                "selector {sel:?}"
            );
        }
        assert_eq!(
            SelectorError::UnsupportedField("spec.foo".into()).to_string(),
            "field label not supported: spec.foo"
        );
    }

    #[test]
    fn field_selector_zero_values_and_aliases() {
        let node = json!({"metadata": {"name": "n"}, "spec": {}});
        let job = json!({"metadata": {"name": "j"}, "status": {"succeeded": 2}});
        let rs = json!({"metadata": {"name": "r"}, "status": {}});
        let pod = json!({"metadata": {"name": "p"}, "spec": {}});
        let core_event = json!({
            "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "source": {"component": "kubelet"},
            "reportingComponent": "kubelet-rc",
            "type": "Warning"
        });
        let v1_event = json!({
            "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"},
            "reportingController": "ctrl",
            "type": "Normal"
        });
        let cases: &[(&str, &str, &Value, &str, bool)] = &[
            ("", "nodes", &node, "spec.unschedulable=false", true),
            ("", "nodes", &node, "spec.unschedulable=true", false),
            ("", "pods", &pod, "spec.hostNetwork=false", true),
            ("batch", "jobs", &job, "status.successful=2", true),
            ("apps", "replicasets", &rs, "status.replicas=0", true),
            ("", "events", &core_event, "source=kubelet", true),
            (
                "",
                "events",
                &core_event,
                "reportingComponent=kubelet-rc",
                true,
            ),
            (
                "",
                "events",
                &core_event,
                "involvedObject.kind=Pod,type=Warning",
                true,
            ),
            (
                "events.k8s.io",
                "events",
                &v1_event,
                "involvedObject.kind=Pod",
                true,
            ),
            (
                "events.k8s.io",
                "events",
                &v1_event,
                "involvedObject.name=q",
                false,
            ),
            (
                "events.k8s.io",
                "events",
                &v1_event,
                "reportingComponent=ctrl",
                true,
            ),
            ("events.k8s.io", "events", &v1_event, "source=ctrl", true),
            (
                "events.k8s.io",
                "events",
                &v1_event,
                "involvedObject.uid=",
                true,
            ),
            (
                "events.k8s.io",
                "events",
                &v1_event,
                "type=Normal,reason=",
                true,
            ),
        ];
        for (group, plural, obj, sel, want) in cases {
            let parsed = FieldSelector::parse(sel, supported_fields(group, plural))
                .unwrap_or_else(|e| panic!("{group}/{plural} {sel:?}: {e}"));
            assert_eq!(
                parsed.matches_for(group, plural, obj),
                *want,
                "{group}/{plural} {sel:?}"
            );
        }
    }

    #[test]
    fn field_selector_matches_with_resolver() {
        let sel = FieldSelector::parse("a=1,b!=2", &["a", "b"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(sel.matches_with(|f| (f == "a").then(|| "1".to_string())));
        assert!(!sel.matches_with(|f| Some(if f == "a" { "1" } else { "2" }.to_string())));
    }

    #[test]
    fn supported_fields_table() {
        let cases: &[(&str, &str, Option<&str>, usize)] = &[
            ("", "pods", Some("status.podIP"), 8),
            ("", "events", Some("involvedObject.uid"), 11),
            ("events.k8s.io", "events", Some("source"), 11),
            ("", "secrets", Some("type"), 1),
            ("", "nodes", Some("spec.unschedulable"), 1),
            ("", "namespaces", Some("status.phase"), 1),
            ("apps", "replicasets", Some("status.replicas"), 1),
            ("batch", "jobs", Some("status.successful"), 1),
            ("", "services", Some("spec.type"), 2),
            ("", "persistentvolumeclaims", None, 0),
            ("", "persistentvolumes", None, 0),
            ("apps", "deployments", None, 0),
            ("", "replicasets", None, 0),
        ];
        for (group, plural, contains, len) in cases {
            let fields = supported_fields(group, plural);
            assert_eq!(fields.len(), *len, "{group}/{plural}");
            if let Some(f) = contains {
                assert!(fields.contains(f), "{group}/{plural} lacks {f}");
            }
        }
    }
}
