//! The whole pruned object of a [`super::MirrorObject`]: a JSON tree, or the JSON text the
//! pipeline produced without building one. Stores keep text, so on the mirror's write path the
//! tree is never built (decoding it, with serde_json's order-preserving maps, and serialising it
//! again was most of a sync's work). The tree is parsed on first access; changing it drops the text.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::mirror::path::{FieldPath, Segment};

/// Objects nested deeper than this are kept as trees: serde_json reads JSON back only up to its
/// recursion limit of 128 levels, and reading text beside the tree must never fail.
pub const MAX_TEXT_DEPTH: usize = 100;

#[derive(Clone, Default)]
pub struct ObjectJson {
    /// Valid JSON nested at most [`MAX_TEXT_DEPTH`] levels, equal to the tree when both are set.
    text: Option<Box<str>>,
    tree: OnceLock<Value>,
    /// Members of the text already parsed by whoever built it (only with `text`).
    partial: Option<Box<Partial>>,
}

/// Some members of an object, parsed.
#[derive(Clone)]
struct Partial {
    /// An object holding each of `roots` that the object has, as it has it.
    tree: Value,
    roots: Vec<String>,
}

impl ObjectJson {
    /// The object as JSON text; `None` (the text is kept as a tree) when it is nested too deeply.
    pub fn from_text(text: Box<RawValue>) -> Option<Self> {
        Self::from_valid_json(text.into())
    }

    /// As [`Self::from_text`], for text the caller built from valid JSON pieces.
    pub(crate) fn from_valid_json(text: Box<str>) -> Option<Self> {
        (depth(&text) <= MAX_TEXT_DEPTH).then(|| Self {
            text: Some(text),
            tree: OnceLock::new(),
            partial: None,
        })
    }

    /// Keeps `tree`, the object restricted to the members named `roots` (those it has), so
    /// [`Self::sparse`] answers paths into them without parsing the text again.
    pub(crate) fn with_partial(mut self, tree: Value, roots: Vec<String>) -> Self {
        if self.text.is_some() && tree.is_object() {
            self.partial = Some(Box::new(Partial { tree, roots }));
        }
        self
    }

    /// The JSON text, when the object has not been changed since it was given as text.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The tree, parsed now when it was not yet.
    pub fn tree(&self) -> &Value {
        self.tree.get_or_init(|| match &self.text {
            // Valid JSON within serde_json's recursion limit, checked when it was given.
            Some(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            None => Value::Null,
        })
    }

    pub fn into_tree(mut self) -> Value {
        self.tree();
        self.tree.take().unwrap_or(Value::Null)
    }

    /// A tree in which every one of `paths` finds what it finds in the whole object, built from
    /// the text by parsing only the members on those paths; the tree itself when it is parsed.
    pub fn sparse<'a>(&self, paths: impl IntoIterator<Item = &'a FieldPath>) -> Cow<'_, Value> {
        if let Some(tree) = self.tree.get() {
            return Cow::Borrowed(tree);
        }
        let Some(text) = self.text.as_deref() else {
            return Cow::Borrowed(self.tree());
        };
        let paths: Vec<&[Segment]> = paths.into_iter().map(FieldPath::segments).collect();
        if let Some(partial) = &self.partial {
            let covered = |path: &&[Segment]| match path.first() {
                Some(Segment::Key(root)) => partial.roots.iter().any(|r| r == root),
                _ => true, // an index into an object finds nothing either way
            };
            if paths.iter().all(covered) {
                return Cow::Borrowed(&partial.tree);
            }
        }
        Cow::Owned(sparse(text, &paths))
    }
}

impl From<Value> for ObjectJson {
    fn from(tree: Value) -> Self {
        Self {
            text: None,
            tree: OnceLock::from(tree),
            partial: None,
        }
    }
}

impl Deref for ObjectJson {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.tree()
    }
}

impl DerefMut for ObjectJson {
    fn deref_mut(&mut self) -> &mut Value {
        self.tree();
        self.text = None;
        self.partial = None;
        self.tree.get_mut().expect("parsed above")
    }
}

