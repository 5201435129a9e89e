//! Merging an applied config into the live object, removing field sets from it, and pruning
//! what an applier stopped applying (structured-merge-diff's `Merge`, `RemoveItems`, `prune`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::fieldset::{Pe, Set};
use super::object::empty_object;
use super::walk::{Ctx, Cursor, ListKind, list_pes, object_set};

/// Merges the applied config into the live object. `None` means "field absent"; nulls in the
/// config remove fields, and a granular map or list that merges to nothing disappears.
pub(super) fn merge(
    ctx: &Ctx,
    cur: &mut Cursor,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
) -> Option<Value> {
    let Some(rhs) = rhs else { return lhs.cloned() };
    let lhs = lhs.filter(|v| !v.is_null());
    match rhs {
        Value::Null => None,
        Value::Object(r) => {
            let empty = Map::new();
            let l = match lhs {
                Some(Value::Object(map)) => map,
                _ => &empty,
            };
            if l.is_empty() && r.is_empty() {
                return Some(Value::Object(Map::new()));
            }
            let mut out = Map::new();
            for (key, l_value) in l {
                cur.push_field(key);
                if let Some(v) = merge(ctx, cur, Some(l_value), r.get(key)) {
                    out.insert(key.clone(), v);
                }
                cur.pop_field();
            }
            for (key, r_value) in r {
                if l.contains_key(key) {
                    continue;
                }
                cur.push_field(key);
                if let Some(v) = merge(ctx, cur, None, Some(r_value)) {
                    out.insert(key.clone(), v);
                }
                cur.pop_field();
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(r) => {
            let empty = Vec::new();
            let l = match lhs {
                Some(Value::Array(items)) => items,
                _ => &empty,
            };
            let kind = ctx.list_kind(&cur.spath);
            if kind == ListKind::Atomic || (l.is_empty() && r.is_empty()) {
                return Some(rhs.clone());
            }
            merge_lists(ctx, cur, &kind, l, r).map(Value::Array)
        }
        scalar => Some(scalar.clone()),
    }
}

/// structured-merge-diff's list merge: applied order wins for shared elements, live-only elements
/// keep their place, new elements land where the config puts them.
fn merge_lists(
    ctx: &Ctx,
    cur: &mut Cursor,
    kind: &ListKind,
    l: &[Value],
    r: &[Value],
) -> Option<Vec<Value>> {
    let Ok(r_pes) = list_pes(kind, r) else {
        return Some(r.to_vec());
    };
    let l_pes = list_pes(kind, l).unwrap_or_default();
    // A live list whose elements cannot be identified is replaced.
    let l: &[Value] = if l_pes.len() == l.len() { l } else { &[] };

    // First index of each live key, or None when the key is duplicated.
    let mut observed_l: BTreeMap<&Pe, Option<usize>> = BTreeMap::new();
    for (i, pe) in l_pes.iter().enumerate().take(l.len()) {
        observed_l
            .entry(pe)
            .and_modify(|slot| *slot = None)
            .or_insert(Some(i));
    }
    let observed_r: BTreeSet<&Pe> = r_pes.iter().collect();
    let mut shared = r_pes.iter().filter(|pe| observed_l.contains_key(pe));
    let mut next_shared = shared.next();
    let mut merged_r: BTreeSet<&Pe> = BTreeSet::new();
    let mut out = Vec::with_capacity(l.len().max(r.len()));

    let item = |cur: &mut Cursor,
                out: &mut Vec<Value>,
                pe: &Pe,
                lhs: Option<&Value>,
                rhs: Option<&Value>| {
        cur.path.push(pe.clone());
        if let Some(v) = merge(ctx, cur, lhs, rhs) {
            out.push(v);
        }
        cur.path.pop();
    };
    let live_of = |observed: &BTreeMap<&Pe, Option<usize>>, pe: &Pe| {
        observed.get(pe).copied().flatten().and_then(|i| l.get(i))
    };

    let (l_len, r_len) = (l.len(), r_pes.len());
    let (mut li, mut ri) = (0, 0);
    while li < l_len || ri < r_len {
        if li < l_len && ri < r_len {
            let pe = &l_pes[li];
            if *pe == r_pes[ri] {
                merged_r.insert(pe);
                item(cur, &mut out, pe, live_of(&observed_l, pe), Some(&r[ri]));
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if observed_r.contains(pe) && next_shared.is_some_and(|s| s != pe) {
                // Shared element, but not the next one in applied order.
                li += 1;
                continue;
            }
        }
        if li < l_len {
            let pe = &l_pes[li];
            if !observed_r.contains(pe) {
                item(cur, &mut out, pe, Some(&l[li]), None);
                li += 1;
                continue;
            } else if merged_r.contains(pe) {
                li += 1;
            }
        }
        if ri < r_len {
            let pe = &r_pes[ri];
            merged_r.insert(pe);
            item(cur, &mut out, pe, live_of(&observed_l, pe), Some(&r[ri]));
            ri += 1;
            if next_shared.is_some_and(|s| s == pe) {
                next_shared = shared.next();
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Removes the member paths of `set` (with their subtrees). Maps and lists emptied by the
/// removal disappear.
fn remove_items(ctx: &Ctx, cur: &mut Cursor, value: &Value, set: &Set) -> Option<Value> {
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut out = Map::new();
            for (key, child) in map {
                let pe = Pe::Field(key.clone());
                if set.members.contains(&pe) {
                    continue;
                }
                match set.children.get(&pe) {
                    Some(sub) if !sub.is_empty() => {
                        cur.push_field(key);
                        if let Some(v) = remove_items(ctx, cur, child, sub) {
                            out.insert(key.clone(), v);
                        }
                        cur.pop_field();
                    }
                    _ => {
                        out.insert(key.clone(), child.clone());
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) if !items.is_empty() => {
            let kind = ctx.list_kind(&cur.spath);
            if kind == ListKind::Atomic {
                return Some(value.clone());
            }
            let Ok(pes) = list_pes(&kind, items) else {
                return Some(value.clone());
            };
            let mut out = Vec::with_capacity(items.len());
            for (pe, item) in pes.into_iter().zip(items) {
                if set.members.contains(&pe) {
                    continue;
                }
                match set.children.get(&pe) {
                    Some(sub) if !sub.is_empty() => {
                        cur.path.push(pe);
                        if let Some(v) = remove_items(ctx, cur, item, sub) {
                            out.push(v);
                        }
                        cur.path.pop();
                    }
                    _ => out.push(item.clone()),
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        _ => Some(value.clone()),
    }
}

fn remove_from_root(ctx: &Ctx, value: &Value, set: &Set) -> Value {
    if set.is_empty() {
        return value.clone();
    }
    remove_items(ctx, &mut Cursor::default(), value, set).unwrap_or_else(empty_object)
}

/// Updater.prune: drops what the applier applied last time and no longer applies, unless some
/// manager (including the applier's new config) still owns it.
pub(super) fn prune(ctx: &Ctx, merged: &Value, managed: &Set, last: &Set) -> Value {
    if last.is_empty() {
        return merged.clone();
    }
    let last = last.ensure_fields_are_members(true);
    let managed = managed.ensure_fields_are_members(true);
    let merged_set = object_set(ctx, merged);

    let pruned = remove_from_root(ctx, merged, &last);
    // Add back everything still owned by someone.
    let kept = object_set(ctx, &pruned).union(&managed);
    let pruned = remove_from_root(ctx, merged, &merged_set.difference(&kept));
    // Add back dangling items: only what the applier itself had is removed.
    let gone = merged_set
        .difference(&object_set(ctx, &pruned))
        .intersection(&last);
    remove_from_root(ctx, merged, &gone)
}
