//! Schema-aware walking of objects: list semantics from [`crate::patch::schema`], element identities,
//! and the field sets a config or a stored object covers.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fieldset::{Pe, Set, path_string};
use crate::patch::schema;

pub(super) struct Ctx<'a> {
    pub(super) api_version: &'a str,
    pub(super) kind: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum ListKind {
    Atomic,
    Set,
    Map(Vec<String>),
}

impl Ctx<'_> {
    pub(super) fn list_kind(&self, spath: &[String]) -> ListKind {
        let path: Vec<&str> = spath.iter().map(String::as_str).collect();
        let info = schema::field_info(self.api_version, self.kind, &path).or_else(|| {
            // ObjectMeta is the same for every kind; custom resources borrow it from a built-in one.
            if path.first() == Some(&"metadata") {
                schema::field_info("v1", "ConfigMap", &path)
            } else {
                None
            }
        });
        info.map_or(ListKind::Atomic, list_kind_of)
    }
}

/// How kube-openapi turns annotations into list semantics: list-type wins, then patch strategy.
fn list_kind_of(info: &schema::FieldInfo) -> ListKind {
    let merges = info
        .strategy
        .as_deref()
        .is_some_and(|s| s.split(',').any(|part| part.trim() == "merge"));
    match info.list_type.as_deref() {
        Some("map") => {
            let keys = if info.map_keys.is_empty() {
                info.merge_key.iter().cloned().collect()
            } else {
                info.map_keys.clone()
            };
            if keys.is_empty() {
                ListKind::Atomic
            } else {
                ListKind::Map(keys)
            }
        }
        Some("set") => ListKind::Set,
        Some(_) => ListKind::Atomic,
        None => match (&info.merge_key, merges) {
            (Some(key), true) => ListKind::Map(vec![key.clone()]),
            (None, true) => ListKind::Set,
            _ => ListKind::Atomic,
        },
    }
}

fn element_pe(kind: &ListKind, item: &Value) -> Result<Pe, String> {
    match kind {
        ListKind::Atomic => Err("atomic list elements have no identity".into()),
        ListKind::Set => match item {
            Value::Object(_) | Value::Array(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            scalar => Ok(Pe::Value(scalar.clone())),
        },
        ListKind::Map(keys) => {
            let Value::Object(obj) = item else {
                return Err("associative list with keys may not have non-map elements".into());
            };
            let mut fields = Vec::with_capacity(keys.len());
            for key in keys {
                match obj.get(key) {
                    Some(value) if !value.is_null() => fields.push((key.clone(), value.clone())),
                    // The one key field with a schema default (ports); the server defaults it too.
                    _ if key == "protocol" => {
                        fields.push((key.clone(), Value::String("TCP".into())))
                    }
                    _ => {
                        return Err(format!(
                            "associative list with keys has an element that omits key field {key:?} \
                             (and doesn't have default value)"
                        ));
                    }
                }
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(Pe::Key(fields))
        }
    }
}

pub(super) fn list_pes(kind: &ListKind, items: &[Value]) -> Result<Vec<Pe>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| element_pe(kind, item).map_err(|err| format!("element {i}: {err}")))
        .collect()
}

/// Position while walking: schema path (field names only) and field path.
#[derive(Default)]
pub(super) struct Cursor {
    pub(super) spath: Vec<String>,
    pub(super) path: Vec<Pe>,
}

impl Cursor {
    pub(super) fn push_field(&mut self, name: &str) {
        self.spath.push(name.into());
        self.path.push(Pe::Field(name.into()));
    }

    pub(super) fn pop_field(&mut self) {
        self.spath.pop();
        self.path.pop();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// ToFieldSet of an applied config: strict, nested maps are not members themselves.
    Config,
    /// Every node of a stored object is a member; unidentifiable lists count as atomic.
    Object,
}

pub(super) fn collect(
    ctx: &Ctx,
    cur: &mut Cursor,
    value: &Value,
    mode: Mode,
    out: &mut Set,
) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if mode == Mode::Object && child.is_null() {
                    continue;
                }
                cur.push_field(key);
                let res = collect(ctx, cur, child, mode, out);
                let empty_map = child.as_object().is_some_and(Map::is_empty);
                if mode == Mode::Object || child.is_null() || empty_map {
                    out.insert(&cur.path);
                }
                cur.pop_field();
                res?;
            }
            Ok(())
        }
        Value::Array(items) => {
            let kind = ctx.list_kind(&cur.spath);
            if kind == ListKind::Atomic {
                out.insert(&cur.path);
                return Ok(());
            }
            let pes = match list_pes(&kind, items) {
                Ok(pes) => pes,
                Err(err) if mode == Mode::Config => {
                    return Err(format!("{}: {err}", path_string(&cur.path)));
                }
                Err(_) => {
                    out.insert(&cur.path);
                    return Ok(());
                }
            };
            let mut counts: BTreeMap<&Pe, usize> = BTreeMap::new();
            for pe in &pes {
                *counts.entry(pe).or_default() += 1;
            }
            if mode == Mode::Config
                && let Some((pe, _)) = counts.iter().find(|(_, n)| **n > 1)
            {
                return Err(format!(
                    "{}: duplicate entries for key {}",
                    path_string(&cur.path),
                    pe.display()
                ));
            }
            for (pe, item) in pes.iter().zip(items) {
                cur.path.push(pe.clone());
                // Duplicated elements are owned as a whole (only stored objects can have them).
                let res = if counts.get(pe).is_some_and(|n| *n > 1) {
                    Ok(())
                } else {
                    collect(ctx, cur, item, mode, out)
                };
                out.insert(&cur.path);
                cur.path.pop();
                res?;
            }
            Ok(())
        }
        _ => {
            out.insert(&cur.path);
            Ok(())
        }
    }
}

/// Every path present in a stored object.
pub(super) fn object_set(ctx: &Ctx, value: &Value) -> Set {
    let mut out = Set::default();
    add_subtree(ctx, &mut Cursor::default(), value, &mut out);
    out
}

pub(super) fn add_subtree(ctx: &Ctx, cur: &mut Cursor, value: &Value, out: &mut Set) {
    // Object mode reports unidentifiable lists as atomic instead of failing.
    let _ = collect(ctx, cur, value, Mode::Object, out);
}

/// Paths the applied config sets to null (removal requests).
pub(super) fn null_paths(ctx: &Ctx, cur: &mut Cursor, value: &Value, out: &mut Set) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                cur.push_field(key);
                if child.is_null() {
                    out.insert(&cur.path);
                } else {
                    null_paths(ctx, cur, child, out);
                }
                cur.pop_field();
            }
        }
        Value::Array(items) => {
            let kind = ctx.list_kind(&cur.spath);
            if kind == ListKind::Atomic {
                return;
            }
            let Ok(pes) = list_pes(&kind, items) else {
                return;
            };
            for (pe, item) in pes.into_iter().zip(items) {
                cur.path.push(pe);
                null_paths(ctx, cur, item, out);
                cur.path.pop();
            }
        }
        _ => {}
    }
}
