//! Unit tests for server-side apply and managedFields bookkeeping.

use super::*;
use serde_json::json;

const T1: &str = "2024-05-01T10:00:00Z";
const T2: &str = "2024-05-01T11:00:00Z";
const T3: &str = "2024-05-01T12:00:00Z";

fn req<'a>(
    api_version: &'a str,
    kind: &'a str,
    manager: &'a str,
    now: &'a str,
) -> ApplyRequest<'a> {
    ApplyRequest {
        api_version,
        kind,
        manager,
        force: false,
        subresource: None,
        now,
    }
}

fn deploy<'a>(manager: &'a str, now: &'a str) -> ApplyRequest<'a> {
    req("apps/v1", "Deployment", manager, now)
}

fn deployment(replicas: i64, labels: Value, containers: &[(&str, &str)]) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|(name, image)| json!({"name": name, "image": image}))
        .collect();
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers}
            }
        }
    })
}

fn configmap(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}, "data": data})
}

fn widget(spec: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"}, "spec": spec})
}

fn entries(obj: &Value) -> Vec<Value> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn entry(obj: &Value, manager: &str, operation: &str) -> Option<Value> {
    entries(obj)
        .into_iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

/// Whether `manager`'s entry owns the FieldsV1 path `keys`.
fn owns(obj: &Value, manager: &str, operation: &str, keys: &[&str]) -> bool {
    let Some(entry) = entry(obj, manager, operation) else {
        return false;
    };
    let mut node = &entry["fieldsV1"];
    for key in keys {
        match node.get(*key) {
            Some(next) => node = next,
            None => return false,
        }
    }
    true
}

fn without_managed(obj: &Value) -> Value {
    let mut obj = obj.clone();
    strip_managed_fields(&mut obj);
    obj
}

fn ok(result: Result<Value, PatchError>) -> Value {
    match result {
        Ok(v) => v,
        Err(err) => panic!("apply failed: {err}"),
    }
}

const CONTAINERS: [&str; 6] = [
    "f:spec",
    "f:template",
    "f:spec",
    "f:containers",
    "k:{\"name\":\"app\"}",
    "f:image",
];

#[test]
fn create_on_apply() {
    let cases = [
        (
            "apps/v1",
            "Deployment",
            deployment(2, json!({"app": "web"}), &[("app", "nginx:1")]),
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {"f:matchLabels": {"f:app": {}}},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                    }
                }
            }),
        ),
        (
            "v1",
            "ConfigMap",
            configmap(json!({"a": "1", "b": "2"})),
            json!({"f:data": {"f:a": {}, "f:b": {}}}),
        ),
        (
            "example.com/v1",
            "Widget",
            widget(json!({"size": 3, "tags": ["a", "b"], "nested": {"x": 1}})),
            json!({"f:spec": {"f:size": {}, "f:tags": {}, "f:nested": {"f:x": {}}}}),
        ),
    ];
    for (api_version, kind, applied, fields) in cases {
        let out = ok(apply(&req(api_version, kind, "mgr", T1), None, &applied));
        assert_eq!(without_managed(&out), applied, "{kind}");
        assert_eq!(
            entries(&out),
            vec![json!({
                "manager": "mgr", "operation": "Apply", "apiVersion": api_version, "time": T1,
                "fieldsType": "FieldsV1", "fieldsV1": fields
            })],
            "{kind}"
        );
    }
}

#[test]
fn reapply_identical_is_a_no_op() {
    let cases = [
        (
            "apps/v1",
            "Deployment",
            deployment(
                2,
                json!({"app": "web"}),
                &[("app", "nginx:1"), ("side", "busybox")],
            ),
        ),
        ("v1", "ConfigMap", configmap(json!({"a": "1"}))),
        (
            "example.com/v1",
            "Widget",
            widget(json!({"size": 3, "tags": ["a"]})),
        ),
    ];
    for (api_version, kind, applied) in cases {
        let first = ok(apply(&req(api_version, kind, "mgr", T1), None, &applied));
        let second = ok(apply(
            &req(api_version, kind, "mgr", T2),
            Some(&first),
            &applied,
        ));
        assert_eq!(second.to_string(), first.to_string(), "{kind}");
    }
}

