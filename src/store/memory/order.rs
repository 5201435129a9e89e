//! Sort orders of lists: `(value, namespace, name)` by name, creation time or a typed column,
//! with JSON values ordered null < bool < number < string < array < object.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::filter::ColumnRef;
use super::record::Key;
use super::table::Entry;
use crate::mirror::kind::KindSpec;
use crate::store::{Cursor, ListQuery, MirrorObject, SortField, StoreError};

/// The resolved sort order: `(value, namespace, name)`, all reversed when descending.
pub(super) struct Order<'q> {
    /// Sorting by this column.
    column: Option<ColumnRef<'q>>,
    by_created: bool,
    pub(super) descending: bool,
    /// The keyset cursor's position, resolved once.
    after: Option<(SortValue<'q>, &'q str, &'q str)>,
}

impl<'q> Order<'q> {
    pub(super) fn new(spec: &KindSpec, query: &'q ListQuery) -> Result<Self, StoreError> {
        let (column, by_created) = match &query.sort.field {
            SortField::Name => (None, false),
            SortField::CreatedAt => (None, true),
            SortField::Column(column) => (Some(ColumnRef::resolve(spec, column)?), false),
        };
        let after = query.after.as_ref().map(|cursor| {
            let value = match (column, by_created) {
                (Some(_), _) => SortValue::of(&cursor.value),
                (None, true) => cursor
                    .value
                    .as_str()
                    .map_or(SortValue::Null, |s| SortValue::Str(Cow::Borrowed(s))),
                (None, false) => SortValue::Null,
            };
            (value, cursor.namespace.as_str(), cursor.name.as_str())
        });
        Ok(Self {
            column,
            by_created,
            descending: query.sort.descending,
            after,
        })
    }

    /// Whether the order is the table's key order (or its reverse).
    pub(super) fn is_key_order(&self) -> bool {
        self.column.is_none() && !self.by_created
    }

    pub(super) fn value<'e>(&self, entry: &'e Entry) -> SortValue<'e> {
        if self.by_created {
            entry
                .record
                .created_at
                .as_deref()
                .map_or(SortValue::Null, |s| SortValue::Str(Cow::Borrowed(s)))
        } else if let Some(column) = self.column {
            column.sort_value(entry)
        } else {
            SortValue::Null
        }
    }

    /// The sort value as a cursor carries it.
    fn cursor_value(&self, object: &MirrorObject) -> Value {
        if self.by_created {
            object.created_at.clone().map_or(Value::Null, Value::String)
        } else if let Some(column) = self.column {
            object
                .columns
                .get(column.name)
                .cloned()
                .unwrap_or(Value::Null)
        } else {
            Value::Null
        }
    }

    pub(super) fn cursor_of(&self, object: &MirrorObject) -> Cursor {
        Cursor {
            value: self.cursor_value(object),
            namespace: object.namespace.clone(),
            name: object.name.clone(),
        }
    }

    pub(super) fn compare_keys(
        &self,
        a: (&SortValue<'_>, &str, &str),
        b: (&SortValue<'_>, &str, &str),
    ) -> Ordering {
        let ordering =
            a.0.cmp(b.0)
                .then_with(|| a.1.cmp(b.1))
                .then_with(|| a.2.cmp(b.2));
        if self.descending {
            ordering.reverse()
        } else {
            ordering
        }
    }

    /// Whether the entry under `key` comes strictly after the query's cursor (always true
    /// without one).
    pub(super) fn after_cursor(&self, key: &Key, entry: &Entry) -> bool {
        let Some((value, namespace, name)) = &self.after else {
            return true;
        };
        self.compare_keys(
            (&self.value(entry), &key.namespace, &key.name),
            (value, namespace, name),
        ) == Ordering::Greater
    }
}

/// A JSON value ordered null < bool < number < string < array < object.
#[derive(Debug, Clone)]
pub(super) enum SortValue<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    /// Arrays and objects (JSON columns): compared by their serialised form.
    Document {
        array: bool,
        text: String,
    },
}

impl<'a> SortValue<'a> {
    pub(super) fn of(value: &'a Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => Self::Number(n.clone()),
            Value::String(s) => Self::Str(Cow::Borrowed(s)),
            other => Self::Document {
                array: other.is_array(),
                text: other.to_string(),
            },
        }
    }

    pub(super) fn into_owned(self) -> SortValue<'static> {
        match self {
            Self::Null => SortValue::Null,
            Self::Bool(b) => SortValue::Bool(b),
            Self::Number(n) => SortValue::Number(n),
            Self::Str(s) => SortValue::Str(Cow::Owned(s.into_owned())),
            Self::Document { array, text } => SortValue::Document { array, text },
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Self::Null => 0,
            Self::Bool(_) => 1,
            Self::Number(_) => 2,
            Self::Str(_) => 3,
            Self::Document { array: true, .. } => 4,
            Self::Document { array: false, .. } => 5,
        }
    }

    pub(super) fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Bool(a), Self::Bool(b)) => a.cmp(b),
            (Self::Number(a), Self::Number(b)) => compare_numbers(a, b),
            (Self::Str(a), Self::Str(b)) => a.cmp(b),
            (Self::Document { text: a, .. }, Self::Document { text: b, .. })
                if self.rank() == other.rank() =>
            {
                a.cmp(b)
            }
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return a.cmp(&b);
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return a.cmp(&b);
    }
    let (a, b) = (
        a.as_f64().unwrap_or(f64::NAN),
        b.as_f64().unwrap_or(f64::NAN),
    );
    a.total_cmp(&b)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sort_values_order_null_bool_number_string_array_object() {
        let values = [
            json!(null),
            json!(false),
            json!(true),
            json!(-3),
            json!(2),
            json!(2.5),
            json!(10),
            json!(""),
            json!("a"),
            json!([1]),
            json!([2]),
            json!({ "a": 1 }),
        ];
        for pair in values.windows(2) {
            let (a, b) = (SortValue::of(&pair[0]), SortValue::of(&pair[1]));
            assert_eq!(a.cmp(&b), Ordering::Less, "{} < {}", pair[0], pair[1]);
            assert_eq!(b.cmp(&a), Ordering::Greater, "{} > {}", pair[1], pair[0]);
        }
    }
}
