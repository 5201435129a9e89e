//! Scenario 9: every kubectl we can find against the emulator, each with its own cache dir: the one
//! on PATH (or `$KUBECTL`), its versioned siblings (`kubectl.1.NN`, as cloud SDKs ship them), and
//! Debian's kubernetes-client 1.20 that `make services` unpacks under `$STOWAGE_SERVICES_DIR`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::common::{config_map, start, within};

struct Kubectl {
    bin: String,
    kubeconfig: PathBuf,
    cache: PathBuf,
    _dir: tempfile::TempDir,
}

/// Every kubectl binary available here, the default one first.
fn kubectls() -> Vec<String> {
    let mut found = Vec::new();
    let default = std::env::var("KUBECTL")
        .ok()
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("kubectl"))
                    .find(|c| c.is_file())
            })
        });
    if let Some(default) = default {
        let real = std::fs::canonicalize(&default).unwrap_or(default.clone());
        found.push(default.display().to_string());
        if let Some(dir) = real.parent() {
            let mut siblings: Vec<String> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("kubectl.1."))
                })
                .map(|p| p.display().to_string())
                .collect();
            siblings.sort();
            found.extend(siblings);
        }
    }
    let services =
        std::env::var("STOWAGE_SERVICES_DIR").unwrap_or_else(|_| "/tmp/stowage-services".into());
    let debian = Path::new(&services).join("kubernetes-client/usr/bin/kubectl");
    if debian.is_file() {
        found.push(debian.display().to_string());
    }
    found
}

impl Kubectl {
    fn new(emu: &stowage_emulator::RunningEmulator, bin: &str) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let kubeconfig = dir.path().join("kubeconfig");
        emu.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let cache = dir.path().join("cache");
        Kubectl {
            bin: bin.to_string(),
            kubeconfig,
            cache,
            _dir: dir,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args);
        cmd.env_remove("KUBECONFIG").kill_on_drop(true);
        cmd
    }

    async fn run(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (install kubectl or set KUBECTL)",
                self.bin
            )
        });
        if let Some(input) = stdin {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input.as_bytes()).await.expect("write stdin");
        }
        drop(child.stdin.take());
        let out = within(60, "kubectl", child.wait_with_output())
            .await
            .expect("kubectl runs");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {stderr}\n{stdout}"
        );
        stdout
    }
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: backups.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: backups, singular: backup, kind: Backup, shortNames: [bk]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

const BACKUP: &str = r#"
apiVersion: example.com/v1
kind: Backup
metadata: {name: nightly, namespace: default}
spec: {schedule: "0 3 * * *"}
"#;

fn deployment(image: &str, sidecar: bool) -> String {
    let extra = if sidecar {
        "\n      - name: sidecar\n        image: busybox:1.36"
    } else {
        ""
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: app\n        image: {image}\n        ports:\n        - containerPort: 80{extra}\n"
    )
}

#[tokio::test]
async fn kubectl_apply_get_watch_delete_wait() {
    let bins = kubectls();
    assert!(
        !bins.is_empty(),
        "no kubectl found: install one or run `make services`"
    );
    for bin in bins {
        eprintln!("kubectl scenario with {bin}");
        scenario(&bin).await;
    }
}

async fn scenario(bin: &str) {
    let (emu, client) = start().await;
    let k = Kubectl::new(&emu, bin);

    k.run(&["apply", "-f", "-"], Some(CRD)).await;
    k.run(&["apply", "-f", "-"], Some(BACKUP)).await;
    let backup: Value = serde_json::from_str(
        &k.run(&["get", "backups", "nightly", "-o", "json"], None)
            .await,
    )
    .expect("json");
    assert_eq!(backup["spec"]["schedule"], "0 3 * * *");

    k.run(
        &["apply", "-f", "-"],
        Some(&deployment("nginx:1.26", false)),
    )
    .await;
    k.run(&["apply", "-f", "-"], Some(&deployment("nginx:1.27", true)))
        .await;
    let raw = k
        .run(&["get", "deployment", "web", "-o", "json"], None)
        .await;
    assert!(
        !raw.contains("$setElementOrder"),
        "directives must never be stored: {raw}"
    );
    let d: Value = serde_json::from_str(&raw).expect("json");
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, vec!["app", "sidecar"]);
    assert_eq!(containers[0]["image"], "nginx:1.27");
    assert_eq!(
        containers[0]["ports"][0]["containerPort"], 80,
        "strategic merge kept the container's other fields"
    );
    assert_eq!(d["metadata"]["generation"], 2);

    // The human-readable table a newcomer sees, across namespaces.
    let table = k.run(&["get", "deployments", "-A"], None).await;
    eprintln!("{table}");
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.contains("NAMESPACE") && header.contains("READY") && header.contains("UP-TO-DATE"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("default") && l.contains("web")),
        "{table}"
    );

    // get -w prints objects as they change.
    let mut watch = k.command(&["get", "configmaps", "-w", "-o", "name"]);
    watch.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = watch.spawn().expect("kubectl get -w");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &config_map("watched", &[]))
        .await
        .expect("create");
    within(20, "kubectl get -w to print the new object", async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.contains("watched") {
                break;
            }
        }
    })
    .await;
    let _ = child.kill().await;

    k.run(&["delete", "configmap", "watched"], None).await;
    assert!(api.get_opt("watched").await.expect("get").is_none());

    api.create(&PostParams::default(), &config_map("doomed", &[]))
        .await
        .expect("create");
    let deleter = {
        let api = api.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            api.delete("doomed", &DeleteParams::default())
                .await
                .expect("delete");
        })
    };
    k.run(
        &["wait", "--for=delete", "configmap/doomed", "--timeout=20s"],
        None,
    )
    .await;
    deleter.await.expect("deleter");
}
