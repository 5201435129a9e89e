//! The label selector lexer and parser, token for token like Go's `k8s.io/apimachinery/pkg/labels`.

use super::SelectorError;
use super::label::{LabelOp, Requirement};
use super::validation::{validate_key, validate_value};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Tok<'a> {
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

pub(super) fn unexpected(found: Tok<'_>, expected: &'static str) -> SelectorError {
    SelectorError::UnexpectedToken {
        found: found.to_string(),
        expected,
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '(' | ')' | ',' | '<' | '>')
}

/// Tokenizes like the Go lexer: identifiers run until whitespace or a special character.
pub(super) fn lex(s: &str) -> Vec<Tok<'_>> {
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

pub(super) struct LabelParser<'a> {
    pub(super) tokens: Vec<Tok<'a>>,
    pub(super) pos: usize,
}

impl<'a> LabelParser<'a> {
    pub(super) fn peek(&self) -> Tok<'a> {
        self.tokens.get(self.pos).copied().unwrap_or(Tok::End)
    }

    pub(super) fn next(&mut self) -> Tok<'a> {
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

    pub(super) fn requirement(&mut self) -> Result<Requirement, SelectorError> {
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
