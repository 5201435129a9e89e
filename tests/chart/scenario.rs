//! The observation scenario of tests/chart.rs: promtool on the alert rules, `stowage sandbox`
//! under a short workload, Prometheus scraping it with the rules loaded, then every dashboard query
//! and alert expression evaluated and every metric name checked against what Stowage exports
//! (tests/chart/unmerged.txt lists what unmerged work will add).

use std::collections::BTreeSet;
use std::time::Duration;

use super::observe::{self, QueryResult};
use super::render::{self, RELEASE, Rendered, render, values};
use super::{full, generated, tools};

/// The chart's rule groups (rendered with `values`) as a Prometheus rule file in `dir`.
fn rule_file(dir: &std::path::Path, name: &str, rendered: &Rendered) -> std::path::PathBuf {
    let rule = rendered
        .manifests
        .iter()
        .find(|m| m.kind() == "PrometheusRule")
        .expect("a PrometheusRule");
    let path = dir.join(name);
    std::fs::write(&path, serde_yaml::to_string(&rule.doc["spec"]).unwrap()).unwrap();
    path
}

/// One round of cluster activity: config maps created and changed, REST reads, a claim.
async fn workload(kubeconfig: &std::path::Path, base: &str, round: usize) {
    let mut docs = String::new();
    for i in 0..5 {
        docs.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: load-{i}, namespace: default}}\ndata: {{round: \"{round}\"}}\n"
        ));
    }
    // A claim on a Stowage class gives the storage controller something to provision and bind.
    docs.push_str(
        "---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: observe-hostpath}\n\
         provisioner: stowage.io/hostpath\nallowVolumeExpansion: true\n\
         ---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: observe-claim, namespace: default}\n\
         spec: {accessModes: [ReadWriteOnce], storageClassName: observe-hostpath, resources: {requests: {storage: 1Gi}}}\n",
    );
    let file = kubeconfig.with_file_name(format!("load-{round}.yaml"));
    std::fs::write(&file, docs).unwrap();
    tools::kubectl(kubeconfig, &["apply", "-f", file.to_str().unwrap()]).await;
    for path in [
        "/api/v1/configmaps?namespace=default",
        "/api/v1/status",
        "/api/v1/pods",
    ] {
        let response = reqwest::get(format!("{base}{path}"))
            .await
            .expect("REST read");
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
    }
}

