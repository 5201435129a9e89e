//! Turns a Kubernetes object into what the store keeps: pruned, redacted, with typed columns.
//! Pure: no I/O, so every rule is unit-tested here.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::mirror::kind::{ColumnType, KindSpec};
use crate::mirror::path::{self, FieldPath, PathError};
use crate::store::MirrorObject;

mod parts;
mod text;

pub use parts::{Member, Members, Parts};

/// The annotation `kubectl apply` writes; dropped before storing.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What replaces each value of a redacted Secret.
pub const REDACTED: &str = "<redacted>";

/// Why an object (or a kind spec) cannot be processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// The object is not a JSON object, or a metadata field has the wrong shape.
    #[error("malformed object {name}: {reason}")]
    Malformed {
        /// `namespace/name` when known, otherwise `<unnamed>`.
        name: String,
        reason: String,
    },
    /// A prune or column path of the kind spec does not parse.
    #[error("kind {kind} has an invalid path")]
    InvalidSpec {
        kind: String,
        #[source]
        source: PathError,
    },
}

impl ObjectError {
    /// Metrics label.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed",
            Self::InvalidSpec { .. } => "invalid_spec",
        }
    }
}

/// A kind spec with its paths parsed once, for processing many objects.
#[derive(Debug, Clone)]
pub struct Processor {
    prune: Vec<FieldPath>,
    columns: Vec<(String, ColumnType, FieldPath)>,
    redact: bool,
    /// Everything [`Self::yields`] reads of an object.
    read_paths: Vec<FieldPath>,
    /// Top-level members the rules change (metadata, prune and redaction roots) and those the
    /// columns only read: what [`Self::process_parts`] parses.
    rewritten_roots: Vec<String>,
    read_roots: Vec<String>,
}

impl Processor {
    pub fn new(kind: &KindSpec) -> Result<Self, ObjectError> {
        let parse = |text: &str| {
            path::parse(text).map_err(|source| ObjectError::InvalidSpec {
                kind: kind.id(),
                source,
            })
        };
        let prune: Vec<FieldPath> = kind
            .prune
            .iter()
            .map(|p| parse(p))
            .collect::<Result<_, _>>()?;
        let columns: Vec<(String, ColumnType, FieldPath)> = kind
            .columns
            .iter()
            .map(|c| Ok((c.name.clone(), c.column_type, parse(&c.path)?)))
            .collect::<Result<_, ObjectError>>()?;
        let redact = kind.is_secret() && !kind.keep_secret_data;
        let mut read_paths = vec![parse("metadata")?];
        read_paths.extend(prune.iter().cloned());
        read_paths.extend(columns.iter().map(|(_, _, path)| path.clone()));
        if redact {
            read_paths.extend([parse("data")?, parse("stringData")?]);
        }
        let root = |path: &FieldPath| match path.segments().first() {
            Some(path::Segment::Key(key)) => Some(key.clone()),
            _ => None,
        };
        let mut rewritten_roots = vec!["metadata".to_owned()];
        if redact {
            rewritten_roots.extend(["data".to_owned(), "stringData".to_owned()]);
        }
        rewritten_roots.extend(prune.iter().filter_map(root));
        rewritten_roots.sort();
        rewritten_roots.dedup();
        let mut read_roots: Vec<String> = columns.iter().filter_map(|(_, _, p)| root(p)).collect();
        read_roots.retain(|r| !rewritten_roots.contains(r));
        read_roots.sort();
        read_roots.dedup();
        Ok(Self {
            prune,
            columns,
            redact,
            read_paths,
            rewritten_roots,
            read_roots,
        })
    }

    /// Processes one object; see [`to_mirror_object`].
    pub fn process(&self, mut obj: Value) -> Result<MirrorObject, ObjectError> {
        let meta = Meta::read(&obj)?;
        strip_always(&mut obj);
        for path in &self.prune {
            path.remove(&mut obj);
        }
        if self.redact {
            redact_secret(&mut obj);
        }
        let columns = self
            .columns
            .iter()
            .map(|(name, column_type, path)| {
                (name.clone(), column_value(*column_type, path.get(&obj)))
            })
            .collect();
        let mut annotations = meta.annotations;
        annotations.remove(LAST_APPLIED);
        Ok(MirrorObject {
            namespace: meta.namespace,
            name: meta.name,
            uid: meta.uid,
            resource_version: meta.resource_version,
            labels: meta.labels,
            annotations,
            created_at: meta.created_at,
            columns,
            object: obj.into(),
        })
    }
}

