//! Conversions between core/v1 Events and events.k8s.io/v1 Events, which share one store.
//!
//! The mapping follows kubernetes `pkg/apis/events/v1/conversion.go`:
//!
//! | events.k8s.io/v1           | core/v1                                 |
//! |----------------------------|-----------------------------------------|
//! | `regarding`                | `involvedObject`                        |
//! | `note`                     | `message`                               |
//! | `reportingController`      | `reportingComponent`                    |
//! | `reportingInstance`        | `reportingInstance`                     |
//! | `deprecatedSource`         | `source`                                |
//! | `deprecatedFirstTimestamp` | `firstTimestamp`                        |
//! | `deprecatedLastTimestamp`  | `lastTimestamp`                         |
//! | `deprecatedCount`          | `count`                                 |
//! | `eventTime`, `series`, `related`, `action`, `reason`, `type`, `metadata` | same |
//!
//! Beyond Go, two gaps are filled so each API shows something useful for events written through
//! the other one: a v1 event without `deprecatedSource` gets core `source` =
//! `{component: reportingController, host: reportingInstance}`, and a core event without
//! `reportingComponent`/`reportingInstance` gets v1 `reportingController`/`reportingInstance` from
//! `source.component`/`source.host`. Fills only add fields, so a round trip never loses data, but
//! it can gain these derived fields when the original lacked them. Unknown top-level fields are
//! dropped, as decoding into the Go types would.

use serde_json::{Map, Value};

const CORE_API_VERSION: &str = "v1";
const EVENTS_API_VERSION: &str = "events.k8s.io/v1";

/// Fields renamed between the forms: (events.k8s.io/v1 name, core/v1 name).
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// core/v1 fields in Go struct order, which is what kubectl users see.
const CORE_FIELDS: &[&str] = &[
    "metadata",
    "involvedObject",
    "reason",
    "message",
    "source",
    "firstTimestamp",
    "lastTimestamp",
    "count",
    "type",
    "eventTime",
    "series",
    "action",
    "related",
    "reportingComponent",
    "reportingInstance",
];

/// events.k8s.io/v1 fields in Go struct order.
const EVENTS_V1_FIELDS: &[&str] = &[
    "metadata",
    "eventTime",
    "series",
    "reportingController",
    "reportingInstance",
    "action",
    "reason",
    "regarding",
    "related",
    "note",
    "type",
    "deprecatedSource",
    "deprecatedFirstTimestamp",
    "deprecatedLastTimestamp",
    "deprecatedCount",
];

/// Converts an events.k8s.io/v1 Event into its core/v1 form (apiVersion "v1", kind "Event").
/// An input that already says `apiVersion: v1` is returned unchanged.
pub fn to_core(ev: &Value) -> Value {
    if ev.get("apiVersion").and_then(Value::as_str) == Some(CORE_API_VERSION) {
        return ev.clone();
    }
    let mut out = header(CORE_API_VERSION);
    for &core in CORE_FIELDS {
        let value = match core {
            "source" => core_source(ev),
            _ => field(ev, v1_name(core)),
        };
        put(&mut out, core, value);
    }
    Value::Object(out)
}

/// Converts a core/v1 Event into events.k8s.io/v1 form. An input that already says
/// `apiVersion: events.k8s.io/v1` is returned unchanged.
pub fn to_events_v1(ev: &Value) -> Value {
    if ev.get("apiVersion").and_then(Value::as_str) == Some(EVENTS_API_VERSION) {
        return ev.clone();
    }
    let mut out = header(EVENTS_API_VERSION);
    for &v1 in EVENTS_V1_FIELDS {
        let value = match v1 {
            "reportingController" => reporting(ev, "reportingComponent", "component"),
            "reportingInstance" => reporting(ev, "reportingInstance", "host"),
            _ => field(ev, core_name(v1)),
        };
        put(&mut out, v1, value);
    }
    Value::Object(out)
}

/// `kind` before `apiVersion`, as Go serializes TypeMeta.
fn header(api_version: &str) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("kind".into(), Value::from("Event"));
    out.insert("apiVersion".into(), Value::from(api_version));
    out
}

/// A v1 reporting field: the core field when set, else the matching `source` member.
fn reporting(ev: &Value, core_key: &str, source_key: &str) -> Option<Value> {
    ev.get(core_key)
        .filter(|v| is_set(v))
        .or_else(|| {
            ev.get("source")
                .and_then(|s| s.get(source_key))
                .filter(|v| is_set(v))
        })
        .cloned()
}

