//! Between [`MirrorObject`]s and rows: what an upsert binds (each object serialised once), the
//! size checks that reject one object instead of failing a
//! batch, and decoding rows and change records back into objects.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::Row;
use sqlx::mysql::MySqlRow;

use super::schema::{MAX_CREATED_AT, MAX_NAME, MAX_RESOURCE_VERSION, MAX_STRING_COLUMN, MAX_UID};
use super::sql::Param;
use crate::mirror::kind::{ColumnType, KindSpec};
use crate::store::{MirrorObject, StoreError};

/// The columns a read selects, in this order, followed by the kind's typed columns.
pub(super) const SELECT_BASE: &str = "`id`, `namespace`, `name`, `uid`, `resource_version`, `labels`, `annotations`, `created_at`, `object`";
/// Columns in [`SELECT_BASE`]; the kind's typed columns follow.
pub(super) const SELECT_BASE_LEN: usize = 9;

/// An object ready to bind: the JSON parts serialised once.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct EncodedRow {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub labels: String,
    pub annotations: String,
    pub created_at: Option<String>,
    pub object: String,
    /// The kind's typed columns, in spec order.
    pub columns: Vec<Param>,
}

impl EncodedRow {
    /// Encodes `object` for `spec`, or says why the object cannot be stored (too long for a
    /// column, or larger than `max_bytes`, what one statement may carry).
    pub fn new(spec: &KindSpec, object: &MirrorObject, max_bytes: usize) -> Result<Self, String> {
        for (what, value, max) in [
            ("namespace", object.namespace.as_str(), MAX_NAME),
            ("name", object.name.as_str(), MAX_NAME),
            ("uid", object.uid.as_str(), MAX_UID),
            (
                "resourceVersion",
                object.resource_version.as_str(),
                MAX_RESOURCE_VERSION,
            ),
            (
                "creationTimestamp",
                object.created_at.as_deref().unwrap_or(""),
                MAX_CREATED_AT,
            ),
        ] {
            if value.chars().count() > max {
                return Err(format!("{what} is longer than {max} characters"));
            }
        }
        let mut columns = Vec::with_capacity(spec.columns.len());
        for column in &spec.columns {
            let value = object.columns.get(&column.name).unwrap_or(&Value::Null);
            let param = column_param(column.column_type, value);
            if let Param::Str(s) = &param
                && column.column_type == ColumnType::String
                && s.chars().count() > MAX_STRING_COLUMN
            {
                return Err(format!(
                    "column {} is longer than {MAX_STRING_COLUMN} characters",
                    column.name
                ));
            }
            columns.push(param);
        }
        let row = Self {
            namespace: object.namespace.clone(),
            name: object.name.clone(),
            uid: object.uid.clone(),
            resource_version: object.resource_version.clone(),
            labels: json(&object.labels),
            annotations: json(&object.annotations),
            created_at: object.created_at.clone(),
            object: match object.object.text() {
                Some(text) => text.to_owned(),
                None => json(&object.object),
            },
            columns,
        };
        let bytes = row.bytes();
        if bytes > max_bytes {
            return Err(format!(
                "object is {bytes} bytes, more than the {max_bytes} bytes the database accepts in one statement"
            ));
        }
        Ok(row)
    }

    /// Approximate bytes the row takes in a statement.
    pub fn bytes(&self) -> usize {
        let columns: usize = self
            .columns
            .iter()
            .map(|p| match p {
                Param::Str(s) => s.len(),
                _ => 8,
            })
            .sum();
        self.namespace.len()
            + self.name.len()
            + self.uid.len()
            + self.resource_version.len()
            + self.labels.len()
            + self.annotations.len()
            + self.created_at.as_ref().map_or(0, String::len)
            + self.object.len()
            + columns
            + 64
    }
}

/// JSON text of a value (maps of strings and JSON values never fail to serialise).
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// A typed column's value as bound; the pipeline already converted it to the column's type, so
/// anything else is stored as `NULL`.
pub(super) fn column_param(column_type: ColumnType, value: &Value) -> Param {
    match (column_type, value) {
        (_, Value::Null) => Param::Null,
        (ColumnType::String, Value::String(s)) => Param::Str(s.clone()),
        (ColumnType::Integer, Value::Number(n)) => n.as_i64().map_or(Param::Null, Param::Int),
        (ColumnType::Boolean, Value::Bool(b)) => Param::Bool(*b),
        (ColumnType::Json, value) => Param::Str(value.to_string()),
        _ => Param::Null,
    }
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        message: format!("stored {what} cannot be read: {error}"),
        source: None,
    }
}

fn get<'r, T: sqlx::Decode<'r, sqlx::MySql> + sqlx::Type<sqlx::MySql>>(
    row: &'r MySqlRow,
    index: usize,
) -> Result<T, StoreError> {
    row.try_get(index).map_err(|e| corrupt("row", e))
}

fn text(row: &MySqlRow, index: usize) -> Result<Option<String>, StoreError> {
    super::sql::text(row, index).map_err(|e| corrupt("row", e))
}

