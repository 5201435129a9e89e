//! The `mirror` section: which kinds are mirrored, and how the pipeline batches, buffers and relists.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Problem, serde_helpers};
use crate::crd::ColumnType;

/// The `mirror` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MirrorConfig {
    /// Mirror anything at all; `false` runs Stowage without the pipeline.
    pub enabled: bool,
    /// Mirror the built-in kinds (pods, deployments, services, ...).
    pub builtin: bool,
    /// Extra kinds, or overrides of built-in ones (same group, version and kind).
    pub resources: Vec<MirrorResource>,
    /// Built-in kinds to skip, by kind name (`Event`).
    pub exclude: Vec<String>,
    /// Operations written to the store in one batch, at most.
    pub batch_size: usize,
    /// Longest time an operation waits for its batch to fill.
    #[serde(with = "serde_helpers::duration")]
    pub batch_interval: Duration,
    /// Watch events queued per kind before the watcher waits for the store (backpressure).
    pub queue_capacity: usize,
    /// Change-feed entries the memory store keeps.
    pub history: usize,
    /// The circuit breaker around store writes.
    pub breaker: BreakerConfig,
    /// How often kinds the cluster does not serve (yet) are looked up again.
    #[serde(with = "serde_helpers::duration")]
    pub rediscover_interval: Duration,
    /// How the initial list of a kind is fetched.
    pub list: ListMode,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            builtin: true,
            resources: Vec::new(),
            exclude: Vec::new(),
            batch_size: 500,
            batch_interval: Duration::from_millis(50),
            queue_capacity: 10_000,
            history: 100_000,
            breaker: BreakerConfig::default(),
            rediscover_interval: Duration::from_secs(5),
            list: ListMode::Auto,
        }
    }
}

/// One entry of `mirror.resources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorResource {
    /// API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    pub version: String,
    pub kind: String,
    /// Plural resource name; looked up through API discovery when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plural: Option<String>,
    /// Whether the kind is namespaced; looked up through API discovery when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaced: Option<bool>,
    /// Extra dotted paths dropped from every object, e.g. `.status.images`.
    #[serde(default)]
    pub prune: Vec<String>,
    /// Keep Secret `data`/`stringData` (redacted otherwise).
    #[serde(default)]
    pub keep_secret_data: bool,
    /// Typed columns extracted by path.
    #[serde(default)]
    pub columns: Vec<ColumnConfig>,
}

/// One column of a `mirror.resources` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnConfig {
    pub name: String,
    /// Dotted path of the value, e.g. `.status.phase`.
    pub path: String,
    /// `string`, `integer`, `boolean` or `json`.
    #[serde(rename = "type", default)]
    pub column_type: ColumnType,
    /// Whether the store indexes the column.
    #[serde(default)]
    pub index: bool,
}

/// The `mirror.breaker` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive transient store failures that open the breaker.
    pub failures: u32,
    /// How long the breaker stays open before one probe batch is tried.
    #[serde(with = "serde_helpers::duration")]
    pub cooldown: Duration,
    /// Operations kept (across kinds) while the breaker is not closed; beyond that the buffered
    /// operations are dropped and the kind is resynced with a fresh list once the store is back.
    pub buffer: usize,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            cooldown: Duration::from_secs(5),
            buffer: 50_000,
        }
    }
}

/// `mirror.list`: how initial lists are fetched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListMode {
    /// Streaming lists when the API server is 1.32 or newer, paged lists otherwise.
    #[default]
    Auto,
    /// Always streaming lists (`sendInitialEvents`).
    Streaming,
    /// Always paged lists.
    Paged,
}

/// Problems of the `mirror` section, each with its key path.
pub(crate) fn problems(mirror: &MirrorConfig, problems: &mut Vec<Problem>) {
    let at_least_one = [
        ("mirror.batch_size", mirror.batch_size),
        ("mirror.queue_capacity", mirror.queue_capacity),
        ("mirror.history", mirror.history),
        ("mirror.breaker.failures", mirror.breaker.failures as usize),
    ];
    for (key, value) in at_least_one {
        if value == 0 {
            problems.push(Problem::new(key, "must be at least 1"));
        }
    }
    if mirror.batch_size > 0 && mirror.breaker.buffer < mirror.batch_size {
        problems.push(Problem::new(
            "mirror.breaker.buffer",
            format!("must be at least batch_size ({})", mirror.batch_size),
        ));
    }
    for (key, value) in [
        ("mirror.batch_interval", mirror.batch_interval),
        ("mirror.breaker.cooldown", mirror.breaker.cooldown),
        ("mirror.rediscover_interval", mirror.rediscover_interval),
    ] {
        if value.is_zero() {
            problems.push(Problem::new(key, "must be greater than zero"));
        }
    }
    let builtin = crate::mirror::builtin::kind_names();
    for (index, name) in mirror.exclude.iter().enumerate() {
        if !builtin.contains(&name.as_str()) {
            problems.push(Problem::new(
                format!("mirror.exclude[{index}]"),
                format!(
                    "{name:?} is not a built-in kind; expected one of: {}",
                    builtin.join(", ")
                ),
            ));
        }
    }
    for (index, resource) in mirror.resources.iter().enumerate() {
        resource_problems(&format!("mirror.resources[{index}]"), resource, problems);
    }
}