/// Core `source`: `deprecatedSource` when set, else derived from the reporting fields.
fn core_source(ev: &Value) -> Option<Value> {
    if let Some(source) = ev.get("deprecatedSource").filter(|v| is_set(v)) {
        return Some(source.clone());
    }
    let mut derived = Map::new();
    for (from, to) in [
        ("reportingController", "component"),
        ("reportingInstance", "host"),
    ] {
        if let Some(v) = ev.get(from).filter(|v| is_set(v)) {
            derived.insert(to.into(), v.clone());
        }
    }
    (!derived.is_empty()).then_some(Value::Object(derived))
}

/// A field copied as is, except that `series` keeps only the members both schemas define.
fn field(ev: &Value, key: &str) -> Option<Value> {
    let value = ev.get(key)?;
    match (key, value) {
        ("series", Value::Object(series)) => Some(Value::Object(
            series
                .iter()
                .filter(|(k, _)| matches!(k.as_str(), "count" | "lastObservedTime"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )),
        _ => Some(value.clone()),
    }
}

fn v1_name(core: &str) -> &str {
    RENAMED
        .iter()
        .find(|(_, c)| *c == core)
        .map_or(core, |(v1, _)| v1)
}

fn core_name(v1: &str) -> &str {
    RENAMED
        .iter()
        .find(|(v, _)| *v == v1)
        .map_or(v1, |(_, core)| core)
}

/// Neither null, "" nor an empty object: Go's zero values, which omitempty drops.
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Object(m) => !m.is_empty(),
        _ => true,
    }
}

