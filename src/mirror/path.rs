//! Field paths into JSON objects, as kind specs write them: `.status.phase`, `status.images`,
//! `.spec.containers[0].image`, `.metadata.annotations['example.com/owner']`.

use std::fmt;

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    segments: Vec<Segment>,
}

/// Why a path does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path {path:?} {reason}")]
pub struct PathError {
    pub path: String,
    pub reason: &'static str,
}

/// Parses a dotted path; the leading `.` is optional. Keys containing dots are written in
/// brackets and quotes (`['a.b/c']` or `["a.b/c"]`), array indexes as `[N]`.
pub fn parse(path: &str) -> Result<FieldPath, PathError> {
    let error = |reason| PathError {
        path: path.to_owned(),
        reason,
    };
    let trimmed = path.trim();
    if trimmed.is_empty() || trimmed == "." {
        return Err(error("is empty"));
    }
    let mut rest = trimmed.strip_prefix('.').unwrap_or(trimmed);
    let mut segments = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let (segment, tail) =
                bracket(after).ok_or_else(|| error("has an unclosed or empty [...]"))?;
            segments.push(segment);
            rest = tail;
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            if end == 0 {
                return Err(error("has an empty segment"));
            }
            segments.push(Segment::Key(rest[..end].to_owned()));
            rest = &rest[end..];
        }
        // After a segment: end, `.next`, or `[...]`.
        if let Some(after) = rest.strip_prefix('.') {
            if after.is_empty() || after.starts_with(['.', '[']) {
                return Err(error("has an empty segment"));
            }
            rest = after;
        }
    }
    Ok(FieldPath { segments })
}

/// `[N]`, `['key']` or `["key"]` after the opening bracket; returns the segment and the rest.
fn bracket(after: &str) -> Option<(Segment, &str)> {
    let close_quoted = |quote: char| -> Option<(Segment, &str)> {
        let inner = after.strip_prefix(quote)?;
        let end = inner.find(quote)?;
        let tail = inner[end + 1..].strip_prefix(']')?;
        let key = &inner[..end];
        (!key.is_empty()).then(|| (Segment::Key(key.to_owned()), tail))
    };
    if after.starts_with('\'') {
        return close_quoted('\'');
    }
    if after.starts_with('"') {
        return close_quoted('"');
    }
    let end = after.find(']')?;
    let index = after[..end].trim().parse().ok()?;
    Some((Segment::Index(index), &after[end + 1..]))
}

impl FieldPath {
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The value at this path, if every step exists.
    pub fn get<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.segments
            .iter()
            .try_fold(value, |current, segment| match segment {
                Segment::Key(key) => current.as_object()?.get(key),
                Segment::Index(index) => current.as_array()?.get(*index),
            })
    }

    /// Removes the value at this path; returns it when it was there.
    pub fn remove(&self, value: &mut Value) -> Option<Value> {
        let (last, parents) = self.segments.split_last()?;
        let parent = parents
            .iter()
            .try_fold(value, |current, segment| match segment {
                Segment::Key(key) => current.as_object_mut()?.get_mut(key),
                Segment::Index(index) => current.as_array_mut()?.get_mut(*index),
            })?;
        match last {
            Segment::Key(key) => parent.as_object_mut()?.shift_remove(key),
            Segment::Index(index) => {
                let array = parent.as_array_mut()?;
                (*index < array.len()).then(|| array.remove(*index))
            }
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in &self.segments {
            match segment {
                Segment::Key(key) if key.contains(['.', '[', ']']) => write!(f, "['{key}']")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(k: &str) -> Segment {
        Segment::Key(k.into())
    }

    #[test]
    fn parses_the_forms_kind_specs_use() {
        let cases: &[(&str, Vec<Segment>)] = &[
            (".status.phase", vec![key("status"), key("phase")]),
            ("status.images", vec![key("status"), key("images")]),
            (
                ".spec.containers[0].image",
                vec![
                    key("spec"),
                    key("containers"),
                    Segment::Index(0),
                    key("image"),
                ],
            ),
            (
                ".metadata.annotations['example.com/owner']",
                vec![
                    key("metadata"),
                    key("annotations"),
                    key("example.com/owner"),
                ],
            ),
            (
                "metadata.labels[\"app.kubernetes.io/name\"]",
                vec![
                    key("metadata"),
                    key("labels"),
                    key("app.kubernetes.io/name"),
                ],
            ),
            ("type", vec![key("type")]),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse(text).map(|p| p.segments().to_vec()).as_ref(),
                Ok(want),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_malformed_paths() {
        let cases = [
            ("", "is empty"),
            (".", "is empty"),
            (".status..phase", "has an empty segment"),
            (".status.", "has an empty segment"),
            (".spec[", "has an unclosed or empty [...]"),
            (".spec['']", "has an unclosed or empty [...]"),
            (".spec[x]", "has an unclosed or empty [...]"),
        ];
        for (text, reason) in cases {
            assert_eq!(parse(text).map_err(|e| e.reason), Err(reason), "{text}");
        }
    }

    #[test]
    fn gets_and_removes_values() -> Result<(), PathError> {
        let mut object =
            json!({"status": {"phase": "Running", "images": [1, 2]}, "spec": {"c": [{"i": "x"}]}});
        assert_eq!(
            parse(".status.phase")?.get(&object),
            Some(&json!("Running"))
        );
        assert_eq!(parse(".spec.c[0].i")?.get(&object), Some(&json!("x")));
        assert_eq!(parse(".spec.c[3].i")?.get(&object), None);
        assert_eq!(parse(".status.phase.deeper")?.get(&object), None);
        assert_eq!(
            parse("status.images")?.remove(&mut object),
            Some(json!([1, 2]))
        );
        assert_eq!(parse("status.images")?.remove(&mut object), None);
        assert_eq!(
            object,
            json!({"status": {"phase": "Running"}, "spec": {"c": [{"i": "x"}]}})
        );
        Ok(())
    }

    #[test]
    fn displays_in_canonical_form() -> Result<(), PathError> {
        assert_eq!(
            parse("metadata.annotations[\"a.b/c\"]")?.to_string(),
            ".metadata.annotations['a.b/c']"
        );
        assert_eq!(parse("spec.c[2]")?.to_string(), ".spec.c[2]");
        Ok(())
    }
}
