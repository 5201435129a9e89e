//! The compact form of one stored object, shared by its table entry and the change log: the
//! object serialised once, the metadata reads need, and only what the object does not yield
//! itself (see [`Overrides`], annotations that differ from `metadata.annotations`). A
//! [`MirrorObject`] is materialised from it only for the items a read returns, exactly as written.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use serde_json::Value;

use super::labels::LabelSet;
use super::layout::{Cell, Layout, Overrides};
use crate::mirror::path::{self, FieldPath};
use crate::store::object_json::{MAX_TEXT_DEPTH, ObjectJson};
use crate::store::{MirrorObject, StoreError};

/// `(namespace, name)`: the table key, ordered like the default sort; its strings are shared with
/// the record stored under it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl Key {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: Arc::from(namespace),
            name: Arc::from(name),
        }
    }
}

/// serde_json reads nested arrays and objects back only up to its recursion limit (128 levels);
/// deeper objects are kept parsed.
const MAX_SERIALISED_DEPTH: usize = MAX_TEXT_DEPTH;

/// Where [`annotations_derive`] looks.
static ANNOTATIONS_PATH: LazyLock<FieldPath> =
    LazyLock::new(|| path::parse(".metadata.annotations").expect("a valid path"));

/// Scratch space of one write batch: a serialisation buffer, and the batch's objects, dropped
/// together once the batch is done. Records copy what they keep rather than take the objects'
/// allocations: freeing each object between the allocations of records that outlive it, or
/// keeping pieces of it, would leave its many small blocks as holes all over the heap, which
/// makes every later allocation (each read materialises objects) markedly slower.
#[derive(Default)]
pub(super) struct BatchScratch {
    buffer: Vec<u8>,
    spent: Vec<MirrorObject>,
}

impl BatchScratch {
    /// Keeps a stored (or ignored) object until the batch's end.
    pub fn retire(&mut self, object: MirrorObject) {
        self.spent.push(object);
    }
}

/// The object itself.
#[derive(Debug, Clone)]
enum Body {
    /// Serialised once (compact JSON).
    Json(Bytes),
    /// Nested too deeply to be read back from JSON: kept as given.
    Tree(Arc<Value>),
}

impl Body {
    /// The text of `object`, or its tree serialised through `buffer`.
    fn of(object: &ObjectJson, buffer: &mut Vec<u8>) -> Self {
        if let Some(text) = object.text() {
            return Self::Json(Bytes::copy_from_slice(text.as_bytes()));
        }
        let object = object.tree();
        if nested_deeper_than(object, MAX_SERIALISED_DEPTH) {
            return Self::Tree(Arc::new(object.clone()));
        }
        buffer.clear();
        match serde_json::to_writer(&mut *buffer, object) {
            Ok(()) => Self::Json(Bytes::copy_from_slice(buffer)),
            Err(_) => Self::Tree(Arc::new(object.clone())),
        }
    }
}

fn nested_deeper_than(value: &Value, depth: usize) -> bool {
    let deeper = |v: &Value| depth == 0 || nested_deeper_than(v, depth - 1);
    match value {
        Value::Array(items) => items.iter().any(deeper),
        Value::Object(map) => map.values().any(deeper),
        _ => false,
    }
}

/// One stored object. Immutable: a change replaces the table's record, and the log keeps the old.
#[derive(Debug)]
pub(super) struct Record {
    pub key: Key,
    pub uid: Box<str>,
    pub resource_version: Box<str>,
    pub created_at: Option<Box<str>>,
    pub labels: Arc<LabelSet>,
    /// The columns the record was laid out for (the kind's columns when it was stored).
    layout: Arc<Layout>,
    overrides: Overrides,
    /// The annotations, in key order, when they differ from the object's `metadata.annotations`.
    annotations: Option<Box<[(String, String)]>>,
    body: Body,
}

