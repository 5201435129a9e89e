//! The common tail of PUT and PATCH (server-owned fields, subresources, generation, no-op
//! detection, finalizer rules), computed from the stored version without copying it, and PUT
//! outside the state lock: the JSON work of concurrent writes runs in parallel, and only the
//! commit holds the lock, if the object is still the version the write was computed from.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::write::{checked_put, finalizers, is_crd, meta_field, meta_str, view};
use super::{Inner, State, Stored};
use crate::patch;
use crate::patch::apply::Managed;
use crate::resources::ResourceType;
use crate::state::WriteOptions;
use crate::status::ApiError;

/// What a PUT or PATCH comes to, given the stored version `old` it was checked against.
pub(super) enum Outcome {
    /// Nothing but managedFields timestamps would change: `old` stands.
    Unchanged,
    /// A dry run: the object as it would have been written.
    DryRun(Value),
    /// Write `new` (whose managedFields are `managed` when the write recorded them); then
    /// remove the object when its deletion waits for no finalizer.
    Write {
        new: Value,
        managed: Option<Managed>,
        remove: bool,
    },
}

/// Metadata the server owns: kept from the stored version whatever a write sends.
const SERVER_OWNED: [&str; 8] = [
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
    "namespace",
    "name",
];

/// Computes the new version of `old` from `candidate`. `record_manager` records the write as an
/// Update of `opts.manager` (false for server-side apply, which sends its managedFields);
/// `crd` validates and registers a CustomResourceDefinition (only called for them).
pub(super) fn prepare(
    rt: &ResourceType,
    old: &Stored,
    mut candidate: Value,
    subresource: Option<&str>,
    opts: &WriteOptions,
    record_manager: bool,
    crd: impl FnOnce(&mut Value, &str, Option<&Value>) -> Result<(), ApiError>,
) -> Result<Outcome, ApiError> {
    let name = meta_str(&old.value, "name").unwrap_or_default();
    let managed = candidate
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|meta| meta.shift_remove("managedFields"));
    let mut new = match subresource {
        Some("status") => {
            // A recorded write replaces managedFields (at the end of metadata, wherever they
            // were): no need to copy the stored ones.
            let mut n = if record_manager {
                clone_without_managed_fields(&old.value)
            } else {
                old.value.clone()
            };
            match candidate.get_mut("status").map(Value::take) {
                Some(s) => n["status"] = s,
                None => {
                    if let Some(o) = n.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            n
        }
        Some(other) => return Err(ApiError::path_not_found(&format!("{}/{other}", rt.plural))),
        None => {
            let mut n = candidate;
            if rt.status {
                match old.value.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(o) = n.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            n
        }
    };
    {
        let meta = new["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        let old_meta = old.value["metadata"].as_object();
        for f in SERVER_OWNED {
            match old_meta.and_then(|m| m.get(f)) {
                Some(v) => meta.insert(f.into(), v.clone()),
                None => meta.remove(f),
            };
        }
        // A recorded write starts from the stored entries (record_update_of_stored reads them
        // from `old`); an apply brings its own.
        match (record_manager, managed) {
            (true, _) => {}
            (false, Some(m)) => {
                meta.insert("managedFields".into(), m);
            }
            (false, None) => {
                let stored = old_meta.and_then(|m| m.get("managedFields")).cloned();
                meta.insert("managedFields".into(), stored.unwrap_or(json!([])));
            }
        }
    }
    if meta_field(&old.value, "deletionTimestamp").is_some() {
        let before = finalizers(&old.value);
        let added: Vec<String> = finalizers(&new)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            return Err(ApiError::invalid(
                &rt.kind,
                name,
                format!(
                    "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                ),
            ));
        }
    }
    if !same_spec(rt, &old.value, &new) {
        let generation = meta_field(&old.value, "generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        new["metadata"]["generation"] = json!(generation + 1);
    }
    if is_crd(rt) && subresource.is_none() {
        crd(&mut new, name, old.value.get("status"))?;
    }
    let mut managed = None;
    if record_manager {
        let (recorded, entries) = patch::apply::record_update_with(
            &rt.api_version(),
            &rt.kind,
            &opts.manager,
            subresource,
            &super::write::now(),
            &old.value,
            old.managed(),
            new,
        );
        new = recorded;
        managed = Some(entries);
    }
    if same_but_times(&new, &old.value) {
        return Ok(Outcome::Unchanged);
    }
    if opts.dry_run {
        return Ok(Outcome::DryRun(new));
    }
    let remove = meta_field(&new, "deletionTimestamp").is_some() && finalizers(&new).is_empty();
    Ok(Outcome::Write {
        new,
        managed,
        remove,
    })
}

/// A copy of `value` without `metadata.managedFields`.
fn clone_without_managed_fields(value: &Value) -> Value {
    let Value::Object(object) = value else {
        return value.clone();
    };
    let copy = object
        .iter()
        .map(|(key, field)| {
            let field = match (key.as_str(), field) {
                ("metadata", Value::Object(meta)) => Value::Object(
                    meta.iter()
                        .filter(|(k, _)| *k != "managedFields")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
                _ => field.clone(),
            };
            (key.clone(), field)
        })
        .collect();
    Value::Object(copy)
}

/// Equal apart from metadata (and status when it is a subresource): no generation bump.
fn same_spec(rt: &ResourceType, a: &Value, b: &Value) -> bool {
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return a == b;
    };
    let counted = |key: &String| key != "metadata" && !(rt.status && key == "status");
    a.keys().filter(|k| counted(k)).count() == b.keys().filter(|k| counted(k)).count()
        && a.iter()
            .filter(|(k, _)| counted(k))
            .all(|(k, v)| b.get(k) == Some(v))
}

/// Equal once managedFields timestamps are left out: a write whose only change is a newer
/// timestamp is a no-op, while a change of ownership is not.
fn same_but_times(a: &Value, b: &Value) -> bool {
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return a == b;
    };
    same_map(a, b, |key, x, y| match (key, x, y) {
        ("metadata", Value::Object(x), Value::Object(y)) => {
            same_map(x, y, |key, x, y| match (key, x, y) {
                ("managedFields", Value::Array(x), Value::Array(y)) => {
                    x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_entry(x, y))
                }
                _ => x == y,
            })
        }
        _ => x == y,
    })
}

fn same_entry(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let counted = |key: &String| key != "time";
            a.keys().filter(|k| counted(k)).count() == b.keys().filter(|k| counted(k)).count()
                && a.iter()
                    .filter(|(k, _)| counted(k))
                    .all(|(k, v)| b.get(k) == Some(v))
        }
        _ => a == b,
    }
}