impl Processor {
    /// Whether `object` is exactly what [`Self::process`] yields from its own `object` JSON
    /// (nothing left to strip, prune or redact; metadata fields and columns as extracted), checked
    /// without copying it. Stores that keep only the JSON use it to know nothing else is needed.
    pub fn yields(&self, object: &MirrorObject) -> bool {
        let sparse = object.object.sparse(&self.read_paths);
        let obj: &Value = &sparse;
        let Ok(meta) = MetaRef::read(obj) else {
            return false;
        };
        let raw_meta = obj.get("metadata");
        let strippable = raw_meta.is_some_and(|m| m.get("managedFields").is_some())
            || raw_meta
                .and_then(|m| m.get("annotations"))
                .and_then(Value::as_object)
                .is_some_and(|a| a.is_empty() || a.contains_key(LAST_APPLIED));
        let prunable = self.prune.iter().any(|path| path.get(obj).is_some());
        let unredacted = self.redact
            && ["data", "stringData"].iter().any(|field| {
                obj.get(field)
                    .and_then(Value::as_object)
                    .is_some_and(|map| map.values().any(|v| v.as_str() != Some(REDACTED)))
            });
        if strippable || prunable || unredacted {
            return false;
        }
        // Compared in place: this runs for every object a store writes.
        let columns_match = object.columns.len() == self.columns.len()
            && self.columns.iter().all(|(name, column_type, path)| {
                object
                    .columns
                    .get(name)
                    .is_some_and(|given| column_value_is(*column_type, path.get(obj), given))
            });
        columns_match
            && meta.namespace == object.namespace
            && meta.name == object.name
            && meta.uid == object.uid
            && meta.resource_version == object.resource_version
            && same_strings(meta.labels, &object.labels)
            && same_strings(meta.annotations, &object.annotations)
            && meta.created_at == object.created_at.as_deref()
    }
}

/// Converts one object of `kind` for the store: drops `metadata.managedFields`, the last-applied
/// annotation and the kind's `prune` paths, redacts Secret `data`/`stringData` unless
/// `keep_secret_data`, extracts the typed columns and fills the metadata fields.
pub fn to_mirror_object(kind: &KindSpec, obj: Value) -> Result<MirrorObject, ObjectError> {
    Processor::new(kind)?.process(obj)
}

/// The metadata fields the store keeps, validated.
struct Meta {
    namespace: String,
    name: String,
    uid: String,
    resource_version: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    created_at: Option<String>,
}

impl Meta {
    fn read(obj: &Value) -> Result<Self, ObjectError> {
        let meta = MetaRef::read(obj)?;
        let owned = |map: Option<&Map<String, Value>>| -> BTreeMap<String, String> {
            map.into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        };
        Ok(Self {
            namespace: meta.namespace.to_owned(),
            name: meta.name.to_owned(),
            uid: meta.uid.to_owned(),
            resource_version: meta.resource_version.to_owned(),
            labels: owned(meta.labels),
            annotations: owned(meta.annotations),
            created_at: meta.created_at.map(str::to_owned),
        })
    }
}

/// [`Meta`] borrowed from the object: validated the same way, nothing copied.
struct MetaRef<'a> {
    namespace: &'a str,
    name: &'a str,
    uid: &'a str,
    resource_version: &'a str,
    /// A map whose values are all strings; `None` when absent or `null`.
    labels: Option<&'a Map<String, Value>>,
    annotations: Option<&'a Map<String, Value>>,
    created_at: Option<&'a str>,
}

impl<'a> MetaRef<'a> {
    fn read(obj: &'a Value) -> Result<Self, ObjectError> {
        let Some(root) = obj.as_object() else {
            return Err(malformed("<unnamed>".into(), "not a JSON object"));
        };
        let meta = match root.get("metadata") {
            Some(Value::Object(meta)) => meta,
            _ => return Err(malformed("<unnamed>".into(), "metadata is not an object")),
        };
        let text = |field: &str| meta.get(field).and_then(Value::as_str).unwrap_or_default();
        let namespace = text("namespace");
        let name = text("name");
        if name.is_empty() {
            return Err(malformed(
                display_name(namespace, "<unnamed>"),
                "metadata.name is missing",
            ));
        }
        let who = || display_name(namespace, name);
        let labels = string_map(meta, "labels").map_err(|reason| malformed(who(), reason))?;
        let annotations =
            string_map(meta, "annotations").map_err(|reason| malformed(who(), reason))?;
        Ok(Self {
            namespace,
            name,
            uid: text("uid"),
            resource_version: text("resourceVersion"),
            labels,
            annotations,
            created_at: meta.get("creationTimestamp").and_then(Value::as_str),
        })
    }
}