#[test]
fn fields_the_manager_stops_applying_are_removed() {
    let cases = [
        (
            "label",
            "apps/v1",
            "Deployment",
            deployment(1, json!({"app": "web", "tier": "fe"}), &[("app", "nginx")]),
            deployment(1, json!({"app": "web"}), &[("app", "nginx")]),
            "/metadata/labels/tier",
        ),
        (
            "container",
            "apps/v1",
            "Deployment",
            deployment(
                1,
                json!({"app": "web"}),
                &[("app", "nginx"), ("sidecar", "envoy")],
            ),
            deployment(1, json!({"app": "web"}), &[("app", "nginx")]),
            "/spec/template/spec/containers/1",
        ),
        (
            "data key",
            "v1",
            "ConfigMap",
            configmap(json!({"a": "1", "b": "2"})),
            configmap(json!({"a": "1"})),
            "/data/b",
        ),
        (
            "custom field",
            "example.com/v1",
            "Widget",
            widget(json!({"size": 3, "color": "red"})),
            widget(json!({"size": 3})),
            "/spec/color",
        ),
    ];
    for (name, api_version, kind, first, second, gone) in cases {
        let live = ok(apply(&req(api_version, kind, "mgr", T1), None, &first));
        let out = ok(apply(
            &req(api_version, kind, "mgr", T2),
            Some(&live),
            &second,
        ));
        assert_eq!(out.pointer(gone), None, "{name}");
        assert_eq!(without_managed(&out), second, "{name}");
        assert_eq!(
            entry(&out, "mgr", "Apply").map(|e| e["time"].clone()),
            Some(json!(T2)),
            "{name}"
        );
    }

    // Dropping the last label drops the emptied map, and the container's key leaves FieldsV1.
    let live = ok(apply(
        &deploy("mgr", T1),
        None,
        &deployment(1, json!({"app": "web"}), &[("app", "x"), ("b", "y")]),
    ));
    let mut second = deployment(1, json!({}), &[("app", "x")]);
    if let Some(meta) = second
        .pointer_mut("/metadata")
        .and_then(Value::as_object_mut)
    {
        meta.remove("labels");
    }
    let out = ok(apply(&deploy("mgr", T2), Some(&live), &second));
    assert_eq!(out.pointer("/metadata/labels"), None);
    assert!(!owns(
        &out,
        "mgr",
        "Apply",
        &[
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"b\"}"
        ]
    ));
}

#[test]
fn fields_shared_with_another_manager_are_kept() {
    let both = deployment(
        1,
        json!({"app": "web", "tier": "fe"}),
        &[("app", "nginx"), ("sidecar", "envoy")],
    );
    let live = ok(apply(&deploy("a", T1), None, &both));
    // b applies the same label value and the same sidecar: shared ownership, no conflict.
    let mut b_config = deployment(1, json!({"tier": "fe"}), &[("sidecar", "envoy")]);
    if let Some(spec) = b_config.pointer_mut("/spec").and_then(Value::as_object_mut) {
        spec.remove("replicas");
        spec.remove("selector");
    }
    let live = ok(apply(&deploy("b", T2), Some(&live), &b_config));
    assert!(owns(
        &live,
        "a",
        "Apply",
        &["f:metadata", "f:labels", "f:tier"]
    ));
    assert!(owns(
        &live,
        "b",
        "Apply",
        &["f:metadata", "f:labels", "f:tier"]
    ));

    let out = ok(apply(
        &deploy("a", T3),
        Some(&live),
        &deployment(1, json!({"app": "web"}), &[("app", "nginx")]),
    ));
    assert_eq!(out.pointer("/metadata/labels/tier"), Some(&json!("fe")));
    let names: Vec<&Value> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|c| c.iter().map(|c| &c["name"]).collect())
        .unwrap_or_default();
    assert_eq!(names, [&json!("app"), &json!("sidecar")]);
    assert!(!owns(
        &out,
        "a",
        "Apply",
        &["f:metadata", "f:labels", "f:tier"]
    ));
    assert!(owns(
        &out,
        "b",
        "Apply",
        &["f:metadata", "f:labels", "f:tier"]
    ));
    assert!(!owns(
        &out,
        "a",
        "Apply",
        &[
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"sidecar\"}"
        ]
    ));
    assert!(owns(
        &out,
        "b",
        "Apply",
        &[
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"sidecar\"}",
            "."
        ]
    ));
}