fn required(row: &MySqlRow, index: usize) -> Result<String, StoreError> {
    super::sql::required_text(row, index).map_err(|e| corrupt("row", e))
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

/// A row selected with [`SELECT_BASE`] and the kind's columns; returns its id too.
pub(super) fn decode(spec: &KindSpec, row: &MySqlRow) -> Result<(u64, MirrorObject), StoreError> {
    let id: u64 = get(row, 0)?;
    let labels = required(row, 5)?;
    let annotations = required(row, 6)?;
    let object = required(row, 8)?;
    let mut columns = BTreeMap::new();
    for (offset, column) in spec.columns.iter().enumerate() {
        let value = column_value(row, SELECT_BASE_LEN + offset, column.column_type)?;
        columns.insert(column.name.clone(), value);
    }
    Ok((
        id,
        MirrorObject {
            namespace: required(row, 1)?,
            name: required(row, 2)?,
            uid: required(row, 3)?,
            resource_version: required(row, 4)?,
            labels: parse("labels", &labels)?,
            annotations: parse("annotations", &annotations)?,
            created_at: text(row, 7)?,
            columns,
            object: parse("object", &object)?,
        },
    ))
}

/// A typed column's value as the pipeline extracted it.
pub(super) fn column_value(
    row: &MySqlRow,
    index: usize,
    column_type: ColumnType,
) -> Result<Value, StoreError> {
    Ok(match column_type {
        ColumnType::String => text(row, index)?.map_or(Value::Null, Value::String),
        ColumnType::Integer => get::<Option<i64>>(row, index)?.map_or(Value::Null, Value::from),
        ColumnType::Boolean => get::<Option<bool>>(row, index)?.map_or(Value::Null, Value::Bool),
        ColumnType::Json => match text(row, index)? {
            Some(text) => parse("JSON column", &text)?,
            None => Value::Null,
        },
    })
}

/// The stored `object` text at `index`, as it was written (compact JSON).
pub(super) fn object_bytes(row: &MySqlRow, index: usize) -> Result<Vec<u8>, StoreError> {
    get::<Vec<u8>>(row, index)
}

/// A change record's object.
pub(super) fn decode_change(text: &str) -> Result<MirrorObject, StoreError> {
    parse("change", text)
}

/// A column value's string form as filters and groups compare it: strings as is, numbers and
/// booleans printed, JSON documents serialised; `None` for null.
pub(super) fn string_form(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::conformance::{sample_kind, sample_object};

    #[test]
    fn rows_bind_the_objects_parts() {
        let spec = sample_kind("Widget");
        let mut object = sample_object("ns", "o'brien \"x\" 名前", "7");
        object.labels.insert("app".into(), "web".into());
        object.columns.insert("replicas".into(), json!(3));
        object.columns.insert("spec".into(), json!({"replicas": 3}));
        let row = EncodedRow::new(&spec, &object, 1 << 20).expect("encodes");
        assert_eq!(row.name, object.name);
        assert_eq!(row.labels, r#"{"app":"web"}"#);
        assert_eq!(row.columns[1], Param::Int(3));
        assert_eq!(row.columns[3], Param::Str(r#"{"replicas":3}"#.into()));
        assert_eq!(row.columns[0], Param::Null);
    }

    #[test]
    fn oversized_objects_are_refused_with_a_reason() {
        let spec = sample_kind("Widget");
        let mut object = sample_object("ns", "big", "1");
        object.object["spec"] = json!({"blob": "x".repeat(5000)});
        let error = EncodedRow::new(&spec, &object, 4096).expect_err("too big");
        assert!(error.contains("more than the 4096 bytes"), "{error}");
        let long_name = sample_object("ns", &"n".repeat(254), "1");
        let error = EncodedRow::new(&spec, &long_name, 1 << 20).expect_err("long name");
        assert_eq!(error, "name is longer than 253 characters");
        let mut long_phase = sample_object("ns", "p", "1");
        long_phase
            .columns
            .insert("phase".into(), json!("p".repeat(769)));
        let error = EncodedRow::new(&spec, &long_phase, 1 << 20).expect_err("long column");
        assert_eq!(error, "column phase is longer than 768 characters");
    }

    #[test]
    fn column_params_follow_the_column_type() {
        use ColumnType::*;
        assert_eq!(column_param(String, &json!("a")), Param::Str("a".into()));
        assert_eq!(column_param(Integer, &json!(-2)), Param::Int(-2));
        assert_eq!(column_param(Integer, &json!(2.5)), Param::Null);
        assert_eq!(column_param(Boolean, &json!(true)), Param::Bool(true));
        assert_eq!(column_param(Json, &json!([1])), Param::Str("[1]".into()));
        assert_eq!(column_param(Json, &Value::Null), Param::Null);
        assert_eq!(column_param(String, &json!(3)), Param::Null);
        assert_eq!(string_form(&json!("x")), Some("x".into()));
        assert_eq!(string_form(&json!(false)), Some("false".into()));
        assert_eq!(string_form(&Value::Null), None);
    }
}
