//! Unit tests of the pure helper pod builder and status reader.

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::*;

fn params(action: HelperAction) -> HelperPodParams {
    HelperPodParams {
        namespace: "stowage".to_string(),
        image: "busybox:1.36".to_string(),
        action,
        pv_name: "pvc-0b8e".to_string(),
        node: "worker-1".to_string(),
        base_path: PathBuf::from("/var/lib/stowage/volumes"),
        relative_dir: PathBuf::from("team-a/data-pvc-0b8e"),
        mode: DEFAULT_MODE,
    }
}

#[test]
fn create_pod_is_exactly_the_protocol() {
    let pod = helper_pod(&params(HelperAction::Create));
    let want = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "stowage-create-pvc-0b8e",
            "namespace": "stowage",
            "labels": {
                "app.kubernetes.io/component": "volume-helper",
                "app.kubernetes.io/name": "stowage",
                "stowage.io/volume": "pvc-0b8e"
            }
        },
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "helper",
                "image": "busybox:1.36",
                "command": ["/bin/sh", "-c"],
                "args": ["mkdir -m \"$STOWAGE_VOLUME_MODE\" -p \"$STOWAGE_VOLUME_DIR\""],
                "env": [
                    {"name": "STOWAGE_ACTION", "value": "create"},
                    {"name": "STOWAGE_VOLUME_DIR", "value": "/stowage-base/team-a/data-pvc-0b8e"},
                    {"name": "STOWAGE_VOLUME_MODE", "value": "0777"}
                ],
                "volumeMounts": [{"name": "base", "mountPath": "/stowage-base"}]
            }],
            "nodeName": "worker-1",
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "volumes": [{
                "name": "base",
                "hostPath": {"path": "/var/lib/stowage/volumes", "type": "DirectoryOrCreate"}
            }]
        }
    });
    assert_eq!(serde_json::to_value(&pod).expect("json"), want);
}

#[test]
fn delete_pod_removes_the_tree() {
    let pod = helper_pod(&params(HelperAction::Delete));
    assert_eq!(
        pod.metadata.name.as_deref(),
        Some("stowage-delete-pvc-0b8e")
    );
    let container = &pod.spec.as_ref().expect("spec").containers[0];
    assert_eq!(
        container.args.as_deref(),
        Some(&["rm -rf \"$STOWAGE_VOLUME_DIR\"".to_string()][..])
    );
    let action = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "STOWAGE_ACTION")
        .and_then(|e| e.value.as_deref());
    assert_eq!(action, Some("delete"));
}

#[test]
fn mode_is_written_in_octal() {
    let mut p = params(HelperAction::Create);
    p.mode = 0o750;
    let pod = helper_pod(&p);
    let mode = pod.spec.as_ref().expect("spec").containers[0]
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "STOWAGE_VOLUME_MODE")
        .and_then(|e| e.value.clone());
    assert_eq!(mode.as_deref(), Some("0750"));
}

#[test]
fn long_volume_names_give_distinct_names_of_at_most_63_chars() {
    let a = "pvc-".to_string() + &"a".repeat(80);
    let b = "pvc-".to_string() + &"a".repeat(79) + "b";
    let name_a = helper_pod_name(HelperAction::Create, &a);
    let name_b = helper_pod_name(HelperAction::Create, &b);
    assert_eq!(name_a.len(), 63, "{name_a}");
    assert_eq!(name_b.len(), 63, "{name_b}");
    assert_ne!(name_a, name_b);
    assert!(name_a.starts_with("stowage-create-pvc-aaaa"), "{name_a}");
    assert_eq!(name_a, helper_pod_name(HelperAction::Create, &a), "stable");
    // The label value obeys the same limit.
    let mut p = params(HelperAction::Create);
    p.pv_name = a;
    let pod = helper_pod(&p);
    let label = &pod.metadata.labels.as_ref().expect("labels")[LABEL_VOLUME];
    assert!(label.len() <= 63, "{label}");
}

#[test]
fn name_of_exactly_63_chars_is_kept() {
    let pv = "p".repeat(63 - "stowage-delete-".len());
    let name = helper_pod_name(HelperAction::Delete, &pv);
    assert_eq!(name, format!("stowage-delete-{pv}"));
}

fn pod_with_status(status: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "status": status
    }))
    .expect("pod")
}

#[test]
fn outcome_reads_phase_and_termination() {
    assert_eq!(
        helper_outcome(&pod_with_status(json!({}))),
        HelperOutcome::Running
    );
    assert_eq!(
        helper_outcome(&pod_with_status(json!({"phase": "Pending"}))),
        HelperOutcome::Running
    );
    assert_eq!(
        helper_outcome(&pod_with_status(json!({"phase": "Succeeded"}))),
        HelperOutcome::Succeeded
    );
    let failed = pod_with_status(json!({
        "phase": "Failed",
        "containerStatuses": [{
            "name": "helper", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": "Permission denied"}}
        }]
    }));
    assert_eq!(
        helper_outcome(&failed),
        HelperOutcome::Failed("exit code 1: Error: Permission denied".to_string())
    );
    let repeated = pod_with_status(json!({
        "phase": "Failed",
        "message": "mkdir: Permission denied",
        "containerStatuses": [{
            "name": "helper", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": "mkdir: Permission denied"}}
        }]
    }));
    assert_eq!(
        helper_outcome(&repeated),
        HelperOutcome::Failed("exit code 1: Error: mkdir: Permission denied".to_string())
    );
    assert_eq!(
        helper_outcome(&pod_with_status(json!({"phase": "Failed"}))),
        HelperOutcome::Failed("phase Failed without a message".to_string())
    );
}

#[test]
fn orphaned_pods_are_finished_or_older_than_twice_the_timeout() {
    let now: k8s_openapi::jiff::Timestamp = "2026-01-01T12:00:00Z".parse().expect("time");
    let timeout = std::time::Duration::from_secs(120);
    let pod = |phase: &str, created: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "creationTimestamp": created},
            "status": {"phase": phase}
        }))
        .expect("pod")
    };
    assert!(is_orphaned(
        &pod("Succeeded", "2026-01-01T11:59:59Z"),
        now,
        timeout
    ));
    assert!(is_orphaned(
        &pod("Failed", "2026-01-01T11:59:59Z"),
        now,
        timeout
    ));
    assert!(!is_orphaned(
        &pod("Pending", "2026-01-01T11:56:00Z"),
        now,
        timeout
    ));
    assert!(is_orphaned(
        &pod("Pending", "2026-01-01T11:55:59Z"),
        now,
        timeout
    ));
    assert!(
        !is_orphaned(&pod("Running", "2026-01-01T12:00:30Z"), now, timeout),
        "clock skew"
    );
}