#[test]
fn conflicts_between_appliers() {
    let live = ok(apply(
        &deploy("a", T1),
        None,
        &deployment(1, json!({"app": "web"}), &[("app", "nginx:1")]),
    ));
    let replicas = ["f:spec", "f:replicas"];
    // (replicas, image, force, expected conflicts)
    let cases: [(i64, &str, bool, Vec<Conflict>); 4] = [
        (
            2,
            "nginx:1",
            false,
            vec![Conflict {
                field: ".spec.replicas".into(),
                manager: "a".into(),
            }],
        ),
        (
            2,
            "nginx:2",
            false,
            vec![
                Conflict {
                    field: ".spec.replicas".into(),
                    manager: "a".into(),
                },
                Conflict {
                    field: ".spec.template.spec.containers[name=\"app\"].image".into(),
                    manager: "a".into(),
                },
            ],
        ),
        (1, "nginx:1", false, vec![]),
        (2, "nginx:1", true, vec![]),
    ];
    for (value, image, force, expected) in cases {
        let config = deployment(value, json!({"app": "web"}), &[("app", image)]);
        let request = ApplyRequest {
            force,
            ..deploy("b", T2)
        };
        match apply(&request, Some(&live), &config) {
            Err(PatchError::Conflict(conflicts)) => {
                assert_eq!(conflicts, expected, "{value} {image}")
            }
            Err(err) => panic!("unexpected error {err}"),
            Ok(out) => {
                assert!(expected.is_empty(), "{value} {image}: expected a conflict");
                assert_eq!(out["spec"]["replicas"], json!(value));
                assert!(owns(&out, "b", "Apply", &replicas));
                // Same value: shared. Forced: moved to b, the rest of a's fields stay with a.
                assert_eq!(
                    owns(&out, "a", "Apply", &replicas),
                    !force,
                    "{value} force={force}"
                );
                assert!(owns(&out, "a", "Apply", &CONTAINERS));
            }
        }
    }
}

#[test]
fn conflicts_with_an_update_manager() {
    let created = deployment(1, json!({"app": "web"}), &[("app", "nginx:1")]);
    let live = record_update(
        "apps/v1",
        "Deployment",
        "kubectl-create",
        None,
        T1,
        None,
        &created,
    );
    assert!(owns(
        &live,
        "kubectl-create",
        "Update",
        &["f:spec", "f:replicas"]
    ));

    let err = apply(
        &deploy("ssa", T2),
        Some(&live),
        &deployment(3, json!({"app": "web"}), &[("app", "nginx:1")]),
    );
    assert_eq!(
        err,
        Err(PatchError::Conflict(vec![Conflict {
            field: ".spec.replicas".into(),
            manager: "kubectl-create".into()
        }]))
    );

    let forced = ApplyRequest {
        force: true,
        ..deploy("ssa", T2)
    };
    let out = ok(apply(
        &forced,
        Some(&live),
        &deployment(3, json!({"app": "web"}), &[("app", "nginx:1")]),
    ));
    assert_eq!(out["spec"]["replicas"], json!(3));
    assert!(!owns(
        &out,
        "kubectl-create",
        "Update",
        &["f:spec", "f:replicas"]
    ));
    assert!(owns(&out, "kubectl-create", "Update", &CONTAINERS));
    // Apply entries sort before Update entries, like the API server writes them.
    let order: Vec<Value> = entries(&out)
        .iter()
        .map(|e| e["operation"].clone())
        .collect();
    assert_eq!(order, [json!("Apply"), json!("Update")]);
}