impl Record {
    /// `object` as stored under `key` (its namespace and name) with its interned `labels`
    /// (`object.labels` is not read); also returns the table entry's cells. Copies what it
    /// keeps (see [`BatchScratch`]), then retires the object into `scratch`.
    pub fn new(
        object: MirrorObject,
        key: Key,
        labels: Arc<LabelSet>,
        layout: &Arc<Layout>,
        scratch: &mut BatchScratch,
    ) -> (Self, Box<[Cell]>) {
        // Only the members the checks read are parsed when the object is text.
        let sparse = object
            .object
            .sparse(layout.paths().chain([&*ANNOTATIONS_PATH]));
        let (cells, overrides) = layout.split(&object.columns, &sparse);
        let annotations = (!annotations_derive(&sparse, &object.annotations))
            .then(|| object.annotations.clone().into_iter().collect());
        drop(sparse);
        let record = Self {
            key,
            uid: object.uid.as_str().into(),
            resource_version: object.resource_version.as_str().into(),
            created_at: object.created_at.as_deref().map(Box::from),
            labels,
            layout: Arc::clone(layout),
            overrides,
            annotations,
            body: Body::of(&object.object, &mut scratch.buffer),
        };
        scratch.retire(object);
        (record, cells)
    }

    /// The same object laid out for other columns (after the kind's columns changed), sharing
    /// the serialised object; also returns the entry's new cells.
    pub fn relayout(&self, layout: &Arc<Layout>) -> Result<(Self, Box<[Cell]>), StoreError> {
        let object = self.object()?;
        let columns = self.layout.columns(&object, &self.overrides);
        let (cells, overrides) = layout.split(&columns, &object);
        let record = Self {
            key: self.key.clone(),
            uid: self.uid.clone(),
            resource_version: self.resource_version.clone(),
            created_at: self.created_at.clone(),
            labels: Arc::clone(&self.labels),
            layout: Arc::clone(layout),
            overrides,
            annotations: self.annotations.clone(),
            body: self.body.clone(),
        };
        Ok((record, cells))
    }

    /// The document a [`Cell::Derived`] of column `index` stands for (parses the object).
    pub fn derived(&self, index: usize) -> Option<Value> {
        let object = self.object().ok()?;
        self.layout.extract(index, &object)
    }

    /// The object as written.
    pub fn to_mirror_object(&self) -> Result<MirrorObject, StoreError> {
        let object = self.object()?.into_owned();
        let columns = self.layout.columns(&object, &self.overrides);
        let annotations = match &self.annotations {
            Some(annotations) => annotations.iter().cloned().collect(),
            None => annotations_of(&object),
        };
        Ok(MirrorObject {
            namespace: self.key.namespace.to_string(),
            name: self.key.name.to_string(),
            uid: self.uid.to_string(),
            resource_version: self.resource_version.to_string(),
            labels: self.labels.map.clone(),
            annotations,
            created_at: self.created_at.as_deref().map(str::to_owned),
            columns,
            object: object.into(),
        })
    }

    /// The object as compact JSON: the stored bytes themselves when it was serialised.
    pub fn json(&self) -> Result<Bytes, StoreError> {
        match &self.body {
            Body::Json(bytes) => Ok(bytes.clone()),
            Body::Tree(object) => serde_json::to_vec(&**object)
                .map(Bytes::from)
                .map_err(|e| self.does_not_encode(e)),
        }
    }

    /// The length of [`Record::json`] when it is kept serialised (0 otherwise): what to reserve.
    pub fn json_len(&self) -> usize {
        match &self.body {
            Body::Json(bytes) => bytes.len(),
            Body::Tree(_) => 0,
        }
    }

