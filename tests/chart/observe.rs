//! Stowage observed for real: `stowage sandbox`, a workload against its emulator, and
//! Debian's `prometheus` on loopback scraping it with the chart's alert rules loaded. Helpers to
//! start both and to read what dashboards and rules query.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::tools;

/// `stowage sandbox` running in this process (the same `sandbox::run_sandbox` the command runs,
/// so the metrics are this checkout's, not those of a `stowage` binary another worktree built),
/// stopped on drop.
pub struct Sandbox {
    pub base: String,
    shutdown: stowage::shutdown::Shutdown,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub async fn start_sandbox(kubeconfig: &Path) -> Sandbox {
    let port = free_port();
    let mut config = stowage::config::Config::default();
    config.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // The Redis panels need the L2 in use: the machine's Redis, under a key prefix of its own.
    config.cache.redis.enabled = true;
    config.cache.redis.address = "127.0.0.1:6379".to_owned();
    config.cache.key_prefix = format!("stowage-chart-{}-{port}", std::process::id());
    let shutdown = stowage::shutdown::Shutdown::new();
    let kubeconfig = kubeconfig.to_owned();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        if let Err(err) = stowage::sandbox::run_sandbox(&config, &kubeconfig, stop).await {
            panic!(
                "stowage sandbox stopped: {}",
                stowage::report::multiline(&err)
            );
        }
    });
    let sandbox = Sandbox {
        base: format!("http://127.0.0.1:{port}"),
        shutdown,
    };
    wait_for_status(&format!("{}/readyz", sandbox.base)).await;
    sandbox
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Polls `url` until it answers 200.
pub async fn wait_for_status(url: &str) {
    loop {
        if let Ok(response) = reqwest::get(url).await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Prometheus server on loopback (killed on drop).
pub struct Prometheus {
    pub url: String,
    _child: Child,
}

/// Starts Debian's prometheus scraping `target` (host:port) every second, with `rules` loaded.
pub async fn start_prometheus(dir: &Path, target: &str, rules: &Path) -> Prometheus {
    let bin = tools::program("prometheus", "PROMETHEUS");
    let port = free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [{rules}]\n\
             scrape_configs:\n\
             \x20 - job_name: stowage\n\
             \x20   static_configs: [{{targets: ['{target}']}}]\n",
            rules = rules.display()
        ),
    )
    .expect("write prometheus.yml");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start prometheus");
    let url = format!("http://127.0.0.1:{port}");
    wait_for_status(&format!("{url}/-/ready")).await;
    Prometheus { url, _child: child }
}

/// The outcome of one instant query.
pub enum QueryResult {
    Series(usize),
    Error(String),
}

impl Prometheus {
    pub async fn query(&self, expr: &str) -> QueryResult {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await
            .expect("query prometheus");
        let body: serde_json::Value = response.json().await.expect("JSON answer");
        if body["status"] != "success" {
            return QueryResult::Error(format!("{}: {}", body["errorType"], body["error"]));
        }
        let result = &body["data"]["result"];
        QueryResult::Series(match result.as_array() {
            Some(series) => series.len(),
            None => usize::from(!result.is_null()), // scalar
        })
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        reqwest::get(format!("{}{path}", self.url))
            .await
            .expect("GET prometheus")
            .json()
            .await
            .expect("JSON answer")
    }
}

/// One query of a dashboard: where it is (for messages) and the PromQL.
pub struct DashboardQuery {
    pub place: String,
    pub expr: String,
}

/// Every query of a Grafana dashboard: panel targets and query variables, with Grafana's
/// variables replaced by what they stand for when every value is selected.
pub fn dashboard_queries(file: &str, json: &serde_json::Value) -> Vec<DashboardQuery> {
    let mut queries = Vec::new();
    for panel in json["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            queries.push(DashboardQuery {
                place: format!(
                    "{file} panel {:?} target {}",
                    panel["title"].as_str().unwrap_or(""),
                    target["refId"].as_str().unwrap_or("")
                ),
                expr: substitute(target["expr"].as_str().expect("expr")),
            });
        }
    }
    for variable in json["templating"]["list"].as_array().expect("templating") {
        if variable["type"] == "query" {
            // label_values(METRIC, LABEL) lists LABEL's values of METRIC's series.
            let definition = variable["definition"].as_str().expect("definition");
            let inner = definition
                .strip_prefix("label_values(")
                .and_then(|rest| rest.strip_suffix(')'))
                .expect("label_values(METRIC, LABEL)");
            let (metric, label) = inner.split_once(',').expect("METRIC, LABEL");
            queries.push(DashboardQuery {
                place: format!("{file} variable {}", variable["name"]),
                expr: format!("count by ({}) ({})", label.trim(), metric.trim()),
            });
        }
    }
    queries
}

fn substitute(expr: &str) -> String {
    // A window holding several 1 s scrapes; `.*` is the `kind` variable's "All".
    expr.replace("$__rate_interval", "30s")
        .replace("$kind", ".*")
}

/// Metric names (`stowage_*`, `kubelet_*`) a PromQL expression refers to.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if i > start {
            let word = &expr[start..i];
            let preceded = start > 0 && (bytes[start - 1] == b'$' || bytes[start - 1] == b'.');
            if !preceded && (word.starts_with("stowage_") || word.starts_with("kubelet_")) {
                names.insert(word.to_owned());
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The family a sample name belongs to (a histogram's `_bucket`, `_sum`, `_count` series).
pub fn family_of<'a>(name: &'a str, families: &BTreeSet<String>) -> Option<&'a str> {
    if families.contains(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find(|base| families.contains(*base))
}

/// Families present in a `/metrics` text: its `# TYPE` lines, which the exporter writes only for
/// families with at least one series.
pub fn exported_families(text: &str) -> BTreeSet<String> {
    let mut families = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some(name) = rest.split_whitespace().next()
        {
            families.insert(name.to_owned());
        }
    }
    families
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_skip_functions_labels_and_variables() {
        let names = metric_names(
            r#"histogram_quantile(0.99, sum by (le) (rate(stowage_store_write_duration_seconds_bucket{kind=~"$kind"}[30s]))) / kubelet_volume_stats_capacity_bytes"#,
        );
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            [
                "kubelet_volume_stats_capacity_bytes",
                "stowage_store_write_duration_seconds_bucket"
            ]
        );
    }

    #[test]
    fn histogram_series_belong_to_their_family() {
        let families: BTreeSet<String> = ["stowage_x_seconds".to_owned()].into();
        assert_eq!(
            family_of("stowage_x_seconds_bucket", &families),
            Some("stowage_x_seconds")
        );
        assert_eq!(family_of("stowage_y_total", &families), None);
    }
}