#[test]
fn objects_without_managed_fields_belong_to_before_first_apply() {
    let live = deployment(1, json!({"app": "web"}), &[("app", "nginx:1")]);
    let err = apply(
        &deploy("ssa", T2),
        Some(&live),
        &deployment(5, json!({"app": "web"}), &[("app", "nginx:1")]),
    );
    assert_eq!(
        err,
        Err(PatchError::Conflict(vec![Conflict {
            field: ".spec.replicas".into(),
            manager: "before-first-apply".into()
        }]))
    );
}

#[test]
fn record_update_takes_changed_fields() {
    let live = ok(apply(
        &deploy("a", T1),
        None,
        &deployment(1, json!({"app": "web", "tier": "fe"}), &[("app", "nginx")]),
    ));

    let scaled = {
        let mut obj = live.clone();
        obj["spec"]["replicas"] = json!(4);
        obj
    };
    let out = record_update(
        "apps/v1",
        "Deployment",
        "hpa",
        None,
        T2,
        Some(&live),
        &scaled,
    );
    assert_eq!(out["spec"]["replicas"], json!(4));
    let hpa = entry(&out, "hpa", "Update");
    assert_eq!(
        hpa.as_ref().map(|e| e["fieldsV1"].clone()),
        Some(json!({"f:spec": {"f:replicas": {}}}))
    );
    assert_eq!(hpa.map(|e| e["time"].clone()), Some(json!(T2)));
    assert!(!owns(&out, "a", "Apply", &["f:spec", "f:replicas"]));
    assert!(owns(&out, "a", "Apply", &CONTAINERS));
    assert_eq!(
        entry(&out, "a", "Apply").map(|e| e["time"].clone()),
        Some(json!(T1))
    );

    // A removed field leaves every set; an identical write records nothing.
    let mut edited = out.clone();
    if let Some(labels) = edited
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove("tier");
    }
    let out = record_update(
        "apps/v1",
        "Deployment",
        "editor",
        None,
        T3,
        Some(&out),
        &edited,
    );
    assert!(!owns(
        &out,
        "a",
        "Apply",
        &["f:metadata", "f:labels", "f:tier"]
    ));
    assert!(entry(&out, "editor", "Update").is_none());
    let again = record_update(
        "apps/v1",
        "Deployment",
        "editor",
        None,
        T3,
        Some(&out),
        &out,
    );
    assert_eq!(again, out);

    // Create: new maps and list elements are owned with their "." marker.
    let cm = record_update(
        "v1",
        "ConfigMap",
        "kubectl-create",
        None,
        T1,
        None,
        &configmap(json!({"k": "v"})),
    );
    assert_eq!(
        entry(&cm, "kubectl-create", "Update").map(|e| e["fieldsV1"].clone()),
        Some(json!({"f:data": {".": {}, "f:k": {}}}))
    );

    // managedFields: [] in a write resets tracking to just this write's changes.
    let mut reset = cm.clone();
    reset["metadata"]["managedFields"] = json!([]);
    let out = record_update(
        "v1",
        "ConfigMap",
        "kubectl-edit",
        None,
        T2,
        Some(&cm),
        &reset,
    );
    assert_eq!(out.pointer("/metadata/managedFields"), None);
}