    /// Appends [`Record::json`] to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), StoreError> {
        match &self.body {
            Body::Json(bytes) => {
                out.extend_from_slice(bytes);
                Ok(())
            }
            Body::Tree(object) => {
                serde_json::to_writer(out, &**object).map_err(|e| self.does_not_encode(e))
            }
        }
    }

    fn does_not_encode(&self, error: serde_json::Error) -> StoreError {
        StoreError::Unavailable {
            message: format!(
                "stored object {}/{} does not encode",
                self.key.namespace, self.key.name
            ),
            source: Some(error.into()),
        }
    }

    /// The stored object, parsed back.
    fn object(&self) -> Result<Cow<'_, Value>, StoreError> {
        match &self.body {
            Body::Tree(object) => Ok(Cow::Borrowed(&**object)),
            Body::Json(bytes) => {
                serde_json::from_slice(bytes)
                    .map(Cow::Owned)
                    .map_err(|e| StoreError::Unavailable {
                        message: format!(
                            "stored object {}/{} does not decode",
                            self.key.namespace, self.key.name
                        ),
                        source: Some(e.into()),
                    })
            }
        }
    }
}

/// `metadata.annotations` of an object as a string map (non-string values skipped).
fn annotations_of(object: &Value) -> BTreeMap<String, String> {
    let annotations = object
        .get("metadata")
        .and_then(|meta| meta.get("annotations"))
        .and_then(Value::as_object);
    annotations
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

/// Whether [`annotations_of`] yields exactly `annotations` (then they need not be kept).
fn annotations_derive(object: &Value, annotations: &BTreeMap<String, String>) -> bool {
    match object
        .get("metadata")
        .and_then(|meta| meta.get("annotations"))
    {
        None | Some(Value::Null) => annotations.is_empty(),
        Some(Value::Object(map)) => {
            map.len() == annotations.len()
                && map.iter().all(|(k, v)| {
                    v.as_str()
                        .is_some_and(|v| annotations.get(k).is_some_and(|a| a == v))
                })
        }
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mirror::kind::{ColumnSpec, ColumnType, KindSpec};
    use crate::store::conformance::{sample_kind, sample_object};

    fn store(object: MirrorObject, layout: &Arc<Layout>) -> (Record, Box<[Cell]>) {
        let key = Key::new(&object.namespace, &object.name);
        let labels = Arc::new(LabelSet {
            json: serde_json::Map::new(),
            map: object.labels.clone(),
        });
        Record::new(object, key, labels, layout, &mut BatchScratch::default())
    }

    fn round_trip(object: &MirrorObject, spec: &KindSpec) -> (Record, Box<[Cell]>) {
        let (record, cells) = store(object.clone(), &Arc::new(Layout::new(spec)));
        let read = record.to_mirror_object().expect("materialise");
        assert_eq!(&read, object, "reads back as written");
        (record, cells)
    }

    /// A sample object whose columns are what their paths extract, as the mirror writes it.
    fn consistent(name: &str) -> MirrorObject {
        let mut object = sample_object("ns", name, "1");
        object.object["spec"] = json!({ "replicas": 2, "template": { "a": [1, 2.5, "x"] } });
        object.object["status"] = json!({ "phase": "Running", "ready": true });
        object.object["metadata"]["annotations"] = json!({ "team": "a" });
        object.annotations.insert("team".to_owned(), "a".to_owned());
        object
            .columns
            .insert("spec".to_owned(), object.object["spec"].clone());
        object.columns.insert("replicas".to_owned(), json!(2));
        object.columns.insert("phase".to_owned(), json!("Running"));
        object.columns.insert("ready".to_owned(), json!(true));
        object
    }

    fn body_len(record: &Record) -> Option<usize> {
        match &record.body {
            Body::Json(bytes) => Some(bytes.len()),
            Body::Tree(_) => None,
        }
    }

    #[test]
    fn columns_and_annotations_the_object_yields_are_not_kept() {
        let (record, cells) = round_trip(&consistent("a"), &sample_kind("Derive"));
        assert!(matches!(cells[3], Cell::Derived));
        assert!(matches!(&cells[0], Cell::Str(s) if &**s == "Running"));
        assert!(matches!(cells[1], Cell::Number(_)));
        assert!(record.overrides.is_none());
        assert!(record.annotations.is_none());
        assert!(body_len(&record).is_some());
        assert_eq!(
            record.derived(3),
            Some(json!({ "replicas": 2, "template": { "a": [1, 2.5, "x"] } }))
        );
    }

    #[test]
    fn values_the_object_does_not_yield_are_kept() {
        let mut object = consistent("b");
        object.columns.insert("spec".to_owned(), json!([1, 2]));
        object.columns.insert("phase".to_owned(), json!("Pending"));
        object
            .annotations
            .insert("other".to_owned(), "x".to_owned());
        object
            .columns
            .insert("unknown".to_owned(), json!({ "k": 1 }));
        object.columns.remove("ready");
        let (record, cells) = round_trip(&object, &sample_kind("Keep"));
        assert!(matches!(cells[3], Cell::Document(_)));
        assert!(matches!(cells[2], Cell::Absent));
        assert!(matches!(&cells[0], Cell::Str(s) if &**s == "Pending"));
        let kept: Vec<&str> = record
            .overrides
            .iter()
            .flatten()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(kept, ["phase", "ready", "spec", "unknown"]);
        assert!(record.annotations.is_some());
    }

    #[test]
    fn odd_objects_read_back_as_written() {
        let spec = sample_kind("Odd");
        let mut null_object = sample_object("ns", "n", "1");
        *null_object.object = Value::Null;
        round_trip(&null_object, &spec);
        let mut bad_annotations = sample_object("ns", "m", "1");
        bad_annotations.object["metadata"]["annotations"] = json!({ "n": 1 });
        round_trip(&bad_annotations, &spec);
        let mut deep = json!("leaf");
        for _ in 0..200 {
            deep = json!([deep]);
        }
        let mut nested = sample_object("ns", "deep", "1");
        nested.object["spec"] = deep;
        nested
            .columns
            .insert("spec".to_owned(), nested.object["spec"].clone());
        let (record, cells) = round_trip(&nested, &spec);
        assert_eq!(body_len(&record), None, "kept parsed");
        assert!(matches!(cells[3], Cell::Derived));
    }

    #[test]
    fn unparsable_column_paths_keep_their_values() {
        let mut spec = sample_kind("BadPath");
        spec.columns[3].path = ".spec..x".to_owned();
        let (record, cells) = round_trip(&consistent("c"), &spec);
        assert!(matches!(cells[3], Cell::Document(_)));
        assert!(record.overrides.is_some());
        let mut absent = consistent("d");
        absent.columns.remove("spec");
        let (record, _) = round_trip(&absent, &spec);
        assert!(record.overrides.is_none(), "absent, as the bad path yields");
    }

    #[test]
    fn relayout_keeps_every_column_and_derives_under_the_new_paths() {
        let spec = sample_kind("Relayout");
        let object = consistent("e");
        let (record, _) = round_trip(&object, &spec);
        let mut changed = spec.clone();
        changed.columns.retain(|c| c.name != "phase");
        changed.columns[2].path = ".status".to_owned();
        changed.columns.push(ColumnSpec {
            name: "status".to_owned(),
            path: ".status".to_owned(),
            column_type: ColumnType::Json,
            index: false,
        });
        let (moved, cells) = record
            .relayout(&Arc::new(Layout::new(&changed)))
            .expect("relayout");
        assert_eq!(moved.to_mirror_object().expect("materialise"), object);
        assert!(matches!(cells[2], Cell::Document(_)), "spec now differs");
        assert!(matches!(cells[3], Cell::Absent));
        let kept: Vec<&str> = moved
            .overrides
            .iter()
            .flatten()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(kept, ["spec", "status", "phase"]);
        assert!(matches!(
            (&record.body, &moved.body),
            (Body::Json(a), Body::Json(b)) if a.as_ptr() == b.as_ptr()
        ));
    }
}
