//! Strategic merge patch, following k8s.io/apimachinery/pkg/util/strategicpatch (`StrategicMergePatch`).
//!
//! Field behaviour (merge key, `merge`/`replace`/`retainKeys`) comes from [`super::schema`]. The
//! element ordering deliberately reproduces Go's, including `$setElementOrder` handling, so lists come
//! out in the same order kube-apiserver would store them.

use serde_json::{Map, Value};

use super::PatchError;
use super::schema::{self, FieldInfo, KindFields};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Applies a strategic merge patch (as kubectl and kube-rs `Patch::Strategic` send) to `original`.
pub fn strategic_merge(
    api_version: &str,
    kind: &str,
    original: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let Some(fields) = schema::kind_fields(api_version, kind) else {
        return Err(PatchError::Unsupported(format!(
            "strategic merge patch is not supported for {api_version}/{kind}; use a merge patch or JSON patch"
        )));
    };
    apply(fields, original, patch)
}

/// Where field annotations come from; tests plug in Go's own test schema.
trait Lookup {
    fn info(&self, path: &str) -> Option<&FieldInfo>;
}

impl Lookup for KindFields {
    fn info(&self, path: &str) -> Option<&FieldInfo> {
        self.get(path)
    }
}

fn apply(lookup: &dyn Lookup, original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(bad("strategic merge patch must be a JSON object"));
    };
    let original = match original {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        _ => {
            return Err(PatchError::Invalid(
                "the object to patch is not a JSON object".into(),
            ));
        }
    };
    Merger { lookup }
        .merge_map(original, patch.clone(), "")
        .map(Value::Object)
}

fn bad(msg: impl Into<String>) -> PatchError {
    PatchError::BadRequest(msg.into())
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Strategy of one field with `retainKeys` split off, as Go's `extractRetainKeysPatchStrategy`.
#[derive(Default)]
struct Meta<'a> {
    /// `""`, `"merge"` or `"replace"`.
    strategy: &'a str,
    merge_key: &'a str,
}

struct Merger<'a> {
    lookup: &'a dyn Lookup,
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
    fn merge_map(
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
            Ok(Merged {
                list: clean_list(patch),
                stale_original: None,
            })
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
            return Ok(Merged {
                list: original,
                stale_original: None,
            });
        }
        let is_map = element_kind(&original, &patch, path)? == Kind::Object;
        if !is_map {
            if is_delete_list {
                let list = original
                    .into_iter()
                    .filter(|v| !patch.iter().any(|d| same(v, d)))
                    .collect();
                return Ok(Merged {
                    list,
                    stale_original: None,
                });
            }
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for v in original.iter().chain(patch.iter()) {
                if !merged.iter().any(|m| same(m, v)) {
                    merged.push(v.clone());
                }
            }
            let (patch_items, server_only) = partition(merged, &patch, "")?;
            let list = normalize_element_order(patch_items, server_only, &patch, &original, "")?;
            return Ok(Merged {
                list,
                stale_original: None,
            });
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

        let (patch_items, server_only) = partition(merged, &patch, merge_key)?;
        let list = normalize_element_order(patch_items, server_only, &patch, &original, merge_key)?;
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
            let (patch_items, server_only) = partition(merged, &order, meta.merge_key)?;
            let ordered = normalize_element_order(
                patch_items,
                server_only,
                &order,
                &original_list_for_order,
                meta.merge_key,
            )?;
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

#[derive(PartialEq)]
enum Kind {
    Object,
    Scalar(std::mem::Discriminant<Value>),
}

/// Go's `sliceElementType`: every element of both lists must share one type, and none is a list.
fn element_kind(original: &[Value], patch: &[Value], path: &str) -> Result<Kind, PatchError> {
    let mut kind = None;
    for v in original.iter().chain(patch) {
        let this = match v {
            Value::Array(_) => {
                return Err(PatchError::Invalid(format!(
                    "lists of lists are not supported ({path})"
                )));
            }
            Value::Object(_) => Kind::Object,
            other => Kind::Scalar(std::mem::discriminant(other)),
        };
        match &kind {
            None => kind = Some(this),
            Some(k) if *k == this => {}
            Some(_) => {
                return Err(bad(format!(
                    "list element types are not identical in {path}"
                )));
            }
        }
    }
    kind.ok_or_else(|| bad(format!("no elements in any of the given lists at {path}")))
}

/// Go compares decoded JSON with `==`, where every number is a float64.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn merge_key_of<'v>(v: &'v Value, merge_key: &str) -> Result<&'v Value, PatchError> {
    v.as_object().and_then(|m| m.get(merge_key)).ok_or_else(|| {
        bad(format!(
            "map: {v} does not contain declared merge key: {merge_key}"
        ))
    })
}

