//! NFS provisioner against a real temporary directory standing in for the mounted export.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use super::*;
use crate::storage::class::NFS_PROVISIONER;
use crate::storage::provision::fixtures::{claim, class, request, within};

fn params(pattern: Option<&str>, on_delete: OnDelete) -> NfsParams {
    NfsParams {
        server: "nfs.example.com".to_string(),
        path: "/exports".to_string(),
        path_pattern: pattern.map(str::to_string),
        on_delete,
    }
}

fn nfs_request(pattern: Option<&str>, on_delete: OnDelete) -> ProvisionRequest {
    request(
        claim("team-a", "data"),
        class(
            NFS_PROVISIONER,
            &[("server", "nfs.example.com"), ("path", "/exports")],
        ),
        ClassKind::Nfs(params(pattern, on_delete)),
        None,
    )
}

struct Export {
    root: tempfile::TempDir,
    provisioner: NfsProvisioner,
}

impl Export {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        fs::create_dir(root.path().join("export")).expect("mount dir");
        let provisioner = NfsProvisioner::new(NfsSettings {
            mount_path: Some(root.path().join("export")),
        });
        Self { root, provisioner }
    }

    fn mount(&self) -> PathBuf {
        self.root.path().join("export")
    }

    /// Entries next to the mount: only `export` itself may be there.
    fn outside(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.root.path())
            .expect("read root")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

#[tokio::test]
async fn provision_creates_the_directory_and_an_nfs_volume() {
    within(async {
        let export = Export::new();
        let req = nfs_request(None, OnDelete::Delete);
        let pv = export.provisioner.provision(&req).await.expect("provision");

        let dir = export.mount().join("team-a-data-pvc-1");
        assert!(dir.is_dir());
        assert_eq!(mode(&dir), 0o777);
        assert_eq!(
            serde_json::to_value(&pv).expect("json"),
            json!({
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {
                    "name": "pvc-1",
                    "annotations": {"pv.kubernetes.io/provisioned-by": "stowage.io/nfs"}
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
                    "mountOptions": ["nfsvers=4.1"],
                    "nfs": {"server": "nfs.example.com", "path": "/exports/team-a-data-pvc-1"},
                    "persistentVolumeReclaimPolicy": "Delete",
                    "storageClassName": "fast",
                    "volumeMode": "Filesystem"
                }
            })
        );
        assert_eq!(export.outside(), ["export"]);
    })
    .await
}