/// Same keys, and `same` holds for each key's two values.
fn same_map(
    a: &Map<String, Value>,
    b: &Map<String, Value>,
    same: impl Fn(&str, &Value, &Value) -> bool,
) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, x)| b.get(k).is_some_and(|y| same(k, x, y)))
}

impl Inner {
    /// PUT or PATCH under the lock: prepare and settle at once.
    pub(super) fn finish_update(
        &mut self,
        rt: &ResourceType,
        old: &Arc<Stored>,
        candidate: Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
        record_manager: bool,
    ) -> Result<Value, ApiError> {
        let outcome = prepare(
            rt,
            old,
            candidate,
            subresource,
            opts,
            record_manager,
            |crd, name, status| self.register_crd(crd, name, status),
        )?;
        Ok(view(rt, &self.settle(rt, old, outcome).value))
    }

    /// Carries out an outcome prepared from `old`, the current version.
    fn settle(&mut self, rt: &ResourceType, old: &Arc<Stored>, outcome: Outcome) -> Arc<Stored> {
        match outcome {
            Outcome::Unchanged => Arc::clone(old),
            Outcome::DryRun(new) => Stored::new(new, old.rv),
            Outcome::Write {
                new,
                managed,
                remove,
            } => {
                let name = meta_str(&old.value, "name").unwrap_or_default().to_owned();
                let ns = meta_str(&old.value, "namespace")
                    .unwrap_or_default()
                    .to_owned();
                let stored = self.commit(&rt.storage, &ns, &name, Some(new));
                stored.recorded(managed);
                if remove {
                    let last = self.remove(&rt.storage, &ns, &name, &stored);
                    return Stored::new(last, self.rv);
                }
                stored
            }
        }
    }
}

impl State {
    /// PUT: replaces an object (or its status) and returns the version written. The new version
    /// is computed outside the lock from the stored one, then committed if the object has not
    /// changed meanwhile: a conditional write (resourceVersion given) then fails with a conflict,
    /// as it would have at that moment; an unconditional one is computed again.
    pub fn put(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        body: Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> Result<Arc<Stored>, ApiError> {
        if is_crd(rt) {
            let written =
                self.write(|inner| inner.update(rt, ns, name, body, subresource, opts))?;
            return Ok(Stored::new(written, 0));
        }
        let conditional = meta_str(&body, "resourceVersion").is_some_and(|rv| !rv.is_empty());
        let mut once = Some(body);
        loop {
            let old = self.read(|inner| inner.existing(rt, ns, name))?;
            let body = match (&once, conditional) {
                (Some(body), false) => body.clone(),
                _ => once.take().ok_or_else(|| conflict(rt, name))?,
            };
            let body = checked_put(rt, &old, name, body)?;
            let outcome = prepare(rt, &old, body, subresource, opts, true, |_, _, _| Ok(()))?;
            let settled = self.write(|inner| {
                let current = inner.existing(rt, ns, name)?;
                Ok(Arc::ptr_eq(&current, &old).then(|| inner.settle(rt, &old, outcome)))
            })?;
            match settled {
                Some(stored) => return Ok(stored),
                None if conditional => return Err(conflict(rt, name)),
                None => {}
            }
        }
    }
}

fn conflict(rt: &ResourceType, name: &str) -> ApiError {
    ApiError::conflict(
        &rt.group,
        &rt.plural,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}
