//! `metadata.managedFields` entries: decoding, manager identity, and writing them back in the
//! API server's order.

use serde_json::{Map, Value};

use super::fieldset::Set;
use super::object::empty_object;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Operation {
    Apply,
    Update,
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) manager: String,
    pub(super) operation: Operation,
    pub(super) api_version: String,
    pub(super) subresource: String,
    pub(super) time: Option<String>,
    pub(super) set: Set,
}

impl Entry {
    /// The API server's manager identity: appliers are keyed without their apiVersion.
    pub(super) fn same_owner(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// A copy of everything but the field set.
    pub(super) fn clone_meta(&self) -> Entry {
        Entry {
            manager: self.manager.clone(),
            operation: self.operation,
            api_version: self.api_version.clone(),
            subresource: self.subresource.clone(),
            time: self.time.clone(),
            set: Set::default(),
        }
    }

    pub(super) fn to_json(&self) -> Value {
        let mut out = Map::new();
        if !self.manager.is_empty() {
            out.insert("manager".into(), Value::String(self.manager.clone()));
        }
        let operation = match self.operation {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        };
        out.insert("operation".into(), Value::String(operation.into()));
        if !self.api_version.is_empty() {
            out.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        }
        if let Some(time) = &self.time {
            out.insert("time".into(), Value::String(time.clone()));
        }
        out.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        out.insert("fieldsV1".into(), Value::Object(self.set.to_fields_v1()));
        if !self.subresource.is_empty() {
            out.insert(
                "subresource".into(),
                Value::String(self.subresource.clone()),
            );
        }
        Value::Object(out)
    }

    pub(super) fn sort_key(&self) -> (Operation, i64, &str, &str, &str) {
        let seconds = self
            .time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(0, |t| t.timestamp());
        (
            self.operation,
            seconds,
            &self.manager,
            &self.api_version,
            &self.subresource,
        )
    }
}

/// Decodes `metadata.managedFields`; like the API server, one bad entry invalidates the list.
pub(super) fn decode_entries(list: &Value) -> Result<Vec<Entry>, String> {
    let Value::Array(items) = list else {
        return Err("managedFields must be a list".into());
    };
    let mut entries: Vec<Entry> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let text = |key: &str| {
            item.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let operation = match text("operation").as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".into()),
        };
        let api_version = text("apiVersion");
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".into());
        }
        match text("fieldsType").as_str() {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => {
                return Err(format!(
                    "invalid fieldsType {other:?} in managed fields entry {i}"
                ));
            }
        }
        let set = match item.get("fieldsV1") {
            None | Some(Value::Null) => Set::default(),
            Some(Value::Object(fields)) => Set::from_fields_v1(fields)?,
            Some(_) => return Err(format!("invalid fieldsV1 in managed fields entry {i}")),
        };
        let entry = Entry {
            manager: text("manager"),
            operation,
            api_version,
            subresource: text("subresource"),
            time: item.get("time").and_then(Value::as_str).map(str::to_string),
            set,
        };
        // Same identity twice: the later entry wins, as when decoding into a map.
        match entries.iter().position(|e| e.same_owner(&entry)) {
            Some(at) => entries[at] = entry,
            None => entries.push(entry),
        }
    }
    Ok(entries)
}

/// `[]` or `[{}]` in a write means "clear managedFields".
pub(super) fn is_reset(list: &Value) -> bool {
    match list {
        Value::Array(items) => match items.as_slice() {
            [] => true,
            [only] => only
                .as_object()
                .is_some_and(|m| m.values().all(|v| v.is_null() || v == "")),
            _ => false,
        },
        _ => false,
    }
}

pub(super) fn take_managed_fields(obj: &mut Value) -> Option<Value> {
    obj.get_mut("metadata")?
        .as_object_mut()?
        .shift_remove("managedFields")
}

/// Writes entries in the API server's order: Apply before Update, then by time and manager.
/// Returns them in that order.
pub(super) fn set_managed_fields(obj: &mut Value, mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    write_managed_fields(obj, entries.iter().map(Entry::to_json).collect());
    entries
}

/// Writes encoded entries as they come (none: no managedFields).
pub(super) fn write_managed_fields(obj: &mut Value, list: Vec<Value>) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let meta = root.entry("metadata").or_insert_with(empty_object);
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    if list.is_empty() {
        meta.shift_remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}