/// Whether a string map read by [`string_map`] holds exactly `expected`.
fn same_strings(map: Option<&Map<String, Value>>, expected: &BTreeMap<String, String>) -> bool {
    let Some(map) = map else {
        return expected.is_empty();
    };
    map.len() == expected.len()
        && map
            .iter()
            .all(|(k, v)| expected.get(k).map(String::as_str) == v.as_str())
}

fn malformed(name: String, reason: impl Into<String>) -> ObjectError {
    ObjectError::Malformed {
        name,
        reason: reason.into(),
    }
}

fn display_name(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    }
}

/// `metadata.<field>` checked to be a map of strings; absent or `null` is `None`.
fn string_map<'a>(
    meta: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a Map<String, Value>>, String> {
    match meta.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => match map.iter().find(|(_, v)| !v.is_string()) {
            Some((k, _)) => Err(format!("metadata.{field}.{k} is not a string")),
            None => Ok(Some(map)),
        },
        Some(_) => Err(format!("metadata.{field} is not a map of strings")),
    }
}

/// Drops what is never stored: `metadata.managedFields` and the last-applied annotation.
fn strip_always(obj: &mut Value) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    meta.shift_remove("managedFields");
    if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
        annotations.shift_remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.shift_remove("annotations");
        }
    }
}

/// Replaces every value of `data` and `stringData` with [`REDACTED`], keeping the keys.
fn redact_secret(obj: &mut Value) {
    for field in ["data", "stringData"] {
        if let Some(Value::Object(map)) = obj.get_mut(field) {
            for value in map.values_mut() {
                *value = Value::String(REDACTED.into());
            }
        }
    }
}

/// A column's stored value: the value at its path converted to its type, `null` when absent or
/// of a type that does not convert.
pub fn column_value(column_type: ColumnType, value: Option<&Value>) -> Value {
    let Some(value) = value else {
        return Value::Null;
    };
    match (column_type, value) {
        (_, Value::Null) => Value::Null,
        (ColumnType::Json, v) => v.clone(),
        (ColumnType::Integer, Value::Number(n)) => integer(n).map_or(Value::Null, Value::from),
        (ColumnType::Boolean, Value::Bool(b)) => Value::Bool(*b),
        (ColumnType::String, Value::String(s)) => Value::String(s.clone()),
        (ColumnType::String, Value::Number(n)) => Value::String(n.to_string()),
        (ColumnType::String, Value::Bool(b)) => Value::String(b.to_string()),
        _ => Value::Null,
    }
}

/// Whether [`column_value`] of `found` is `given`, without copying a document to find out.
pub fn column_value_is(column_type: ColumnType, found: Option<&Value>, given: &Value) -> bool {
    match (column_type, found) {
        (ColumnType::Json, Some(found)) => found == given,
        (column_type, found) => column_value(column_type, found) == *given,
    }
}

