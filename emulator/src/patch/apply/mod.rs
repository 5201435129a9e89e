//! Server-side apply and `metadata.managedFields` bookkeeping, modelled on structured-merge-diff.
//!
//! Field sets use the real FieldsV1 encoding. List semantics (atomic, set, map keyed by fields) come
//! from [`super::schema`]; lists it does not know (custom resources, unknown paths) are atomic.

mod compare;
mod fieldset;
mod managed;
mod merge;
mod object;
#[cfg(test)]
mod tests;
mod value;
mod walk;

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Conflict, PatchError};
use compare::{compare_objects, compare_without_managed_fields};
use fieldset::{Set, path_string, strip_ignored};
use managed::{
    Entry, Operation, decode_entries, is_reset, set_managed_fields, take_managed_fields,
    write_managed_fields,
};
use merge::{merge, prune};
use object::{empty_object, restore_system_fields, skeleton, status_only};
use value::json_eq;
use walk::{Ctx, Cursor, Mode, collect, null_paths, object_set};

/// One server-side apply request.
#[derive(Debug, Clone, Copy)]
pub struct ApplyRequest<'a> {
    /// apiVersion of the object; the applied config must use the same one.
    pub api_version: &'a str,
    /// Kind of the object.
    pub kind: &'a str,
    /// The `fieldManager` query parameter.
    pub manager: &'a str,
    /// The `force` query parameter: take conflicting fields instead of failing.
    pub force: bool,
    /// `Some("status")` when applied to the status subresource.
    pub subresource: Option<&'a str>,
    /// RFC 3339 timestamp recorded in `managedFields[].time`.
    pub now: &'a str,
}

/// Server-side apply of `applied` (the user's partial config) onto `live` (`None` = create).
///
/// Returns the new full object with `metadata.managedFields` updated. System metadata
/// (uid, resourceVersion, generation, creationTimestamp, ...) is kept from `live`; the caller
/// sets new values.
pub fn apply(
    req: &ApplyRequest,
    live: Option<&Value>,
    applied: &Value,
) -> Result<Value, PatchError> {
    let Value::Object(applied_map) = applied else {
        return Err(PatchError::BadRequest(
            "apply patch must be a JSON object".into(),
        ));
    };
    if let Some(version) = applied_map.get("apiVersion").and_then(Value::as_str)
        && version != req.api_version
    {
        return Err(PatchError::BadRequest(format!(
            "Incorrect version specified in apply patch. Specified patch version: {version}, expected: {}",
            req.api_version
        )));
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(PatchError::BadRequest(
            "metadata.managedFields must be nil".into(),
        ));
    }

    let ctx = Ctx {
        api_version: req.api_version,
        kind: req.kind,
    };
    let config = if req.subresource == Some("status") {
        status_only(applied_map)
    } else {
        applied.clone()
    };
    let mut config_set = Set::default();
    collect(
        &ctx,
        &mut Cursor::default(),
        &config,
        Mode::Config,
        &mut config_set,
    )
    .map_err(|err| PatchError::Invalid(format!("failed to create typed patch object: {err}")))?;
    let mut nulls = Set::default();
    null_paths(&ctx, &mut Cursor::default(), &config, &mut nulls);

    let subresource = req.subresource.unwrap_or_default();
    let (base, mut entries) = match live {
        Some(obj) => {
            let mut base = obj.clone();
            let encoded = take_managed_fields(&mut base);
            let entries = encoded
                .and_then(|list| decode_entries(&list).ok())
                .unwrap_or_default();
            (base, entries)
        }
        None => (Value::Object(Map::new()), Vec::new()),
    };
    if live.is_some() && entries.is_empty() {
        // Objects written without field tracking: what they hold belongs to a synthetic updater,
        // so a first apply cannot silently overwrite it.
        let cmp = compare_objects(&ctx, &skeleton(&base), &base);
        let set = strip_ignored(&cmp.added.union(&cmp.modified));
        if !set.is_empty() {
            entries.push(Entry {
                manager: "before-first-apply".into(),
                operation: Operation::Update,
                api_version: req.api_version.into(),
                subresource: subresource.into(),
                time: Some(req.now.into()),
                set,
            });
        }
    }

    let me = Entry {
        manager: req.manager.into(),
        operation: Operation::Apply,
        api_version: req.api_version.into(),
        subresource: subresource.into(),
        time: Some(req.now.into()),
        set: Set::default(),
    };
    let previous = entries.iter().position(|e| e.same_owner(&me));
    let last_set = previous.map(|i| entries[i].set.clone()).unwrap_or_default();
    let mut managed = config_set.clone();
    for (i, entry) in entries.iter().enumerate() {
        if Some(i) != previous {
            managed = managed.union(&entry.set);
        }
    }

    let merged = merge(&ctx, &mut Cursor::default(), Some(&base), Some(&config))
        .unwrap_or_else(empty_object);
    let mut result = prune(&ctx, &merged, &managed, &last_set);
    if live.is_some() {
        restore_system_fields(&mut result, &base);
    }

    let cmp = compare_objects(&ctx, &base, &result);
    // A field removed by an explicit null is a change like any other; pruned fields are unowned.
    let changed = cmp
        .modified
        .union(&cmp.added)
        .union(&cmp.removed.under(&nulls));
    let mut conflicts = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if Some(i) == previous {
            continue;
        }
        entry
            .set
            .intersection(&changed)
            .for_each_path(&mut Vec::new(), &mut |path| {
                conflicts.push(Conflict {
                    field: path_string(path),
                    manager: entry.manager.clone(),
                });
            });
    }
    if !conflicts.is_empty() && !req.force {
        return Err(PatchError::Conflict(conflicts));
    }
    for (i, entry) in entries.iter_mut().enumerate() {
        if Some(i) != previous {
            entry.set = entry.set.difference(&changed).difference(&cmp.removed);
        }
    }

    // Owning a field that an explicit null just removed makes no sense.
    let my_set = strip_ignored(&config_set.intersection(&object_set(&ctx, &result)));
    let object_changed = live.is_none() || !json_eq(&base, &result);
    match previous {
        Some(i) => {
            let entry = &mut entries[i];
            entry.set = my_set;
            entry.api_version = req.api_version.into();
            if object_changed || entry.time.is_none() {
                entry.time = Some(req.now.into());
            }
        }
        None => entries.push(Entry { set: my_set, ..me }),
    }
    entries.retain(|e| !e.set.is_empty());
    set_managed_fields(&mut result, entries);
    Ok(result)
}

