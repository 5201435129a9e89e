//! Semantic checks on a parsed [`Config`]: ranges, relations between keys, well-formed endpoints.

use super::{Config, EtcdConfig, MysqlConfig, Problem};

/// Every problem in `config`, in key order; empty when the configuration is usable.
pub(crate) fn problems(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    mysql(&config.storage.mysql, &mut problems);
    etcd(&config.storage.etcd, &mut problems);
    super::storage::problems(
        &config.storage.controller,
        &config.storage.hostpath,
        &config.storage.nfs,
        &mut problems,
    );
    super::mirror::problems(&config.mirror, &mut problems);
    super::cache::problems(&config.cache, &mut problems);
    problems
}

fn mysql(mysql: &MysqlConfig, problems: &mut Vec<Problem>) {
    let at = |key: &str| format!("storage.mysql.{key}");
    for (key, value) in [
        ("host", &mysql.host),
        ("user", &mysql.user),
        ("database", &mysql.database),
    ] {
        if value.trim().is_empty() {
            problems.push(Problem::new(at(key), "must not be empty"));
        }
    }
    if mysql.port == 0 {
        problems.push(Problem::new(at("port"), "must be between 1 and 65535"));
    }
    if mysql.max_open_conns == 0 {
        problems.push(Problem::new(at("max_open_conns"), "must be at least 1"));
    }
    if mysql.max_idle_conns > mysql.max_open_conns {
        problems.push(Problem::new(
            at("max_idle_conns"),
            format!("must not exceed max_open_conns ({})", mysql.max_open_conns),
        ));
    }
    if mysql.purge_after.is_zero() {
        problems.push(Problem::new(at("purge_after"), "must be greater than zero"));
    }
}

fn etcd(etcd: &EtcdConfig, problems: &mut Vec<Problem>) {
    if etcd.endpoints.is_empty() {
        problems.push(Problem::new("storage.etcd.endpoints", "must not be empty"));
    }
    for (index, endpoint) in etcd.endpoints.iter().enumerate() {
        if let Some(message) = endpoint_problem(endpoint) {
            problems.push(Problem::new(
                format!("storage.etcd.endpoints[{index}]"),
                message,
            ));
        }
    }
    if etcd.dial_timeout.is_zero() {
        problems.push(Problem::new(
            "storage.etcd.dial_timeout",
            "must be greater than zero",
        ));
    }
    if let Some(message) = etcd_prefix_problem(&etcd.prefix) {
        problems.push(Problem::new("storage.etcd.prefix", message));
    }
    if etcd.max_txn_ops == 0 {
        problems.push(Problem::new(
            "storage.etcd.max_txn_ops",
            "must be at least 1",
        ));
    }
    // Below this, ordinary objects would not fit a request.
    if etcd.max_request_bytes < 65_536 {
        problems.push(Problem::new(
            "storage.etcd.max_request_bytes",
            "must be at least 65536",
        ));
    }
}

/// Why `prefix` cannot hold a mirror's keys, if it cannot.
fn etcd_prefix_problem(prefix: &str) -> Option<String> {
    if !prefix.starts_with('/') {
        Some(format!("{prefix:?} must start with /"))
    } else if prefix.trim_end_matches('/').is_empty() {
        Some(format!(
            "{prefix:?} must name a directory such as /kubernetes (not the whole key space)"
        ))
    } else if prefix.contains("//") {
        Some(format!("{prefix:?} must not contain empty segments (//)"))
    } else {
        None
    }
}

/// Why `endpoint` is not an `http(s)://host:port` URL, if it is not.
fn endpoint_problem(endpoint: &str) -> Option<String> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"));
    match rest {
        None => Some(format!("{endpoint:?} must start with http:// or https://")),
        Some(host) if host.trim_end_matches('/').is_empty() => {
            Some(format!("{endpoint:?} has no host"))
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(config: &Config) -> Vec<String> {
        problems(config).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_are_valid() {
        assert!(messages(&Config::default()).is_empty());
    }

    #[test]
    fn idle_connections_are_bounded_by_open_connections() {
        let mut config = Config::default();
        config.storage.mysql.max_idle_conns = 101;
        assert_eq!(
            messages(&config),
            ["storage.mysql.max_idle_conns: must not exceed max_open_conns (100)"]
        );
    }

    #[test]
    fn a_zero_purge_age_is_rejected() {
        let mut config = Config::default();
        config.storage.mysql.purge_after = std::time::Duration::ZERO;
        assert_eq!(
            messages(&config),
            ["storage.mysql.purge_after: must be greater than zero"]
        );
    }

    #[test]
    fn port_zero_is_rejected() {
        let mut config = Config::default();
        config.storage.mysql.port = 0;
        assert_eq!(
            messages(&config),
            ["storage.mysql.port: must be between 1 and 65535"]
        );
    }

    #[test]
    fn endpoints_must_be_present_and_urls() {
        let mut config = Config::default();
        config.storage.etcd.endpoints = vec![];
        assert_eq!(
            messages(&config),
            ["storage.etcd.endpoints: must not be empty"]
        );
        config.storage.etcd.endpoints = vec!["localhost:2379".into(), "https://".into()];
        assert_eq!(
            messages(&config),
            [
                "storage.etcd.endpoints[0]: \"localhost:2379\" must start with http:// or https://",
                "storage.etcd.endpoints[1]: \"https://\" has no host",
            ]
        );
    }

    #[test]
    fn zero_dial_timeout_is_rejected() {
        let mut config = Config::default();
        config.storage.etcd.dial_timeout = std::time::Duration::ZERO;
        assert_eq!(
            messages(&config),
            ["storage.etcd.dial_timeout: must be greater than zero"]
        );
        let mut config = Config::default();
        config.storage.etcd.prefix = "kubernetes".into();
        config.storage.etcd.max_txn_ops = 0;
        config.storage.etcd.max_request_bytes = 1000;
        assert_eq!(
            messages(&config),
            [
                "storage.etcd.prefix: \"kubernetes\" must start with /",
                "storage.etcd.max_txn_ops: must be at least 1",
                "storage.etcd.max_request_bytes: must be at least 65536",
            ]
        );
        for bad in ["/", "//", "/a//b"] {
            assert!(etcd_prefix_problem(bad).is_some(), "{bad}");
        }
        for good in ["/kubernetes", "/mirrors/a/"] {
            assert_eq!(etcd_prefix_problem(good), None, "{good}");
        }
    }
}
