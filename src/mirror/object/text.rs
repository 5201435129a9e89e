//! [`Processor::process_parts`]: the same conversion as [`Processor::process`], from an object's
//! [`Parts`] as read off the wire, without building the whole tree. Only the members a rule reads
//! are parsed (metadata without `managedFields`, the roots of prune, redaction and column paths);
//! the others are copied into the stored text as they came. Malformed objects and objects nested
//! too deeply to keep as text take the tree path, so both paths always agree; the tests below
//! hold them to it.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::parts::{Member, Parts};
use super::{ObjectError, Processor, malformed};
use crate::store::MirrorObject;
use crate::store::object_json::ObjectJson;

impl Processor {
    /// Processes one object given as JSON text; equal to [`Processor::process`] of its tree.
    pub fn process_text(&self, text: &RawValue) -> Result<MirrorObject, ObjectError> {
        let parts: Parts = serde_json::from_str(text.get())
            .map_err(|e| malformed("<unnamed>".into(), format!("not JSON: {e}")))?;
        self.process_parts(&parts)
    }

    /// Processes one object given as its parts; equal to [`Processor::process`] of its tree.
    pub fn process_parts(&self, parts: &Parts) -> Result<MirrorObject, ObjectError> {
        let Some(members) = &parts.0 else {
            return Err(malformed("<unnamed>".into(), "not a JSON object"));
        };
        let Some(metadata) = parts.metadata() else {
            return Err(malformed("<unnamed>".into(), "metadata is not an object"));
        };
        // The members rules change are parsed and written again; column roots are only read.
        let rewritten = |key: &str| self.rewritten_roots.iter().any(|r| r == key);
        let read = |key: &str| self.read_roots.iter().any(|r| r == key);

        let parse = |raw: &RawValue| {
            serde_json::from_str::<Value>(raw.get())
                .map_err(|e| malformed("<unnamed>".into(), format!("not JSON: {e}")))
        };
        let mut view = Map::new();
        for (key, member) in members {
            match member {
                Member::Metadata(_) => {
                    let mut meta = Map::new();
                    for (meta_key, raw) in metadata {
                        if meta_key != "managedFields" {
                            meta.insert(meta_key.clone(), parse(raw)?);
                        }
                    }
                    view.insert(key.clone(), Value::Object(meta));
                }
                Member::Raw(raw) if rewritten(key) || read(key) => {
                    view.insert(key.clone(), parse(raw)?);
                }
                Member::Raw(_) => {}
            }
        }
        let mut object = self.process(Value::Object(view))?;
        let processed = std::mem::take(&mut object.object).into_tree();

        let capacity = members.iter().map(|(k, m)| k.len() + size(m)).sum();
        let mut out: Vec<u8> = Vec::with_capacity(capacity);
        out.push(b'{');
        for (key, member) in members {
            let raw = match member {
                Member::Raw(raw) if !rewritten(key) => Some(raw.get()),
                _ => None,
            };
            let value = match raw {
                Some(_) => None,
                None => match processed.get(key.as_str()) {
                    Some(value) => Some(value),
                    None => continue, // pruned
                },
            };
            if out.len() > 1 {
                out.push(b',');
            }
            // Writing JSON to a vector cannot fail.
            let _ = serde_json::to_writer(&mut out, key);
            out.push(b':');
            match (raw, value) {
                (Some(raw), _) => out.extend_from_slice(raw.as_bytes()),
                (None, value) => {
                    let _ = serde_json::to_writer(&mut out, &value);
                }
            }
        }
        out.push(b'}');
        let out = String::from_utf8(out).unwrap_or_default();
        match ObjectJson::from_valid_json(out.into_boxed_str()) {
            Some(text) => {
                // Stores check columns and annotations against these members: already parsed.
                let roots = self
                    .rewritten_roots
                    .iter()
                    .chain(&self.read_roots)
                    .cloned()
                    .collect();
                object.object = text.with_partial(processed, roots);
            }
            None => {
                // Too deep to keep as text: the tree path keeps it as a tree.
                let json = parts.to_json().unwrap_or_default();
                return self.process(
                    serde_json::from_str(&json)
                        .map_err(|e| malformed("<unnamed>".into(), format!("not JSON: {e}")))?,
                );
            }
        }
        Ok(object)
    }
}

