//! `stowage emulator` as a user runs it: prints its URL, writes a kubeconfig that works, stops on
//! SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const TIMEOUT: Duration = Duration::from_secs(60);

fn stowage(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stowage"));
    command
        .args(args)
        .current_dir(dir)
        .kill_on_drop(true)
        .stdout(Stdio::piped())
        .env("RUST_LOG", "warn");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STOWAGE_") {
            command.env_remove(key);
        }
    }
    command
}

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

/// Stops `child` with SIGTERM and checks it exits cleanly.
async fn terminate(mut child: Child) {
    let pid = child.id().expect("child pid").to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("run kill");
    assert!(sent.success());
    let status = child.wait().await.expect("wait");
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[cfg(unix)]
#[tokio::test]
async fn emulator_prints_its_url_and_writes_a_working_kubeconfig() {
    tokio::time::timeout(TIMEOUT, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("emu.kubeconfig");
        let kubeconfig_arg = kubeconfig.to_string_lossy().into_owned();
        let mut child = stowage(
            dir.path(),
            &[
                "emulator",
                "--listen",
                "127.0.0.1:0",
                "--kubeconfig",
                &kubeconfig_arg,
            ],
        )
        .spawn()
        .expect("spawn stowage emulator");
        let printed = url_after(&mut child, "listening on").await;

        let config: serde_yaml::Value = serde_yaml::from_str(
            &std::fs::read_to_string(&kubeconfig).expect("kubeconfig written"),
        )
        .expect("YAML");
        let server = config["clusters"][0]["cluster"]["server"]
            .as_str()
            .expect("server URL")
            .to_owned();
        assert_eq!(server, printed);

        let response = reqwest::get(format!("{server}/version"))
            .await
            .expect("GET /version");
        assert_eq!(response.status().as_u16(), 200);
        let version: serde_json::Value = response.json().await.expect("JSON");
        assert!(version["gitVersion"].is_string(), "{version}");

        terminate(child).await;
    })
    .await
    .expect("test timed out");
}