/// Records a non-apply write (create, PUT, merge/JSON/strategic patch) by `manager` as an `Update`.
///
/// Fields whose value changed or appeared between `old` and `new` become owned by `manager` and are
/// taken from other managers; fields that disappeared leave every manager's set. `managedFields`
/// sent in `new` are honoured (an empty list, or one empty entry, resets them) except on
/// subresources. Returns `new` with `metadata.managedFields` updated.
pub fn record_update(
    api_version: &str,
    kind: &str,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
    old: Option<&Value>,
    new: &Value,
) -> Value {
    record_update_managed(api_version, kind, manager, subresource, now, old, new).0
}

/// [`record_update`], also returning the entries of the result.
pub fn record_update_managed(
    api_version: &str,
    kind: &str,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
    old: Option<&Value>,
    new: &Value,
) -> (Value, Managed) {
    let ctx = Ctx { api_version, kind };
    let mut result = new.clone();
    let sent = take_managed_fields(&mut result);
    let mut base = old.cloned();
    let live_entries = base
        .as_mut()
        .and_then(take_managed_fields)
        .and_then(|list| decode_entries(&list).ok())
        .unwrap_or_default();
    let entries = match sent {
        Some(list) if subresource.is_none() => {
            if is_reset(&list) {
                Vec::new()
            } else {
                match decode_entries(&list) {
                    Ok(decoded) if !decoded.is_empty() => decoded,
                    _ => live_entries,
                }
            }
        }
        _ => live_entries,
    };
    let base = base.unwrap_or_else(|| skeleton(&result));
    let cmp = compare_objects(&ctx, &base, &result);
    let entries = record_changes(&ctx, manager, subresource, now, entries, &cmp, &mut result);
    let managed = Managed {
        entries: entries.into_iter().map(Arc::new).collect(),
        canonical: true,
    };
    (result, managed)
}

/// [`record_update`] of a write to an existing object whose `new` version carries the stored
/// object's `managedFields` (or none): the same result, without copying either object.
pub fn record_update_of_stored(
    api_version: &str,
    kind: &str,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
    old: &Value,
    new: Value,
) -> Value {
    let managed = Managed::decode(old);
    record_update_with(
        api_version,
        kind,
        manager,
        subresource,
        now,
        old,
        &managed,
        new,
    )
    .0
}

