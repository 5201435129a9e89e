//! Selectable fields: which fields each resource can be selected by, and how their values are
//! read from an object.

use serde_json::Value;

use super::scalar_string;

/// Reads a dotted path (`status.phase`) from `object`; scalars become their string form,
/// null/missing/objects/arrays are `None`.
pub fn lookup_path(object: &Value, path: &str) -> Option<String> {
    let mut cur = object;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    match cur {
        Value::Null | Value::Object(_) | Value::Array(_) => None,
        other => Some(scalar_string(other)),
    }
}

const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// Field selectors the real API server supports per resource (plural, group), beyond
/// `metadata.name`/`metadata.namespace`. `events.k8s.io` events accept the core event names
/// (`involvedObject.*`, `source`, `reportingComponent`), since Go serves both from one storage;
/// [`field_value`] maps them onto the events.k8s.io/v1 fields.
pub fn supported_fields(group: &str, plural: &str) -> &'static [&'static str] {
    match (group, plural) {
        ("", "pods") => POD_FIELDS,
        ("", "events") | ("events.k8s.io", "events") => EVENT_FIELDS,
        ("", "secrets") => &["type"],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "namespaces") => &["status.phase"],
        ("", "services") => &["spec.clusterIP", "spec.type"],
        ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        _ => &[],
    }
}

/// The value of selectable `field` on `object` of resource (group, plural), as Go's
/// `ToSelectableFields` computes it:
/// - core events: `source` is `source.component`;
/// - events.k8s.io events: `involvedObject.X` is `regarding.X`, `reportingComponent` is
///   `reportingController`, `source` is `deprecatedSource.component`, falling back to
///   `reportingController` (the same value [`crate::events`] puts in the core `source.component`);
/// - jobs: `status.successful` is `status.succeeded`;
/// - unset booleans (`spec.hostNetwork`, `spec.unschedulable`) are `false`, unset counters
///   (`status.replicas`, `status.successful`) are `0`, as Go formats the Go zero values;
/// - everything else is the dotted path itself.
pub fn field_value(group: &str, plural: &str, object: &Value, field: &str) -> Option<String> {
    let found = match (group, plural, field) {
        ("", "events", "source") => lookup_path(object, "source.component"),
        ("events.k8s.io", "events", _) => match field {
            "source" => lookup_path(object, "deprecatedSource.component")
                .filter(|s| !s.is_empty())
                .or_else(|| lookup_path(object, "reportingController")),
            "reportingComponent" => lookup_path(object, "reportingController"),
            _ => match field.strip_prefix("involvedObject.") {
                Some(rest) => lookup_path(object, &format!("regarding.{rest}")),
                None => lookup_path(object, field),
            },
        },
        ("batch", "jobs", "status.successful") => lookup_path(object, "status.succeeded"),
        _ => lookup_path(object, field),
    };
    found.or_else(|| zero_value(group, plural, field).map(str::to_string))
}

/// Go's rendering of an unset non-string selectable field.
fn zero_value(group: &str, plural: &str, field: &str) -> Option<&'static str> {
    match (group, plural, field) {
        ("", "pods", "spec.hostNetwork") | ("", "nodes", "spec.unschedulable") => Some("false"),
        ("apps", "replicasets", "status.replicas") | ("batch", "jobs", "status.successful") => {
            Some("0")
        }
        _ => None,
    }
}
