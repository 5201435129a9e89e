//! The order of typed column values that every backend sorts by, so a list sorted by a column
//! reads the same from the memory, MySQL and etcd stores.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Number, Value};

/// A JSON value ordered null < bool < number < string < array < object (arrays and objects by
/// their serialised form): the order of typed columns in every backend.
#[derive(Debug, Clone)]
pub enum SortValue<'a> {
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
    /// The sort value of a JSON value (arrays and objects serialised once here).
    pub fn of(value: &'a Value) -> Self {
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

    /// The same value, no longer borrowing.
    pub fn into_owned(self) -> SortValue<'static> {
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
}

impl Ord for SortValue<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
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

impl PartialOrd for SortValue<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for SortValue<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SortValue<'_> {}

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
