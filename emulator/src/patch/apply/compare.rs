//! Comparing two objects field by field (structured-merge-diff's `typed.Compare`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::fieldset::{Pe, Set};
use super::value::{is_scalar, json_eq, json_eq_slices};
use super::walk::{Ctx, Cursor, ListKind, add_subtree, list_pes};

#[derive(Debug, Default)]
pub(super) struct Comparison {
    pub(super) modified: Set,
    pub(super) added: Set,
    pub(super) removed: Set,
}

pub(super) fn compare_objects(ctx: &Ctx, lhs: &Value, rhs: &Value) -> Comparison {
    let mut out = Comparison::default();
    compare(ctx, &mut Cursor::default(), Some(lhs), Some(rhs), &mut out);
    out
}

/// Nulls count as absent: stored objects never keep them.
fn compare(
    ctx: &Ctx,
    cur: &mut Cursor,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    out: &mut Comparison,
) {
    let lhs = lhs.filter(|v| !v.is_null());
    let rhs = rhs.filter(|v| !v.is_null());
    match (lhs, rhs) {
        (None, None) => {}
        (None, Some(r)) => {
            out.added.insert(&cur.path);
            add_subtree(ctx, cur, r, &mut out.added);
        }
        (Some(l), None) => {
            out.removed.insert(&cur.path);
            add_subtree(ctx, cur, l, &mut out.removed);
        }
        (Some(Value::Object(l)), Some(Value::Object(r))) => {
            for (key, l_value) in l {
                cur.push_field(key);
                compare(ctx, cur, Some(l_value), r.get(key), out);
                cur.pop_field();
            }
            for (key, r_value) in r {
                if !l.contains_key(key) {
                    cur.push_field(key);
                    compare(ctx, cur, None, Some(r_value), out);
                    cur.pop_field();
                }
            }
        }
        (Some(Value::Array(l)), Some(Value::Array(r))) => compare_lists(ctx, cur, l, r, out),
        (Some(l), Some(r)) if is_scalar(l) && is_scalar(r) => {
            if !json_eq(l, r) {
                out.modified.insert(&cur.path);
            }
        }
        (Some(l), Some(r)) => {
            // Type changed: the old subtree goes, the new one arrives.
            add_subtree(ctx, cur, l, &mut out.removed);
            add_subtree(ctx, cur, r, &mut out.added);
            out.modified.insert(&cur.path);
        }
    }
}

fn compare_lists(ctx: &Ctx, cur: &mut Cursor, l: &[Value], r: &[Value], out: &mut Comparison) {
    let kind = ctx.list_kind(&cur.spath);
    let granular = kind != ListKind::Atomic && !(l.is_empty() && r.is_empty());
    let pes = if granular {
        list_pes(&kind, l).ok().zip(list_pes(&kind, r).ok())
    } else {
        None
    };
    let Some((l_pes, r_pes)) = pes else {
        if !json_eq_slices(l, r) {
            out.modified.insert(&cur.path);
        }
        return;
    };

    let mut order: Vec<&Pe> = Vec::new();
    let mut l_items: BTreeMap<&Pe, Vec<&Value>> = BTreeMap::new();
    for (pe, item) in l_pes.iter().zip(l) {
        let slot = l_items.entry(pe).or_default();
        if slot.is_empty() {
            order.push(pe);
        }
        slot.push(item);
    }
    let mut r_items: BTreeMap<&Pe, Vec<&Value>> = BTreeMap::new();
    for (pe, item) in r_pes.iter().zip(r) {
        if !l_items.contains_key(pe) && !r_items.contains_key(pe) {
            order.push(pe);
        }
        r_items.entry(pe).or_default().push(item);
    }

    for pe in order {
        let ls = l_items.get(pe).map_or(&[][..], Vec::as_slice);
        let rs = r_items.get(pe).map_or(&[][..], Vec::as_slice);
        cur.path.push(pe.clone());
        match (ls.len(), rs.len()) {
            (0..=1, 0..=1) => compare(ctx, cur, ls.first().copied(), rs.first().copied(), out),
            // Duplicated keys on both sides: compared as an atomic run.
            (2.., 2..) => {
                if ls.len() != rs.len() || ls.iter().zip(rs).any(|(a, b)| !json_eq(a, b)) {
                    out.modified.insert(&cur.path);
                }
            }
            (2.., _) => {
                compare(ctx, cur, None, rs.first().copied(), out);
                out.removed.insert(&cur.path);
            }
            _ => {
                compare(ctx, cur, ls.first().copied(), None, out);
                out.added.insert(&cur.path);
            }
        }
        cur.path.pop();
    }
}

/// [`compare_objects`] as if `metadata.managedFields` were removed from both sides first, without
/// copying them (both must have a `metadata` object, as every stored or checked object has).
pub(super) fn compare_without_managed_fields(ctx: &Ctx, lhs: &Value, rhs: &Value) -> Comparison {
    let meta = |v: &Value| v.get("metadata").and_then(Value::as_object).is_some();
    let (Value::Object(l), Value::Object(r)) = (lhs, rhs) else {
        return compare_objects(ctx, lhs, rhs);
    };
    if !meta(lhs) || !meta(rhs) {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                m.shift_remove("managedFields");
            }
            v
        };
        return compare_objects(ctx, &strip(lhs), &strip(rhs));
    }
    let mut out = Comparison::default();
    let mut cur = Cursor::default();
    let mut field = |cur: &mut Cursor, key: &str, l: Option<&Value>, r: Option<&Value>| {
        // Equal subtrees differ nowhere: most writes change one of spec, status or metadata,
        // and walking the others path by path cost more than this check.
        if l.is_some() && l == r {
            return;
        }
        cur.push_field(key);
        match (key, l, r) {
            ("metadata", Some(Value::Object(lm)), Some(Value::Object(rm))) => {
                for (k, lv) in lm.iter().filter(|(k, _)| *k != "managedFields") {
                    let rv = rm.get(k);
                    if rv == Some(lv) {
                        continue;
                    }
                    cur.push_field(k);
                    compare(ctx, cur, Some(lv), rv, &mut out);
                    cur.pop_field();
                }
                for (k, rv) in rm.iter().filter(|(k, _)| *k != "managedFields") {
                    if !lm.contains_key(k) {
                        cur.push_field(k);
                        compare(ctx, cur, None, Some(rv), &mut out);
                        cur.pop_field();
                    }
                }
            }
            _ => compare(ctx, cur, l, r, &mut out),
        }
        cur.pop_field();
    };
    for (key, l_value) in l {
        field(&mut cur, key, Some(l_value), r.get(key));
    }
    for (key, r_value) in r {
        if !l.contains_key(key) {
            field(&mut cur, key, None, Some(r_value));
        }
    }
    out
}
