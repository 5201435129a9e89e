//! Sort orders of lists: `(value, namespace, name)` by name, creation time or a typed column,
//! with JSON values ordered null < bool < number < string < array < object.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use super::filter::ColumnRef;
use super::record::{Key, Record};
use super::table::Entry;
use crate::mirror::kind::KindSpec;
pub(super) use crate::store::sort::SortValue;
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

    /// The cursor after `record`, read from the record itself when the sort value does not
    /// need the object (name and creation order): a page's cursor then costs no decoding.
    pub(super) fn cursor_of_record(&self, record: &Record) -> Result<Cursor, StoreError> {
        if self.column.is_some() {
            return Ok(self.cursor_of(&record.to_mirror_object()?));
        }
        let value = match (&record.created_at, self.by_created) {
            (Some(created), true) => Value::String(created.to_string()),
            _ => Value::Null,
        };
        Ok(Cursor {
            value,
            namespace: record.key.namespace.to_string(),
            name: record.key.name.to_string(),
        })
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
