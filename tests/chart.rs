//! The Helm chart (charts/stowage), the plain manifests (deploy/), the alerts and the dashboards:
//! rendered without helm (gtmpl, see tests/chart/render.rs), checked for what the install promises,
//! validated against Kubernetes 1.33 schemas, applied to the emulator with kubectl, and run in a
//! Prometheus scraping `stowage sandbox` (tests/chart/observe.rs).

#[path = "chart/funcs.rs"]
mod funcs;
#[path = "chart/generated.rs"]
mod generated;
#[path = "chart/observe.rs"]
mod observe;
#[path = "chart/render.rs"]
mod render;
#[path = "chart/scenario.rs"]
mod scenario;
#[path = "chart/tools.rs"]
mod tools;

use std::time::Duration;

use render::{RELEASE, Rendered, render, values};

/// The MySQL + Redis + NFS values file (also the README's example).
fn full_values() -> serde_yaml::Value {
    let text = std::fs::read_to_string(render::chart_dir().join("ci/mysql-redis-nfs-values.yaml"))
        .expect("read ci values");
    values(&[&text])
}

fn defaults() -> Rendered {
    render(&values(&[]), &RELEASE)
}

fn full() -> Rendered {
    render(&full_values(), &RELEASE)
}

fn container(rendered: &Rendered) -> serde_yaml::Value {
    let deployment = rendered.find("Deployment", "stowage").expect("Deployment");
    deployment.doc["spec"]["template"]["spec"]["containers"][0].clone()
}

fn config_of(rendered: &Rendered) -> serde_yaml::Value {
    let map = rendered.find("ConfigMap", "stowage").expect("ConfigMap");
    let text = map.doc["data"]["config.yaml"]
        .as_str()
        .expect("config.yaml");
    serde_yaml::from_str(text).expect("config.yaml is YAML")
}

#[test]
fn chart_app_version_is_the_cargo_version() {
    let chart = render::read_yaml(&render::chart_dir().join("Chart.yaml"));
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "charts/stowage/Chart.yaml appVersion must equal the workspace version in Cargo.toml"
    );
}

#[test]
fn generated_files_are_up_to_date() {
    // Chart CRDs and deploy/crds must be byte-identical to `stowage crd`, the dashboards'
    // ConfigMaps to deploy/grafana, deploy/ to the chart's defaults.
    let stale: Vec<String> = generated::expected_files()
        .iter()
        .filter_map(|(path, text)| generated::check_or_bless(path, text))
        .collect();
    assert!(
        stale.is_empty(),
        "out of date: {stale:?}; run `make chart-files` and commit the result"
    );
    let chart_crds: Vec<_> = std::fs::read_dir(render::chart_dir().join("crds"))
        .expect("chart crds/")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    assert_eq!(
        chart_crds.len(),
        stowage::crd::all().len(),
        "charts/stowage/crds holds files no type generates: {chart_crds:?}"
    );
}

