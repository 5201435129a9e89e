//! Fields the real API server fills in on create (phases, cluster IPs, namespace labels).

use serde_json::{Value, json};

use super::Inner;
use crate::resources::{ResourceType, StorageKey};

pub fn on_create(rt: &ResourceType, obj: &mut Value, inner: &Inner) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => {
            let name = obj
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null);
            let meta = &mut obj["metadata"];
            if !meta.get("labels").is_some_and(Value::is_object) {
                meta["labels"] = json!({});
            }
            meta["labels"]["kubernetes.io/metadata.name"] = name;
            set_default(obj, "status", json!({"phase": "Active"}));
        }
        ("", "Pod") => set_default(
            obj,
            "status",
            json!({"phase": "Pending", "qosClass": "BestEffort"}),
        ),
        ("", "PersistentVolumeClaim") => {
            set_default(obj, "status", json!({"phase": "Pending"}));
            if obj.pointer("/spec/volumeMode").is_none()
                && obj.get("spec").is_some_and(Value::is_object)
            {
                obj["spec"]["volumeMode"] = json!("Filesystem");
            }
        }
        ("", "PersistentVolume") => {
            set_default(obj, "status", json!({"phase": "Pending"}));
            if obj.get("spec").is_some_and(Value::is_object) {
                if obj.pointer("/spec/persistentVolumeReclaimPolicy").is_none() {
                    obj["spec"]["persistentVolumeReclaimPolicy"] = json!("Retain");
                }
                if obj.pointer("/spec/volumeMode").is_none() {
                    obj["spec"]["volumeMode"] = json!("Filesystem");
                }
            }
        }
        ("", "Service") => service_defaults(obj, inner),
        ("storage.k8s.io", "StorageClass") => {
            if obj.get("reclaimPolicy").is_none() {
                obj["reclaimPolicy"] = json!("Delete");
            }
            if obj.get("volumeBindingMode").is_none() {
                obj["volumeBindingMode"] = json!("Immediate");
            }
        }
        ("apps", "Deployment" | "StatefulSet" | "ReplicaSet")
            if obj.get("spec").is_some_and(Value::is_object)
                && obj.pointer("/spec/replicas").is_none() =>
        {
            obj["spec"]["replicas"] = json!(1);
        }
        _ => {}
    }
}

fn set_default(obj: &mut Value, field: &str, value: Value) {
    if obj.get(field).is_none_or(Value::is_null) {
        obj[field] = value;
    }
}

fn service_defaults(obj: &mut Value, inner: &Inner) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    if spec.get("type").is_none() {
        spec["type"] = json!("ClusterIP");
    }
    if spec.get("sessionAffinity").is_none() {
        spec["sessionAffinity"] = json!("None");
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if p.get("protocol").is_none() {
                p["protocol"] = json!("TCP");
            }
            if p.get("targetPort").is_none() {
                p["targetPort"] = p.get("port").cloned().unwrap_or(Value::Null);
            }
        }
    }
    let is_external = spec["type"] == "ExternalName";
    let unset = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if !is_external && unset {
        // Deterministic per creation order, inside k3s's default service CIDR.
        let n = inner.rv() + 10;
        let ip = format!("10.43.{}.{}", (n / 250) % 250, n % 250 + 1);
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
    }
    let svc_type = spec["type"].as_str().unwrap_or_default().to_string();
    if svc_type == "NodePort" || svc_type == "LoadBalancer" {
        let key = StorageKey {
            group: String::new(),
            plural: "services".into(),
        };
        let used = inner.objects(&key).map(|o| o.len()).unwrap_or(0) as u64;
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for (i, p) in ports.iter_mut().enumerate() {
                if p.get("nodePort").is_none() {
                    p["nodePort"] = json!(30000 + (used * 7 + i as u64) % 2768);
                }
            }
        }
    }
}