impl PartialEq for ObjectJson {
    fn eq(&self, other: &Self) -> bool {
        match (self.text(), other.text()) {
            (Some(a), Some(b)) if a == b => true,
            _ => self.tree() == other.tree(),
        }
    }
}

impl PartialEq<Value> for ObjectJson {
    fn eq(&self, other: &Value) -> bool {
        self.tree() == other
    }
}

impl PartialEq<ObjectJson> for Value {
    fn eq(&self, other: &ObjectJson) -> bool {
        self == other.tree()
    }
}

impl fmt::Debug for ObjectJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.tree.get(), &self.text) {
            (Some(tree), _) => fmt::Debug::fmt(tree, f),
            (None, Some(text)) => f.write_str(text),
            (None, None) => f.write_str("Null"),
        }
    }
}

impl Serialize for ObjectJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.text.as_deref().map(serde_json::from_str::<&RawValue>) {
            Some(Ok(text)) => text.serialize(serializer),
            _ => self.tree().serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ObjectJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Self::from)
    }
}

/// The members of a JSON object in their order, values unparsed.
pub struct Fields<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Fields<'a> {
    /// `None` when `text` is not a JSON object.
    pub fn parse(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// The value of `key` (the last one, as serde_json's maps keep the last duplicate).
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Whether a key appears twice (serde_json's maps would keep only the last).
    pub fn has_duplicates(&self) -> bool {
        self.0
            .iter()
            .enumerate()
            .any(|(i, (k, _))| self.0[..i].iter().any(|(seen, _)| seen == k))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((key, value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    fields.push((key.0, value));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// A key, borrowed from the text unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The tree of `text` restricted to what `paths` reach (see [`ObjectJson::sparse`]).
fn sparse(text: &str, paths: &[&[Segment]]) -> Value {
    let Some(fields) = Fields::parse(text) else {
        return serde_json::from_str(text).unwrap_or(Value::Null);
    };
    let mut map = Map::new();
    for (key, value) in fields.0.iter().rev() {
        if map.contains_key(key.as_ref()) {
            continue; // an earlier duplicate: the last one counts
        }
        let tails: Vec<&[Segment]> = paths
            .iter()
            .filter_map(|path| match path.split_first() {
                Some((Segment::Key(first), tail)) if first == key => Some(tail),
                _ => None,
            })
            .collect();
        if tails.is_empty() {
            continue;
        }
        let whole = tails
            .iter()
            .any(|tail| !matches!(tail.first(), Some(Segment::Key(_))));
        let member = if whole {
            serde_json::from_str(value.get()).unwrap_or(Value::Null)
        } else {
            sparse(value.get(), &tails)
        };
        map.insert(key.clone().into_owned(), member);
    }
    Value::Object(map)
}

/// How deeply arrays and objects nest in valid JSON `text`, or an upper bound of it that is at
/// most [`MAX_TEXT_DEPTH`] when the exact depth is.
pub fn depth(text: &str) -> usize {
    // Objects with few brackets are the common case: counting them is one SIMD pass.
    let brackets = memchr::memchr2_iter(b'{', b'[', text.as_bytes()).count();
    if brackets <= MAX_TEXT_DEPTH {
        return brackets;
    }
    exact_depth(text)
}

fn exact_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in text.as_bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mirror::path;

    fn text(value: &Value) -> ObjectJson {
        let raw = RawValue::from_string(value.to_string()).expect("raw");
        ObjectJson::from_text(raw).expect("shallow")
    }

    fn sample() -> Value {
        json!({
            "metadata": {"name": "a", "annotations": {"x.io/y": "1", "k\"q": "2"}},
            "spec": {"ports": [{"port": 80}, {"port": 443}], "type": "LB"},
            "status": "plain",
            "data": {"a": "b"}
        })
    }

    #[test]
    fn text_and_tree_agree() {
        let object = text(&sample());
        assert!(object.text().is_some());
        assert_eq!(object, sample());
        assert_eq!(object, ObjectJson::from(sample()));
        assert_eq!(serde_json::to_value(&object).expect("serialise"), sample());
        assert_eq!(object["spec"]["type"], json!("LB"), "read through Deref");
    }

    #[test]
    fn changing_the_tree_drops_the_text() {
        let mut object = text(&sample());
        object["spec"]["type"] = json!("NodePort");
        assert_eq!(object.text(), None);
        let written = serde_json::to_value(&object).expect("serialise");
        assert_eq!(written["spec"]["type"], json!("NodePort"));
    }

    #[test]
    fn sparse_trees_answer_their_paths_like_the_whole_object() {
        let whole = sample();
        let object = text(&whole);
        let paths: Vec<FieldPath> = [
            ".spec.ports[1].port",
            ".spec.type",
            ".metadata.annotations['x.io/y']",
            ".metadata.annotations",
            ".status.phase",
            ".data",
            ".missing.key",
            "[0]",
        ]
        .iter()
        .map(|p| path::parse(p).expect("path"))
        .collect();
        let sparse = object.sparse(&paths);
        for path in &paths {
            assert_eq!(path.get(&sparse), path.get(&whole), "{path}");
        }
        assert!(sparse.get("metadata").and_then(|m| m.get("name")).is_none());
        assert!(object.text().is_some(), "the text is kept");
    }

    #[test]
    fn a_kept_partial_answers_the_paths_it_covers() {
        let whole = sample();
        let partial = json!({"data": {"a": "b"}});
        let object = text(&whole).with_partial(partial, vec!["data".into(), "status".into()]);
        let data = path::parse(".data.a").expect("path");
        let phase = path::parse(".status.phase").expect("path");
        let kind = path::parse(".spec.type").expect("path");
        assert!(matches!(object.sparse([&data, &phase]), Cow::Borrowed(_)));
        assert_eq!(data.get(&object.sparse([&data])), Some(&json!("b")));
        // A root the partial does not cover is parsed from the text.
        let sparse = object.sparse([&data, &kind]);
        assert_eq!(kind.get(&sparse), Some(&json!("LB")));
        let mut changed = object.clone();
        changed["data"]["a"] = json!("c");
        assert_eq!(
            data.get(&changed.sparse([&data])),
            Some(&json!("c")),
            "dropped on change"
        );
    }

    #[test]
    fn the_last_duplicate_key_counts_as_in_a_tree() {
        let raw = RawValue::from_string(r#"{"a": {"b": 1}, "a": {"b": 2}}"#.into()).expect("raw");
        let object = ObjectJson::from_text(raw).expect("shallow");
        let path = path::parse(".a.b").expect("path");
        assert_eq!(path.get(&object.sparse([&path])), Some(&json!(2)));
        assert_eq!(object["a"]["b"], json!(2));
    }

    #[test]
    fn deep_text_is_refused_and_depth_ignores_strings() {
        let deep = "[".repeat(MAX_TEXT_DEPTH + 1) + &"]".repeat(MAX_TEXT_DEPTH + 1);
        let raw = RawValue::from_string(deep).expect("raw");
        assert!(ObjectJson::from_text(raw).is_none());
        let text = r#"{"a": "[[[{{\"", "b": [1, {"c": []}]}"#;
        assert_eq!(exact_depth(text), 4);
        assert_eq!(depth(text), 9, "a bound: brackets inside strings count");
        let many = format!("[{}]", vec!["{\"a\": [1]}"; 80].join(","));
        assert_eq!(depth(&many), 3, "exact when the count is above the limit");
    }

    #[test]
    fn fields_keep_order_and_unescape_keys() {
        let raw = RawValue::from_string(r#"{"b": 1, "a\u0041": [2], "b": 3}"#.into()).expect("raw");
        let fields = Fields::parse(raw.get()).expect("object");
        let keys: Vec<&str> = fields.0.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["b", "aA", "b"]);
        assert!(fields.has_duplicates());
        assert_eq!(fields.get("b").map(RawValue::get), Some("3"));
        let not_object = RawValue::from_string("[1]".into()).expect("raw");
        assert!(Fields::parse(not_object.get()).is_none());
    }
}
