//! hostPath provisioner: the pure decisions (node, base path, directory, PV, location).

use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use super::*;
use crate::storage::class::{HOSTPATH_PROVISIONER, HostPathParams};
use crate::storage::provision::fixtures::{claim, class, request};

pub(super) fn settings() -> HostPathSettings {
    HostPathSettings {
        namespace: "stowage".to_string(),
        helper_image: "busybox:1.36".to_string(),
        helper_timeout: Duration::from_secs(10),
        default_paths: vec![PathBuf::from("/var/lib/stowage/volumes")],
        node_paths: BTreeMap::from([
            (
                "big".to_string(),
                vec![PathBuf::from("/mnt/disk1"), PathBuf::from("/mnt/disk2")],
            ),
            ("refused".to_string(), vec![]),
        ]),
    }
}

pub(super) fn node(name: &str, ready: bool) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": format!("{name}.local")}},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    }))
    .expect("node")
}

pub(super) fn hostpath_request(pattern: Option<&str>, selected: Option<&str>) -> ProvisionRequest {
    request(
        claim("team-a", "data"),
        class(HOSTPATH_PROVISIONER, &[]),
        ClassKind::HostPath(HostPathParams {
            path_pattern: pattern.map(str::to_string),
        }),
        selected,
    )
}

#[test]
fn nodes_use_their_own_paths_or_the_default() {
    let s = settings();
    assert_eq!(
        s.paths_for("big"),
        [PathBuf::from("/mnt/disk1"), PathBuf::from("/mnt/disk2")]
    );
    assert_eq!(
        s.paths_for("other"),
        [PathBuf::from("/var/lib/stowage/volumes")]
    );
    assert_eq!(s.base_for("big").expect("base"), Path::new("/mnt/disk1"));
    let err = s.base_for("refused").expect_err("empty list");
    assert_eq!(err.category(), "no-allowed-path");
    assert!(err.is_permanent());
    assert_eq!(
        err.to_string(),
        "node refused has no allowed hostPath base path: add it under storage.hostpath.node_paths \
         or storage.hostpath.default_paths"
    );
}

#[test]
fn relative_or_root_base_paths_are_refused() {
    let mut s = settings();
    s.default_paths = vec![PathBuf::from("volumes")];
    let err = s.base_for("w").expect_err("relative");
    assert_eq!(err.category(), "unsafe-path");
    assert!(
        err.to_string()
            .contains("fix storage.hostpath.default_paths"),
        "{err}"
    );
    s.node_paths
        .insert("w".to_string(), vec![PathBuf::from("/")]);
    let err = s.base_for("w").expect_err("root");
    assert!(
        err.to_string()
            .contains("fix storage.hostpath.node_paths.w"),
        "{err}"
    );
}

#[test]
fn immediate_classes_pick_the_first_usable_node_with_a_path() {
    let s = settings();
    let c = class(HOSTPATH_PROVISIONER, &[]);
    let mut cordoned = node("a-cordoned", true);
    cordoned.spec.get_or_insert_default().unschedulable = Some(true);
    let nodes = vec![
        node("d-ready", true),
        node("refused", true),
        node("b-not-ready", false),
        cordoned,
        node("c-ready", true),
    ];
    assert_eq!(
        pick_node(&nodes, &s, &c).expect("node").name_any(),
        "c-ready"
    );

    let err = pick_node(&nodes[1..3], &s, &c).expect_err("none usable");
    assert_eq!(err.category(), "no-node");
    assert!(
        err.to_string().contains("storage.hostpath.node_paths"),
        "{err}"
    );
}

#[test]
fn allowed_topologies_restrict_the_nodes() {
    let s = settings();
    let mut c = class(HOSTPATH_PROVISIONER, &[]);
    c.allowed_topologies = Some(
        serde_json::from_value(json!([{"matchLabelExpressions": [
            {"key": "kubernetes.io/hostname", "values": ["d-ready.local"]}
        ]}]))
        .expect("topologies"),
    );
    let nodes = vec![node("c-ready", true), node("d-ready", true)];
    assert_eq!(
        pick_node(&nodes, &s, &c).expect("node").name_any(),
        "d-ready"
    );
}

