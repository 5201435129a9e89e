//! Cell values for the built-in columns: small readers of object fields, formatted as kubectl
//! formats them.

use serde_json::{Value, json};

use super::human_age;

pub(super) fn s(v: &Value, ptr: &str) -> String {
    match v.pointer(ptr) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

pub(super) fn n(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

pub(super) fn or_none(s: String) -> Value {
    Value::String(if s.is_empty() { "<none>".into() } else { s })
}

pub(super) fn name(v: &Value) -> Value {
    Value::String(s(v, "/metadata/name"))
}

pub(super) fn age(v: &Value) -> Value {
    Value::String(human_age(&s(v, "/metadata/creationTimestamp")))
}

pub(super) fn pod_ready(v: &Value) -> Value {
    let total = v
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = v
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(0, |cs| {
            cs.iter().filter(|c| c["ready"] == json!(true)).count()
        });
    json!(format!("{ready}/{total}"))
}

pub(super) fn pod_status(v: &Value) -> Value {
    if v.pointer("/metadata/deletionTimestamp").is_some() {
        return json!("Terminating");
    }
    let waiting = v
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter().find_map(|c| {
                c.pointer("/state/waiting/reason")
                    .or_else(|| c.pointer("/state/terminated/reason"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
        });
    json!(
        waiting
            .or_else(|| v
                .pointer("/status/reason")
                .and_then(Value::as_str)
                .map(str::to_string))
            .unwrap_or_else(|| s(v, "/status/phase"))
    )
}

pub(super) fn pod_restarts(v: &Value) -> Value {
    let r: i64 = v
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(0, |cs| {
            cs.iter()
                .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                .sum()
        });
    json!(r)
}

pub(super) fn deploy_ready(v: &Value) -> Value {
    json!(format!(
        "{}/{}",
        n(v, "/status/readyReplicas"),
        n(v, "/spec/replicas")
    ))
}

pub(super) fn containers(v: &Value, field: &str) -> Value {
    let list = v
        .pointer("/spec/template/spec/containers")
        .or_else(|| v.pointer("/spec/jobTemplate/spec/template/spec/containers"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c[field].as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    or_none(list)
}

pub(super) fn selector(v: &Value) -> Value {
    let m = v
        .pointer("/spec/selector/matchLabels")
        .or_else(|| v.pointer("/spec/selector"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    or_none(m)
}

pub(super) fn svc_ports(v: &Value) -> Value {
    let ports = v
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let proto = p["protocol"].as_str().unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(np) => format!("{}:{np}/{proto}", p["port"]),
                        None => format!("{}/{proto}", p["port"]),
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    or_none(ports)
}

pub(super) fn node_status(v: &Value) -> Value {
    let ready = v
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["status"] == "True");
    let mut status = match ready {
        Some(true) => "Ready".to_string(),
        _ => "NotReady".to_string(),
    };
    if v.pointer("/spec/unschedulable") == Some(&json!(true)) {
        status.push_str(",SchedulingDisabled");
    }
    json!(status)
}

pub(super) fn node_roles(v: &Value) -> Value {
    let roles = v
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    or_none(roles)
}

pub(super) fn access_modes(v: &Value, ptr: &str) -> Value {
    let modes = v
        .pointer(ptr)
        .and_then(Value::as_array)
        .map(|ms| {
            ms.iter()
                .filter_map(Value::as_str)
                .map(|m| match m {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!(modes)
}

pub(super) fn pv_claim(v: &Value) -> Value {
    let ns = s(v, "/spec/claimRef/namespace");
    let name = s(v, "/spec/claimRef/name");
    json!(if name.is_empty() {
        String::new()
    } else {
        format!("{ns}/{name}")
    })
}

pub(super) fn data_count(v: &Value) -> Value {
    let count = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_object)
            .map_or(0, |m| m.len())
    };
    json!(count("/data") + count("/binaryData"))
}

pub(super) fn event_object(v: &Value) -> Value {
    json!(format!(
        "{}/{}",
        s(v, "/involvedObject/kind").to_lowercase(),
        s(v, "/involvedObject/name")
    ))
}

pub(super) fn event_last_seen(v: &Value) -> Value {
    let t = [
        s(v, "/lastTimestamp"),
        s(v, "/eventTime"),
        s(v, "/metadata/creationTimestamp"),
    ]
    .into_iter()
    .find(|t| !t.is_empty())
    .unwrap_or_default();
    json!(human_age(&t))
}