#[test]
fn default_values_render_the_least_privilege_install() {
    let rendered = defaults();
    let mut kinds = rendered.kinds();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ],
        "optional objects (ServiceMonitor, PrometheusRule, NetworkPolicy, StorageClasses, dashboards) are off by default"
    );
    let c = container(&rendered);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["cpu"].is_string());
    assert_eq!(
        c["image"],
        "stowage/stowage:0.1.0".replace("0.1.0", env!("CARGO_PKG_VERSION"))
    );
    let pod = &rendered.find("Deployment", "stowage").unwrap().doc["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    // No Secret named: no password variables at all.
    let env = serde_yaml::to_string(&c["env"]).unwrap();
    assert!(!env.contains("PASSWORD"), "{env}");

    // RBAC: list/watch for mirroring, never `*`, never Secrets beyond list/watch.
    let role = rendered.find("ClusterRole", "stowage").unwrap();
    for rule in role.doc["rules"].as_sequence().unwrap() {
        let text = serde_yaml::to_string(rule).unwrap();
        assert!(!text.contains('*'), "wildcard in {text}");
        let resources = rule["resources"].as_sequence().unwrap();
        let verbs: Vec<&str> = rule["verbs"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        if resources.iter().any(|r| r == "secrets") {
            assert_eq!(verbs, ["list", "watch"], "{text}");
        }
    }
    let config = config_of(&rendered);
    assert_eq!(config["storage"]["type"], "memory");
    assert_eq!(config["server"]["listen"], "0.0.0.0:8080");
}

#[test]
fn mysql_redis_nfs_values_render_secrets_mount_and_classes() {
    let rendered = full();
    for kind in [
        "ServiceMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "StorageClass",
        "ConfigMap",
    ] {
        assert!(rendered.kinds().iter().any(|k| k == kind), "no {kind}");
    }
    let classes: Vec<(String, String)> = rendered
        .manifests
        .iter()
        .filter(|m| m.kind() == "StorageClass")
        .map(|m| {
            (
                m.name().to_owned(),
                m.doc["provisioner"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        classes,
        [
            ("stowage-hostpath".into(), "stowage.io/hostpath".into()),
            ("stowage-nfs".into(), "stowage.io/nfs".into()),
            ("stowage-longhorn".into(), "driver.longhorn.io".into()),
        ]
    );
    let deployment = rendered.find("Deployment", "stowage").unwrap();
    assert_eq!(deployment.doc["spec"]["replicas"], 2);
    let c = container(&rendered);
    let env = c["env"].as_sequence().unwrap();
    let secret_env: Vec<(&str, &str)> = env
        .iter()
        .filter(|e| e["valueFrom"]["secretKeyRef"].is_mapping())
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e["valueFrom"]["secretKeyRef"]["key"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(secret_env.contains(&("STOWAGE_STORAGE__MYSQL__PASSWORD", "mysql-password")));
    assert!(secret_env.contains(&("STOWAGE_CACHE__REDIS__PASSWORD", "redis-password")));
    // The NFS export is mounted where the configuration says.
    let mounts = serde_yaml::to_string(&c["volumeMounts"]).unwrap();
    assert!(mounts.contains("/mnt/stowage-nfs"), "{mounts}");
    let volumes =
        serde_yaml::to_string(&deployment.doc["spec"]["template"]["spec"]["volumes"]).unwrap();
    assert!(
        volumes.contains("nfs.storage.svc") && volumes.contains("/exports/stowage"),
        "{volumes}"
    );
    let config = config_of(&rendered);
    assert_eq!(config["storage"]["nfs"]["mount_path"], "/mnt/stowage-nfs");
    assert_eq!(config["storage"]["mysql"]["host"], "mariadb.databases.svc");
    assert_eq!(config["cache"]["redis"]["enabled"], true);
    // Passwords never land in the ConfigMap.
    let map = serde_yaml::to_string(&rendered.find("ConfigMap", "stowage").unwrap().doc).unwrap();
    assert!(!map.contains("password"), "{map}");
    assert!(
        rendered.notes.contains("stowage-nfs (stowage.io/nfs"),
        "{}",
        rendered.notes
    );
    // The dashboards ConfigMaps carry the sidecar label and the JSON unchanged.
    for (file, short) in generated::DASHBOARDS {
        let map = rendered
            .find("ConfigMap", &format!("stowage-dashboard-{short}"))
            .unwrap_or_else(|| panic!("no dashboard ConfigMap for {file}"));
        assert_eq!(map.doc["metadata"]["labels"]["grafana_dashboard"], "1");
        let json =
            std::fs::read_to_string(render::repo().join("deploy/grafana").join(file)).unwrap();
        assert_eq!(
            map.doc["data"][*file].as_str(),
            Some(json.as_str()),
            "{file}"
        );
    }
}

#[test]
fn storage_controller_off_drops_its_permissions() {
    let rendered = render(&values(&["storageController: {enabled: false}"]), &RELEASE);
    assert!(rendered.find("Role", "stowage").is_none());
    let role =
        serde_yaml::to_string(&rendered.find("ClusterRole", "stowage").unwrap().doc).unwrap();
    for verb in ["create", "delete", "update"] {
        assert!(
            !role.contains(verb),
            "{verb} granted without the storage controller:\n{role}"
        );
    }
}

/// Configuration keys that exist only on branches not merged yet (storage controller, cache).
/// The rendered config must parse once they are removed; the lead empties the list after merging.
fn unmerged_config_keys() -> Vec<String> {
    tools::allowlist("config")
}

#[test]
fn rendered_configuration_is_accepted_by_stowage() {
    for (label, rendered) in [
        ("default values", defaults()),
        ("mysql-redis-nfs values", full()),
    ] {
        let mut config = config_of(&rendered);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        let load = |config: &serde_yaml::Value| {
            std::fs::write(&path, serde_yaml::to_string(config).unwrap()).unwrap();
            stowage::config::Config::load(Some(&path), &Default::default())
        };
        if load(&config).is_ok() {
            assert!(
                unmerged_config_keys().is_empty(),
                "{label}: the configuration parses with every key, so the `config` lines of \
                 tests/chart/unmerged.txt are stale: remove them"
            );
            continue;
        }
        for key in unmerged_config_keys() {
            let mut parts: Vec<&str> = key.split('.').collect();
            let last = parts.pop().unwrap();
            let mut node = &mut config;
            for part in parts {
                node = &mut node[part];
            }
            if let Some(map) = node.as_mapping_mut() {
                map.remove(last);
            }
        }
        if let Err(err) = load(&config) {
            panic!(
                "{label}: Stowage rejects the chart's configuration:\n{}",
                stowage::report::multiline(&err)
            );
        }
    }
}

#[test]
fn values_schema_accepts_the_examples_and_names_bad_keys() {
    tools::check_values_schema(&values(&[])).expect("values.yaml");
    tools::check_values_schema(&full_values()).expect("ci/mysql-redis-nfs-values.yaml");
    for (bad, named) in [
        ("storage: {type: postgres}", "storage.type"),
        (
            "storageClasses: {nfs: {enabled: true}}",
            "storageClasses.nfs.server",
        ),
        ("replicas: 3", "Additional properties"),
        ("service: {port: 70000}", "service.port"),
        // Passwords come from existingSecret, never from values.
        ("storage: {mysql: {password: hunter2}}", "storage.mysql"),
    ] {
        let err = tools::check_values_schema(&values(&[bad]))
            .expect_err(&format!("values.schema.json accepts {bad}"));
        assert!(err.contains(named), "{bad}: {err}");
    }
}

/// Writes the rendered charts (default and full values) to `dir`; returns their paths.
fn write_rendered(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut paths = Vec::new();
    for (name, rendered) in [("defaults.yaml", defaults()), ("full.yaml", full())] {
        let path = dir.join(name);
        std::fs::write(&path, rendered.to_yaml()).expect("write rendered chart");
        paths.push(path);
    }
    paths
}

#[test]
fn manifests_are_valid_kubernetes_1_33_objects() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = write_rendered(dir.path());
    let repo = render::repo();
    for file in [
        "deploy/namespace.yaml",
        "deploy/stowage.yaml",
        "deploy/crds/resourcemirror.yaml",
        "charts/stowage/crds/resourcemirror.yaml",
    ] {
        files.push(repo.join(file));
    }
    let refs: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    tools::validate_manifests(&refs);
}

#[test]
fn validation_rejects_an_unknown_field() {
    // The validator is strict: a misspelt field in a manifest fails the check.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    let mut doc = defaults()
        .find("Deployment", "stowage")
        .unwrap()
        .doc
        .clone();
    doc["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] =
        doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].clone();
    std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
    let out = std::process::Command::new(tools::program("python3", "PYTHON"))
        .arg(render::repo().join("scripts/validate-manifests.py"))
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("readinesProbe"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_apply_to_the_emulator_with_kubectl() {
    let emulator = stowage_emulator::Emulator::start(Default::default())
        .await
        .expect("start the emulator");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let kc = kubeconfig.as_path();
    let repo = render::repo();

    // kubectl apply -k deploy/: namespace, CRD, the default install.
    let deploy = repo.join("deploy");
    let out = tools::kubectl(kc, &["apply", "-k", deploy.to_str().unwrap()]).await;
    assert!(out.contains("deployment.apps/stowage created"), "{out}");
    let out = tools::kubectl(
        kc,
        &["get", "crd", "resourcemirrors.stowage.io", "-o", "name"],
    )
    .await;
    assert!(out.contains("resourcemirrors.stowage.io"), "{out}");

    // The full chart into another namespace, with the Prometheus Operator's CRDs present.
    let crds = dir.path().join("monitoring-crds.yaml");
    std::fs::write(&crds, tools::MONITORING_CRDS).unwrap();
    tools::kubectl(kc, &["apply", "-f", crds.to_str().unwrap()]).await;
    // (`kubectl create namespace` sends protobuf, which the emulator does not take; apply sends JSON.)
    let namespace = dir.path().join("namespace.yaml");
    std::fs::write(
        &namespace,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: observe}\n",
    )
    .unwrap();
    tools::kubectl(kc, &["apply", "-f", namespace.to_str().unwrap()]).await;
    let release = render::Release {
        name: "obs",
        namespace: "observe",
        service: "Helm",
    };
    let rendered = render::render(&full_values(), &release);
    let file = dir.path().join("full.yaml");
    std::fs::write(&file, rendered.to_yaml()).unwrap();
    let chart_crds = render::chart_dir().join("crds");
    tools::kubectl(kc, &["apply", "-f", chart_crds.to_str().unwrap()]).await;
    tools::kubectl(kc, &["apply", "-f", file.to_str().unwrap()]).await;
    for (kind, name) in [
        ("deployment", "obs"),
        ("servicemonitor", "obs"),
        ("prometheusrule", "obs"),
        ("networkpolicy", "obs"),
        ("configmap", "obs-dashboard-mirror"),
    ] {
        let out = tools::kubectl(kc, &["-n", "observe", "get", kind, name, "-o", "name"]).await;
        assert!(out.contains(name), "{kind}/{name}: {out}");
    }
    let out = tools::kubectl(kc, &["get", "storageclass", "-o", "name"]).await;
    for class in ["stowage-hostpath", "stowage-nfs", "stowage-longhorn"] {
        assert!(out.contains(class), "{out}");
    }
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_sandbox_and_every_dashboard_and_alert_query_works() {
    tokio::time::timeout(Duration::from_secs(240), scenario::observe_scenario())
        .await
        .expect("the scenario took over 240 s");
}

#[test]
fn the_renderer_refuses_what_it_does_not_implement() {
    // Templates are limited to what gtmpl and funcs.rs provide: anything else fails loudly
    // instead of rendering differently from Helm.
    let root = funcs::from_serde(&serde_yaml::from_str("{Values: {a: 1}}").unwrap());
    for text in [
        "{{ include \"stowage.labels\" . }}",
        "{{ .Files.Get \"dashboards/x.json\" }}",
        "{{ .Values.a | sha256sum }}",
        "{{ required \"a is required\" .Values.a }}",
    ] {
        assert!(
            render::render_text(text, &root).is_err(),
            "{text} rendered although the renderer does not implement it"
        );
    }
    assert_eq!(
        render::render_text(
            "{{- /* c */ -}} a{{ `{{ $labels.x }}` }} {{ .Values.a | quote }}",
            &root
        )
        .unwrap(),
        "a{{ $labels.x }} \"1\""
    );
}