#[test]
fn status_apply_leaves_spec_alone() {
    let live = ok(apply(
        &deploy("a", T1),
        None,
        &deployment(2, json!({"app": "web"}), &[("app", "nginx")]),
    ));
    let status = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"hijack": "yes"}},
        "spec": {"replicas": 99},
        "status": {"readyReplicas": 2, "conditions": [{"type": "Available", "status": "True"}]}
    });
    let request = ApplyRequest {
        subresource: Some("status"),
        ..deploy("ctrl", T2)
    };
    let out = ok(apply(&request, Some(&live), &status));
    assert_eq!(out["spec"], live["spec"]);
    assert_eq!(out["metadata"]["labels"], live["metadata"]["labels"]);
    assert_eq!(out["status"], status["status"]);
    let ctrl = entry(&out, "ctrl", "Apply");
    assert_eq!(
        ctrl.as_ref().map(|e| e["subresource"].clone()),
        Some(json!("status"))
    );
    assert_eq!(
        ctrl.map(|e| e["fieldsV1"].clone()),
        Some(json!({"f:status": {
            "f:conditions": {"k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}},
            "f:readyReplicas": {}
        }}))
    );
    assert_eq!(entry(&out, "a", "Apply"), entry(&live, "a", "Apply"));

    // The main-resource applier does not own status, so its next apply keeps it.
    let again = ok(apply(
        &deploy("a", T3),
        Some(&out),
        &deployment(2, json!({"app": "web"}), &[("app", "nginx")]),
    ));
    assert_eq!(again["status"], status["status"]);
}