fn put(out: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        out.insert(key.into(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full_core() -> Value {
        json!({
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": {"name": "p.17a", "namespace": "ns", "resourceVersion": "12", "uid": "u-1"},
            "involvedObject": {
                "kind": "Pod", "namespace": "ns", "name": "p", "uid": "pod-uid",
                "apiVersion": "v1", "resourceVersion": "7", "fieldPath": "spec.containers{app}"
            },
            "reason": "Started",
            "message": "Started container app",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2024-01-02T03:04:05Z",
            "lastTimestamp": "2024-01-02T03:05:05Z",
            "count": 3,
            "type": "Normal",
            "eventTime": "2024-01-02T03:04:05.123456Z",
            "series": {"count": 2, "lastObservedTime": "2024-01-02T03:05:05.654321Z"},
            "action": "Start",
            "related": {"kind": "Node", "name": "node-1", "apiVersion": "v1"},
            "reportingComponent": "kubelet",
            "reportingInstance": "node-1"
        })
    }

    fn full_v1() -> Value {
        json!({
            "kind": "Event",
            "apiVersion": "events.k8s.io/v1",
            "metadata": {"name": "p.17a", "namespace": "ns", "resourceVersion": "12", "uid": "u-1"},
            "eventTime": "2024-01-02T03:04:05.123456Z",
            "series": {"count": 2, "lastObservedTime": "2024-01-02T03:05:05.654321Z"},
            "reportingController": "kubelet",
            "reportingInstance": "node-1",
            "action": "Start",
            "reason": "Started",
            "regarding": {
                "kind": "Pod", "namespace": "ns", "name": "p", "uid": "pod-uid",
                "apiVersion": "v1", "resourceVersion": "7", "fieldPath": "spec.containers{app}"
            },
            "related": {"kind": "Node", "name": "node-1", "apiVersion": "v1"},
            "note": "Started container app",
            "type": "Normal",
            "deprecatedSource": {"component": "kubelet", "host": "node-1"},
            "deprecatedFirstTimestamp": "2024-01-02T03:04:05Z",
            "deprecatedLastTimestamp": "2024-01-02T03:05:05Z",
            "deprecatedCount": 3
        })
    }

    fn keys(v: &Value) -> Vec<String> {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn full_conversions_match_each_other() {
        assert_eq!(to_events_v1(&full_core()), full_v1());
        assert_eq!(to_core(&full_v1()), full_core());
        // Same key order as the Go structs, not just the same set.
        assert_eq!(keys(&to_events_v1(&full_core())), keys(&full_v1()));
        assert_eq!(keys(&to_core(&full_v1())), keys(&full_core()));
    }

    #[test]
    fn round_trips_are_lossless() {
        assert_eq!(to_core(&to_events_v1(&full_core())), full_core());
        assert_eq!(to_events_v1(&to_core(&full_v1())), full_v1());
        let micro = to_events_v1(&full_core());
        assert_eq!(micro["eventTime"], json!("2024-01-02T03:04:05.123456Z"));
    }

    #[test]
    fn partial_conversion_table() {
        let cases: &[(&str, Value, Value)] = &[
            (
                "new-style v1 event gets a derived core source",
                json!({
                    "apiVersion": "events.k8s.io/v1", "kind": "Event",
                    "metadata": {"name": "e"}, "eventTime": "2024-01-02T03:04:05.000001Z",
                    "reportingController": "ctrl", "reportingInstance": "ctrl-0",
                    "action": "Sync", "reason": "Synced", "regarding": {"kind": "Pod", "name": "p"},
                    "note": "ok", "type": "Normal"
                }),
                json!({
                    "kind": "Event", "apiVersion": "v1", "metadata": {"name": "e"},
                    "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Synced", "message": "ok",
                    "source": {"component": "ctrl", "host": "ctrl-0"},
                    "type": "Normal", "eventTime": "2024-01-02T03:04:05.000001Z", "action": "Sync",
                    "reportingComponent": "ctrl", "reportingInstance": "ctrl-0"
                }),
            ),
            (
                "empty deprecatedSource does not hide the derived one",
                json!({"apiVersion": "events.k8s.io/v1", "reportingController": "c", "deprecatedSource": {}}),
                json!({"kind": "Event", "apiVersion": "v1", "source": {"component": "c"}, "reportingComponent": "c"}),
            ),
            (
                "series drops fields v1 lacks",
                json!({"apiVersion": "events.k8s.io/v1", "series": {"count": 1, "lastObservedTime": "t", "state": "x"}}),
                json!({"kind": "Event", "apiVersion": "v1", "series": {"count": 1, "lastObservedTime": "t"}}),
            ),
            (
                "already core is unchanged",
                json!({"apiVersion": "v1", "kind": "Event", "message": "m", "extra": 1}),
                json!({"apiVersion": "v1", "kind": "Event", "message": "m", "extra": 1}),
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(&to_core(input), want, "{name}");
        }
    }

    #[test]
    fn partial_to_events_v1_table() {
        let cases: &[(&str, Value, Value)] = &[
            (
                "old-style core event gets reporting fields from source",
                json!({
                    "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
                    "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Pulled", "message": "m",
                    "source": {"component": "kubelet", "host": "n1"}, "count": 1,
                    "firstTimestamp": "2024-01-02T03:04:05Z", "lastTimestamp": "2024-01-02T03:04:05Z",
                    "type": "Normal", "eventTime": null, "reportingComponent": ""
                }),
                json!({
                    "kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": {"name": "e"},
                    "eventTime": null, "reportingController": "kubelet", "reportingInstance": "n1",
                    "reason": "Pulled", "regarding": {"kind": "Pod", "name": "p"}, "note": "m", "type": "Normal",
                    "deprecatedSource": {"component": "kubelet", "host": "n1"},
                    "deprecatedFirstTimestamp": "2024-01-02T03:04:05Z",
                    "deprecatedLastTimestamp": "2024-01-02T03:04:05Z", "deprecatedCount": 1
                }),
            ),
            (
                "explicit reporting fields win over source",
                json!({"source": {"component": "a", "host": "h"}, "reportingComponent": "b", "reportingInstance": "i"}),
                json!({
                    "kind": "Event", "apiVersion": "events.k8s.io/v1",
                    "reportingController": "b", "reportingInstance": "i",
                    "deprecatedSource": {"component": "a", "host": "h"}
                }),
            ),
            (
                "already v1 is unchanged",
                json!({"apiVersion": "events.k8s.io/v1", "note": "n"}),
                json!({"apiVersion": "events.k8s.io/v1", "note": "n"}),
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(&to_events_v1(input), want, "{name}");
        }
    }

    #[test]
    fn partial_round_trips_only_gain_derived_fields() {
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "reportingController": "ctrl", "reportingInstance": "ctrl-0", "note": "n"
        });
        let back = to_events_v1(&to_core(&v1));
        for (k, v) in v1.as_object().into_iter().flatten() {
            assert_eq!(back.get(k), Some(v), "{k}");
        }
        assert_eq!(
            back["deprecatedSource"],
            json!({"component": "ctrl", "host": "ctrl-0"})
        );
    }
}
