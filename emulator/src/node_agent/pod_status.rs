//! The pod status a kubelet writes when a helper pod's container has run to completion: phase,
//! conditions and the first container's `terminated` state (exit code, reason, message, times).

use serde_json::{Value, json};

/// The status a kubelet writes for a pod whose only container ran to completion.
pub fn finished(pod: &Value, started: &str, finished: &str, result: Result<(), String>) -> Value {
    let (phase, exit_code, reason, message) = match result {
        Ok(()) => ("Succeeded", 0, "Completed", None),
        Err(message) => ("Failed", 1, "Error", Some(message)),
    };
    let uid = str_at(pod, "/metadata/uid").unwrap_or_default();
    let container_id = format!("emulator://{uid}");
    let mut terminated = json!({
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": started,
        "finishedAt": finished,
        "containerID": container_id,
    });
    if let Some(m) = &message {
        terminated["message"] = json!(m);
    }
    let condition = |kind: &str, status: &str, reason: Option<&str>| {
        let mut c = json!({"type": kind, "status": status, "lastTransitionTime": finished});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        c
    };
    let mut status = pod
        .get("status")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    status["phase"] = json!(phase);
    status["startTime"] = json!(started);
    status["hostIP"] = json!("127.0.0.1");
    status["conditions"] = json!([
        condition("PodScheduled", "True", None),
        condition("Initialized", "True", None),
        condition("ContainersReady", "False", Some("PodCompleted")),
        condition("Ready", "False", Some("PodCompleted")),
    ]);
    status["containerStatuses"] = json!([{
        "name": str_at(pod, "/spec/containers/0/name").unwrap_or_default(),
        "image": str_at(pod, "/spec/containers/0/image").unwrap_or_default(),
        "imageID": "",
        "containerID": container_id,
        "ready": false,
        "started": false,
        "restartCount": 0,
        "state": {"terminated": terminated},
    }]);
    match message {
        Some(m) => status["message"] = json!(m),
        None => {
            if let Some(o) = status.as_object_mut() {
                o.remove("message");
            }
        }
    }
    status
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}
