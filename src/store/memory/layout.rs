//! How a kind's typed columns sit in the memory store. Each table entry keeps one [`Cell`] per
//! column for filters and sorts: scalars typed, JSON documents only as a marker when the column's
//! path extracts exactly them from the object (the usual case) — they are re-derived on read.
//! A record keeps, as overrides, only the column values that the object does not yield.

use std::collections::BTreeMap;

use serde_json::{Number, Value};

use crate::mirror::kind::{ColumnType, KindSpec};
use crate::mirror::object::{column_value, column_value_is};
use crate::mirror::path::{self, FieldPath};

/// A kind's columns, in spec order, with their paths parsed once.
#[derive(Debug)]
pub(super) struct Layout {
    columns: Box<[LayoutColumn]>,
}

#[derive(Debug)]
struct LayoutColumn {
    name: String,
    column_type: ColumnType,
    /// `None` when the spec's path does not parse: such a column never derives a value.
    path: Option<FieldPath>,
}

/// Column values a record keeps because its object does not yield them, as `(name, value)`;
/// `None` as the value means the column was absent from the object's columns map. `None` when
/// every column derives (as for everything the mirror writes).
pub(super) type Overrides = Option<Box<[(String, Option<Value>)]>>;

/// One column value as a table entry keeps it.
#[derive(Debug)]
pub(super) enum Cell {
    /// Not in the object's columns map at all (written before the column existed).
    Absent,
    Null,
    Bool(bool),
    Number(Number),
    Str(Box<str>),
    /// An array or object equal to what the column's path extracts from the object: not kept.
    Derived,
    /// An array or object that differs from that extraction, kept as given.
    Document(Box<Value>),
}

impl Layout {
    pub fn new(spec: &KindSpec) -> Self {
        let columns = spec
            .columns
            .iter()
            .map(|c| LayoutColumn {
                name: c.name.clone(),
                column_type: c.column_type,
                path: path::parse(&c.path).ok(),
            })
            .collect();
        Self { columns }
    }

    /// The paths the columns read (what [`Self::split`] needs of an object).
    pub fn paths(&self) -> impl Iterator<Item = &FieldPath> {
        self.columns
            .iter()
            .filter_map(|column| column.path.as_ref())
    }

    /// The entry cells and the record overrides of an object's columns map.
    pub fn split(
        &self,
        columns: &BTreeMap<String, Value>,
        object: &Value,
    ) -> (Box<[Cell]>, Overrides) {
        let mut overrides = Vec::new();
        let cells = self
            .columns
            .iter()
            .map(|column| {
                let given = columns.get(&column.name);
                let derives = column.derives(object, given);
                if !derives {
                    overrides.push((column.name.clone(), given.cloned()));
                }
                Cell::of(given, derives)
            })
            .collect();
        let unknown = columns
            .iter()
            .filter(|(name, _)| !self.columns.iter().any(|c| c.name == **name));
        overrides.extend(unknown.map(|(name, value)| (name.clone(), Some(value.clone()))));
        (cells, (!overrides.is_empty()).then(|| overrides.into()))
    }

    /// The columns map of `object`, with the record's `overrides` applied.
    pub fn columns(&self, object: &Value, overrides: &Overrides) -> BTreeMap<String, Value> {
        let mut columns: BTreeMap<String, Value> = self
            .columns
            .iter()
            .filter_map(|column| Some((column.name.clone(), column.extract(object)?)))
            .collect();
        for (name, value) in overrides.iter().flatten() {
            match value {
                Some(value) => columns.insert(name.clone(), value.clone()),
                None => columns.remove(name),
            };
        }
        columns
    }

    /// The value column `index` extracts from `object`.
    pub fn extract(&self, index: usize, object: &Value) -> Option<Value> {
        self.columns.get(index)?.extract(object)
    }
}

impl LayoutColumn {
    /// The column's value as the mirror extracts it from `object` (`None` without a path).
    fn extract(&self, object: &Value) -> Option<Value> {
        let path = self.path.as_ref()?;
        Some(column_value(self.column_type, path.get(object)))
    }

    /// Whether [`Self::extract`] yields exactly `given`, without copying documents to find out.
    fn derives(&self, object: &Value, given: Option<&Value>) -> bool {
        let (Some(path), Some(given)) = (&self.path, given) else {
            return self.path.is_none() && given.is_none();
        };
        column_value_is(self.column_type, path.get(object), given)
    }
}

impl Cell {
    fn of(value: Option<&Value>, derives: bool) -> Self {
        match value {
            None => Self::Absent,
            Some(Value::Null) => Self::Null,
            Some(Value::Bool(b)) => Self::Bool(*b),
            Some(Value::Number(n)) => Self::Number(n.clone()),
            Some(Value::String(s)) => Self::Str(s.as_str().into()),
            Some(_) if derives => Self::Derived,
            Some(document) => Self::Document(Box::new(document.clone())),
        }
    }
}