/// The decoded `metadata.managedFields` of a stored object, kept beside it so the next write
/// does not decode them again. When `canonical`, entry `i` is what the object's
/// `managedFields[i]` encodes (this module wrote the list), so an entry a write leaves alone
/// keeps its encoding instead of being encoded again, as the API server's would come out.
#[derive(Debug, Default)]
pub struct Managed {
    entries: Vec<Arc<Entry>>,
    canonical: bool,
}

impl Managed {
    /// The entries of `object` (none when its list is invalid, as [`record_update`] has it).
    pub fn decode(object: &Value) -> Managed {
        let entries = object
            .pointer("/metadata/managedFields")
            .and_then(|list| decode_entries(list).ok())
            .unwrap_or_default();
        Managed {
            entries: entries.into_iter().map(Arc::new).collect(),
            canonical: false,
        }
    }
}

/// [`record_update_of_stored`] given the stored object's decoded entries; also returns the
/// entries of the result.
#[allow(clippy::too_many_arguments)]
pub fn record_update_with(
    api_version: &str,
    kind: &str,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
    old: &Value,
    old_managed: &Managed,
    mut new: Value,
) -> (Value, Managed) {
    let ctx = Ctx { api_version, kind };
    take_managed_fields(&mut new);
    let cmp = compare_without_managed_fields(&ctx, old, &new);
    let changed = cmp.modified.union(&cmp.added);
    let encoded = old
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
        .filter(|_| old_managed.canonical);
    // Entries the write takes nothing from stay as they are, encoding included.
    let mut entries: Vec<(Arc<Entry>, Option<&Value>)> = old_managed
        .entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            if entry.set.shares_members(&changed) || entry.set.shares_members(&cmp.removed) {
                let set = entry.set.difference(&changed).difference(&cmp.removed);
                (
                    Arc::new(Entry {
                        set,
                        ..(**entry).clone_meta()
                    }),
                    None,
                )
            } else {
                (Arc::clone(entry), encoded.and_then(|list| list.get(i)))
            }
        })
        .collect();
    let taken = strip_ignored(&changed);
    if !taken.is_empty() {
        let me = update_entry(&ctx, manager, subresource, now);
        match entries.iter_mut().find(|(e, _)| e.same_owner(&me)) {
            Some((entry, json)) => {
                let set = entry.set.union(&taken);
                *entry = Arc::new(Entry {
                    set,
                    time: me.time,
                    ..entry.clone_meta()
                });
                *json = None;
            }
            None => entries.push((Arc::new(Entry { set: taken, ..me }), None)),
        }
    }
    entries.retain(|(e, _)| !e.set.is_empty());
    // The API server's order, as set_managed_fields writes it.
    entries.sort_by(|a, b| a.0.sort_key().cmp(&b.0.sort_key()));
    let list: Vec<Value> = entries
        .iter()
        .map(|(entry, json)| match json {
            Some(json) => (*json).clone(),
            None => entry.to_json(),
        })
        .collect();
    write_managed_fields(&mut new, list);
    let managed = Managed {
        entries: entries.into_iter().map(|(entry, _)| entry).collect(),
        canonical: true,
    };
    (new, managed)
}

/// `manager`'s Update entry at `now`, with no fields yet.
fn update_entry(ctx: &Ctx, manager: &str, subresource: Option<&str>, now: &str) -> Entry {
    Entry {
        manager: manager.into(),
        operation: Operation::Update,
        api_version: ctx.api_version.into(),
        subresource: subresource.unwrap_or_default().into(),
        time: Some(now.into()),
        set: Set::default(),
    }
}

/// Moves the changed fields to `manager`'s Update entry and writes the entries into `result`;
/// returns them in the order written.
fn record_changes(
    ctx: &Ctx,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
    mut entries: Vec<Entry>,
    cmp: &compare::Comparison,
    result: &mut Value,
) -> Vec<Entry> {
    let changed = cmp.modified.union(&cmp.added);
    for entry in &mut entries {
        entry.set = entry.set.difference(&changed).difference(&cmp.removed);
    }
    let taken = strip_ignored(&changed);
    if !taken.is_empty() {
        let me = update_entry(ctx, manager, subresource, now);
        match entries.iter_mut().find(|e| e.same_owner(&me)) {
            Some(entry) => {
                entry.set = entry.set.union(&taken);
                entry.time = me.time;
            }
            None => entries.push(Entry { set: taken, ..me }),
        }
    }
    entries.retain(|e| !e.set.is_empty());
    set_managed_fields(result, entries)
}

/// Removes `metadata.managedFields` from an object.
pub fn strip_managed_fields(obj: &mut Value) {
    take_managed_fields(obj);
}
