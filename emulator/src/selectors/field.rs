//! Field selectors: parsing with Go's escaping rules, and matching through a field resolver.

use serde_json::Value;

use super::SelectorError;
use super::selectable::{field_value, lookup_path};

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
            let invalid_term = || SelectorError::InvalidFieldTerm {
                selector: s.to_string(),
                term: raw.to_string(),
            };
            let Some((field, negated, value)) = split_term(raw) else {
                return Err(invalid_term());
            };
            let field = field.trim();
            if field.is_empty() {
                return Err(invalid_term());
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
