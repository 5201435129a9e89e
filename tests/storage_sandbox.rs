//! `stowage sandbox` runs the storage controller in binder mode: a claim applied with kubectl on
//! the seeded `stowage-hostpath` class is provisioned by a helper pod and bound, the seeded NFS
//! claim is provisioned on the temporary export, and the storage metrics are on `/metrics`.

#[allow(
    dead_code,
    reason = "each storage test binary uses a different part of the support"
)]
mod storage_support;

use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use storage_support::{TEST_TIMEOUT, eventually};

const CLAIM: &str = "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: demo, namespace: default}
spec:
  storageClassName: stowage-hostpath
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn phase(claims: &Api<PersistentVolumeClaim>, name: &str) -> Result<(), String> {
    let claim = claims.get(name).await.map_err(|e| e.to_string())?;
    match claim.status.and_then(|s| s.phase).as_deref() {
        Some("Bound") => Ok(()),
        other => Err(format!("{name}: {other:?}")),
    }
}

#[tokio::test]
async fn a_claim_applied_with_kubectl_is_bound_in_the_sandbox() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("sandbox.kubeconfig");
        let port = free_port();
        let mut config = stowage::config::Config::default();
        config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let shutdown = stowage::shutdown::Shutdown::new();
        let stop = shutdown.clone();
        let path = kubeconfig.clone();
        let sandbox = tokio::spawn(async move { stowage::sandbox::run_sandbox(&config, &path, stop).await });
        let base = format!("http://127.0.0.1:{port}");
        eventually(Duration::from_secs(30), "sandbox ready", || async {
            match reqwest::get(format!("{base}/readyz")).await {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(response.status().to_string()),
                Err(err) => Err(err.to_string()),
            }
        })
        .await;

        let manifest = dir.path().join("claim.yaml");
        std::fs::write(&manifest, CLAIM).expect("write claim");
        let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let out = tokio::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(dir.path().join("kube-cache"))
            .arg("apply")
            .arg("-f")
            .arg(&manifest)
            .output()
            .await
            .expect("run kubectl (install it or set KUBECTL)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        let kubeconfig = Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
        let client_config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("client config");
        let client = kube::Client::try_from(client_config).expect("client");
        let default: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
        let shop: Api<PersistentVolumeClaim> = Api::namespaced(client, "shop");
        eventually(Duration::from_secs(20), "demo Bound", || phase(&default, "demo")).await;
        eventually(Duration::from_secs(20), "seeded shop/uploads (NFS) Bound", || phase(&shop, "uploads")).await;

        let metrics = reqwest::get(format!("{base}/metrics")).await.expect("metrics").text().await.expect("body");
        for line in [
            "stowage_leader{lease=\"stowage-storage\"} 1",
            "stowage_storage_operations_total{class=\"stowage-hostpath\",operation=\"provision\",outcome=\"success\",reason=\"\"} 1",
            "stowage_storage_provision_duration_seconds_count{class=\"nfs\"} 1",
        ] {
            assert!(metrics.contains(line), "{line} in {metrics}");
        }
        shutdown.trigger();
        sandbox.await.expect("sandbox task").expect("sandbox stops cleanly");
    })
    .await
    .expect("test timed out");
}