#[test]
fn directory_comes_from_the_pattern_under_the_base() {
    let req = hostpath_request(None, None);
    let (full, rel) =
        volume_dir(&req, None, "w1", Path::new("/var/lib/stowage/volumes")).expect("dir");
    assert_eq!(
        full,
        PathBuf::from("/var/lib/stowage/volumes/team-a-data-pvc-1")
    );
    assert_eq!(rel, PathBuf::from("team-a-data-pvc-1"));

    let (full, _) = volume_dir(
        &req,
        Some("${node}/${namespace}/${pvc}"),
        "w1",
        Path::new("/mnt/disk1"),
    )
    .expect("nested");
    assert_eq!(full, PathBuf::from("/mnt/disk1/w1/team-a/data"));

    for bad in ["../x", "/abs/${pvc}", "${pvc}/../../.."] {
        let err = volume_dir(&req, Some(bad), "w1", Path::new("/mnt/disk1")).expect_err(bad);
        assert_eq!(err.category(), "unsafe-path", "{bad}");
        assert!(
            err.to_string()
                .starts_with("storage class fast, claim team-a/data: pathPattern"),
            "{err}"
        );
    }
    let err = volume_dir(&req, Some("../${pvc}"), "w1", Path::new("/mnt/disk1")).expect_err("..");
    assert_eq!(
        err.to_string(),
        "storage class fast, claim team-a/data: pathPattern \"../${pvc}\" contains a `..` \
         component; remove it, volumes must stay under the base path"
    );
}

#[test]
fn volume_is_pinned_to_the_node() {
    let req = hostpath_request(None, Some("w1"));
    let pv = hostpath_volume(
        &req,
        "w1",
        "w1.local",
        Path::new("/var/lib/stowage/volumes/team-a-data-pvc-1"),
    );
    assert_eq!(
        serde_json::to_value(&pv).expect("json"),
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": "pvc-1",
                "annotations": {
                    "pv.kubernetes.io/provisioned-by": "stowage.io/hostpath",
                    "stowage.io/hostpath-node": "w1"
                }
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "capacity": {"storage": "1Gi"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "name": "data",
                    "namespace": "team-a",
                    "uid": "uid-data"
                },
                "hostPath": {"path": "/var/lib/stowage/volumes/team-a-data-pvc-1", "type": "DirectoryOrCreate"},
                "mountOptions": ["nfsvers=4.1"],
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["w1.local"]}
                ]}]}},
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "fast",
                "volumeMode": "Filesystem"
            }
        })
    );
    assert_eq!(
        volume_location(&pv).expect("location"),
        (
            "w1".to_string(),
            PathBuf::from("/var/lib/stowage/volumes/team-a-data-pvc-1")
        )
    );
}

#[test]
fn location_falls_back_to_the_affinity_and_refuses_foreign_volumes() {
    let req = hostpath_request(None, Some("w1"));
    let mut pv = hostpath_volume(&req, "w1", "w1", Path::new("/data/x"));
    pv.metadata
        .annotations
        .get_or_insert_default()
        .remove(ANN_NODE);
    assert_eq!(volume_location(&pv).expect("location").0, "w1");

    pv.spec.as_mut().expect("spec").node_affinity = None;
    let err = volume_location(&pv).expect_err("no node");
    assert_eq!(err.category(), "invalid-volume");

    pv.spec.as_mut().expect("spec").host_path = None;
    let err = volume_location(&pv).expect_err("not hostPath");
    assert!(
        err.to_string().contains("is not a hostPath volume"),
        "{err}"
    );
}

#[test]
fn only_paths_strictly_inside_an_allowed_base_are_removed() {
    let s = settings();
    let found = locate_under_base(&s, "pv", "big", Path::new("/mnt/disk2/a/b")).expect("inside");
    assert_eq!(found, (PathBuf::from("/mnt/disk2"), PathBuf::from("a/b")));
    for path in [
        "/mnt/disk2",
        "/mnt/disk3/a",
        "/mnt/disk1/../etc",
        "/etc/passwd",
    ] {
        let err = locate_under_base(&s, "pv", "big", Path::new(path)).expect_err(path);
        assert_eq!(err.category(), "unsafe-path", "{path}");
    }
    let err = locate_under_base(&s, "pv", "refused", Path::new("/var/lib/stowage/volumes/x"))
        .expect_err("node without paths");
    assert!(
        err.to_string()
            .contains("storage.hostpath.node_paths.refused"),
        "{err}"
    );
}
