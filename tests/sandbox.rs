//! `stowage sandbox` end to end: a seeded emulator, a kubeconfig kubectl could use, and Stowage's
//! endpoints turning ready.

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Reads stdout lines until one contains `marker`; returns the first `http://` word on it.
async fn url_after(child: &mut Child, marker: &str) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await.expect("read stdout") {
        if line.contains(marker)
            && let Some(url) = line
                .split_whitespace()
                .find(|word| word.starts_with("http://"))
        {
            return url.to_owned();
        }
    }
    panic!("stowage exited without printing {marker:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn sandbox_serves_a_seeded_cluster_and_turns_ready() {
    tokio::time::timeout(TIMEOUT, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("sandbox.kubeconfig");
        let mut command = Command::new(env!("CARGO_BIN_EXE_stowage"));
        command
            .args(["sandbox", "--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(&kubeconfig)
            .current_dir(dir.path())
            .kill_on_drop(true)
            .stdout(Stdio::piped())
            .env("RUST_LOG", "warn");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("STOWAGE_") {
                command.env_remove(key);
            }
        }
        let mut child = command.spawn().expect("spawn stowage sandbox");
        let base = url_after(&mut child, "Stowage HTTP:").await;

        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            let response = reqwest::get(format!("{base}/readyz"))
                .await
                .expect("GET /readyz");
            if response.status().as_u16() == 200 {
                break;
            }
        }
        let metrics = reqwest::get(format!("{base}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("body");
        assert!(metrics.contains("stowage_apiserver_up 1"), "{metrics}");

        // The command README.md gives a newcomer lists the seeded pods, with kubectl's usual columns.
        let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let out = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(dir.path().join("kube-cache"))
            .args(["get", "pods", "-A"])
            .output()
            .await
            .expect("run kubectl (install it or set KUBECTL)");
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let header = table.lines().next().unwrap_or_default();
        for column in ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"] {
            assert!(header.contains(column), "missing {column}: {table}");
        }
        assert!(
            table.lines().filter(|l| l.contains("Running")).count() >= 3,
            "{table}"
        );

        let kubeconfig = Kubeconfig::read_from(&kubeconfig).expect("kubeconfig written");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("usable kubeconfig");
        let client = kube::Client::try_from(config).expect("client");
        let pods = kube::Api::<Pod>::all(client)
            .list(&ListParams::default())
            .await
            .expect("list pods");
        assert!(!pods.items.is_empty(), "the seed has pods");

        let pid = child.id().expect("child pid").to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .await
                .expect("run kill")
                .success()
        );
        let status = child.wait().await.expect("wait");
        assert!(status.success(), "exit after SIGTERM: {status}");
    })
    .await
    .expect("test timed out");
}
