//! Whole-object helpers for apply: skeletons, the `/status` view of a config, and server-owned
//! metadata.

use serde_json::{Map, Value};

pub(super) fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// The "empty object" a create is compared against: top-level structs exist, nothing else.
pub(super) fn skeleton(obj: &Value) -> Value {
    let mut out = Map::new();
    out.insert("metadata".into(), empty_object());
    for key in ["spec", "status"] {
        if obj.get(key).is_some_and(Value::is_object) {
            out.insert(key.into(), empty_object());
        }
    }
    Value::Object(out)
}

/// What an apply to `/status` may change: the status, plus the identity needed to merge.
pub(super) fn status_only(applied: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for key in ["apiVersion", "kind"] {
        if let Some(v) = applied.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(Value::Object(meta)) = applied.get("metadata") {
        let mut identity = Map::new();
        for key in ["name", "namespace"] {
            if let Some(v) = meta.get(key) {
                identity.insert(key.into(), v.clone());
            }
        }
        out.insert("metadata".into(), Value::Object(identity));
    }
    if let Some(status) = applied.get("status") {
        out.insert("status".into(), status.clone());
    }
    Value::Object(out)
}

/// Server-owned metadata an apply cannot change.
const SYSTEM_METADATA: [&str; 7] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

pub(super) fn restore_system_fields(result: &mut Value, live: &Value) {
    let live_meta = live.get("metadata").and_then(Value::as_object);
    let Some(meta) = result.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for key in SYSTEM_METADATA {
        match live_meta.and_then(|m| m.get(key)) {
            Some(v) => {
                meta.insert(key.into(), v.clone());
            }
            None => {
                meta.shift_remove(key);
            }
        }
    }
}
