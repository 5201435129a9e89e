//! Files derived from others and committed: the chart's dashboard ConfigMap templates (from
//! deploy/grafana/*.json), deploy/stowage.yaml and deploy/prometheus/stowage-rules.yaml (the chart
//! rendered with its defaults), the CRD copies. A test compares each with what it is derived from;
//! `make chart-files` (STOWAGE_BLESS=1) rewrites them.

use std::path::Path;

use super::render::{self, RELEASE, Release};

/// The release the plain manifests in deploy/ stand for.
pub const DEPLOY_RELEASE: Release<'static> = Release {
    name: "stowage",
    namespace: "stowage",
    service: "kubectl",
};

/// Dashboards shipped in deploy/grafana, by file name, and the short name of their ConfigMap.
pub const DASHBOARDS: &[(&str, &str)] = &[
    ("stowage-mirror.json", "mirror"),
    ("stowage-storage.json", "storage"),
];

/// The chart template that ships one dashboard JSON as a ConfigMap for Grafana's sidecar. The
/// JSON's own `{{legend}}` braces are escaped so that the template prints them unchanged.
pub fn dashboard_template(file: &str, short: &str, json: &str) -> String {
    let mut escaped = String::new();
    for line in json.lines() {
        escaped.push_str("    ");
        escaped.push_str(&escape_braces(line));
        escaped.push('\n');
    }
    format!(
        "{{{{- /* Generated from deploy/grafana/{file} by `make chart-files`; edit the JSON, not this. */ -}}}}\n\
         {{{{- if .Values.grafanaDashboards.enabled }}}}\n\
         apiVersion: v1\n\
         kind: ConfigMap\n\
         metadata:\n\
         \x20 name: {{{{ .Release.Name }}}}-dashboard-{short}\n\
         \x20 namespace: {{{{ .Release.Namespace }}}}\n\
         \x20 labels:\n\
         \x20   app.kubernetes.io/name: stowage\n\
         \x20   app.kubernetes.io/instance: {{{{ .Release.Name }}}}\n\
         \x20   app.kubernetes.io/managed-by: {{{{ .Release.Service }}}}\n\
         \x20   {{{{ .Values.grafanaDashboards.label }}}}: {{{{ .Values.grafanaDashboards.labelValue | quote }}}}\n\
         \x20 {{{{- with .Values.grafanaDashboards.folder }}}}\n\
         \x20 annotations:\n\
         \x20   grafana_folder: {{{{ . | quote }}}}\n\
         \x20 {{{{- end }}}}\n\
         data:\n\
         \x20 {file}: |\n\
         {escaped}\
         {{{{- end }}}}\n"
    )
}

fn escape_braces(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while !rest.is_empty() {
        if let Some(tail) = rest.strip_prefix("{{") {
            out.push_str("{{ \"{{\" }}");
            rest = tail;
        } else if let Some(tail) = rest.strip_prefix("}}") {
            out.push_str("{{ \"}}\" }}");
            rest = tail;
        } else {
            let ch = rest.chars().next().expect("not empty");
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
    }
    out
}

/// deploy/stowage.yaml: the chart's default manifests for `kubectl apply -k deploy/`.
pub fn deploy_manifests() -> String {
    let rendered = render::render(&render::values(&[]), &DEPLOY_RELEASE);
    format!(
        "# Generated from charts/stowage with its default values by `make chart-files`: edit the chart.\n\
         # Apply with `kubectl apply -k deploy/` (namespace, CRDs and these objects).\n{}",
        rendered.to_yaml()
    )
}

/// deploy/prometheus/stowage-rules.yaml: the PrometheusRule's groups as a plain rule file.
pub fn rules_file() -> String {
    let rendered = render::render(
        &render::values(&["prometheusRule: {enabled: true}"]),
        &RELEASE,
    );
    let rule = rendered
        .manifests
        .iter()
        .find(|m| m.kind() == "PrometheusRule")
        .expect("the chart renders a PrometheusRule when prometheusRule.enabled");
    format!(
        "# Generated from charts/stowage/templates/prometheusrule.yaml (default values) by\n\
         # `make chart-files`: Stowage's alerts for a Prometheus without the Prometheus Operator.\n{}",
        serde_yaml::to_string(&rule.doc["spec"]).expect("YAML")
    )
}

/// Every derived file: its path and the bytes it must hold.
pub fn expected_files() -> Vec<(String, String)> {
    let repo = render::repo();
    let mut files = Vec::new();
    for (file, short) in DASHBOARDS {
        let json = std::fs::read_to_string(repo.join("deploy/grafana").join(file))
            .unwrap_or_else(|err| panic!("read deploy/grafana/{file}: {err}"));
        files.push((
            format!("charts/stowage/templates/dashboard-{short}.yaml"),
            dashboard_template(file, short, &json),
        ));
    }
    files.push(("deploy/stowage.yaml".into(), deploy_manifests()));
    files.push(("deploy/prometheus/stowage-rules.yaml".into(), rules_file()));
    for definition in stowage::crd::all() {
        let name = stowage::crd::file_name(&definition);
        let text = stowage::crd::render(&definition).expect("render CRD");
        files.push((format!("charts/stowage/crds/{name}"), text.clone()));
        files.push((format!("deploy/crds/{name}"), text));
    }
    files
}

/// Writes the file when STOWAGE_BLESS is set; otherwise returns whether it differs.
pub fn check_or_bless(path: &str, expected: &str) -> Option<String> {
    let full = render::repo().join(path);
    if std::env::var_os("STOWAGE_BLESS").is_some() {
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir).expect("create directory");
        }
        std::fs::write(&full, expected).expect("write generated file");
        return None;
    }
    let committed = std::fs::read_to_string(Path::new(&full)).unwrap_or_default();
    (committed != expected).then(|| path.to_owned())
}
