//! The Helm/Sprig functions the chart's templates use, for gtmpl (Go's text/template in Rust,
//! which brings only Go's built-ins). Each behaves as Helm's does for the inputs the chart gives;
//! a template calling anything else fails to render, so the chart cannot drift from what is
//! checked here.

use std::collections::BTreeMap;

use gtmpl_value::{FuncError, Value};

/// Name and implementation of every extra function.
pub const HELM_FUNCS: &[(&str, gtmpl_value::Func)] = &[
    ("toYaml", to_yaml),
    ("nindent", nindent),
    ("indent", indent),
    ("quote", quote),
    ("default", default),
];

/// `toYaml VALUE`: YAML with sorted keys and no trailing newline (Helm trims it).
fn to_yaml(args: &[Value]) -> Result<Value, FuncError> {
    let [value] = args else {
        return Err(FuncError::ExactlyXArgs("toYaml".into(), 1));
    };
    let text = serde_yaml::to_string(&to_serde(value))
        .map_err(|err| FuncError::Generic(format!("toYaml: {err}")))?;
    Ok(Value::from(text.trim_end_matches('\n').to_owned()))
}

/// `indent N TEXT`: every line, empty ones too, prefixed with N spaces (Sprig's `indent`).
fn indent(args: &[Value]) -> Result<Value, FuncError> {
    let (pad, text) = pad_and_text("indent", args)?;
    Ok(Value::from(format!(
        "{pad}{}",
        text.replace('\n', &format!("\n{pad}"))
    )))
}

/// `nindent N TEXT`: a newline, then `indent N TEXT`.
fn nindent(args: &[Value]) -> Result<Value, FuncError> {
    let (pad, text) = pad_and_text("nindent", args)?;
    Ok(Value::from(format!(
        "\n{pad}{}",
        text.replace('\n', &format!("\n{pad}"))
    )))
}

fn pad_and_text(name: &str, args: &[Value]) -> Result<(String, String), FuncError> {
    let [width, text] = args else {
        return Err(FuncError::ExactlyXArgs(name.into(), 2));
    };
    let width = match width {
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
    .ok_or_else(|| FuncError::Generic(format!("{name}: the width must be a number")))?;
    Ok((" ".repeat(width as usize), plain(text)))
}

/// `quote VALUE`: a double-quoted string (Go's `%q` for the printable text the chart quotes).
fn quote(args: &[Value]) -> Result<Value, FuncError> {
    let [value] = args else {
        return Err(FuncError::ExactlyXArgs("quote".into(), 1));
    };
    let quoted = serde_json::to_string(&plain(value))
        .map_err(|err| FuncError::Generic(format!("quote: {err}")))?;
    Ok(Value::from(quoted))
}

/// `default FALLBACK VALUE`: VALUE unless it is empty (Sprig's `empty`), else FALLBACK.
fn default(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [fallback] => Ok(fallback.clone()),
        [fallback, value] if is_empty(value) => Ok(fallback.clone()),
        [_, value] => Ok(value.clone()),
        _ => Err(FuncError::AtLeastXArgs("default".into(), 1)),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::NoValue | Value::Nil => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Map(m) | Value::Object(m) => m.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Function(_) => false,
    }
}

/// How Go prints a value in a template (`{{ . }}`), for the string functions.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A template value as YAML data; maps become sorted (Go's YAML encoder sorts map keys).
pub fn to_serde(value: &Value) -> serde_yaml::Value {
    match value {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_yaml::Value::Null,
        Value::Bool(b) => serde_yaml::Value::Bool(*b),
        Value::String(s) => serde_yaml::Value::String(s.clone()),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                serde_yaml::Value::from(u)
            } else if let Some(i) = n.as_i64() {
                serde_yaml::Value::from(i)
            } else {
                serde_yaml::Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::Array(items) => serde_yaml::Value::Sequence(items.iter().map(to_serde).collect()),
        Value::Map(map) | Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            serde_yaml::Value::Mapping(
                sorted
                    .into_iter()
                    .map(|(k, v)| (serde_yaml::Value::String(k.clone()), to_serde(v)))
                    .collect(),
            )
        }
    }
}

/// YAML data (values files, Chart.yaml) as a template value.
pub fn from_serde(value: &serde_yaml::Value) -> Value {
    match value {
        serde_yaml::Value::Null => Value::Nil,
        serde_yaml::Value::Bool(b) => Value::from(*b),
        serde_yaml::Value::String(s) => Value::from(s.clone()),
        serde_yaml::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_yaml::Value::Sequence(items) => Value::Array(items.iter().map(from_serde).collect()),
        serde_yaml::Value::Mapping(map) => Value::Map(
            map.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), from_serde(v))))
                .collect(),
        ),
        serde_yaml::Value::Tagged(tagged) => from_serde(&tagged.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::from(text.to_owned())
    }

    #[test]
    fn indentation_matches_sprig() {
        let two = Value::from(2u64);
        assert_eq!(
            nindent(&[two.clone(), s("a: 1\nb: 2")]).unwrap(),
            s("\n  a: 1\n  b: 2")
        );
        assert_eq!(indent(&[two, s("a\n\nb")]).unwrap(), s("  a\n  \n  b"));
    }

    #[test]
    fn default_replaces_only_empty_values() {
        assert_eq!(default(&[s("x"), s("")]).unwrap(), s("x"));
        assert_eq!(default(&[s("x"), Value::NoValue]).unwrap(), s("x"));
        assert_eq!(default(&[s("x"), s("y")]).unwrap(), s("y"));
    }

    #[test]
    fn to_yaml_sorts_keys_and_trims_the_newline() {
        let value = from_serde(&serde_yaml::from_str("{b: 1, a: [x, 2]}").unwrap());
        assert_eq!(to_yaml(&[value]).unwrap(), s("a:\n- x\n- 2\nb: 1"));
    }

    #[test]
    fn quote_escapes() {
        assert_eq!(quote(&[s("a\"b")]).unwrap(), s("\"a\\\"b\""));
        assert_eq!(quote(&[Value::from(3u64)]).unwrap(), s("\"3\""));
    }
}