/// Identity of a list element: the value of its merge key, or the element itself for primitives.
fn identity<'v>(v: &'v Value, merge_key: &str) -> Result<&'v Value, PatchError> {
    if merge_key.is_empty() {
        Ok(v)
    } else {
        merge_key_of(v, merge_key)
    }
}

/// Go's `findMapInSliceBasedOnKeyValue`: first element whose merge key equals `value`.
fn find_by_key(
    list: &[Value],
    merge_key: &str,
    value: &Value,
) -> Result<Option<usize>, PatchError> {
    for (i, v) in list.iter().enumerate() {
        let Some(map) = v.as_object() else {
            return Err(bad(format!("value for key {i} is not a map")));
        };
        if map.get(merge_key).is_some_and(|k| same(k, value)) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Index of `id` among the identities of `list` (Go's `index`); elements without the key never match.
fn position(list: &[Value], merge_key: &str, id: &Value) -> Option<usize> {
    list.iter()
        .position(|v| identity(v, merge_key).is_ok_and(|k| same(k, id)))
}

/// Splits `list` into elements present in `by` and the rest (Go's `partition*ByPresentInList`).
fn partition(
    list: Vec<Value>,
    by: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for v in list {
        let id = identity(&v, merge_key)?;
        if position(by, merge_key, id).is_some() {
            present.push(v);
        } else {
            absent.push(v);
        }
    }
    Ok((present, absent))
}

/// Go's `normalizeElementOrder`: sorts patch items by `patch_order` and server-only items by
/// `server_order`, then interleaves them by `server_order`.
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
) -> Result<Vec<Value>, PatchError> {
    let patch_items = sort_by_order(patch_items, patch_order, merge_key)?;
    let server_only = sort_by_order(server_only, server_order, merge_key)?;
    let index = |v: &Value| {
        identity(v, merge_key)
            .ok()
            .and_then(|id| position(server_order, merge_key, id))
    };

    // Go's `mergeSortedSlice`: a server-only item goes first only when both are in the live list
    // and it sorts earlier there; new patch items therefore lead.
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!((index(l), index(r)), (Some(li), Some(ri)) if li < ri),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}

/// Go's `normalizeSliceOrder`: a stable sort by position in `order`; unknown items keep their place at the end.
fn sort_by_order(
    list: Vec<Value>,
    order: &[Value],
    merge_key: &str,
) -> Result<Vec<Value>, PatchError> {
    let mut keyed = Vec::with_capacity(list.len());
    for v in list {
        let pos = position(order, merge_key, identity(&v, merge_key)?).unwrap_or(usize::MAX);
        keyed.push((pos, v));
    }
    keyed.sort_by_key(|(pos, _)| *pos);
    Ok(keyed.into_iter().map(|(_, v)| v).collect())
}

/// Go's `validatePatchWithSetOrderList`: the patch list must follow the `$setElementOrder` order.
fn validate_patch_with_set_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: &str,
) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let mut non_delete = Vec::with_capacity(patch_list.len());
    for v in patch_list {
        if !merge_key.is_empty() {
            let Some(map) = v.as_object() else {
                return Err(bad(format!("expected a map in the patch list, got {v}")));
            };
            if map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                continue;
            }
        }
        non_delete.push(v);
    }
    let (mut pi, mut si) = (0, 0);
    while pi < non_delete.len() && si < order.len() {
        if non_delete[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        if same(
            identity(non_delete[pi], merge_key)?,
            identity(&order[si], merge_key)?,
        ) {
            pi += 1;
        }
        si += 1;
    }
    if pi < non_delete.len() && si >= order.len() {
        return Err(bad(format!(
            "The order in patch list: {} doesn't match {SET_ELEMENT_ORDER} list: {}",
            Value::Array(patch_list.to_vec()),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

/// Go's `applyRetainKeysDirective`: drops original keys missing from `$retainKeys`.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(bad(
            "invalid patch format of retainKeys: $retainKeys must be a list",
        ));
    };
    let kept = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !kept(k) {
            return Err(bad(format!(
                "invalid patch format of retainKeys: {k} is in the patch but not in $retainKeys"
            )));
        }
    }
    original.retain(|k, _| kept(k));
    Ok(())
}