fn resource_problems(at: &str, resource: &MirrorResource, problems: &mut Vec<Problem>) {
    for (key, value) in [("version", &resource.version), ("kind", &resource.kind)] {
        if value.trim().is_empty() {
            problems.push(Problem::new(format!("{at}.{key}"), "must not be empty"));
        }
    }
    if resource
        .plural
        .as_deref()
        .is_some_and(|p| p.trim().is_empty())
    {
        problems.push(Problem::new(
            format!("{at}.plural"),
            "must not be empty (omit it to use discovery)",
        ));
    }
    for (index, path) in resource.prune.iter().enumerate() {
        if let Err(err) = crate::mirror::path::parse(path) {
            problems.push(Problem::new(
                format!("{at}.prune[{index}]"),
                err.to_string(),
            ));
        }
    }
    for (index, column) in resource.columns.iter().enumerate() {
        let here = format!("{at}.columns[{index}]");
        if column.name.trim().is_empty() {
            problems.push(Problem::new(format!("{here}.name"), "must not be empty"));
        } else if resource.columns[..index]
            .iter()
            .any(|c| c.name == column.name)
        {
            problems.push(Problem::new(
                format!("{here}.name"),
                format!("column {:?} is defined more than once", column.name),
            ));
        }
        if let Err(err) = crate::mirror::path::parse(&column.path) {
            problems.push(Problem::new(format!("{here}.path"), err.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(mirror: &MirrorConfig) -> Vec<String> {
        let mut found = Vec::new();
        problems(mirror, &mut found);
        found.iter().map(ToString::to_string).collect()
    }

    fn resource(kind: &str) -> MirrorResource {
        MirrorResource {
            group: "example.com".into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: None,
            namespaced: None,
            prune: vec![],
            keep_secret_data: false,
            columns: vec![],
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(messages(&MirrorConfig::default()).is_empty());
    }

    #[test]
    fn sizes_and_intervals_are_checked() {
        let mut mirror = MirrorConfig {
            batch_size: 0,
            batch_interval: Duration::ZERO,
            ..MirrorConfig::default()
        };
        mirror.breaker.failures = 0;
        assert_eq!(
            messages(&mirror),
            [
                "mirror.batch_size: must be at least 1",
                "mirror.breaker.failures: must be at least 1",
                "mirror.batch_interval: must be greater than zero",
            ]
        );
        let mirror = MirrorConfig {
            batch_size: 100,
            breaker: BreakerConfig {
                buffer: 10,
                ..BreakerConfig::default()
            },
            ..MirrorConfig::default()
        };
        assert_eq!(
            messages(&mirror),
            ["mirror.breaker.buffer: must be at least batch_size (100)"]
        );
    }

    #[test]
    fn exclude_names_built_in_kinds() {
        let mirror = MirrorConfig {
            exclude: vec!["Event".into(), "Evnt".into()],
            ..MirrorConfig::default()
        };
        let found = messages(&mirror);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("mirror.exclude[1]: \"Evnt\" is not a built-in kind"),
            "{found:?}"
        );
    }

    #[test]
    fn resources_name_the_offending_entry() {
        let mut bad = resource("");
        bad.prune = vec![".status..images".into()];
        bad.columns = vec![
            ColumnConfig {
                name: "phase".into(),
                path: ".status.phase".into(),
                column_type: ColumnType::String,
                index: false,
            },
            ColumnConfig {
                name: "phase".into(),
                path: "".into(),
                column_type: ColumnType::String,
                index: false,
            },
        ];
        let mirror = MirrorConfig {
            resources: vec![resource("Widget"), bad],
            ..MirrorConfig::default()
        };
        let found = messages(&mirror);
        assert_eq!(
            found,
            [
                "mirror.resources[1].kind: must not be empty",
                "mirror.resources[1].prune[0]: path \".status..images\" has an empty segment",
                "mirror.resources[1].columns[1].name: column \"phase\" is defined more than once",
                "mirror.resources[1].columns[1].path: path \"\" is empty",
            ]
        );
    }
}