/// A JSON number as an integer when it is one (`3`, `3.0`), `None` for fractions.
fn integer(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mirror::kind::ColumnSpec;

    pub(super) fn spec(
        kind: &str,
        columns: &[(&str, &str, ColumnType)],
        prune: &[&str],
    ) -> KindSpec {
        KindSpec {
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
            plural: format!("{}s", kind.to_lowercase()),
            namespaced: true,
            prune: prune.iter().map(|p| p.to_string()).collect(),
            keep_secret_data: false,
            columns: columns
                .iter()
                .map(|(name, path, t)| ColumnSpec {
                    name: name.to_string(),
                    path: path.to_string(),
                    column_type: *t,
                    index: false,
                })
                .collect(),
        }
    }

    pub(super) fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web-1", "namespace": "shop", "uid": "u-1", "resourceVersion": "42",
                "creationTimestamp": "2024-05-01T10:00:00Z",
                "labels": {"app": "web"},
                "annotations": {LAST_APPLIED: "{...}", "team": "a"},
                "managedFields": [{"manager": "kubectl"}]
            },
            "spec": {"nodeName": "n1", "replicas": 3},
            "status": {"phase": "Running", "images": ["a", "b"], "ready": true, "ratio": 1.5}
        })
    }

    #[test]
    fn fills_metadata_and_drops_managed_fields_and_last_applied() -> Result<(), ObjectError> {
        let out = to_mirror_object(&spec("Pod", &[], &[]), pod())?;
        assert_eq!(
            (out.namespace.as_str(), out.name.as_str(), out.uid.as_str()),
            ("shop", "web-1", "u-1")
        );
        assert_eq!(out.resource_version, "42");
        assert_eq!(out.created_at.as_deref(), Some("2024-05-01T10:00:00Z"));
        assert_eq!(out.labels, BTreeMap::from([("app".into(), "web".into())]));
        assert_eq!(
            out.annotations,
            BTreeMap::from([("team".into(), "a".into())])
        );
        assert_eq!(out.object["metadata"].get("managedFields"), None);
        assert_eq!(out.object["metadata"]["annotations"], json!({"team": "a"}));
        Ok(())
    }

    #[test]
    fn an_emptied_annotation_map_disappears() -> Result<(), ObjectError> {
        let mut obj = pod();
        obj["metadata"]["annotations"] = json!({LAST_APPLIED: "{}"});
        let out = to_mirror_object(&spec("Pod", &[], &[]), obj)?;
        assert_eq!(out.object["metadata"].get("annotations"), None);
        assert!(out.annotations.is_empty());
        Ok(())
    }

    #[test]
    fn prunes_paths_with_or_without_leading_dot() -> Result<(), ObjectError> {
        let out = to_mirror_object(
            &spec(
                "Pod",
                &[],
                &[".status.images", "spec.replicas", ".not.there"],
            ),
            pod(),
        )?;
        assert_eq!(out.object["status"].get("images"), None);
        assert_eq!(out.object["spec"], json!({"nodeName": "n1"}));
        Ok(())
    }

    #[test]
    fn extracts_typed_columns() -> Result<(), ObjectError> {
        use ColumnType::*;
        let kind = spec(
            "Pod",
            &[
                ("phase", ".status.phase", String),
                ("node", ".spec.nodeName", String),
                ("replicas", ".spec.replicas", Integer),
                ("replicas_text", ".spec.replicas", String),
                ("ready", ".status.ready", Boolean),
                ("ready_text", ".status.ready", String),
                ("ratio", ".status.ratio", Integer),
                ("phase_int", ".status.phase", Integer),
                ("missing", ".status.nothing", String),
                ("images", ".status.images", Json),
                ("pruned", ".status.images", Json),
            ],
            &[],
        );
        let out = to_mirror_object(&kind, pod())?;
        let want = json!({
            "phase": "Running", "node": "n1", "replicas": 3, "replicas_text": "3", "ready": true,
            "ready_text": "true", "ratio": null, "phase_int": null, "missing": null,
            "images": ["a", "b"], "pruned": ["a", "b"],
        });
        assert_eq!(serde_json::to_value(&out.columns).ok(), Some(want));
        Ok(())
    }

    #[test]
    fn column_values_convert_by_type() {
        use ColumnType::*;
        let cases: &[(ColumnType, Option<Value>, Value)] = &[
            (Integer, Some(json!(7)), json!(7)),
            (Integer, Some(json!(7.0)), json!(7)),
            (Integer, Some(json!(7.5)), Value::Null),
            (Integer, Some(json!("7")), Value::Null),
            (Boolean, Some(json!(false)), json!(false)),
            (Boolean, Some(json!("true")), Value::Null),
            (String, Some(json!(1.5)), json!("1.5")),
            (String, Some(json!({"a": 1})), Value::Null),
            (Json, Some(json!({"a": 1})), json!({"a": 1})),
            (Json, Some(Value::Null), Value::Null),
            (String, None, Value::Null),
        ];
        for (t, input, want) in cases {
            assert_eq!(&column_value(*t, input.as_ref()), want, "{t:?} {input:?}");
        }
    }

    #[test]
    fn pruned_fields_do_not_reach_columns() -> Result<(), ObjectError> {
        let kind = spec(
            "Pod",
            &[("images", ".status.images", ColumnType::Json)],
            &[".status.images"],
        );
        assert_eq!(
            to_mirror_object(&kind, pod())?.columns["images"],
            Value::Null
        );
        Ok(())
    }

    pub(super) fn secret() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "creds", "namespace": "shop"},
            "data": {"password": "aHVudGVyMg=="}, "stringData": {"token": "abc"}
        })
    }

    #[test]
    fn secrets_are_redacted_unless_kept() -> Result<(), ObjectError> {
        let mut kind = spec(
            "Secret",
            &[
                ("data", ".data", ColumnType::Json),
                ("type", ".type", ColumnType::String),
            ],
            &[],
        );
        let out = to_mirror_object(&kind, secret())?;
        assert_eq!(out.object["data"], json!({"password": REDACTED}));
        assert_eq!(out.object["stringData"], json!({"token": REDACTED}));
        assert_eq!(
            out.columns["data"],
            json!({"password": REDACTED}),
            "columns never leak secrets"
        );
        assert_eq!(out.columns["type"], json!("Opaque"));
        kind.keep_secret_data = true;
        assert_eq!(
            to_mirror_object(&kind, secret())?.object["data"],
            json!({"password": "aHVudGVyMg=="})
        );
        Ok(())
    }

    #[test]
    fn only_core_secrets_are_redacted() -> Result<(), ObjectError> {
        let mut kind = spec("Secret", &[], &[]);
        kind.group = "example.com".into();
        assert_eq!(
            to_mirror_object(&kind, secret())?.object["data"],
            json!({"password": "aHVudGVyMg=="})
        );
        Ok(())
    }

    #[test]
    fn malformed_objects_are_errors() {
        let kind = spec("ConfigMap", &[], &[]);
        let cases = [
            (json!("text"), "not a JSON object"),
            (json!({"metadata": "x"}), "metadata is not an object"),
            (
                json!({"metadata": {"namespace": "a"}}),
                "metadata.name is missing",
            ),
            (
                json!({"metadata": {"name": "", "namespace": "a"}}),
                "metadata.name is missing",
            ),
            (
                json!({"metadata": {"name": "b", "namespace": "a", "labels": "oops"}}),
                "metadata.labels is not a map of strings",
            ),
            (
                json!({"metadata": {"name": "b", "labels": {"x": 1}}}),
                "metadata.labels.x is not a string",
            ),
            (
                json!({"metadata": {"name": "b", "annotations": ["x"]}}),
                "metadata.annotations is not a map of strings",
            ),
        ];
        for (obj, want) in cases {
            match to_mirror_object(&kind, obj.clone()) {
                Err(ObjectError::Malformed { reason, .. }) => assert_eq!(reason, want, "{obj}"),
                other => panic!("{obj}: {other:?}"),
            }
        }
    }

    #[test]
    fn null_labels_are_empty_and_cluster_scoped_objects_have_no_namespace()
    -> Result<(), ObjectError> {
        let out = to_mirror_object(
            &spec("Node", &[], &[]),
            json!({"metadata": {"name": "n1", "labels": null}}),
        )?;
        assert!(out.labels.is_empty());
        assert_eq!(out.namespace, "");
        assert_eq!(out.created_at, None);
        Ok(())
    }

    #[test]
    fn an_object_yields_itself_until_any_field_differs() -> Result<(), ObjectError> {
        let kind = spec(
            "Pod",
            &[("phase", ".status.phase", ColumnType::String)],
            &[],
        );
        let processor = Processor::new(&kind)?;
        let mut with_annotation = pod();
        with_annotation["metadata"]["annotations"] = json!({"team": "a"});
        let object = processor.process(with_annotation)?;
        assert!(processor.yields(&object));

        type Change = (&'static str, fn(&mut MirrorObject));
        let changes: [Change; 10] = [
            ("label value", |o| {
                o.labels.insert("app".into(), "db".into());
            }),
            ("extra label", |o| {
                o.labels.insert("tier".into(), "x".into());
            }),
            ("no labels", |o| o.labels.clear()),
            ("annotation", |o| {
                o.annotations.insert("team".into(), "b".into());
            }),
            ("uid", |o| o.uid = "other".into()),
            ("resourceVersion", |o| o.resource_version = "43".into()),
            ("namespace", |o| o.namespace = "other".into()),
            ("creation time", |o| o.created_at = None),
            ("column", |o| {
                o.columns.insert("phase".into(), json!("Failed"));
            }),
            ("label in the JSON", |o| {
                o.object["metadata"]["labels"]["app"] = json!("db");
            }),
        ];
        for (what, change) in changes {
            let mut changed = object.clone();
            change(&mut changed);
            assert!(!processor.yields(&changed), "{what} differs");
        }
        Ok(())
    }

    #[test]
    fn invalid_spec_paths_are_reported() {
        let kind = spec("Pod", &[], &[".status..x"]);
        let err = Processor::new(&kind).err();
        assert_eq!(err.map(|e| e.category()), Some("invalid_spec"));
    }
}