/// The field a `$prefix/<field>` directive key names.
fn directive_field<'k>(key: &'k str, prefix: &str) -> Result<&'k str, PatchError> {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|field| !field.is_empty())
        .ok_or_else(|| {
            bad(format!(
                "invalid patch format: {key} is not {prefix}/<field>"
            ))
        })
}

fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// A patch value stored as is (Go's `discardNullValuesFromPatch` + `removeDirectives`): nulls and
/// directive keys go, and a map carrying `$patch` is dropped altogether (`None`).
fn clean(v: Value) -> Option<Value> {
    match v {
        Value::Object(map) if map.contains_key(DIRECTIVE) => None,
        Value::Object(map) => Some(Value::Object(clean_map(map))),
        Value::Array(list) => Some(Value::Array(clean_list(list))),
        other => Some(other),
    }
}

fn clean_map(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .filter(|(k, v)| !v.is_null() && !is_directive_key(k))
        .filter_map(|(k, v)| clean(v).map(|v| (k, v)))
        .collect()
}

fn clean_list(list: Vec<Value>) -> Vec<Value> {
    list.into_iter().filter_map(clean).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(containers: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "finalizers": ["a", "b"]},
            "spec": {
                "replicas": 1,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                "template": {"spec": {"containers": containers}},
            },
        })
    }

    fn containers(v: &Value) -> &Value {
        &v["spec"]["template"]["spec"]["containers"]
    }

    fn two_containers() -> Value {
        deployment(json!([
            {"name": "app", "image": "app:1", "args": ["--a", "--b"],
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "sidecar", "image": "side:1"},
        ]))
    }

    fn smp(original: &Value, patch: Value) -> Value {
        match strategic_merge("apps/v1", "Deployment", original, &patch) {
            Ok(v) => v,
            Err(err) => panic!("patch {patch} failed: {err}"),
        }
    }

    fn has_directive(v: &Value) -> bool {
        match v {
            Value::Object(m) => m
                .iter()
                .any(|(k, v)| is_directive_key(k) || has_directive(v)),
            Value::Array(l) => l.iter().any(has_directive),
            _ => false,
        }
    }

    /// Each case: name, patch, and a check on the result of patching [`two_containers`].
    #[test]
    fn deployment_cases() {
        type Check = fn(&Value);
        let cases: Vec<(&str, Value, Check)> = vec![
            (
                "container merge by name",
                json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}}),
                |v| {
                    assert_eq!(containers(v)[0]["image"], "app:2");
                    assert_eq!(containers(v)[0]["args"], json!(["--a", "--b"]));
                    assert_eq!(
                        containers(v)[1],
                        json!({"name": "sidecar", "image": "side:1"})
                    );
                },
            ),
            (
                // Go puts new elements ahead of the live ones when the patch gives no order.
                "adding a container",
                json!({"spec": {"template": {"spec": {"containers": [{"name": "extra", "image": "x:1"}]}}}}),
                |v| {
                    let names: Vec<&str> = containers(v)
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c["name"].as_str())
                        .collect();
                    assert_eq!(names, ["extra", "app", "sidecar"]);
                },
            ),
            (
                "$patch: delete element",
                json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "sidecar"}]}}}}),
                |v| {
                    assert_eq!(containers(v).as_array().map(Vec::len), Some(1));
                    assert_eq!(containers(v)[0]["name"], "app");
                },
            ),
            (
                "finalizers union",
                json!({"metadata": {"finalizers": ["c", "a"]}}),
                |v| assert_eq!(v["metadata"]["finalizers"], json!(["c", "a", "b"])),
            ),
            (
                "$deleteFromPrimitiveList",
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
                |v| assert_eq!(v["metadata"]["finalizers"], json!(["b"])),
            ),
            (
                "$setElementOrder orders and is stripped",
                json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "new"}, {"name": "app"}],
                    "containers": [{"name": "new", "image": "n:1"}],
                }}}}),
                |v| {
                    let names: Vec<&str> = containers(v)
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c["name"].as_str())
                        .collect();
                    assert_eq!(names, ["sidecar", "new", "app"]);
                },
            ),
            (
                "$setElementOrder on primitives with deletion",
                json!({"metadata": {
                    "$setElementOrder/finalizers": ["b", "z"],
                    "finalizers": ["z"],
                    "$deleteFromPrimitiveList/finalizers": ["a"],
                }}),
                |v| assert_eq!(v["metadata"]["finalizers"], json!(["b", "z"])),
            ),
            (
                "$retainKeys",
                json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
                |v| assert_eq!(v["spec"]["strategy"], json!({"type": "Recreate"})),
            ),
            (
                "$patch: replace on a map",
                json!({"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}}),
                |v| assert_eq!(v["spec"]["strategy"], json!({"type": "Recreate"})),
            ),
            (
                "null deletes a field",
                json!({"spec": {"replicas": null, "strategy": {"rollingUpdate": null}}}),
                |v| {
                    assert!(v["spec"].get("replicas").is_none());
                    assert_eq!(v["spec"]["strategy"], json!({"type": "RollingUpdate"}));
                },
            ),
            (
                "env merges by name inside containers",
                json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "app", "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}]},
                ]}}}}),
                |v| {
                    assert_eq!(
                        containers(v)[0]["env"],
                        json!([
                            {"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "C", "value": "3"},
                        ])
                    )
                },
            ),
            (
                "args without merge strategy replaced",
                json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "args": ["--c"]}]}}}}),
                |v| assert_eq!(containers(v)[0]["args"], json!(["--c"])),
            ),
            (
                "$patch: replace element replaces the list",
                json!({"spec": {"template": {"spec": {"containers": [
                    {"$patch": "replace"}, {"name": "only", "image": "o:1"},
                ]}}}}),
                |v| assert_eq!(*containers(v), json!([{"name": "only", "image": "o:1"}])),
            ),
            (
                "new subtree keeps no directives or nulls",
                json!({"spec": {"template": {"metadata": {
                    "labels": {"a": "1", "b": null}, "$setElementOrder/finalizers": ["x"], "finalizers": ["x"],
                }}}}),
                |v| {
                    assert_eq!(
                        v["spec"]["template"]["metadata"],
                        json!({"labels": {"a": "1"}, "finalizers": ["x"]})
                    )
                },
            ),
        ];
        let original = two_containers();
        for (name, patch, check) in cases {
            let result = smp(&original, patch);
            assert!(
                !has_directive(&result),
                "{name}: directive left in {result}"
            );
            check(&result);
        }
    }

    #[test]
    fn kubectl_apply_patch_removes_and_orders() {
        // What `kubectl apply` sends after dropping the sidecar and adding a port.
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [
                {"name": "app", "$setElementOrder/ports": [{"containerPort": 8080}],
                 "ports": [{"containerPort": 8080}]},
                {"$patch": "delete", "name": "sidecar"},
            ],
        }}}});
        let result = smp(&two_containers(), patch);
        assert!(!has_directive(&result), "directive left in {result}");
        assert_eq!(containers(&result).as_array().map(Vec::len), Some(1));
        assert_eq!(
            containers(&result)[0]["ports"],
            json!([{"containerPort": 8080}])
        );
    }

    #[test]
    fn directives_in_replaced_lists_are_stripped() {
        // `spec.versions` of a CRD is atomic, so what kubectl sends inside it is stored as given.
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
        let patch = json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
            "$setElementOrder/x-kubernetes-validations": [{"rule": "a"}],
            "x-kubernetes-validations": [{"rule": "a"}],
        }}}]}});
        let result = strategic_merge(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            &crd,
            &patch,
        );
        let result = result.map(|v| v["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone());
        assert_eq!(
            result,
            Ok(json!({"x-kubernetes-validations": [{"rule": "a"}]}))
        );
    }

    #[test]
    fn lease_null_deletes_holder() {
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "l"}, "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}});
        let patch = json!({"spec": {"holderIdentity": null}});
        let result = strategic_merge("coordination.k8s.io/v1", "Lease", &lease, &patch);
        assert_eq!(
            result.map(|v| v["spec"].clone()),
            Ok(json!({"leaseDurationSeconds": 15}))
        );
    }

    /// apimachinery's test type `MergeItem`, looked up by the last field name as its recursive struct is.
    struct GoTestSchema(Vec<(&'static str, FieldInfo)>);

    impl Lookup for GoTestSchema {
        fn info(&self, path: &str) -> Option<&FieldInfo> {
            let field = path.rsplit('.').next()?;
            self.0
                .iter()
                .find(|(name, _)| *name == field)
                .map(|(_, info)| info)
        }
    }

    fn go_test_schema() -> GoTestSchema {
        let info = |key: Option<&str>, strategy: &str| FieldInfo {
            merge_key: key.map(String::from),
            strategy: Some(strategy.into()),
            ..FieldInfo::default()
        };
        GoTestSchema(vec![
            ("mergingList", info(Some("name"), "merge")),
            ("mergingIntList", info(None, "merge")),
            ("retainKeysMap", info(None, "retainKeys")),
            (
                "retainKeysMergingList",
                info(Some("name"), "merge,retainKeys"),
            ),
        ])
    }

    /// Cases from apimachinery's patch_test.go (current, three-way patch, result), compared in order.
    #[test]
    fn go_upstream_cases() {
        let cases = [
            (
                "add map and delete map from merging list",
                json!({"mergingList": [{"name": 1}, {"name": 2, "other": "b"}, {"name": 4, "other": "c"}]}),
                json!({"$setElementOrder/mergingList": [{"name": 2}, {"name": 3}],
                       "mergingList": [{"name": 3}, {"name": 1, "$patch": "delete"}]}),
                json!({"mergingList": [{"name": 2, "other": "b"}, {"name": 4, "other": "c"}, {"name": 3}]}),
            ),
            (
                "add an item in a list of primitives and preserve order",
                json!({"mergingIntList": [1, 4, 2]}),
                json!({"$setElementOrder/mergingIntList": [3, 1, 2], "mergingIntList": [3]}),
                json!({"mergingIntList": [3, 1, 4, 2]}),
            ),
            (
                "set elements order in a list with server-only items",
                json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 3}, {"name": 4}, {"name": 2}, {"name": 9}]}),
                json!({"$setElementOrder/mergingList": [{"name": 4}, {"name": 2}, {"name": 3}, {"name": 1}]}),
                json!({"mergingList": [{"name": 4}, {"name": 2}, {"name": 3}, {"name": 1, "other": "a"}, {"name": 9}]}),
            ),
            (
                "retainKeys list of maps clears a field",
                json!({"retainKeysMergingList": [{"name": "foo", "value": "a", "other": "x"}, {"name": "bar"}]}),
                json!({"$setElementOrder/retainKeysMergingList": [{"name": "foo"}, {"name": "bar"}],
                       "retainKeysMergingList": [{"name": "foo", "$retainKeys": ["name", "value"]}]}),
                json!({"retainKeysMergingList": [{"name": "foo", "value": "a"}, {"name": "bar"}]}),
            ),
            (
                "retainKeys map adds an item in nested merging int list",
                json!({"retainKeysMap": {"name": "foo", "mergingIntList": [1, 2]}}),
                json!({"retainKeysMap": {"$retainKeys": ["mergingIntList", "name"],
                       "$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3]}}),
                json!({"retainKeysMap": {"name": "foo", "mergingIntList": [1, 2, 3]}}),
            ),
        ];
        let schema = go_test_schema();
        for (name, current, patch, want) in cases {
            assert_eq!(apply(&schema, &current, &patch), Ok(want), "{name}");
        }
    }

    #[test]
    fn errors() {
        let original = two_containers();
        for patch in [json!([1]), json!("x"), json!(null)] {
            let err = strategic_merge("apps/v1", "Deployment", &original, &patch);
            assert!(
                matches!(err, Err(PatchError::BadRequest(_))),
                "{patch}: {err:?}"
            );
        }
        let err = strategic_merge("example.com/v1", "Widget", &json!({}), &json!({"spec": {}}));
        assert_eq!(
            err,
            Err(PatchError::Unsupported(
                "strategic merge patch is not supported for example.com/v1/Widget; use a merge patch or JSON patch".into()
            ))
        );
        let missing_key = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        let err = strategic_merge("apps/v1", "Deployment", &original, &missing_key);
        assert!(matches!(err, Err(PatchError::BadRequest(_))), "{err:?}");
        let bad_retain =
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}});
        let err = strategic_merge("apps/v1", "Deployment", &original, &bad_retain);
        assert!(matches!(err, Err(PatchError::BadRequest(_))), "{err:?}");
    }
}