/// A member's text length, to size the output once.
fn size(member: &Member) -> usize {
    match member {
        Member::Raw(raw) => raw.get().len() + 4,
        Member::Metadata(_) => 256,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{pod, secret, spec};
    use super::*;
    use crate::mirror::kind::ColumnType;

    fn raw(value: &Value) -> Box<RawValue> {
        RawValue::from_string(value.to_string()).expect("raw")
    }

    /// Both paths give the same result, and a stored text reads back as the tree path's object.
    fn agree(processor: &Processor, value: Value) {
        let by_tree = processor.process(value.clone());
        let by_text = processor.process_text(&raw(&value));
        match (&by_tree, &by_text) {
            (Ok(tree), Ok(text)) => {
                assert_eq!(tree, text, "for {value}");
                if let Some(json) = text.object.text() {
                    let reread: Value = serde_json::from_str(json).expect("stored text is JSON");
                    assert_eq!(reread, *tree.object.tree(), "stored text for {value}");
                }
            }
            (Err(a), Err(b)) => assert_eq!(a, b, "for {value}"),
            _ => panic!("paths disagree for {value}: {by_tree:?} vs {by_text:?}"),
        }
    }

    #[test]
    fn text_and_tree_paths_agree() {
        let pods = spec(
            "Pod",
            &[
                ("phase", ".status.phase", ColumnType::String),
                ("node", "spec.nodeName", ColumnType::String),
                ("replicas", ".spec.replicas", ColumnType::Integer),
                ("first_image", ".status.images[0]", ColumnType::String),
                ("ready", ".status.ready", ColumnType::Boolean),
                ("spec", ".spec", ColumnType::Json),
                ("owner", ".metadata.annotations.team", ColumnType::String),
            ],
            &["status.images", ".metadata.annotations.team", "spec.gone"],
        );
        let processor = Processor::new(&pods).expect("processor");
        let mut samples = vec![pod()];
        let mut without_annotations = pod();
        without_annotations["metadata"]
            .as_object_mut()
            .expect("metadata")
            .shift_remove("annotations");
        samples.push(without_annotations);
        let mut only_last_applied = pod();
        only_last_applied["metadata"]["annotations"] = json!({super::super::LAST_APPLIED: "{}"});
        samples.push(only_last_applied);
        samples.push(json!({"metadata": {"name": "bare"}}));
        samples.push(json!({"metadata": {"name": "esc\"aped", "labels": {"a\u{e9}": "\n"}}, "k\\y": [1, {"z": null}]}));
        // Malformed: each must give the tree path's error.
        samples.push(json!({"metadata": {"namespace": "x"}}));
        samples.push(json!({"metadata": {"name": "a", "labels": "x"}}));
        samples.push(json!({"metadata": {"name": "a", "annotations": {"n": 1}}}));
        samples.push(json!({"metadata": "not an object"}));
        samples.push(json!({"kind": "NoMetadata"}));
        samples.push(json!([1, 2]));
        for sample in samples {
            agree(&processor, sample);
        }

        let secrets = spec("Secret", &[("type", ".type", ColumnType::String)], &[]);
        agree(&Processor::new(&secrets).expect("processor"), secret());
    }

    #[test]
    fn duplicate_keys_and_deep_objects_take_the_tree_path() {
        let processor = Processor::new(&spec(
            "Pod",
            &[("phase", ".status.phase", ColumnType::String)],
            &[],
        ))
        .expect("processor");
        let duplicated = RawValue::from_string(
            r#"{"metadata": {"name": "a"}, "status": {"phase": "A"}, "status": {"phase": "B"}}"#
                .into(),
        )
        .expect("raw");
        let object = processor.process_text(&duplicated).expect("object");
        assert_eq!(
            object.columns["phase"],
            json!("B"),
            "the last duplicate counts"
        );

        let mut deep = json!(1);
        for _ in 0..110 {
            deep = json!([deep]);
        }
        let value = json!({"metadata": {"name": "deep"}, "spec": deep});
        let object = processor.process_text(&raw(&value)).expect("object");
        assert_eq!(object.object.text(), None, "kept as a tree");
        assert_eq!(object.object, value);
    }

    #[test]
    fn managed_fields_never_reach_the_stored_text() {
        let processor = Processor::new(&spec("Pod", &[], &[])).expect("processor");
        let object = processor.process_text(&raw(&pod())).expect("object");
        let text = object.object.text().expect("kept as text");
        assert!(!text.contains("managedFields"), "{text}");
        assert!(!text.contains(super::super::LAST_APPLIED), "{text}");
    }
}
