//! Label selectors: the parsed requirements and how they match an object's labels.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::label_parser::{LabelParser, Tok, lex, unexpected};
use super::{SelectorError, scalar_string};

/// A parsed label selector: a conjunction of requirements. Empty matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// One requirement of a selector: a label key and what its value must be.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    pub key: String,
    pub op: LabelOp,
}

/// What a [`Requirement`] asks of its label (the backing stores translate these into queries).
#[derive(Debug, Clone, PartialEq)]
pub enum LabelOp {
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
        self.requirements.iter().all(|r| {
            let value = labels.and_then(|m| m.get(&r.key)).map(|v| match v {
                Value::String(s) => Cow::Borrowed(s.as_str()),
                other => Cow::Owned(scalar_string(other)),
            });
            r.holds_for(value.as_deref())
        })
    }

    /// The same test on labels held as strings (`label` looks one up), without copying them.
    pub fn matches_strings<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| r.holds_for(label(&r.key)))
    }

    /// The requirements, all of which must hold (stores push them into their own queries).
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True for the selector that matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl Requirement {
    /// Whether the requirement holds for its label's value (`None`: no such label).
    fn holds_for(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (LabelOp::Exists, v) => v.is_some(),
            (LabelOp::DoesNotExist, v) => v.is_none(),
            (LabelOp::Equals(want), Some(v)) => want == v,
            (LabelOp::In(set), Some(v)) => set.iter().any(|s| s == v),
            // Like Go: a missing label satisfies `!=` and `notin`.
            (LabelOp::NotEquals(want), v) => v.is_none_or(|v| want != v),
            (LabelOp::NotIn(set), v) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
            (LabelOp::GreaterThan(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v > *n),
            (LabelOp::LessThan(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v < *n),
            (_, None) => false,
        }
    }
}
