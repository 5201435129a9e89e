//! Unit tests for strategic merge patch, including cases from apimachinery's own suite.

use serde_json::json;

use super::directives::is_directive_key;
use super::*;

fn deployment(containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "finalizers": ["a", "b"]},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "template": {"spec": {"containers": containers}},
        },
    })
}

fn containers(v: &Value) -> &Value {
    &v["spec"]["template"]["spec"]["containers"]
}

fn two_containers() -> Value {
    deployment(json!([
        {"name": "app", "image": "app:1", "args": ["--a", "--b"],
         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
        {"name": "sidecar", "image": "side:1"},
    ]))
}

fn smp(original: &Value, patch: Value) -> Value {
    match strategic_merge("apps/v1", "Deployment", original, &patch) {
        Ok(v) => v,
        Err(err) => panic!("patch {patch} failed: {err}"),
    }
}

fn has_directive(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| is_directive_key(k) || has_directive(v)),
        Value::Array(l) => l.iter().any(has_directive),
        _ => false,
    }
}

/// Each case: name, patch, and a check on the result of patching [`two_containers`].
#[test]
fn deployment_cases() {
    type Check = fn(&Value);
    let cases: Vec<(&str, Value, Check)> = vec![
        (
            "container merge by name",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}}),
            |v| {
                assert_eq!(containers(v)[0]["image"], "app:2");
                assert_eq!(containers(v)[0]["args"], json!(["--a", "--b"]));
                assert_eq!(
                    containers(v)[1],
                    json!({"name": "sidecar", "image": "side:1"})
                );
            },
        ),
        (
            // Go puts new elements ahead of the live ones when the patch gives no order.
            "adding a container",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "extra", "image": "x:1"}]}}}}),
            |v| {
                let names: Vec<&str> = containers(v)
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["name"].as_str())
                    .collect();
                assert_eq!(names, ["extra", "app", "sidecar"]);
            },
        ),
        (
            "$patch: delete element",
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "sidecar"}]}}}}),
            |v| {
                assert_eq!(containers(v).as_array().map(Vec::len), Some(1));
                assert_eq!(containers(v)[0]["name"], "app");
            },
        ),
        (
            "finalizers union",
            json!({"metadata": {"finalizers": ["c", "a"]}}),
            |v| assert_eq!(v["metadata"]["finalizers"], json!(["c", "a", "b"])),
        ),
        (
            "$deleteFromPrimitiveList",
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            |v| assert_eq!(v["metadata"]["finalizers"], json!(["b"])),
        ),
        (
            "$setElementOrder orders and is stripped",
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "new"}, {"name": "app"}],
                "containers": [{"name": "new", "image": "n:1"}],
            }}}}),
            |v| {
                let names: Vec<&str> = containers(v)
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["name"].as_str())
                    .collect();
                assert_eq!(names, ["sidecar", "new", "app"]);
            },
        ),
        (
            "$setElementOrder on primitives with deletion",
            json!({"metadata": {
                "$setElementOrder/finalizers": ["b", "z"],
                "finalizers": ["z"],
                "$deleteFromPrimitiveList/finalizers": ["a"],
            }}),
            |v| assert_eq!(v["metadata"]["finalizers"], json!(["b", "z"])),
        ),
        (
            "$retainKeys",
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            |v| assert_eq!(v["spec"]["strategy"], json!({"type": "Recreate"})),
        ),
        (
            "$patch: replace on a map",
            json!({"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}}),
            |v| assert_eq!(v["spec"]["strategy"], json!({"type": "Recreate"})),
        ),
        (
            "null deletes a field",
            json!({"spec": {"replicas": null, "strategy": {"rollingUpdate": null}}}),
            |v| {
                assert!(v["spec"].get("replicas").is_none());
                assert_eq!(v["spec"]["strategy"], json!({"type": "RollingUpdate"}));
            },
        ),
        (
            "env merges by name inside containers",
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}]},
            ]}}}}),
            |v| {
                assert_eq!(
                    containers(v)[0]["env"],
                    json!([
                        {"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "C", "value": "3"},
                    ])
                )
            },
        ),
        (
            "args without merge strategy replaced",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "args": ["--c"]}]}}}}),
            |v| assert_eq!(containers(v)[0]["args"], json!(["--c"])),
        ),
        (
            "$patch: replace element replaces the list",
            json!({"spec": {"template": {"spec": {"containers": [
                {"$patch": "replace"}, {"name": "only", "image": "o:1"},
            ]}}}}),
            |v| assert_eq!(*containers(v), json!([{"name": "only", "image": "o:1"}])),
        ),
        (
            "new subtree keeps no directives or nulls",
            json!({"spec": {"template": {"metadata": {
                "labels": {"a": "1", "b": null}, "$setElementOrder/finalizers": ["x"], "finalizers": ["x"],
            }}}}),
            |v| {
                assert_eq!(
                    v["spec"]["template"]["metadata"],
                    json!({"labels": {"a": "1"}, "finalizers": ["x"]})
                )
            },
        ),
    ];
    let original = two_containers();
    for (name, patch, check) in cases {
        let result = smp(&original, patch);
        assert!(
            !has_directive(&result),
            "{name}: directive left in {result}"
        );
        check(&result);
    }
}

#[test]
fn kubectl_apply_patch_removes_and_orders() {
    // What `kubectl apply` sends after dropping the sidecar and adding a port.
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}],
        "containers": [
            {"name": "app", "$setElementOrder/ports": [{"containerPort": 8080}],
             "ports": [{"containerPort": 8080}]},
            {"$patch": "delete", "name": "sidecar"},
        ],
    }}}});
    let result = smp(&two_containers(), patch);
    assert!(!has_directive(&result), "directive left in {result}");
    assert_eq!(containers(&result).as_array().map(Vec::len), Some(1));
    assert_eq!(
        containers(&result)[0]["ports"],
        json!([{"containerPort": 8080}])
    );
}

