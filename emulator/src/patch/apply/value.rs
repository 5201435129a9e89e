//! JSON value ordering, equality and Go-compatible rendering, as structured-merge-diff's `value`
//! package defines them.

use std::cmp::Ordering;

use serde_json::Value;

pub(super) fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Object(_) | Value::Array(_))
}

/// Equality as the API server sees it: numbers by value, maps regardless of key order.
pub(super) fn json_eq(a: &Value, b: &Value) -> bool {
    value_cmp(a, b).is_eq()
}

pub(super) fn json_eq_slices(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_eq(x, y))
}

/// value.Compare: numbers < strings < bools < lists < maps < null; ints and floats numerically.
pub(super) fn value_cmp(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    fn int(n: &serde_json::Number) -> i128 {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .unwrap_or_default()
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                let (x, y) = (
                    x.as_f64().unwrap_or_default(),
                    y.as_f64().unwrap_or_default(),
                );
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            } else {
                int(x).cmp(&int(y))
            }
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let ord = value_cmp(p, q);
                if ord.is_ne() {
                    return ord;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<(&String, &Value)> = x.iter().collect();
            let mut ys: Vec<(&String, &Value)> = y.iter().collect();
            xs.sort_by(|p, q| p.0.cmp(q.0));
            ys.sort_by(|p, q| p.0.cmp(q.0));
            for ((xk, xv), (yk, yv)) in xs.iter().zip(&ys) {
                let ord = xk.cmp(yk).then_with(|| value_cmp(xv, yv));
                if ord.is_ne() {
                    return ord;
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Compact JSON escaped like Go's encoder (`<`, `>`, `&`, U+2028, U+2029), as FieldsV1 keys are.
pub(super) fn go_json(value: &Value) -> String {
    let plain = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    let mut out = String::with_capacity(plain.len());
    for c in plain.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// value.ToString, used in conflict paths.
pub(super) fn go_to_string(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::String(s) => go_json(&Value::String(s.clone())),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_to_string).collect::<Vec<_>>().join(",")
        ),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", go_to_string(v)))
            .collect(),
    }
}