pub async fn observe_scenario() {
    let promtool = tools::program("promtool", "PROMTOOL");
    let dir = tempfile::tempdir().unwrap();

    // The alert rules, for default and full values, pass promtool.
    let rules = rule_file(
        dir.path(),
        "rules.yml",
        &render(&values(&["prometheusRule: {enabled: true}"]), &RELEASE),
    );
    let full_rules = rule_file(dir.path(), "full-rules.yml", &full());
    tools::run(
        std::process::Command::new(&promtool)
            .args(["check", "rules"])
            .arg(&rules)
            .arg(&full_rules),
        "promtool check rules",
    );

    let kubeconfig = dir.path().join("sandbox.kubeconfig");
    let sandbox = observe::start_sandbox(&kubeconfig).await;
    let target = sandbox.base.trim_start_matches("http://").to_owned();
    let prometheus = observe::start_prometheus(dir.path(), &target, &rules).await;
    for round in 0..6 {
        workload(&kubeconfig, &sandbox.base, round).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Enough scrapes for rate() windows, and every rule evaluated at least once.
    loop {
        let scraped = prometheus
            .query("count_over_time(stowage_build_info[1m]) >= 8")
            .await;
        let rules = prometheus.get("/api/v1/rules").await;
        let evaluated = rules["data"]["groups"].as_array().is_some_and(|groups| {
            !groups.is_empty()
                && groups.iter().all(|g| {
                    g["rules"].as_array().is_some_and(|rules| {
                        rules.iter().all(|r| {
                            !r["lastEvaluation"]
                                .as_str()
                                .unwrap_or("0001")
                                .starts_with("0001")
                        })
                    })
                })
        });
        if matches!(scraped, QueryResult::Series(n) if n > 0) && evaluated {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // What Stowage really exports, checked by promtool's linter.
    let metrics_text = reqwest::get(format!("{}/metrics", sandbox.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics_file = dir.path().join("metrics.txt");
    std::fs::write(&metrics_file, &metrics_text).unwrap();
    tools::run(
        std::process::Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(&metrics_file).unwrap()),
        "promtool check metrics on the sandbox's /metrics",
    );
    let exported = observe::exported_families(&metrics_text);
    let unmerged: BTreeSet<String> = tools::allowlist("unmerged").into_iter().collect();
    let on_event: BTreeSet<String> = tools::allowlist("on-event").into_iter().collect();
    let known: BTreeSet<String> = exported
        .iter()
        .chain(&unmerged)
        .chain(&on_event)
        .cloned()
        .collect();
    let mut problems = Vec::new();
    let mut waiting = Vec::new();
    for name in unmerged.intersection(&exported) {
        problems.push(format!(
            "{name} is exported now: remove it from the unmerged lines of tests/chart/unmerged.txt"
        ));
    }
    let sources = source_text(&render::repo().join("src"));
    for name in &on_event {
        let bare = name.trim_start_matches("stowage_");
        if !sources.contains(&format!("\"{bare}\"")) {
            problems.push(format!(
                "{name} (on-event in tests/chart/unmerged.txt) is not registered anywhere in src/"
            ));
        }
    }

    // Every dashboard query: only Stowage's metrics, evaluates, returns data.
    for (file, _) in generated::DASHBOARDS {
        let text =
            std::fs::read_to_string(render::repo().join("deploy/grafana").join(file)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
        for query in observe::dashboard_queries(file, &json) {
            let names = observe::metric_names(&query.expr);
            if names.is_empty() {
                problems.push(format!(
                    "{}: queries no Stowage metric: {}",
                    query.place, query.expr
                ));
            }
            let mut pending = false;
            for name in &names {
                match observe::family_of(name, &known) {
                    None => problems.push(format!(
                        "{}: {name} is not a metric Stowage exports ({})",
                        query.place, query.expr
                    )),
                    Some(family) if on_event.contains(family) => problems.push(format!(
                        "{}: {family} is only exported once an error happens, so the panel would stay empty",
                        query.place
                    )),
                    Some(family) if unmerged.contains(family) => {
                        pending = true;
                        waiting.push(format!("{} ({family})", query.place));
                    }
                    Some(_) => {}
                }
            }
            match prometheus.query(&query.expr).await {
                QueryResult::Error(err) => {
                    problems.push(format!("{}: {err} in {}", query.place, query.expr))
                }
                QueryResult::Series(0) if !pending => problems.push(format!(
                    "{}: returns no data after the workload: {}",
                    query.place, query.expr
                )),
                QueryResult::Series(_) => {}
            }
        }
    }

    // Every alert expression: known metrics, evaluates; Prometheus itself evaluates the rules fine.
    let rules_doc = render::read_yaml(&rules);
    for group in rules_doc["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let alert = rule["alert"].as_str().unwrap_or("?");
            let expr = rule["expr"].as_str().unwrap();
            for name in observe::metric_names(expr) {
                if name.starts_with("stowage_") && observe::family_of(&name, &known).is_none() {
                    problems.push(format!(
                        "alert {alert}: {name} is not a metric Stowage exports"
                    ));
                }
            }
            if let QueryResult::Error(err) = prometheus.query(expr).await {
                problems.push(format!("alert {alert}: {err}"));
            }
        }
    }
    let rules_state = prometheus.get("/api/v1/rules").await;
    let mut rule_count = 0;
    for group in rules_state["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            rule_count += 1;
            if rule["health"] != "ok" {
                problems.push(format!(
                    "Prometheus evaluates {} with {}: {}",
                    rule["name"], rule["health"], rule["lastError"]
                ));
            }
        }
    }
    let expected_rules: usize = rules_doc["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_sequence().unwrap().len())
        .sum();
    assert_eq!(
        rule_count, expected_rules,
        "Prometheus did not load every rule"
    );

    if !waiting.is_empty() {
        eprintln!(
            "queries waiting for unmerged metrics (no data check yet):\n  {}",
            waiting.join("\n  ")
        );
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// All Rust source text under `dir`.
fn source_text(dir: &std::path::Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text.push_str(&source_text(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            text.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    text
}