#[test]
fn directives_in_replaced_lists_are_stripped() {
    // `spec.versions` of a CRD is atomic, so what kubectl sends inside it is stored as given.
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
    let patch = json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
        "$setElementOrder/x-kubernetes-validations": [{"rule": "a"}],
        "x-kubernetes-validations": [{"rule": "a"}],
    }}}]}});
    let result = strategic_merge(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &crd,
        &patch,
    );
    let result = result.map(|v| v["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone());
    assert_eq!(
        result,
        Ok(json!({"x-kubernetes-validations": [{"rule": "a"}]}))
    );
}

#[test]
fn lease_null_deletes_holder() {
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "l"}, "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}});
    let patch = json!({"spec": {"holderIdentity": null}});
    let result = strategic_merge("coordination.k8s.io/v1", "Lease", &lease, &patch);
    assert_eq!(
        result.map(|v| v["spec"].clone()),
        Ok(json!({"leaseDurationSeconds": 15}))
    );
}

/// apimachinery's test type `MergeItem`, looked up by the last field name as its recursive struct is.
struct GoTestSchema(Vec<(&'static str, FieldInfo)>);

impl Lookup for GoTestSchema {
    fn info(&self, path: &str) -> Option<&FieldInfo> {
        let field = path.rsplit('.').next()?;
        self.0
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, info)| info)
    }
}

fn go_test_schema() -> GoTestSchema {
    let info = |key: Option<&str>, strategy: &str| FieldInfo {
        merge_key: key.map(String::from),
        strategy: Some(strategy.into()),
        ..FieldInfo::default()
    };
    GoTestSchema(vec![
        ("mergingList", info(Some("name"), "merge")),
        ("mergingIntList", info(None, "merge")),
        ("retainKeysMap", info(None, "retainKeys")),
        (
            "retainKeysMergingList",
            info(Some("name"), "merge,retainKeys"),
        ),
    ])
}

/// Cases from apimachinery's patch_test.go (current, three-way patch, result), compared in order.
#[test]
fn go_upstream_cases() {
    let cases = [
        (
            "add map and delete map from merging list",
            json!({"mergingList": [{"name": 1}, {"name": 2, "other": "b"}, {"name": 4, "other": "c"}]}),
            json!({"$setElementOrder/mergingList": [{"name": 2}, {"name": 3}],
                   "mergingList": [{"name": 3}, {"name": 1, "$patch": "delete"}]}),
            json!({"mergingList": [{"name": 2, "other": "b"}, {"name": 4, "other": "c"}, {"name": 3}]}),
        ),
        (
            "add an item in a list of primitives and preserve order",
            json!({"mergingIntList": [1, 4, 2]}),
            json!({"$setElementOrder/mergingIntList": [3, 1, 2], "mergingIntList": [3]}),
            json!({"mergingIntList": [3, 1, 4, 2]}),
        ),
        (
            "set elements order in a list with server-only items",
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 3}, {"name": 4}, {"name": 2}, {"name": 9}]}),
            json!({"$setElementOrder/mergingList": [{"name": 4}, {"name": 2}, {"name": 3}, {"name": 1}]}),
            json!({"mergingList": [{"name": 4}, {"name": 2}, {"name": 3}, {"name": 1, "other": "a"}, {"name": 9}]}),
        ),
        (
            "retainKeys list of maps clears a field",
            json!({"retainKeysMergingList": [{"name": "foo", "value": "a", "other": "x"}, {"name": "bar"}]}),
            json!({"$setElementOrder/retainKeysMergingList": [{"name": "foo"}, {"name": "bar"}],
                   "retainKeysMergingList": [{"name": "foo", "$retainKeys": ["name", "value"]}]}),
            json!({"retainKeysMergingList": [{"name": "foo", "value": "a"}, {"name": "bar"}]}),
        ),
        (
            "retainKeys map adds an item in nested merging int list",
            json!({"retainKeysMap": {"name": "foo", "mergingIntList": [1, 2]}}),
            json!({"retainKeysMap": {"$retainKeys": ["mergingIntList", "name"],
                   "$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3]}}),
            json!({"retainKeysMap": {"name": "foo", "mergingIntList": [1, 2, 3]}}),
        ),
    ];
    let schema = go_test_schema();
    for (name, current, patch, want) in cases {
        assert_eq!(apply(&schema, &current, &patch), Ok(want), "{name}");
    }
}

#[test]
fn errors() {
    let original = two_containers();
    for patch in [json!([1]), json!("x"), json!(null)] {
        let err = strategic_merge("apps/v1", "Deployment", &original, &patch);
        assert!(
            matches!(err, Err(PatchError::BadRequest(_))),
            "{patch}: {err:?}"
        );
    }
    let err = strategic_merge("example.com/v1", "Widget", &json!({}), &json!({"spec": {}}));
    assert_eq!(
        err,
        Err(PatchError::Unsupported(
            "strategic merge patch is not supported for example.com/v1/Widget; use a merge patch or JSON patch".into()
        ))
    );
    let missing_key = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
    let err = strategic_merge("apps/v1", "Deployment", &original, &missing_key);
    assert!(matches!(err, Err(PatchError::BadRequest(_))), "{err:?}");
    let bad_retain = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}});
    let err = strategic_merge("apps/v1", "Deployment", &original, &bad_retain);
    assert!(matches!(err, Err(PatchError::BadRequest(_))), "{err:?}");
}
