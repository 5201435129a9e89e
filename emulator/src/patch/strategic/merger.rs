//! The recursive merge of a patch into the original: maps, lists by strategy, and `$setElementOrder`
//! lists, mirroring Go's `mergeMap` / `mergeSlice` including its aliasing quirks.

use serde_json::{Map, Value};

use super::directives::{
    DELETE_FROM_PRIMITIVE_LIST, DIRECTIVE, SET_ELEMENT_ORDER, apply_retain_keys, clean, clean_list,
    clean_map, directive_field,
};
use super::lists::{
    Kind, element_kind, find_by_key, merge_key_of, order_merged, same,
    validate_patch_with_set_order,
};
use super::{Lookup, PatchError, bad, child};

/// Strategy of one field with `retainKeys` split off, as Go's `extractRetainKeysPatchStrategy`.
#[derive(Default)]
struct Meta<'a> {
    /// `""`, `"merge"` or `"replace"`.
    strategy: &'a str,
    merge_key: &'a str,
}

pub(super) struct Merger<'a> {
    pub(super) lookup: &'a dyn Lookup,
}

impl<'a> Merger<'a> {
    fn meta(&self, path: &str) -> Result<Meta<'a>, PatchError> {
        let Some(info) = self.lookup.info(path) else {
            return Ok(Meta::default());
        };
        let merge_key = info.merge_key.as_deref().unwrap_or("");
        let raw = info.strategy.as_deref().unwrap_or("");
        let parts: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let strategy = match parts.as_slice() {
            [] | ["retainKeys"] => "",
            [one] => one,
            ["retainKeys", other] | [other, "retainKeys"] => other,
            _ => return Err(bad(format!("unexpected patch strategy {raw:?} for {path}"))),
        };
        Ok(Meta {
            strategy,
            merge_key,
        })
    }

    /// Go's `mergeMap` with `MergeParallelList` and `IgnoreUnmatchedNulls` set.
    pub(super) fn merge_map(
        &self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
        path: &str,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(directive) = patch.shift_remove(DIRECTIVE) {
            return match directive.as_str() {
                Some("replace") => Ok(clean_map(patch)),
                Some("delete") => Ok(Map::new()),
                _ => Err(bad(format!(
                    "Unknown patch type: {directive} in map: {}",
                    Value::Object(patch)
                ))),
            };
        }
        apply_retain_keys(&mut original, &mut patch)?;
        self.merge_set_element_order(&mut original, &mut patch, path)?;

        // Deletion lists run after the other keys so the outcome never depends on key order.
        let mut deletions = Vec::new();
        for (key, patch_v) in patch {
            if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
                let field = directive_field(&key, DELETE_FROM_PRIMITIVE_LIST)?;
                deletions.push((field.to_string(), patch_v));
            } else {
                self.merge_field(&mut original, key, patch_v, path, false)?;
            }
        }
        for (field, patch_v) in deletions {
            self.merge_field(&mut original, field, patch_v, path, true)?;
        }
        Ok(original)
    }

    /// One key of `mergeMap`'s main loop.
    fn merge_field(
        &self,
        original: &mut Map<String, Value>,
        key: String,
        patch_v: Value,
        path: &str,
        is_delete_list: bool,
    ) -> Result<(), PatchError> {
        if patch_v.is_null() {
            original.shift_remove(&key);
            return Ok(());
        }
        let field_path = child(path, &key);
        let Some(orig_v) = original.get_mut(&key) else {
            if !is_delete_list && let Some(v) = clean(patch_v) {
                original.insert(key, v);
            }
            return Ok(());
        };
        if std::mem::discriminant(orig_v) != std::mem::discriminant(&patch_v) {
            if !is_delete_list {
                match clean(patch_v) {
                    Some(v) => *orig_v = v,
                    None => {
                        original.shift_remove(&key);
                    }
                }
            }
            return Ok(());
        }
        *orig_v = match (orig_v.take(), patch_v) {
            (Value::Object(o), Value::Object(p)) => {
                let meta = self.meta(&field_path)?;
                if meta.strategy == "replace" {
                    Value::Object(clean_map(p))
                } else {
                    Value::Object(self.merge_map(o, p, &field_path)?)
                }
            }
            (Value::Array(o), Value::Array(p)) => {
                let meta = self.meta(&field_path)?;
                Value::Array(
                    self.merge_slice_handler(o, p, &field_path, &meta, is_delete_list)?
                        .list,
                )
            }
            (_, p) => p,
        };
        Ok(())
    }

    /// Go's `mergeSliceHandler`. Also returns Go's view of the original list afterwards (see [`Merged`]).
    fn merge_slice_handler(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        path: &str,
        meta: &Meta<'_>,
        is_delete_list: bool,
    ) -> Result<Merged, PatchError> {
        if meta.strategy == "merge" || is_delete_list {
            self.merge_slice(original, patch, path, meta.merge_key, is_delete_list)
        } else {
            Ok(Merged::unaliased(clean_list(patch)))
        }
    }

    /// Go's `mergeSlice`.
    fn merge_slice(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        path: &str,
        merge_key: &str,
        is_delete_list: bool,
    ) -> Result<Merged, PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(Merged::unaliased(original));
        }
        let is_map = element_kind(&original, &patch, path)? == Kind::Object;
        if !is_map {
            if is_delete_list {
                let list = original
                    .into_iter()
                    .filter(|v| !patch.iter().any(|d| same(v, d)))
                    .collect();
                return Ok(Merged::unaliased(list));
            }
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for v in original.iter().chain(patch.iter()) {
                if !merged.iter().any(|m| same(m, v)) {
                    merged.push(v.clone());
                }
            }
            let list = order_merged(merged, &patch, &original, "")?;
            return Ok(Merged::unaliased(list));
        }
        if merge_key.is_empty() {
            return Err(bad(format!(
                "cannot merge lists without merge key for {path}"
            )));
        }

        // Go edits the original slice in place; `stale` mirrors what its caller still sees of it.
        let mut stale: Vec<Value> = original.clone();
        let mut live_len = original.len();
        let mut original = original;
        let mut rest = Vec::with_capacity(patch.len());
        let mut replace = false;
        for v in patch {
            let Some(directive) = v.get(DIRECTIVE) else {
                rest.push(v);
                continue;
            };
            match directive.as_str() {
                Some("delete") => {
                    let target = merge_key_of(&v, merge_key)?.clone();
                    while let Some(i) = find_by_key(&original, merge_key, &target)? {
                        original.remove(i);
                        // Go shifts the tail left in place and leaves the old last element behind.
                        for t in i..live_len - 1 {
                            stale[t] = stale[t + 1].clone();
                        }
                        live_len -= 1;
                    }
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(bad("merging lists cannot yet be specified in the patch"));
                }
                _ => return Err(bad(format!("Unknown patch type: {directive} in map: {v}"))),
            }
        }
        // With `$patch: replace` Go builds a new slice: the stale view keeps only the deletions.
        let (original, patch) = if replace {
            (clean_list(rest), Vec::new())
        } else {
            (original, rest)
        };

        let mut merged = original.clone();
        for v in &patch {
            let value = merge_key_of(v, merge_key)?;
            match find_by_key(&merged, merge_key, value)? {
                Some(i) => {
                    let (Value::Object(o), Value::Object(p)) = (merged[i].take(), v.clone()) else {
                        return Err(bad(format!(
                            "list element types are not identical in {path}"
                        )));
                    };
                    merged[i] = Value::Object(self.merge_map(o, p, path)?);
                }
                None => {
                    // Appending writes into Go's original slice while it still has room.
                    if live_len < stale.len() {
                        stale[live_len] = v.clone();
                    }
                    live_len += 1;
                    merged.extend(clean(v.clone()));
                }
            }
        }

        let list = order_merged(merged, &patch, &original, merge_key)?;
        Ok(Merged {
            list,
            stale_original: Some(stale),
        })
    }

    /// Go's `mergePatchIntoOriginal`: merges each list named by `$setElementOrder/<field>` and orders it.
    fn merge_set_element_order(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        path: &str,
    ) -> Result<(), PatchError> {
        let keys: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
            .cloned()
            .collect();
        for key in keys {
            let Some(order) = patch.shift_remove(&key) else {
                continue;
            };
            let field = directive_field(&key, SET_ELEMENT_ORDER)?.to_string();
            let Value::Array(order) = order else {
                return Err(bad(format!("invalid patch: {key} must be a list")));
            };
            let original_list = match original.get(&field) {
                None | Some(Value::Null) => None,
                Some(Value::Array(list)) => Some(list.clone()),
                Some(other) => {
                    return Err(bad(format!("{field} is not a list in the object: {other}")));
                }
            };
            let patch_list = match patch.get(&field) {
                None => None,
                Some(Value::Array(list)) => Some(list.clone()),
                Some(other) => {
                    return Err(bad(format!("{field} must be a list in the patch: {other}")));
                }
            };
            let field_path = child(path, &field);
            let meta = self.meta(&field_path)?;
            validate_patch_with_set_order(
                patch_list.as_deref().unwrap_or(&[]),
                &order,
                meta.merge_key,
            )?;

            let original_list_for_order;
            let merged = match (original_list, patch_list) {
                (None, None) => continue,
                (Some(o), None) => {
                    original_list_for_order = o.clone();
                    o
                }
                (None, Some(p)) => {
                    original_list_for_order = Vec::new();
                    clean_list(p)
                }
                (Some(o), Some(p)) => {
                    let merged =
                        self.merge_slice_handler(o.clone(), p, &field_path, &meta, false)?;
                    original_list_for_order = merged.stale_original.unwrap_or(o);
                    merged.list
                }
            };
            let ordered = order_merged(merged, &order, &original_list_for_order, meta.merge_key)?;
            original.insert(field.clone(), Value::Array(ordered));
            patch.shift_remove(&field);
        }
        Ok(())
    }
}

/// A merged list, plus Go's aliased view of the original slice (same length as the original).
struct Merged {
    list: Vec<Value>,
    stale_original: Option<Vec<Value>>,
}

impl Merged {
    /// A merge that wrote nothing into Go's original slice: the caller's view of it is unchanged.
    fn unaliased(list: Vec<Value>) -> Self {
        Merged {
            list,
            stale_original: None,
        }
    }
}
