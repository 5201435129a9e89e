//! Server-side printing: `meta.k8s.io/v1` Tables for `kubectl get`, with the columns the real API
//! server prints for common kinds, CRD `additionalPrinterColumns`, and Name/Age otherwise.

use serde_json::{Value, json};

use crate::resources::ResourceType;

/// Whether the client asked for a Table (kubectl's `Accept: application/json;as=Table;...`).
pub fn wants_table(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.split(',').any(|part| part.contains("as=Table")))
}

struct Column {
    name: &'static str,
    kind: &'static str,
    /// 0 = default, 1 = only with `-o wide`.
    priority: u8,
    cell: fn(&Value) -> Value,
}

const fn col(
    name: &'static str,
    kind: &'static str,
    priority: u8,
    cell: fn(&Value) -> Value,
) -> Column {
    Column {
        name,
        kind,
        priority,
        cell,
    }
}

fn s(v: &Value, ptr: &str) -> String {
    match v.pointer(ptr) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn n(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(s: String) -> Value {
    Value::String(if s.is_empty() { "<none>".into() } else { s })
}

fn name(v: &Value) -> Value {
    Value::String(s(v, "/metadata/name"))
}

fn age(v: &Value) -> Value {
    Value::String(human_age(&s(v, "/metadata/creationTimestamp")))
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

fn pod_ready(v: &Value) -> Value {
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

fn pod_status(v: &Value) -> Value {
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

fn pod_restarts(v: &Value) -> Value {
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

fn deploy_ready(v: &Value) -> Value {
    json!(format!(
        "{}/{}",
        n(v, "/status/readyReplicas"),
        n(v, "/spec/replicas")
    ))
}

fn containers(v: &Value, field: &str) -> Value {
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

fn selector(v: &Value) -> Value {
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

fn svc_ports(v: &Value) -> Value {
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

fn node_status(v: &Value) -> Value {
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

fn node_roles(v: &Value) -> Value {
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

fn access_modes(v: &Value, ptr: &str) -> Value {
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

fn pv_claim(v: &Value) -> Value {
    let ns = s(v, "/spec/claimRef/namespace");
    let name = s(v, "/spec/claimRef/name");
    json!(if name.is_empty() {
        String::new()
    } else {
        format!("{ns}/{name}")
    })
}

fn data_count(v: &Value) -> Value {
    let count = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_object)
            .map_or(0, |m| m.len())
    };
    json!(count("/data") + count("/binaryData"))
}

fn event_object(v: &Value) -> Value {
    json!(format!(
        "{}/{}",
        s(v, "/involvedObject/kind").to_lowercase(),
        s(v, "/involvedObject/name")
    ))
}

fn event_last_seen(v: &Value) -> Value {
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

fn columns(rt: &ResourceType) -> Vec<Column> {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Pod") => vec![
            col("Name", "string", 0, name),
            col("Ready", "string", 0, pod_ready),
            col("Status", "string", 0, pod_status),
            col("Restarts", "string", 0, pod_restarts),
            col("Age", "string", 0, age),
            col("IP", "string", 1, |v| or_none(s(v, "/status/podIP"))),
            col("Node", "string", 1, |v| or_none(s(v, "/spec/nodeName"))),
        ],
        ("apps", "Deployment") => vec![
            col("Name", "string", 0, name),
            col("Ready", "string", 0, deploy_ready),
            col("Up-to-date", "integer", 0, |v| {
                json!(n(v, "/status/updatedReplicas"))
            }),
            col("Available", "integer", 0, |v| {
                json!(n(v, "/status/availableReplicas"))
            }),
            col("Age", "string", 0, age),
            col("Containers", "string", 1, |v| containers(v, "name")),
            col("Images", "string", 1, |v| containers(v, "image")),
            col("Selector", "string", 1, selector),
        ],
        ("apps", "ReplicaSet") => vec![
            col("Name", "string", 0, name),
            col("Desired", "integer", 0, |v| json!(n(v, "/spec/replicas"))),
            col("Current", "integer", 0, |v| json!(n(v, "/status/replicas"))),
            col("Ready", "integer", 0, |v| {
                json!(n(v, "/status/readyReplicas"))
            }),
            col("Age", "string", 0, age),
        ],
        ("apps", "StatefulSet") => {
            vec![
                col("Name", "string", 0, name),
                col("Ready", "string", 0, deploy_ready),
                col("Age", "string", 0, age),
            ]
        }
        ("apps", "DaemonSet") => vec![
            col("Name", "string", 0, name),
            col("Desired", "integer", 0, |v| {
                json!(n(v, "/status/desiredNumberScheduled"))
            }),
            col("Current", "integer", 0, |v| {
                json!(n(v, "/status/currentNumberScheduled"))
            }),
            col("Ready", "integer", 0, |v| {
                json!(n(v, "/status/numberReady"))
            }),
            col("Up-to-date", "integer", 0, |v| {
                json!(n(v, "/status/updatedNumberScheduled"))
            }),
            col("Available", "integer", 0, |v| {
                json!(n(v, "/status/numberAvailable"))
            }),
            col("Age", "string", 0, age),
        ],
        ("", "Service") => vec![
            col("Name", "string", 0, name),
            col("Type", "string", 0, |v| json!(s(v, "/spec/type"))),
            col("Cluster-IP", "string", 0, |v| {
                or_none(s(v, "/spec/clusterIP"))
            }),
            col("External-IP", "string", 0, |v| {
                or_none(s(v, "/status/loadBalancer/ingress/0/ip"))
            }),
            col("Port(s)", "string", 0, svc_ports),
            col("Age", "string", 0, age),
            col("Selector", "string", 1, selector),
        ],
        ("", "Node") => vec![
            col("Name", "string", 0, name),
            col("Status", "string", 0, node_status),
            col("Roles", "string", 0, node_roles),
            col("Age", "string", 0, age),
            col("Version", "string", 0, |v| {
                json!(s(v, "/status/nodeInfo/kubeletVersion"))
            }),
        ],
        ("", "Namespace") => {
            vec![
                col("Name", "string", 0, name),
                col("Status", "string", 0, |v| json!(s(v, "/status/phase"))),
                col("Age", "string", 0, age),
            ]
        }
        ("", "ConfigMap") => vec![
            col("Name", "string", 0, name),
            col("Data", "integer", 0, data_count),
            col("Age", "string", 0, age),
        ],
        ("", "Secret") => vec![
            col("Name", "string", 0, name),
            col("Type", "string", 0, |v| json!(s(v, "/type"))),
            col("Data", "integer", 0, data_count),
            col("Age", "string", 0, age),
        ],
        ("", "PersistentVolumeClaim") => vec![
            col("Name", "string", 0, name),
            col("Status", "string", 0, |v| json!(s(v, "/status/phase"))),
            col("Volume", "string", 0, |v| json!(s(v, "/spec/volumeName"))),
            col("Capacity", "string", 0, |v| {
                json!(s(v, "/status/capacity/storage"))
            }),
            col("Access Modes", "string", 0, |v| {
                access_modes(v, "/status/accessModes")
            }),
            col("StorageClass", "string", 0, |v| {
                or_none(s(v, "/spec/storageClassName"))
            }),
            col("Age", "string", 0, age),
            col("VolumeMode", "string", 1, |v| {
                json!(s(v, "/spec/volumeMode"))
            }),
        ],
        ("", "PersistentVolume") => vec![
            col("Name", "string", 0, name),
            col("Capacity", "string", 0, |v| {
                json!(s(v, "/spec/capacity/storage"))
            }),
            col("Access Modes", "string", 0, |v| {
                access_modes(v, "/spec/accessModes")
            }),
            col("Reclaim Policy", "string", 0, |v| {
                json!(s(v, "/spec/persistentVolumeReclaimPolicy"))
            }),
            col("Status", "string", 0, |v| json!(s(v, "/status/phase"))),
            col("Claim", "string", 0, pv_claim),
            col("StorageClass", "string", 0, |v| {
                json!(s(v, "/spec/storageClassName"))
            }),
            col("Reason", "string", 0, |v| json!(s(v, "/status/reason"))),
            col("Age", "string", 0, age),
        ],
        ("storage.k8s.io", "StorageClass") => vec![
            col("Name", "string", 0, name),
            col("Provisioner", "string", 0, |v| json!(s(v, "/provisioner"))),
            col("ReclaimPolicy", "string", 0, |v| {
                json!(s(v, "/reclaimPolicy"))
            }),
            col("VolumeBindingMode", "string", 0, |v| {
                json!(s(v, "/volumeBindingMode"))
            }),
            col("AllowVolumeExpansion", "string", 0, |v| {
                json!(
                    v.get("allowVolumeExpansion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        .to_string()
                )
            }),
            col("Age", "string", 0, age),
        ],
        ("", "Event") => vec![
            col("Last Seen", "string", 0, event_last_seen),
            col("Type", "string", 0, |v| json!(s(v, "/type"))),
            col("Reason", "string", 0, |v| json!(s(v, "/reason"))),
            col("Object", "string", 0, event_object),
            col("Message", "string", 0, |v| json!(s(v, "/message"))),
        ],
        ("batch", "Job") => vec![
            col("Name", "string", 0, name),
            col("Completions", "string", 0, |v| {
                json!(format!(
                    "{}/{}",
                    n(v, "/status/succeeded"),
                    v.pointer("/spec/completions")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ))
            }),
            col("Age", "string", 0, age),
        ],
        ("batch", "CronJob") => vec![
            col("Name", "string", 0, name),
            col("Schedule", "string", 0, |v| json!(s(v, "/spec/schedule"))),
            col("Suspend", "boolean", 0, |v| {
                json!(
                    v.pointer("/spec/suspend")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                )
            }),
            col("Active", "integer", 0, |v| {
                json!(
                    v.pointer("/status/active")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                )
            }),
            col("Last Schedule", "string", 0, |v| {
                or_none(
                    s(v, "/status/lastScheduleTime")
                        .is_empty()
                        .then(String::new)
                        .unwrap_or_else(|| human_age(&s(v, "/status/lastScheduleTime"))),
                )
            }),
            col("Age", "string", 0, age),
        ],
        ("networking.k8s.io", "Ingress") => vec![
            col("Name", "string", 0, name),
            col("Class", "string", 0, |v| {
                or_none(s(v, "/spec/ingressClassName"))
            }),
            col("Hosts", "string", 0, |v| {
                let hosts = v
                    .pointer("/spec/rules")
                    .and_then(Value::as_array)
                    .map(|rs| {
                        rs.iter()
                            .filter_map(|r| r["host"].as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                json!(if hosts.is_empty() {
                    "*".to_string()
                } else {
                    hosts
                })
            }),
            col("Address", "string", 0, |v| {
                json!(s(v, "/status/loadBalancer/ingress/0/ip"))
            }),
            col("Ports", "string", 0, |v| {
                json!(if v.pointer("/spec/tls").is_some() {
                    "80, 443"
                } else {
                    "80"
                })
            }),
            col("Age", "string", 0, age),
        ],
        _ => vec![col("Name", "string", 0, name), col("Age", "string", 0, age)],
    }
}

/// Builds a Table of `objects` as `rt` prints them. `include_object` is the `includeObject` query
/// parameter: `None`, `Object`, or the default `Metadata`.
pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    rv: Option<String>,
    include_object: Option<&str>,
) -> Value {
    let builtin = columns(rt);
    let custom: Vec<&Value> = rt.printer_columns.iter().collect();
    let mut defs: Vec<Value> = Vec::new();
    if rt.builtin || custom.is_empty() {
        for c in &builtin {
            defs.push(json!({"name": c.name, "type": c.kind, "format": if c.name == "Name" { "name" } else { "" }, "description": "", "priority": c.priority}));
        }
    } else {
        defs.push(json!({"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}));
        for c in &custom {
            defs.push(json!({"name": c["name"], "type": c.get("type").cloned().unwrap_or(json!("string")), "format": c.get("format").cloned().unwrap_or(json!("")),
                "description": c.get("description").cloned().unwrap_or(json!("")), "priority": c.get("priority").cloned().unwrap_or(json!(0))}));
        }
        defs.push(
            json!({"name": "Age", "type": "date", "format": "", "description": "", "priority": 0}),
        );
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let cells: Vec<Value> = if rt.builtin || custom.is_empty() {
                builtin.iter().map(|c| (c.cell)(obj)).collect()
            } else {
                let mut cells = vec![name(obj)];
                for c in &custom {
                    let path = c["jsonPath"].as_str().unwrap_or_default();
                    let ptr = format!("/{}", path.trim_start_matches('.').replace('.', "/"));
                    cells.push(obj.pointer(&ptr).cloned().unwrap_or(Value::Null));
                }
                cells.push(age(obj));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    #[test]
    fn pods_print_like_kubectl() {
        let rt = Registry::builtin().get("", "v1", "pods").expect("pods");
        let pod = json!({"metadata": {"name": "web-1", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [{"ready": true, "restartCount": 2}, {"ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let t = table(&rt, &[pod], None, None);
        assert_eq!(t["columnDefinitions"][1]["name"], "Ready");
        assert_eq!(t["rows"][0]["cells"][0], "web-1");
        assert_eq!(t["rows"][0]["cells"][1], "1/2");
        assert_eq!(t["rows"][0]["cells"][2], "CrashLoopBackOff");
        assert_eq!(t["rows"][0]["cells"][3], 3);
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn accept_header_detection() {
        assert!(wants_table(Some(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        )));
        assert!(!wants_table(Some("application/json")));
        assert!(!wants_table(None));
    }

    #[test]
    fn ages_are_short() {
        let ts = (chrono::Utc::now() - chrono::Duration::seconds(3700)).to_rfc3339();
        assert_eq!(human_age(&ts), "61m");
        assert_eq!(human_age("garbage"), "<unknown>");
    }
}
