//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902), with kube-apiserver's quirks.

use json_patch::{PatchErrorKind, PatchOperation};
use serde_json::{Map, Value};

use super::PatchError;

/// RFC 7386 JSON merge patch (kube-rs `Patch::Merge`, Content-Type application/merge-patch+json).
/// Per the RFC a non-object patch would replace the whole document; for a Kubernetes object that
/// is a BadRequest instead. Keys keep their order (removal shifts rather than swaps).
pub fn merge_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::BadRequest(format!(
            "merge patch must be a JSON object, got {}",
            type_name(patch)
        )));
    }
    let mut doc = original.clone();
    merge_into(&mut doc, patch);
    Ok(doc)
}

fn merge_into(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.shift_remove(key);
            } else {
                merge_into(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// RFC 6902 JSON patch (application/json-patch+json). The patch must be an array of operations
/// (else BadRequest). Like the Go server (evanphx/json-patch), a `test` op whose path does not
/// exist succeeds when its value is JSON null, provided the parent is an object: kube-runtime's
/// `finalizer()` sends `test /metadata/finalizers null` before `add /metadata/finalizers`.
/// A failed test, a missing path for remove/replace, a bad index and the like are
/// [`PatchError::Invalid`] naming the op and path. Nothing changes unless every op applies.
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(raw_ops) = patch else {
        return Err(PatchError::BadRequest(format!(
            "json patch must be an array of operations, got {}",
            type_name(patch)
        )));
    };
    let ops = raw_ops
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            serde_json::from_value::<PatchOperation>(raw.clone()).map_err(|e| {
                PatchError::BadRequest(format!("invalid json patch operation {i}: {e}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    // Applying to a copy makes the whole patch atomic without the crate's undo stack.
    let mut doc = original.clone();
    for op in &ops {
        if let PatchOperation::Test(test) = op
            && test.value.is_null()
            && missing_object_member(&doc, &test.path)
        {
            continue;
        }
        json_patch::patch_unsafe(&mut doc, std::slice::from_ref(op))
            .map_err(|e| describe(op, &doc, e.kind))?;
    }
    Ok(doc)
}

/// True when `path` names an absent key of an existing object (Go treats that value as null).
fn missing_object_member(doc: &Value, path: &json_patch::jsonptr::Pointer) -> bool {
    let Some((parent, last)) = path.split_back() else {
        return false;
    };
    match doc.pointer(parent.as_str()) {
        Some(Value::Object(map)) => !map.contains_key(last.decoded().as_ref()),
        _ => false,
    }
}

fn describe(op: &PatchOperation, doc: &Value, kind: PatchErrorKind) -> PatchError {
    let path = op.path().as_str();
    let message = match (op, kind) {
        (PatchOperation::Test(_), PatchErrorKind::TestFailed) => {
            format!("test operation failed at path \"{path}\": value did not match")
        }
        (PatchOperation::Test(_), _) if doc.pointer(path).is_none() => {
            format!("test operation failed at path \"{path}\": path does not exist")
        }
        (PatchOperation::Move(m), kind) => {
            format!(
                "move operation from \"{}\" to \"{path}\" failed: {kind}",
                m.from.as_str()
            )
        }
        (PatchOperation::Copy(c), kind) => {
            format!(
                "copy operation from \"{}\" to \"{path}\" failed: {kind}",
                c.from.as_str()
            )
        }
        (op, kind) => format!(
            "{} operation failed at path \"{path}\": {kind}",
            op_name(op)
        ),
    };
    PatchError::Invalid(message)
}

fn op_name(op: &PatchOperation) -> &'static str {
    match op {
        PatchOperation::Add(_) => "add",
        PatchOperation::Remove(_) => "remove",
        PatchOperation::Replace(_) => "replace",
        PatchOperation::Move(_) => "move",
        PatchOperation::Copy(_) => "copy",
        PatchOperation::Test(_) => "test",
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_table() {
        let cases: &[(&str, Value, Value, Value)] = &[
            (
                "add",
                json!({"a": 1}),
                json!({"b": 2}),
                json!({"a": 1, "b": 2}),
            ),
            (
                "replace",
                json!({"a": 1}),
                json!({"a": "x"}),
                json!({"a": "x"}),
            ),
            (
                "delete with null",
                json!({"a": 1, "b": 2}),
                json!({"a": null}),
                json!({"b": 2}),
            ),
            (
                "delete missing is a no-op",
                json!({"a": 1}),
                json!({"z": null}),
                json!({"a": 1}),
            ),
            (
                "nested merge",
                json!({"metadata": {"labels": {"a": "1", "b": "2"}, "name": "x"}}),
                json!({"metadata": {"labels": {"a": null, "c": "3"}}}),
                json!({"metadata": {"labels": {"b": "2", "c": "3"}, "name": "x"}}),
            ),
            (
                "nested into missing drops nulls",
                json!({}),
                json!({"spec": {"a": 1, "b": null}}),
                json!({"spec": {"a": 1}}),
            ),
            (
                "object replaces scalar",
                json!({"a": 1}),
                json!({"a": {"b": 2}}),
                json!({"a": {"b": 2}}),
            ),
            (
                "arrays replace",
                json!({"a": [1, 2, 3]}),
                json!({"a": [4]}),
                json!({"a": [4]}),
            ),
            ("empty patch", json!({"a": 1}), json!({}), json!({"a": 1})),
        ];
        for (name, original, patch, want) in cases {
            assert_eq!(merge_patch(original, patch).as_ref(), Ok(want), "{name}");
        }
    }

    #[test]
    fn merge_patch_keeps_key_order() {
        let out = merge_patch(&json!({"a": 1, "b": 2, "c": 3}), &json!({"a": null}));
        let keys: Vec<String> = match out {
            Ok(Value::Object(m)) => m.keys().cloned().collect(),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(keys, ["b", "c"]);
    }

    #[test]
    fn merge_patch_rejects_non_object() {
        for patch in [json!([1]), json!("x"), json!(null), json!(3)] {
            assert!(
                matches!(merge_patch(&json!({"a": 1}), &patch), Err(PatchError::BadRequest(m)) if m.contains("JSON object")),
                "{patch}"
            );
        }
    }

    #[test]
    fn json_patch_ops_table() {
        let base = json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "list": [1, 2, 3]});
        let cases: &[(&str, Value, Value)] = &[
            (
                "add member",
                json!([{"op": "add", "path": "/metadata/labels/b", "value": "2"}]),
                json!({"metadata": {"name": "x", "labels": {"a": "1", "b": "2"}}, "list": [1, 2, 3]}),
            ),
            (
                "add to array end",
                json!([{"op": "add", "path": "/list/-", "value": 4}]),
                json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "list": [1, 2, 3, 4]}),
            ),
            (
                "add at index",
                json!([{"op": "add", "path": "/list/0", "value": 0}]),
                json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "list": [0, 1, 2, 3]}),
            ),
            (
                "remove",
                json!([{"op": "remove", "path": "/list/1"}]),
                json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "list": [1, 3]}),
            ),
            (
                "replace",
                json!([{"op": "replace", "path": "/metadata/name", "value": "y"}]),
                json!({"metadata": {"name": "y", "labels": {"a": "1"}}, "list": [1, 2, 3]}),
            ),
            (
                "move",
                json!([{"op": "move", "from": "/metadata/labels", "path": "/labels"}]),
                json!({"metadata": {"name": "x"}, "list": [1, 2, 3], "labels": {"a": "1"}}),
            ),
            (
                "copy",
                json!([{"op": "copy", "from": "/list/0", "path": "/first"}]),
                json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "list": [1, 2, 3], "first": 1}),
            ),
            (
                "test then replace",
                json!([
                    {"op": "test", "path": "/metadata/name", "value": "x"},
                    {"op": "replace", "path": "/list", "value": []}
                ]),
                json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "list": []}),
            ),
            (
                "test null on missing member",
                json!([{"op": "test", "path": "/spec", "value": null}]),
                base.clone(),
            ),
            ("empty patch", json!([]), base.clone()),
            (
                "escaped pointer",
                json!([{"op": "add", "path": "/metadata/labels/example.com~1team", "value": "t"}]),
                json!({"metadata": {"name": "x", "labels": {"a": "1", "example.com/team": "t"}}, "list": [1, 2, 3]}),
            ),
        ];
        for (name, patch, want) in cases {
            assert_eq!(json_patch(&base, patch).as_ref(), Ok(want), "{name}");
        }
    }

    #[test]
    fn json_patch_failures_table() {
        let base = json!({"metadata": {"name": "x", "finalizers": ["a"]}, "list": [1]});
        // (name, patch, is_bad_request, substrings the message must contain)
        let cases: &[(&str, Value, bool, &[&str])] = &[
            (
                "object instead of array",
                json!({"op": "add"}),
                true,
                &["array of operations"],
            ),
            (
                "unknown op",
                json!([{"op": "frobnicate", "path": "/a"}]),
                true,
                &["operation 0", "frobnicate"],
            ),
            (
                "missing path",
                json!([{"op": "remove"}]),
                true,
                &["operation 0"],
            ),
            (
                "pointer without slash",
                json!([{"op": "remove", "path": "a"}]),
                true,
                &["operation 0"],
            ),
            (
                "test value mismatch",
                json!([{"op": "test", "path": "/metadata/name", "value": "y"}]),
                false,
                &["test", "/metadata/name"],
            ),
            (
                "test non-null against missing",
                json!([{"op": "test", "path": "/metadata/labels", "value": {}}]),
                false,
                &["test", "/metadata/labels", "does not exist"],
            ),
            (
                "test null under missing parent",
                json!([{"op": "test", "path": "/spec/x", "value": null}]),
                false,
                &["test", "/spec/x"],
            ),
            (
                "remove missing",
                json!([{"op": "remove", "path": "/spec"}]),
                false,
                &["remove", "/spec"],
            ),
            (
                "replace missing",
                json!([{"op": "replace", "path": "/metadata/uid", "value": "u"}]),
                false,
                &["replace", "/metadata/uid"],
            ),
            (
                "bad index",
                json!([{"op": "add", "path": "/list/5", "value": 1}]),
                false,
                &["add", "/list/5"],
            ),
            (
                "non-numeric index",
                json!([{"op": "remove", "path": "/list/x"}]),
                false,
                &["remove", "/list/x"],
            ),
            (
                "move from missing",
                json!([{"op": "move", "from": "/nope", "path": "/x"}]),
                false,
                &["move", "/nope", "/x"],
            ),
            (
                "second op fails",
                json!([{"op": "add", "path": "/a", "value": 1}, {"op": "remove", "path": "/b"}]),
                false,
                &["remove", "/b"],
            ),
        ];
        for (name, patch, bad_request, needles) in cases {
            let message = match (json_patch(&base, patch), bad_request) {
                (Err(PatchError::BadRequest(m)), true) | (Err(PatchError::Invalid(m)), false) => m,
                (other, _) => panic!("{name}: unexpected {other:?}"),
            };
            for needle in *needles {
                assert!(
                    message.contains(needle),
                    "{name}: {message:?} lacks {needle:?}"
                );
            }
        }
    }

    #[test]
    fn kube_runtime_finalizer_add_on_object_without_finalizers() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"}});
        let patch = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["x"]}
        ]);
        let want = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "ns", "finalizers": ["x"]}
        });
        assert_eq!(json_patch(&obj, &patch), Ok(want));

        // A second controller racing in must fail the test once finalizers exist.
        let with = json!({"metadata": {"name": "cm", "finalizers": ["y"]}});
        assert!(
            matches!(json_patch(&with, &patch), Err(PatchError::Invalid(m)) if m.contains("/metadata/finalizers"))
        );
    }

    #[test]
    fn kube_runtime_finalizer_append_and_remove() {
        let obj = json!({"metadata": {"name": "cm", "finalizers": ["x"]}});
        let append = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": ["x"]},
            {"op": "add", "path": "/metadata/finalizers/-", "value": "y"}
        ]);
        assert_eq!(
            json_patch(&obj, &append),
            Ok(json!({"metadata": {"name": "cm", "finalizers": ["x", "y"]}}))
        );

        let remove = json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": "x"},
            {"op": "remove", "path": "/metadata/finalizers/0"}
        ]);
        assert_eq!(
            json_patch(&obj, &remove),
            Ok(json!({"metadata": {"name": "cm", "finalizers": []}}))
        );

        // Someone else's finalizer at index 0: the test fails and nothing is removed.
        let other = json!({"metadata": {"name": "cm", "finalizers": ["z", "x"]}});
        assert!(matches!(
            json_patch(&other, &remove),
            Err(PatchError::Invalid(m)) if m.contains("test") && m.contains("/metadata/finalizers/0")
        ));
        // Finalizers already gone: index 0 does not exist.
        let gone = json!({"metadata": {"name": "cm", "finalizers": []}});
        assert!(matches!(
            json_patch(&gone, &remove),
            Err(PatchError::Invalid(_))
        ));
    }
}
