//! List element identity (merge keys, Go's number equality) and Go's element ordering rules
//! (`$setElementOrder`, `normalizeElementOrder`).

use serde_json::Value;

use super::directives::{DIRECTIVE, SET_ELEMENT_ORDER};
use super::{PatchError, bad};

#[derive(PartialEq)]
pub(super) enum Kind {
    Object,
    Scalar(std::mem::Discriminant<Value>),
}

/// Go's `sliceElementType`: every element of both lists must share one type, and none is a list.
pub(super) fn element_kind(
    original: &[Value],
    patch: &[Value],
    path: &str,
) -> Result<Kind, PatchError> {
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
pub(super) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

pub(super) fn merge_key_of<'v>(v: &'v Value, merge_key: &str) -> Result<&'v Value, PatchError> {
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
pub(super) fn find_by_key(
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

/// Orders a merged list: elements named in `patch_order` against the rest, as Go does with
/// `partition*ByPresentInList` followed by `normalizeElementOrder`.
pub(super) fn order_merged(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
) -> Result<Vec<Value>, PatchError> {
    let (patch_items, server_only) = partition(merged, patch_order, merge_key)?;
    normalize_element_order(
        patch_items,
        server_only,
        patch_order,
        server_order,
        merge_key,
    )
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
pub(super) fn validate_patch_with_set_order(
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
