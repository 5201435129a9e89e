//! The `stowage` binary as users run it: help, `config print`, error exits and `crd`.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize;
use tokio::process::Command;

/// `stowage` in `dir`, with none of the caller's `STOWAGE_*` variables.
fn stowage(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stowage"));
    command
        .args(args)
        .current_dir(dir)
        .kill_on_drop(true)
        .env("RUST_LOG", "warn");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STOWAGE_") {
            command.env_remove(key);
        }
    }
    command
}

async fn finish(mut command: Command) -> Output {
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("stowage did not exit within 60s")
        .expect("cannot run stowage")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn help_lists_the_subcommands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = finish(stowage(dir.path(), &["--help"])).await;
    assert!(output.status.success());
    let help = text(&output.stdout);
    for command in ["run", "emulator", "sandbox", "crd", "config"] {
        assert!(
            help.contains(&format!("\n  {command} ")),
            "--help misses {command}:\n{help}"
        );
    }
    assert!(help.contains("STOWAGE_LOG_FORMAT"), "{help}");
}

#[tokio::test]
async fn config_print_shows_file_environment_and_flags_with_secrets_redacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = "storage:\n  type: mysql\n  mysql:\n    port: 3306\n    password: s3cret\nserver:\n  listen: 127.0.0.1:7000\n";
    std::fs::write(dir.path().join(".config.yaml"), yaml).expect("write config");
    let mut command = stowage(
        dir.path(),
        &["config", "print", "--listen", "127.0.0.1:7002"],
    );
    command.env("STOWAGE_STORAGE__MYSQL__PORT", "3307");
    let output = finish(command).await;
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let printed: serde_yaml::Value =
        serde_yaml::from_slice(&output.stdout).expect("config print emits YAML");
    assert_eq!(printed["storage"]["type"], "mysql");
    assert_eq!(printed["storage"]["mysql"]["port"], 3307);
    assert_eq!(printed["storage"]["mysql"]["password"], "***");
    assert_eq!(printed["storage"]["etcd"]["password"], "");
    assert_eq!(printed["storage"]["etcd"]["dial_timeout"], "5s");
    assert_eq!(printed["server"]["listen"], "127.0.0.1:7002");
    assert!(!text(&output.stdout).contains("s3cret"));
}

#[tokio::test]
async fn listen_flag_is_also_read_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = stowage(dir.path(), &["config", "print"]);
    command.env("STOWAGE_LISTEN", "127.0.0.1:7003");
    let output = finish(command).await;
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("listen: 127.0.0.1:7003"),
        "{}",
        text(&output.stdout)
    );
}

#[tokio::test]
async fn bad_configuration_exits_non_zero_with_the_offending_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.yaml"),
        "storage:\n  mysql:\n    port: lots\n",
    )
    .expect("write config");
    let output = finish(stowage(
        dir.path(),
        &["config", "print", "--config", "bad.yaml"],
    ))
    .await;
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with("error: invalid configuration"),
        "{stderr}"
    );
    assert!(
        stderr.contains("storage.mysql.port: expected an integer"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Error {"),
        "no panics or Debug output: {stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn missing_config_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = finish(stowage(dir.path(), &["run", "--config", "absent.yaml"])).await;
    assert!(!output.status.success());
    assert_eq!(
        text(&output.stderr).trim(),
        "error: configuration file absent.yaml does not exist"
    );
}

#[tokio::test]
async fn run_without_kubernetes_credentials_explains_what_it_tried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = stowage(dir.path(), &["run", "--listen", "127.0.0.1:0"]);
    command
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT");
    let output = finish(command).await;
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("error: cannot find Kubernetes credentials"),
        "{stderr}"
    );
    assert!(stderr.contains("caused by:"), "{stderr}");
}

#[tokio::test]
async fn crd_prints_the_resource_mirror_definition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = finish(stowage(dir.path(), &["crd"])).await;
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let crds: Vec<CustomResourceDefinition> = serde_yaml::Deserializer::from_str(&stdout)
        .map(|document| {
            CustomResourceDefinition::deserialize(document).expect("every document is a CRD")
        })
        .collect();
    let names: Vec<_> = crds
        .iter()
        .filter_map(|crd| crd.metadata.name.as_deref())
        .collect();
    assert_eq!(names, ["resourcemirrors.stowage.io"]);
    let mirror = &crds[0];
    assert_eq!(mirror.spec.group, "stowage.io");
    assert_eq!(mirror.spec.scope, "Cluster");
    assert_eq!(mirror.spec.versions[0].name, "v1alpha1");
}

#[tokio::test]
async fn crd_output_dir_writes_one_file_per_definition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = finish(stowage(dir.path(), &["crd", "--output-dir", "out"])).await;
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let printed = finish(stowage(dir.path(), &["crd"])).await.stdout;
    let written = std::fs::read(dir.path().join("out/resourcemirror.yaml"))
        .expect("resourcemirror.yaml written");
    assert_eq!(written, printed);
}
