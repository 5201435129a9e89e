//! Strategic merge patch, following k8s.io/apimachinery/pkg/util/strategicpatch (`StrategicMergePatch`).
//!
//! Field behaviour (merge key, `merge`/`replace`/`retainKeys`) comes from [`super::schema`]. The
//! element ordering deliberately reproduces Go's, including `$setElementOrder` handling, so lists come
//! out in the same order kube-apiserver would store them.

mod directives;
mod lists;
mod merger;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use super::PatchError;
use super::schema::{self, FieldInfo, KindFields};
use merger::Merger;

/// Applies a strategic merge patch (as kubectl and kube-rs `Patch::Strategic` send) to `original`.
pub fn strategic_merge(
    api_version: &str,
    kind: &str,
    original: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let Some(fields) = schema::kind_fields(api_version, kind) else {
        return Err(PatchError::Unsupported(format!(
            "strategic merge patch is not supported for {api_version}/{kind}; use a merge patch or JSON patch"
        )));
    };
    apply(fields, original, patch)
}

/// Where field annotations come from; tests plug in Go's own test schema.
trait Lookup {
    fn info(&self, path: &str) -> Option<&FieldInfo>;
}

impl Lookup for KindFields {
    fn info(&self, path: &str) -> Option<&FieldInfo> {
        self.get(path)
    }
}

fn apply(lookup: &dyn Lookup, original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(bad("strategic merge patch must be a JSON object"));
    };
    let original = match original {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        _ => {
            return Err(PatchError::Invalid(
                "the object to patch is not a JSON object".into(),
            ));
        }
    };
    Merger { lookup }
        .merge_map(original, patch.clone(), "")
        .map(Value::Object)
}

fn bad(msg: impl Into<String>) -> PatchError {
    PatchError::BadRequest(msg.into())
}

/// The dotted schema path of field `key` under `path`.
fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}
