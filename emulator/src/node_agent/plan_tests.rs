//! Table-driven tests of the node agent's decisions.

use serde_json::{Value, json};

use super::*;

fn node(annotation: Option<&str>) -> Value {
    let mut n = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
    if let Some(a) = annotation {
        n["metadata"]["annotations"] = json!({ NODE_AGENT_ANNOTATION: a });
    }
    n
}

/// A helper pod as part D writes it.
fn helper(action: &str, dir: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stowage-create-pv1", "namespace": "stowage"},
        "spec": {
            "nodeName": "n1",
            "restartPolicy": "Never",
            "containers": [{
                "name": "helper", "image": "busybox:1.36",
                "env": [
                    {"name": "STOWAGE_ACTION", "value": action},
                    {"name": "STOWAGE_VOLUME_DIR", "value": dir},
                    {"name": "STOWAGE_VOLUME_MODE", "value": "0777"}
                ],
                "volumeMounts": [{"name": "base", "mountPath": "/stowage-base"}]
            }],
            "volumes": [{"name": "base", "hostPath": {"path": "/var/lib/stowage/volumes", "type": "DirectoryOrCreate"}}]
        },
        "status": {"phase": "Pending"}
    })
}

/// `pod` with the field at `pointer` set; its parent must exist.
fn with(mut pod: Value, pointer: &str, value: Value) -> Value {
    let (parent, last) = pointer.rsplit_once('/').expect("a pointer");
    match pod.pointer_mut(parent).expect("parent exists") {
        Value::Array(items) => items[last.parse::<usize>().expect("index")] = value,
        Value::Object(fields) => {
            fields.insert(last.to_string(), value);
        }
        other => panic!("cannot set {pointer} in {other}"),
    }
    pod
}

fn run(pod: &Value) -> Job {
    match decide(pod, Some(&node(None))) {
        Verdict::Run(job) => job,
        other => panic!("expected Run, got {other:?}"),
    }
}

fn failure(pod: &Value) -> String {
    match decide(pod, Some(&node(None))) {
        Verdict::Fail(message) => message,
        other => panic!("expected Fail, got {other:?}"),
    }
}

#[test]
fn create_resolves_through_the_mount_and_host_path() {
    let job = run(&helper("create", "/stowage-base/ns-claim-pv1"));
    assert_eq!(
        job,
        Job {
            node: "n1".into(),
            action: Action::Create { mode: 0o777 },
            base: "var/lib/stowage/volumes".into(),
            create_base: true,
            below: "ns-claim-pv1".into(),
            container_path: "/stowage-base/ns-claim-pv1".into(),
        }
    );
}

#[test]
fn nested_dirs_dots_and_double_slashes_normalise() {
    let job = run(&helper("delete", "/stowage-base//a/./b/c/"));
    assert_eq!(job.action, Action::Delete);
    assert_eq!(job.below, std::path::PathBuf::from("a/b/c"));
}

#[test]
fn modes_parse_as_octal_with_a_default() {
    let cases = [
        ("0750", Some(0o750)),
        ("777", Some(0o777)),
        ("", Some(0o777)),
        ("0999", None),
        ("rwx", None),
        ("17777", None),
    ];
    for (mode, want) in cases {
        let pod = with(
            helper("create", "/stowage-base/x"),
            "/spec/containers/0/env/2/value",
            json!(mode),
        );
        match (decide(&pod, Some(&node(None))), want) {
            (Verdict::Run(job), Some(m)) => {
                assert_eq!(job.action, Action::Create { mode: m }, "{mode}")
            }
            (Verdict::Fail(msg), None) => assert!(msg.contains("STOWAGE_VOLUME_MODE"), "{msg}"),
            (other, _) => panic!("mode {mode:?}: {other:?}"),
        }
    }
    let mut pod = helper("create", "/stowage-base/x");
    pod["spec"]["containers"][0]["env"] = json!([
        {"name": "STOWAGE_ACTION", "value": "create"},
        {"name": "STOWAGE_VOLUME_DIR", "value": "/stowage-base/x"}
    ]);
    assert_eq!(run(&pod).action, Action::Create { mode: 0o777 });
}