#[test]
fn fields_v1_encoding_is_literal() {
    let mut config = deployment(1, json!({"app": "web"}), &[("app", "nginx")]);
    config["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
    let out = ok(apply(&deploy("mgr", T1), None, &config));
    let fields = entry(&out, "mgr", "Apply")
        .map(|e| e["fieldsV1"].to_string())
        .unwrap_or_default();
    assert!(
        fields.contains(
            r#""f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}"#
        ),
        "{fields}"
    );
    assert!(
        fields.starts_with(r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{}"#),
        "{fields}"
    );
}

#[test]
fn fields_v1_round_trips() {
    let fields = json!({
        "f:metadata": {"f:finalizers": {".": {}, "v:\"a\"": {}}, "f:labels": {".": {}, "f:x": {}}},
        "f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}}, "f:list": {"i:0": {}}}
    });
    let set = Set::from_fields_v1(fields.as_object().unwrap_or(&Map::new()));
    let set = set.unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(Value::Object(set.to_fields_v1()), fields);
    assert!(Set::from_fields_v1(json!({"x:1": {}}).as_object().unwrap_or(&Map::new())).is_err());
}

#[test]
fn null_removes_a_field() {
    let live = ok(apply(
        &deploy("a", T1),
        None,
        &deployment(2, json!({"app": "web"}), &[("app", "nginx")]),
    ));
    let mut config = deployment(2, json!({"app": "web"}), &[("app", "nginx")]);
    config["spec"]["replicas"] = Value::Null;
    let out = ok(apply(&deploy("a", T2), Some(&live), &config));
    assert_eq!(out.pointer("/spec/replicas"), None);
    assert!(!owns(&out, "a", "Apply", &["f:spec", "f:replicas"]));

    // Removing a field someone else owns is a conflict.
    let shared = ok(apply(
        &deploy("b", T2),
        Some(&live),
        &deployment(2, json!({"app": "web"}), &[("app", "nginx")]),
    ));
    assert_eq!(
        apply(&deploy("a", T3), Some(&shared), &config),
        Err(PatchError::Conflict(vec![Conflict {
            field: ".spec.replicas".into(),
            manager: "b".into()
        }]))
    );
}

#[test]
fn new_list_elements_land_where_the_config_puts_them() {
    let live = ok(apply(
        &deploy("a", T1),
        None,
        &deployment(1, json!({"app": "web"}), &[("a", "1"), ("b", "1")]),
    ));
    let out = ok(apply(
        &deploy("a", T2),
        Some(&live),
        &deployment(
            1,
            json!({"app": "web"}),
            &[("a", "1"), ("x", "1"), ("b", "1")],
        ),
    ));
    let names: Vec<Value> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|c| c.iter().map(|c| c["name"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(names, [json!("a"), json!("x"), json!("b")]);

    // Another applier's new container goes after the live ones.
    let mut extra = deployment(1, json!({}), &[("z", "1")]);
    extra["metadata"]
        .as_object_mut()
        .map(|m| m.remove("labels"));
    extra["spec"].as_object_mut().map(|s| s.remove("selector"));
    extra["spec"].as_object_mut().map(|s| s.remove("replicas"));
    let out = ok(apply(&deploy("b", T3), Some(&out), &extra));
    let names: Vec<Value> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|c| c.iter().map(|c| c["name"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(names, [json!("a"), json!("x"), json!("b"), json!("z")]);
}

#[test]
fn malformed_apply_requests() {
    let mut with_managed = configmap(json!({}));
    with_managed["metadata"]["managedFields"] = json!([]);
    let mut wrong_version = configmap(json!({}));
    wrong_version["apiVersion"] = json!("v2");
    let nameless = deployment(1, json!({}), &[]);
    let mut nameless = nameless;
    nameless["spec"]["template"]["spec"]["containers"] = json!([{"image": "x"}]);
    let mut duplicate = deployment(1, json!({}), &[("app", "a"), ("app", "b")]);
    duplicate["kind"] = json!("Deployment");

    let cases = [
        ("v1", "ConfigMap", with_managed, "BadRequest"),
        ("v1", "ConfigMap", wrong_version, "BadRequest"),
        (
            "v1",
            "ConfigMap",
            json!(["not", "an", "object"]),
            "BadRequest",
        ),
        ("apps/v1", "Deployment", nameless, "Invalid"),
        ("apps/v1", "Deployment", duplicate, "Invalid"),
    ];
    for (api_version, kind, applied, expected) in cases {
        let got = match apply(&req(api_version, kind, "m", T1), None, &applied) {
            Err(PatchError::BadRequest(_)) => "BadRequest",
            Err(PatchError::Invalid(_)) => "Invalid",
            other => panic!("{applied}: unexpected {other:?}"),
        };
        assert_eq!(got, expected, "{applied}");
    }
}

#[test]
fn record_update_of_stored_agrees_with_record_update() {
    let live = ok(apply(
        &deploy("a", T1),
        None,
        &deployment(1, json!({"app": "web", "tier": "fe"}), &[("app", "nginx")]),
    ));
    let mut changed = live.clone();
    changed["spec"]["replicas"] = json!(3);
    changed["metadata"]["labels"] = json!({"app": "web", "new": "x"});
    changed["status"] = json!({"readyReplicas": 3});
    let mut without = changed.clone();
    strip_managed_fields(&mut without);
    for subresource in [None, Some("status")] {
        for (old, new) in [(&live, &changed), (&live, &live), (&changed, &live)] {
            let mut bare = new.clone();
            strip_managed_fields(&mut bare);
            let expected = record_update(
                "apps/v1",
                "Deployment",
                "editor",
                subresource,
                T2,
                Some(old),
                new,
            );
            let got = record_update_of_stored(
                "apps/v1",
                "Deployment",
                "editor",
                subresource,
                T2,
                old,
                bare,
            );
            assert_eq!(got, expected);
        }
    }
    // No managedFields stored (or an invalid list): tracking starts from this write.
    for stored in [without.clone(), {
        let mut bad = without.clone();
        bad["metadata"]["managedFields"] = json!([{"operation": "Bogus"}]);
        bad
    }] {
        let got = record_update_of_stored(
            "apps/v1",
            "Deployment",
            "editor",
            None,
            T2,
            &stored,
            live.clone(),
        );
        let mut sent = live.clone();
        sent["metadata"]["managedFields"] = stored
            .pointer("/metadata/managedFields")
            .cloned()
            .unwrap_or(json!([]));
        let expected = record_update(
            "apps/v1",
            "Deployment",
            "editor",
            None,
            T2,
            Some(&stored),
            &sent,
        );
        assert_eq!(got, expected);
    }
}

#[test]
fn kept_entries_record_what_decoded_ones_do() {
    // A chain of writes, each recorded from the entries the previous write returned (as the
    // state keeps them beside the object): every result must be the one recording from the
    // stored list gives, whether a write takes fields from other managers or leaves them be.
    let live = ok(apply(
        &deploy("a", T1),
        None,
        &deployment(1, json!({"app": "web"}), &[("app", "nginx")]),
    ));
    type Step = (
        &'static str,
        Option<&'static str>,
        &'static str,
        fn(&mut Value),
    );
    let steps: [Step; 7] = [
        ("editor", None, T2, |v| v["spec"]["replicas"] = json!(3)),
        ("binder", Some("status"), T2, |v| {
            v["status"] = json!({"readyReplicas": 3})
        }),
        ("editor", None, T3, |v| {
            v["metadata"]["labels"]["tier"] = json!("fe")
        }),
        ("editor", None, T3, |_| {}),
        ("other", None, T3, |v| {
            v["metadata"]["labels"] = json!({"app": "web"});
            v["spec"]["replicas"] = json!(4);
        }),
        ("binder", Some("status"), T3, |v| {
            v["status"] = json!({"readyReplicas": 4})
        }),
        ("other", None, T3, |v| v["spec"]["paused"] = json!(true)),
    ];
    let mut stored = live.clone();
    let mut kept = Managed::decode(&live);
    for (i, (manager, subresource, now, change)) in steps.into_iter().enumerate() {
        let mut next = stored.clone();
        strip_managed_fields(&mut next);
        change(&mut next);
        let expected = record_update_of_stored(
            "apps/v1",
            "Deployment",
            manager,
            subresource,
            now,
            &stored,
            next.clone(),
        );
        let (got, entries) = record_update_with(
            "apps/v1",
            "Deployment",
            manager,
            subresource,
            now,
            &stored,
            &kept,
            next,
        );
        assert_eq!(got, expected, "step {i}");
        stored = got;
        kept = entries;
    }
    let managers: Vec<&str> = stored["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["a", "binder", "other"], "{stored}");
}

#[test]
fn comparison_without_managed_fields_matches_a_stripped_comparison() {
    // compare_without_managed_fields skips equal subtrees; the sets it finds must be those of
    // comparing stripped copies path by path.
    let ctx = walk::Ctx {
        api_version: "apps/v1",
        kind: "Deployment",
    };
    let base = ok(apply(
        &deploy("a", T1),
        None,
        &deployment(
            1,
            json!({"app": "web"}),
            &[("app", "nginx"), ("side", "envoy")],
        ),
    ));
    let changes: [fn(&mut Value); 6] = [
        |_| {},
        |v| v["spec"]["replicas"] = json!(3),
        |v| v["status"] = json!({"readyReplicas": 3}),
        |v| v["metadata"]["labels"] = json!({"app": "web", "tier": "fe"}),
        |v| v["spec"]["template"]["spec"]["containers"][1]["image"] = json!("envoy:2"),
        |v| {
            v["metadata"]["annotations"] = json!({"a": "b"});
            v["metadata"]["managedFields"] = json!([]);
            v["spec"]["paused"] = json!(true);
        },
    ];
    for (i, change) in changes.iter().enumerate() {
        let mut other = base.clone();
        change(&mut other);
        for (lhs, rhs) in [(&base, &other), (&other, &base)] {
            let got = compare::compare_without_managed_fields(&ctx, lhs, rhs);
            let expected =
                compare::compare_objects(&ctx, &without_managed(lhs), &without_managed(rhs));
            assert_eq!(got.modified, expected.modified, "change {i}");
            assert_eq!(got.added, expected.added, "change {i}");
            assert_eq!(got.removed, expected.removed, "change {i}");
        }
    }
    let unchanged = compare::compare_without_managed_fields(&ctx, &base, &base);
    assert!(unchanged.modified.is_empty() && unchanged.added.is_empty());
    let mut scaled = base.clone();
    scaled["spec"]["replicas"] = json!(5);
    let scaled = compare::compare_without_managed_fields(&ctx, &base, &scaled);
    assert!(!scaled.modified.is_empty(), "a changed field must be found");
}
