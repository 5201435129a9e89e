//! Lists, counts and sums over decoded objects (pure): the same filters, orders and paging as the
//! other backends, applied after a prefix range has read a kind's (or a namespace's) objects.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::mirror::kind::KindSpec;
use crate::store::sort::SortValue;
use crate::store::{Cursor, GroupBy, ListPage, ListQuery, MirrorObject, SortField, StoreError};

/// Fails with `UnknownColumn` for a filter or sort column the kind does not define.
pub fn check_columns(kind: &KindSpec, query: &ListQuery) -> Result<(), StoreError> {
    let sort = match &query.sort.field {
        SortField::Column(column) => Some(column),
        _ => None,
    };
    for column in query.columns.iter().map(|(c, _)| c).chain(sort) {
        known_column(kind, column)?;
    }
    Ok(())
}

fn known_column(kind: &KindSpec, column: &str) -> Result<(), StoreError> {
    match kind.column(column) {
        Some(_) => Ok(()),
        None => Err(StoreError::UnknownColumn {
            kind: kind.id(),
            column: column.to_owned(),
        }),
    }
}

/// Filters, sorts and pages `objects` (all of the kind, or of the query's namespace).
pub fn page(
    kind: &KindSpec,
    objects: Vec<MirrorObject>,
    query: &ListQuery,
) -> Result<ListPage, StoreError> {
    check_columns(kind, query)?;
    let search = query.search.as_deref().map(str::to_lowercase);
    let mut matches: Vec<MirrorObject> = objects
        .into_iter()
        .filter(|o| matches(o, query, search.as_deref()))
        .collect();
    let total = matches.len();
    let order = |a: &MirrorObject, b: &MirrorObject| {
        compare(query, &sort_key(query, a), &sort_key(query, b))
    };
    matches.sort_by(order);
    let start = match &query.after {
        Some(cursor) => {
            let at = (
                SortValue::of(&cursor.value),
                cursor.namespace.as_str(),
                cursor.name.as_str(),
            );
            matches
                .partition_point(|o| compare(query, &sort_key(query, o), &at) != Ordering::Greater)
        }
        None => query.offset.min(total),
    };
    let end = start.saturating_add(query.limit).min(total);
    let more = end < total && query.limit > 0;
    let items: Vec<MirrorObject> = matches.drain(start..end).collect();
    let next = match items.last() {
        Some(last) if more => Some(Cursor {
            value: cursor_value(query, last),
            namespace: last.namespace.clone(),
            name: last.name.clone(),
        }),
        _ => None,
    };
    Ok(ListPage { items, total, next })
}

fn matches(object: &MirrorObject, query: &ListQuery, search: Option<&str>) -> bool {
    if query
        .namespace
        .as_ref()
        .is_some_and(|ns| *ns != object.namespace)
    {
        return false;
    }
    if let Some(needle) = search
        && !object.name.to_lowercase().contains(needle)
    {
        return false;
    }
    if let Some(selector) = &query.labels {
        let labels: Map<String, Value> = object
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        if !selector.matches(Some(&labels)) {
            return false;
        }
    }
    query.columns.iter().all(|(column, wanted)| {
        object
            .columns
            .get(column)
            .and_then(string_form)
            .is_some_and(|value| value == *wanted)
    })
}

/// A column value as filters and group counts compare it; `None` for null.
pub fn string_form(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// `(sort value, namespace, name)` of an object.
fn sort_key<'o>(query: &ListQuery, object: &'o MirrorObject) -> (SortValue<'o>, &'o str, &'o str) {
    let value = match &query.sort.field {
        SortField::Name => SortValue::Null,
        SortField::CreatedAt => object
            .created_at
            .as_deref()
            .map_or(SortValue::Null, |s| SortValue::Str(Cow::Borrowed(s))),
        SortField::Column(column) => object
            .columns
            .get(column)
            .map_or(SortValue::Null, SortValue::of),
    };
    (value, &object.namespace, &object.name)
}

fn cursor_value(query: &ListQuery, object: &MirrorObject) -> Value {
    match &query.sort.field {
        SortField::Name => Value::Null,
        SortField::CreatedAt => object.created_at.clone().map_or(Value::Null, Value::String),
        SortField::Column(column) => object.columns.get(column).cloned().unwrap_or(Value::Null),
    }
}

type SortKey<'a> = (SortValue<'a>, &'a str, &'a str);

fn compare(query: &ListQuery, a: &SortKey<'_>, b: &SortKey<'_>) -> Ordering {
    let ordering =
        a.0.cmp(&b.0)
            .then_with(|| a.1.cmp(b.1))
            .then_with(|| a.2.cmp(b.2));
    if query.sort.descending {
        ordering.reverse()
    } else {
        ordering
    }
}

