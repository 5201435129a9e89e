//! Server-side printing: `meta.k8s.io/v1` Tables for `kubectl get`, with the columns the real API
//! server prints for common kinds, CRD `additionalPrinterColumns`, and Name/Age otherwise.

mod cells;
mod columns;
#[cfg(test)]
mod tests;

use serde_json::{Value, json};

use crate::resources::ResourceType;
use cells::name;
use columns::columns;

/// Whether the client asked for a Table (kubectl's `Accept: application/json;as=Table;...`).
pub fn wants_table(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.split(',').any(|part| part.contains("as=Table")))
}

/// kubectl's short duration format: 45s, 5m12s, 3h4m, 2d5h, 400d.
pub fn human_age(ts: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(ts) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s if s < 8 * 86400 => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Builds a Table of `objects` as `rt` prints them. `include_object` is the `includeObject` query
/// parameter: `None`, `Object`, or the default `Metadata`.
/// One cell of a CRD printer column: the first value its JSONPath selects (Kubernetes writes
/// `.status.conditions[?(@.type=="Ready")].status`; RFC 9535 wants a leading `$`), with `date`
/// columns shown as an age like the API server does.
fn printer_cell(column: &Value, obj: &Value) -> Value {
    let path = column["jsonPath"].as_str().unwrap_or_default();
    let query = if path.starts_with('$') {
        path.to_string()
    } else {
        format!("${path}")
    };
    let value = serde_json_path::JsonPath::parse(&query)
        .ok()
        .and_then(|p| p.query(obj).first().cloned())
        .unwrap_or(Value::Null);
    match (column["type"].as_str(), &value) {
        (Some("date"), Value::String(ts)) => Value::String(human_age(ts)),
        _ => value,
    }
}

pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    rv: Option<String>,
    include_object: Option<&str>,
) -> Value {
    let builtin = columns(rt);
    let custom: Vec<&Value> = rt.printer_columns.iter().collect();
    // Built-in kinds, and custom ones without printer columns, print the built-in columns.
    let use_builtin = rt.builtin || custom.is_empty();
    let mut defs: Vec<Value> = Vec::new();
    if use_builtin {
        for c in &builtin {
            defs.push(json!({"name": c.name, "type": c.kind, "format": if c.name == "Name" { "name" } else { "" }, "description": "", "priority": c.priority}));
        }
    } else {
        defs.push(json!({"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}));
        for c in &custom {
            defs.push(json!({"name": c["name"], "type": c.get("type").cloned().unwrap_or(json!("string")), "format": c.get("format").cloned().unwrap_or(json!("")),
                "description": c.get("description").cloned().unwrap_or(json!("")), "priority": c.get("priority").cloned().unwrap_or(json!(0))}));
        }
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let cells: Vec<Value> = if use_builtin {
                builtin.iter().map(|c| (c.cell)(obj)).collect()
            } else {
                let mut cells = vec![name(obj)];
                for c in &custom {
                    cells.push(printer_cell(c, obj));
                }
                cells
            };
            let mut row = json!({"cells": cells});
            match include_object {
                Some("None") => {}
                Some("Object") => row["object"] = obj.clone(),
                _ => {
                    row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
                }
            }
            row
        })
        .collect();
    let mut meta = json!({});
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": defs, "rows": rows})
}
