//! The external checkers the chart tests run (kubernetes-validate, promtool, kubectl,
//! prometheus), and the list of things expected from unmerged work. A missing tool fails the test
//! with how to install it: these checks never pass by being skipped.

use std::path::Path;
use std::process::{Command, Output};

use super::render;

/// Entries of tests/chart/unmerged.txt whose first word is `section`.
pub fn allowlist(section: &str) -> Vec<String> {
    let path = render::repo().join("tests/chart/unmerged.txt");
    let text = std::fs::read_to_string(&path).expect("read tests/chart/unmerged.txt");
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (kind, value) = line.split_once(' ')?;
            (kind == section).then(|| value.trim().to_owned())
        })
        .collect()
}

/// A program from PATH (or the environment variable `env`, e.g. KUBECTL), or a failure saying
/// how CI gets it.
pub fn program(name: &str, env: &str) -> String {
    let program = std::env::var(env).unwrap_or_else(|_| name.to_owned());
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v '{program}'"))
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed; `make services` (scripts/services.sh) installs it \
         (or point {env} at it)"
    );
    program
}

/// Runs a command, panicking with its output when it fails.
pub fn run(command: &mut Command, what: &str) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|err| panic!("{what}: cannot start: {err}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// scripts/validate-manifests.py: Kubernetes 1.33 schemas, strict, on every document of `files`.
pub fn validate_manifests(files: &[&Path]) {
    let python = program("python3", "PYTHON");
    let script = render::repo().join("scripts/validate-manifests.py");
    let mut command = Command::new(python);
    command.arg(script).args(["--kubernetes-version", "1.33.0"]);
    command.args(files);
    let out = run(&mut command, "scripts/validate-manifests.py");
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
}

/// scripts/check-values-schema.py: values.schema.json against values (as JSON).
pub fn check_values_schema(values: &serde_yaml::Value) -> Result<(), String> {
    let python = program("python3", "PYTHON");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("values.json");
    std::fs::write(&path, serde_json::to_string(values).expect("JSON")).expect("write");
    let out = Command::new(python)
        .arg(render::repo().join("scripts/check-values-schema.py"))
        .arg(render::chart_dir().join("values.schema.json"))
        .arg(&path)
        .output()
        .expect("run scripts/check-values-schema.py");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// kubectl against the kubeconfig `kubeconfig`; panics with its output when it fails.
pub async fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let bin = program("kubectl", "KUBECTL");
    let cache = kubeconfig.with_extension("cache");
    let mut command = tokio::process::Command::new(&bin);
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(&cache)
        .args(args)
        .env_remove("KUBECONFIG")
        .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} took over 60 s"))
        .unwrap_or_else(|err| panic!("cannot run {bin}: {err}"));
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Prometheus Operator's CRDs, reduced to what lets the API server (here the emulator) accept
/// ServiceMonitor and PrometheusRule objects; their content is checked by promtool instead.
pub const MONITORING_CRDS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {plural: servicemonitors, singular: servicemonitor, kind: ServiceMonitor, listKind: ServiceMonitorList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: prometheusrules.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {plural: prometheusrules, singular: prometheusrule, kind: PrometheusRule, listKind: PrometheusRuleList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;