/// Object counts by namespace or by a column's string form (`null` under `""`).
pub fn group_count<'o>(
    kind: &KindSpec,
    objects: impl Iterator<Item = &'o MirrorObject>,
    by: &GroupBy,
) -> Result<BTreeMap<String, usize>, StoreError> {
    if let GroupBy::Column(column) = by {
        known_column(kind, column)?;
    }
    let mut counts = BTreeMap::new();
    for object in objects {
        let group = match by {
            GroupBy::Namespace => object.namespace.clone(),
            GroupBy::Column(column) => object
                .columns
                .get(column)
                .and_then(string_form)
                .unwrap_or_default(),
        };
        *counts.entry(group).or_insert(0) += 1;
    }
    Ok(counts)
}

/// Sums of integer columns (missing and non-integer values count as 0).
pub fn column_sums<'o>(
    kind: &KindSpec,
    objects: impl Iterator<Item = &'o MirrorObject>,
    columns: &[String],
) -> Result<BTreeMap<String, i64>, StoreError> {
    for column in columns {
        known_column(kind, column)?;
    }
    let mut sums: BTreeMap<String, i64> = columns.iter().map(|c| (c.clone(), 0)).collect();
    for object in objects {
        for (column, sum) in sums.iter_mut() {
            let value = object
                .columns
                .get(column)
                .and_then(Value::as_i64)
                .unwrap_or(0);
            *sum = sum.saturating_add(value);
        }
    }
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::Sort;
    use crate::store::conformance::{sample_kind, sample_object};

    fn objects() -> Vec<MirrorObject> {
        [
            ("b", "x", json!(2)),
            ("a", "y", json!(null)),
            ("a", "X", json!(10)),
            ("c", "z", json!("s")),
        ]
        .into_iter()
        .map(|(ns, name, replicas)| {
            let mut o = sample_object(ns, name, "1");
            o.columns.insert("replicas".into(), replicas);
            o
        })
        .collect()
    }

    fn names(page: &ListPage) -> Vec<String> {
        page.items
            .iter()
            .map(|o| format!("{}/{}", o.namespace, o.name))
            .collect()
    }

    #[test]
    fn default_order_is_namespace_then_name() {
        let query = ListQuery {
            limit: 10,
            ..ListQuery::default()
        };
        let page = page(&sample_kind("Q"), objects(), &query).expect("page");
        assert_eq!(names(&page), ["a/X", "a/y", "b/x", "c/z"]);
        assert_eq!((page.total, page.next), (4, None));
    }

    #[test]
    fn column_order_nulls_first_strings_last_and_keyset_resume() {
        let query = ListQuery {
            sort: Sort {
                field: SortField::Column("replicas".into()),
                descending: false,
            },
            limit: 2,
            ..ListQuery::default()
        };
        let kind = sample_kind("Q");
        let first = page(&kind, objects(), &query).expect("page");
        assert_eq!(names(&first), ["a/y", "b/x"]);
        let next = first.next.expect("more follow");
        assert_eq!(next.value, json!(2));
        let second = page(
            &kind,
            objects(),
            &ListQuery {
                after: Some(next),
                ..query
            },
        )
        .expect("page");
        assert_eq!(names(&second), ["a/X", "c/z"]);
        assert_eq!(second.next, None);
    }

    #[test]
    fn search_is_case_insensitive_and_unknown_columns_fail() {
        let query = ListQuery {
            search: Some("x".into()),
            limit: 10,
            ..ListQuery::default()
        };
        let kind = sample_kind("Q");
        assert_eq!(
            names(&page(&kind, objects(), &query).expect("page")),
            ["a/X", "b/x"]
        );
        let bad = ListQuery {
            columns: vec![("nope".into(), "1".into())],
            ..ListQuery::default()
        };
        assert!(matches!(
            page(&kind, objects(), &bad),
            Err(StoreError::UnknownColumn { .. })
        ));
    }

    #[test]
    fn sums_and_group_counts() {
        let kind = sample_kind("Q");
        let all = objects();
        let sums = column_sums(&kind, all.iter(), &["replicas".into()]).expect("sums");
        assert_eq!(sums["replicas"], 12, "null and strings count 0");
        let counts = group_count(&kind, all.iter(), &GroupBy::Namespace).expect("counts");
        assert_eq!(
            counts,
            BTreeMap::from([("a".into(), 2), ("b".into(), 1), ("c".into(), 1)])
        );
    }
}
