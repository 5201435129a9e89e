//! CRDs: validation, the status the API server fills in, and (re)registering the served kinds.

use serde_json::{Value, json};

use super::Inner;
use super::write::now;
use crate::resources::types_from_crd;
use crate::status::ApiError;

impl Inner {
    /// Validates a CRD, fills its status and (re)registers the types it serves.
    pub(super) fn register_crd(
        &mut self,
        crd: &mut Value,
        name: &str,
        old_status: Option<&Value>,
    ) -> Result<(), ApiError> {
        let types = types_from_crd(crd)
            .map_err(|m| ApiError::invalid("CustomResourceDefinition", name, m))?;
        let spec = &crd["spec"];
        let names = spec.get("names").cloned().unwrap_or(json!({}));
        let mut accepted = names.clone();
        if accepted.get("singular").is_none() {
            accepted["singular"] = json!(
                types
                    .first()
                    .map(|t| t.singular.clone())
                    .unwrap_or_default()
            );
        }
        if accepted.get("listKind").is_none() {
            accepted["listKind"] = json!(format!(
                "{}List",
                names
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            ));
        }
        let stored_versions: Vec<Value> = spec["versions"]
            .as_array()
            .map(|vs| {
                vs.iter()
                    .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                    .filter_map(|v| v.get("name").cloned())
                    .collect()
            })
            .unwrap_or_default();
        let unchanged = old_status.is_some_and(|s| {
            s.get("acceptedNames") == Some(&accepted)
                && s.get("storedVersions") == Some(&json!(stored_versions))
        });
        let t = now();
        crd["status"] = if let (true, Some(s)) = (unchanged, old_status) {
            s.clone()
        } else {
            json!({
                "acceptedNames": accepted,
                "storedVersions": stored_versions,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": t},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": t},
                ],
            })
        };
        if let Some(first) = types.first() {
            self.registry.remove(&first.group, &first.plural);
        }
        for rt in types {
            self.registry.insert(rt);
        }
        Ok(())
    }
}
