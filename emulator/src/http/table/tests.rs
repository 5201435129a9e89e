//! Unit tests for server-side Table printing.

use super::*;
use crate::resources::Registry;

#[test]
fn pods_print_like_kubectl() {
    let rt = Registry::builtin().get("", "v1", "pods").expect("pods");
    let pod = json!({"metadata": {"name": "web-1", "creationTimestamp": "2020-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", "containerStatuses": [{"ready": true, "restartCount": 2}, {"ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
    let t = table(&rt, &[pod], None, None);
    assert_eq!(t["columnDefinitions"][1]["name"], "Ready");
    assert_eq!(t["rows"][0]["cells"][0], "web-1");
    assert_eq!(t["rows"][0]["cells"][1], "1/2");
    assert_eq!(t["rows"][0]["cells"][2], "CrashLoopBackOff");
    assert_eq!(t["rows"][0]["cells"][3], 3);
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[test]
fn accept_header_detection() {
    assert!(wants_table(Some(
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    )));
    assert!(!wants_table(Some("application/json")));
    assert!(!wants_table(None));
}

#[test]
fn ages_are_short() {
    let ts = (chrono::Utc::now() - chrono::Duration::seconds(3700)).to_rfc3339();
    assert_eq!(human_age(&ts), "61m");
    assert_eq!(human_age("garbage"), "<unknown>");
}

#[test]
fn crd_printer_columns_use_jsonpath_filters() {
    let mut rt = Registry::builtin()
        .get("", "v1", "configmaps")
        .expect("configmaps");
    std::sync::Arc::make_mut(&mut rt).builtin = false;
    std::sync::Arc::make_mut(&mut rt).printer_columns = vec![
        json!({"name": "Synced", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Synced\")].status"}),
        json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
    ];
    let obj = json!({"metadata": {"name": "m", "creationTimestamp": "2020-01-01T00:00:00Z"},
        "status": {"conditions": [{"type": "Other", "status": "False"}, {"type": "Synced", "status": "True"}]}});
    let t = table(&rt, &[obj], None, None);
    let names: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .expect("defs")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, vec!["Name", "Synced", "Age"], "no second Age column");
    assert_eq!(t["rows"][0]["cells"][1], "True");
    assert!(
        t["rows"][0]["cells"][2]
            .as_str()
            .is_some_and(|a| a.ends_with('d'))
    );
}
