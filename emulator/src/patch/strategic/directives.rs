//! Patch directives (`$patch`, `$retainKeys`, `$deleteFromPrimitiveList/…`, `$setElementOrder/…`):
//! their names, `$retainKeys` handling, and stripping them from values that are stored as sent.

use serde_json::{Map, Value};

use super::{PatchError, bad};

/// The `$patch` directive key (`replace`, `delete`) of a map or list element.
pub(super) const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
pub(super) const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
pub(super) const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Go's `applyRetainKeysDirective`: drops original keys missing from `$retainKeys`.
pub(super) fn apply_retain_keys(
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
pub(super) fn directive_field<'k>(key: &'k str, prefix: &str) -> Result<&'k str, PatchError> {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|field| !field.is_empty())
        .ok_or_else(|| {
            bad(format!(
                "invalid patch format: {key} is not {prefix}/<field>"
            ))
        })
}

pub(super) fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// A patch value stored as is (Go's `discardNullValuesFromPatch` + `removeDirectives`): nulls and
/// directive keys go, and a map carrying `$patch` is dropped altogether (`None`).
pub(super) fn clean(v: Value) -> Option<Value> {
    match v {
        Value::Object(map) if map.contains_key(DIRECTIVE) => None,
        Value::Object(map) => Some(Value::Object(clean_map(map))),
        Value::Array(list) => Some(Value::Array(clean_list(list))),
        other => Some(other),
    }
}

pub(super) fn clean_map(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .filter(|(k, v)| !v.is_null() && !is_directive_key(k))
        .filter_map(|(k, v)| clean(v).map(|v| (k, v)))
        .collect()
}

pub(super) fn clean_list(list: Vec<Value>) -> Vec<Value> {
    list.into_iter().filter_map(clean).collect()
}