#[test]
fn the_deepest_mount_wins_and_sub_path_is_followed() {
    let mut pod = helper("create", "/stowage-base/inner/x");
    pod["spec"]["containers"][0]["volumeMounts"] = json!([
        {"name": "base", "mountPath": "/stowage-base"},
        {"name": "other", "mountPath": "/stowage-base/inner", "subPath": "sub/dir"}
    ]);
    pod["spec"]["volumes"] = json!([
        {"name": "base", "hostPath": {"path": "/a"}},
        {"name": "other", "hostPath": {"path": "/b", "type": "Directory"}}
    ]);
    let job = run(&pod);
    assert_eq!(job.base, std::path::PathBuf::from("b"));
    assert!(!job.create_base);
    assert_eq!(job.below, std::path::PathBuf::from("sub/dir/x"));
}

#[test]
fn escapes_and_bad_input_fail_with_a_message() {
    let base = || helper("create", "/stowage-base/x");
    let cases: Vec<(Value, &str)> = vec![
        (helper("create", "/stowage-base/../etc"), "contains '..'"),
        (
            helper("delete", "/stowage-base/a/../../etc"),
            "contains '..'",
        ),
        (helper("create", "stowage-base/x"), "not an absolute path"),
        (
            helper("create", "/elsewhere/x"),
            "not below any volumeMount",
        ),
        // A prefix of the name is not a parent directory.
        (
            helper("create", "/stowage-basement/x"),
            "not below any volumeMount",
        ),
        (helper("delete", "/stowage-base"), "refusing to delete"),
        (helper("resize", "/stowage-base/x"), "not supported"),
        (
            with(
                base(),
                "/spec/volumes/0",
                json!({"name": "base", "emptyDir": {}}),
            ),
            "not a hostPath volume",
        ),
        (
            with(base(), "/spec/volumes/0/name", json!("other")),
            "names no volume",
        ),
        (
            with(
                base(),
                "/spec/volumes/0/hostPath/path",
                json!("/var/../etc"),
            ),
            "contains '..'",
        ),
        (
            with(base(), "/spec/volumes/0/hostPath/path", json!("relative")),
            "not an absolute path",
        ),
        (
            with(base(), "/spec/volumes/0/hostPath/type", json!("File")),
            "not a directory type",
        ),
        (
            with(
                base(),
                "/spec/containers/0/volumeMounts/0/subPath",
                json!("../up"),
            ),
            "contains '..'",
        ),
        (
            with(base(), "/spec/containers/0/env/1/value", json!("")),
            "STOWAGE_VOLUME_DIR is not set",
        ),
        (
            with(base(), "/spec/nodeName", json!("..")),
            "cannot be used as a directory name",
        ),
        (
            with(base(), "/spec/nodeName", json!("a/b")),
            "cannot be used as a directory name",
        ),
    ];
    for (pod, want) in cases {
        let message = failure(&pod);
        assert!(
            message.contains(want),
            "{message:?} should contain {want:?}"
        );
    }
}

#[test]
fn other_pods_are_ignored() {
    let base = || helper("create", "/stowage-base/x");
    let mut no_action = base();
    no_action["spec"]["containers"][0]["env"] = json!([{"name": "OTHER", "value": "1"}]);
    let mut second_container_only = no_action.clone();
    second_container_only["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .push(base()["spec"]["containers"][0].clone());
    let mut unbound = base();
    unbound["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("nodeName");
    let cases = [
        no_action,
        second_container_only,
        unbound,
        with(base(), "/status/phase", json!("Succeeded")),
        with(base(), "/status/phase", json!("Failed")),
        with(base(), "/status/phase", json!("Running")),
        with(
            base(),
            "/metadata",
            json!({"name": "p", "deletionTimestamp": "2024-01-01T00:00:00Z"}),
        ),
    ];
    for pod in cases {
        assert_eq!(decide(&pod, Some(&node(None))), Verdict::Ignore, "{pod}");
    }
}

#[test]
fn the_node_decides_whether_the_pod_may_start() {
    let pod = helper("create", "/stowage-base/x");
    assert_eq!(decide(&pod, None), Verdict::Wait);
    assert_eq!(decide(&pod, Some(&node(Some("paused")))), Verdict::Wait);
    assert!(
        matches!(decide(&pod, Some(&node(Some("fail")))), Verdict::Fail(m) if m.contains("=fail"))
    );
    assert!(matches!(
        decide(&pod, Some(&node(Some("other")))),
        Verdict::Run(_)
    ));
    // Refusals of bad paths still wait for the node: nothing runs on a node that is not there.
    assert_eq!(decide(&helper("create", "/elsewhere"), None), Verdict::Wait);
}