#[tokio::test]
async fn an_existing_directory_is_reused_untouched() {
    within(async {
        let export = Export::new();
        let dir = export.mount().join("team-a-data-pvc-1");
        fs::create_dir(&dir).expect("old dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).expect("chmod");
        fs::write(dir.join("kept.txt"), "old data").expect("old file");

        let pv = export
            .provisioner
            .provision(&nfs_request(None, OnDelete::Delete))
            .await
            .expect("provision over existing data");

        assert_eq!(
            fs::read_to_string(dir.join("kept.txt")).expect("read"),
            "old data"
        );
        assert_eq!(mode(&dir), 0o750, "an existing directory keeps its mode");
        let path = pv.spec.and_then(|s| s.nfs).map(|n| n.path);
        assert_eq!(path.as_deref(), Some("/exports/team-a-data-pvc-1"));
    })
    .await
}

#[tokio::test]
async fn archive_keeps_the_nested_path_and_never_overwrites() {
    within(async {
        let export = Export::new();
        let req = nfs_request(Some("${.PVC.namespace}/${.PVC.name}"), OnDelete::Archive);
        let pv = export.provisioner.provision(&req).await.expect("provision");
        let dir = export.mount().join("team-a/data");
        assert!(dir.is_dir());
        assert_eq!(
            pv.spec
                .as_ref()
                .and_then(|s| s.nfs.as_ref())
                .map(|n| n.path.as_str()),
            Some("/exports/team-a/data")
        );
        fs::write(dir.join("file"), "first").expect("write");

        let outcome = export
            .provisioner
            .delete(&pv, &req.kind)
            .await
            .expect("archive");
        let archived = export.mount().join("team-a/archived-data");
        assert_eq!(
            outcome,
            DeleteOutcome::Archived {
                from: dir.clone(),
                to: archived.clone()
            }
        );
        assert_eq!(
            fs::read_to_string(archived.join("file")).expect("read"),
            "first"
        );
        assert!(!dir.exists());

        // Same name again: a second archive does not replace the first.
        export
            .provisioner
            .provision(&req)
            .await
            .expect("provision again");
        fs::write(dir.join("file"), "second").expect("write");
        let outcome = export
            .provisioner
            .delete(&pv, &req.kind)
            .await
            .expect("archive again");
        let second = export.mount().join("team-a/archived-data-1");
        assert_eq!(
            outcome,
            DeleteOutcome::Archived {
                from: dir.clone(),
                to: second.clone()
            }
        );
        assert_eq!(
            fs::read_to_string(archived.join("file")).expect("read"),
            "first"
        );
        assert_eq!(
            fs::read_to_string(second.join("file")).expect("read"),
            "second"
        );

        // Retried delete after the archive: nothing left to do.
        let again = export
            .provisioner
            .delete(&pv, &req.kind)
            .await
            .expect("idempotent");
        assert_eq!(again, DeleteOutcome::AlreadyGone { path: dir });
    })
    .await
}

#[tokio::test]
async fn delete_removes_the_tree_and_is_idempotent() {
    within(async {
        let export = Export::new();
        let req = nfs_request(None, OnDelete::Delete);
        let pv = export.provisioner.provision(&req).await.expect("provision");
        let dir = export.mount().join("team-a-data-pvc-1");
        fs::create_dir_all(dir.join("sub/deeper")).expect("nested");
        fs::write(dir.join("sub/deeper/f"), "x").expect("file");

        let outcome = export
            .provisioner
            .delete(&pv, &req.kind)
            .await
            .expect("delete");
        assert_eq!(outcome, DeleteOutcome::Removed { path: dir.clone() });
        assert!(!dir.exists());
        assert!(export.mount().is_dir(), "the export root stays");

        let again = export
            .provisioner
            .delete(&pv, &req.kind)
            .await
            .expect("delete again");
        assert_eq!(again, DeleteOutcome::AlreadyGone { path: dir });
    })
    .await
}

#[tokio::test]
async fn retain_leaves_the_data() {
    within(async {
        let export = Export::new();
        let req = nfs_request(None, OnDelete::Retain);
        let pv = export.provisioner.provision(&req).await.expect("provision");
        let dir = export.mount().join("team-a-data-pvc-1");
        fs::write(dir.join("f"), "keep me").expect("file");

        let outcome = export
            .provisioner
            .delete(&pv, &req.kind)
            .await
            .expect("retain");
        assert_eq!(outcome, DeleteOutcome::Retained { path: dir.clone() });
        assert_eq!(fs::read_to_string(dir.join("f")).expect("read"), "keep me");
    })
    .await
}

#[tokio::test]
async fn unsafe_patterns_create_nothing() {
    within(async {
        for pattern in [
            "../${pvc}",
            "/etc/${pvc}",
            "${pvc}/../../x",
            "${.PVC.annotations.dir}",
        ] {
            let export = Export::new();
            let mut req = nfs_request(Some(pattern), OnDelete::Delete);
            // A user-controlled value that tries to climb out.
            req.claim
                .metadata
                .annotations
                .get_or_insert_default()
                .insert("dir".to_string(), "../../escaped".to_string());
            let err = export.provisioner.provision(&req).await.expect_err(pattern);
            assert_eq!(err.category(), "unsafe-path", "{pattern}: {err}");
            assert!(err.is_permanent());
            assert_eq!(export.outside(), ["export"], "{pattern}");
            assert_eq!(
                fs::read_dir(export.mount()).expect("read").count(),
                0,
                "{pattern}"
            );
        }
    })
    .await
}

#[tokio::test]
async fn a_symlink_on_the_export_is_not_followed() {
    within(async {
        let export = Export::new();
        let elsewhere = export.root.path().join("elsewhere");
        fs::create_dir(&elsewhere).expect("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, export.mount().join("team-a")).expect("symlink");

        let req = nfs_request(Some("${.PVC.namespace}/${.PVC.name}"), OnDelete::Delete);
        let err = export
            .provisioner
            .provision(&req)
            .await
            .expect_err("symlink");
        assert_eq!(err.category(), "unsafe-path", "{err}");
        assert!(
            err.to_string().contains("team-a is a symbolic link"),
            "{err}"
        );
        assert_eq!(fs::read_dir(&elsewhere).expect("read").count(), 0);
    })
    .await
}

#[tokio::test]
async fn not_configured_says_what_to_set() {
    within(async {
    let provisioner = NfsProvisioner::new(NfsSettings { mount_path: None });
    let err = provisioner
        .provision(&nfs_request(None, OnDelete::Delete))
        .await
        .expect_err("no mount");
    assert_eq!(err.category(), "nfs-not-configured");
    assert!(err.is_permanent());
    assert_eq!(
        err.to_string(),
        "storage class fast uses stowage.io/nfs but storage.nfs.mount_path is not set: mount the \
         class's export in Stowage's pod and set storage.nfs.mount_path"
    );
    })
    .await
}

#[tokio::test]
async fn a_missing_mount_is_never_created() {
    within(async {
        let root = tempfile::tempdir().expect("tempdir");
        let mount = root.path().join("not-mounted");
        let provisioner = NfsProvisioner::new(NfsSettings {
            mount_path: Some(mount.clone()),
        });
        let err = provisioner
            .provision(&nfs_request(None, OnDelete::Delete))
            .await
            .expect_err("missing mount");
        assert_eq!(err.category(), "nfs-not-configured", "{err}");
        assert!(!mount.exists());
    })
    .await
}

#[tokio::test]
async fn volumes_outside_the_class_export_are_refused() {
    within(async {
        let export = Export::new();
        let req = nfs_request(None, OnDelete::Delete);
        let mut pv = export.provisioner.provision(&req).await.expect("provision");
        let outside = fs::create_dir(export.root.path().join("precious"));
        outside.expect("precious");

        let nfs = pv.spec.as_mut().and_then(|s| s.nfs.as_mut()).expect("nfs");
        nfs.path = "/exports/../precious".to_string();
        let err = export
            .provisioner
            .delete(&pv, &req.kind)
            .await
            .expect_err("escape");
        assert_eq!(err.category(), "unsafe-path", "{err}");

        let nfs = pv.spec.as_mut().and_then(|s| s.nfs.as_mut()).expect("nfs");
        nfs.path = "/exports".to_string();
        let err = export
            .provisioner
            .delete(&pv, &req.kind)
            .await
            .expect_err("root");
        assert_eq!(
            err.category(),
            "unsafe-path",
            "the export root itself: {err}"
        );

        let nfs = pv.spec.as_mut().and_then(|s| s.nfs.as_mut()).expect("nfs");
        nfs.path = "/exports/team-a-data-pvc-1".to_string();
        nfs.server = "other.example.com".to_string();
        let err = export
            .provisioner
            .delete(&pv, &req.kind)
            .await
            .expect_err("server");
        assert_eq!(err.category(), "invalid-volume", "{err}");

        assert!(export.root.path().join("precious").is_dir());
        assert!(export.mount().join("team-a-data-pvc-1").is_dir());
    })
    .await
}

#[tokio::test]
async fn claims_it_cannot_serve_are_refused() {
    within(async {
    let export = Export::new();
    let mut req = nfs_request(None, OnDelete::Delete);
    req.claim.spec.as_mut().expect("spec").volume_mode = Some("Block".to_string());
    let err = export.provisioner.provision(&req).await.expect_err("block");
    assert_eq!(err.category(), "invalid-claim");
    assert_eq!(
        err.to_string(),
        "claim team-a/data: volumeMode Block is not supported by stowage.io/nfs: use volumeMode \
         Filesystem"
    );

    let mut req = nfs_request(None, OnDelete::Delete);
    req.kind = ClassKind::Longhorn;
    let err = export.provisioner.provision(&req).await.expect_err("kind");
    assert_eq!(err.category(), "invalid-class");
    assert_eq!(fs::read_dir(export.mount()).expect("read").count(), 0);
    })
    .await
}

#[test]
fn archive_path_renames_the_last_component_only() {
    assert_eq!(
        archive_path(Path::new("/m/a/b/c"), 0),
        PathBuf::from("/m/a/b/archived-c")
    );
    assert_eq!(
        archive_path(Path::new("/m/a/b/c"), 2),
        PathBuf::from("/m/a/b/archived-c-2")
    );
    assert_eq!(
        archive_path(Path::new("/m/x"), 0),
        PathBuf::from("/m/archived-x")
    );
}

#[tokio::test]
async fn a_classified_class_drives_naming_and_the_older_archive_flag() {
    within(async {
        let export = Export::new();
        let class = class(
            NFS_PROVISIONER,
            &[
                ("server", "nfs.example.com"),
                ("path", "/exports/k8s"),
                (
                    "pathPattern",
                    "${.PVC.namespace}/${.PVC.labels.app}/${.PVC.name}",
                ),
                ("archiveOnDelete", "true"),
            ],
        );
        let kind = crate::storage::class::classify(&class).expect("valid class");
        let mut claim = claim("team-a", "data");
        claim
            .metadata
            .labels
            .get_or_insert_default()
            .insert("app".to_string(), "shop".to_string());
        let req = request(claim, class, kind, None);

        let pv = export.provisioner.provision(&req).await.expect("provision");
        let nfs = pv.spec.as_ref().and_then(|s| s.nfs.as_ref()).expect("nfs");
        assert_eq!(nfs.path, "/exports/k8s/team-a/shop/data");
        assert!(export.mount().join("team-a/shop/data").is_dir());

        let outcome = export
            .provisioner
            .delete(&pv, &req.kind)
            .await
            .expect("archive");
        assert_eq!(
            outcome,
            DeleteOutcome::Archived {
                from: export.mount().join("team-a/shop/data"),
                to: export.mount().join("team-a/shop/archived-data"),
            }
        );
    })
    .await
}
