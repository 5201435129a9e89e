//! Create, update and patch with the API server's rules for server-owned metadata, status
//! subresources, generation, no-op writes and finalizers.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Inner, Stored, defaults};
use crate::patch::{self, PatchError};
use crate::resources::{ResourceType, StorageKey};
use crate::status::ApiError;

/// Per-request write settings.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub dry_run: bool,
    /// Field manager recorded in managedFields.
    pub manager: String,
    /// Seeding: keep `.status`, `uid` and `creationTimestamp` as given (a POST drops or sets them).
    pub seeding: bool,
}

impl WriteOptions {
    pub fn system() -> Self {
        Self {
            dry_run: false,
            manager: "stowage-emulator".into(),
            seeding: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply { force: bool },
}

pub fn now() -> String {
    // `%Y-%m-%dT%H:%M:%SZ` without parsing a format string on every write.
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The object as `rt` presents it (Events convert between core and events.k8s.io; CRD versions differ).
pub fn view(rt: &ResourceType, value: &Value) -> Value {
    if rt.converts() {
        return crate::events::to_events_v1(value);
    }
    let mut v = value.clone();
    if v.get("apiVersion").and_then(Value::as_str) != Some(rt.api_version().as_str())
        && v.is_object()
    {
        v["apiVersion"] = Value::String(rt.api_version());
    }
    v
}

fn unview(rt: &ResourceType, value: Value) -> Value {
    if rt.converts() {
        crate::events::to_core(&value)
    } else {
        value
    }
}

pub(super) fn meta_str<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    meta_field(v, field).and_then(Value::as_str)
}

/// `metadata.<field>`; `pointer` would parse its path on every call of every write.
pub(super) fn meta_field<'a>(v: &'a Value, field: &str) -> Option<&'a Value> {
    v.get("metadata").and_then(|m| m.get(field))
}

fn patch_error(rt: &ResourceType, name: &str, e: PatchError) -> ApiError {
    match e {
        PatchError::BadRequest(m) => ApiError::bad_request(m),
        PatchError::Invalid(m) => ApiError::invalid(&rt.kind, name, m),
        PatchError::Unsupported(m) => ApiError::unsupported_media_type(m),
        conflict @ PatchError::Conflict(_) => ApiError::apply_conflict(conflict.to_string()),
    }
}

/// Body apiVersion/kind must name the type addressed by the URL.
fn check_type_meta(rt: &ResourceType, body: &mut Value) -> Result<(), ApiError> {
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request was not a JSON object",
        ));
    };
    let api_version = rt.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
        None if !rt.builtin => return Err(ApiError::bad_request("apiVersion must be set")),
        _ => {}
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if k != rt.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        None if !rt.builtin => return Err(ApiError::bad_request("kind must be set")),
        _ => {}
    }
    obj.insert("apiVersion".into(), Value::String(api_version));
    obj.insert("kind".into(), Value::String(rt.kind.clone()));
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj.insert("metadata".into(), json!({}));
    }
    Ok(())
}

pub(super) fn finalizers(v: &Value) -> Vec<String> {
    meta_field(v, "finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Inner {
    pub fn create(
        &mut self,
        rt: &ResourceType,
        url_ns: Option<&str>,
        mut body: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        check_type_meta(rt, &mut body)?;
        let mut body = unview(rt, body);
        let body_ns = meta_str(&body, "namespace").map(str::to_string);
        let ns = if rt.namespaced {
            let ns = match (url_ns, body_ns.as_deref()) {
                (Some(u), Some(b)) if !b.is_empty() && u != b => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                (Some(u), _) => u.to_string(),
                (None, Some(b)) if !b.is_empty() => b.to_string(),
                _ => {
                    return Err(ApiError::bad_request(
                        "the namespace of the object must be set",
                    ));
                }
            };
            let ns_key = StorageKey {
                group: String::new(),
                plural: "namespaces".into(),
            };
            if self.get_stored(&ns_key, "", &ns).is_none() {
                return Err(ApiError::not_found("", "namespaces", &ns));
            }
            ns
        } else {
            String::new()
        };
        let meta = body["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        let name = match meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(n) => n.to_string(),
            None => match meta
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                Some(prefix) => format!("{prefix}{}", random_suffix()),
                None => {
                    return Err(ApiError::invalid(
                        &rt.kind,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            },
        };
        if self.get_stored(&rt.storage, &ns, &name).is_some() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        meta.insert("name".into(), Value::String(name.clone()));
        if rt.namespaced {
            meta.insert("namespace".into(), Value::String(ns.clone()));
        } else {
            meta.remove("namespace");
        }
        let given = |m: &serde_json::Map<String, Value>, f: &str| {
            m.get(f)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let uid = given(meta, "uid")
            .filter(|_| opts.seeding)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let created = given(meta, "creationTimestamp")
            .filter(|_| opts.seeding)
            .unwrap_or_else(now);
        meta.insert("uid".into(), Value::String(uid));
        meta.insert("creationTimestamp".into(), Value::String(created));
        meta.insert("generation".into(), json!(1));
        for f in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "selfLink",
        ] {
            meta.remove(f);
        }
        if rt.status
            && !opts.seeding
            && let Some(o) = body.as_object_mut()
        {
            o.remove("status");
        }
        defaults::on_create(rt, &mut body, self);
        if is_crd(rt) {
            self.register_crd(&mut body, &name, None)?;
        }
        let mut managed = None;
        if body
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            let (recorded, entries) = patch::apply::record_update_managed(
                &rt.api_version(),
                &rt.kind,
                &opts.manager,
                None,
                &now(),
                None,
                &body,
            );
            body = recorded;
            managed = Some(entries);
        }
        if opts.dry_run {
            return Ok(view(rt, &body));
        }
        let stored = self.commit(&rt.storage, &ns, &name, Some(body));
        stored.recorded(managed);
        Ok(view(rt, &stored.value))
    }

    pub(super) fn existing(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
    ) -> Result<Arc<Stored>, ApiError> {
        self.get_stored(&rt.storage, ns, name)
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// PUT: replace the object (or its status).
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        body: Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let old = self.existing(rt, ns, name)?;
        let body = checked_put(rt, &old, name, body)?;
        self.finish_update(rt, &old, body, subresource, opts, true)
    }

    /// PATCH of any type, including server-side apply (which may create).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        kind: PatchKind,
        patch_body: &Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> Result<(Value, bool), ApiError> {
        let old = self.get_stored(&rt.storage, ns, name);
        let api_version = rt.api_version();
        if let PatchKind::Apply { force } = kind {
            let mut applied = patch_body.clone();
            check_type_meta(rt, &mut applied)?;
            if let Some(n) = meta_str(&applied, "name").filter(|n| *n != name) {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            let req = patch::apply::ApplyRequest {
                api_version: &api_version,
                kind: &rt.kind,
                manager: &opts.manager,
                force,
                subresource,
                now: &now(),
            };
            let live = old.as_ref().map(|o| view(rt, &o.value));
            let mut result = patch::apply::apply(&req, live.as_ref(), &applied)
                .map_err(|e| patch_error(rt, name, e))?;
            let Some(old) = old else {
                if subresource.is_some() {
                    return Err(ApiError::not_found(&rt.group, &rt.plural, name));
                }
                result["metadata"]["name"] = Value::String(name.to_string());
                let url_ns = rt.namespaced.then_some(ns);
                return self.create(rt, url_ns, result, opts).map(|v| (v, true));
            };
            if let Some(rv) =
                meta_str(&applied, "resourceVersion").filter(|rv| *rv != old.rv.to_string())
            {
                let _ = rv;
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            let result = unview(rt, result);
            return self
                .finish_update(rt, &old, result, subresource, opts, false)
                .map(|v| (v, false));
        }
        let old = old.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let current = view(rt, &old.value);
        let patched = match kind {
            PatchKind::Merge => patch::json::merge_patch(&current, patch_body),
            PatchKind::Json => patch::json::json_patch(&current, patch_body),
            PatchKind::Strategic if !rt.builtin => Err(PatchError::Unsupported(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, \
                 application/merge-patch+json, application/apply-patch+yaml (strategic merge patch is not supported for {}/{})",
                api_version, rt.kind
            ))),
            PatchKind::Strategic => patch::strategic::strategic_merge(&api_version, &rt.kind, &current, patch_body),
            PatchKind::Apply { .. } => unreachable_apply(),
        }
        .map_err(|e| patch_error(rt, name, e))?;
        if !patched.is_object() {
            return Err(ApiError::bad_request(
                "the patch must produce a JSON object",
            ));
        }
        if meta_str(&patched, "name") != Some(name) {
            return Err(ApiError::bad_request(
                "metadata.name cannot be changed by a patch",
            ));
        }
        if let Some(rv) = meta_str(&patched, "resourceVersion").filter(|s| !s.is_empty())
            && rv != old.rv.to_string()
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let patched = unview(rt, patched);
        self.finish_update(rt, &old, patched, subresource, opts, true)
            .map(|v| (v, false))
    }
}

/// A PUT body checked against the stored version it replaces: type, name and the
/// resourceVersion precondition.
pub(super) fn checked_put(
    rt: &ResourceType,
    old: &Stored,
    name: &str,
    mut body: Value,
) -> Result<Value, ApiError> {
    check_type_meta(rt, &mut body)?;
    let body = unview(rt, body);
    if let Some(n) = meta_str(&body, "name").filter(|n| *n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    match meta_str(&body, "resourceVersion").filter(|s| !s.is_empty()) {
        None if !rt.builtin || rt.kind == "Lease" => {
            return Err(ApiError::invalid(
                &rt.kind,
                name,
                "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
            ));
        }
        Some(rv) if rv != old.rv.to_string() => {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        _ => {}
    }
    Ok(body)
}

pub(super) fn is_crd(rt: &ResourceType) -> bool {
    rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions"
}
fn unreachable_apply() -> Result<Value, PatchError> {
    Err(PatchError::BadRequest(
        "apply patches are handled separately".into(),
    ))
}

fn random_suffix() -> String {
    // The API server's generateName alphabet: no vowels or confusable characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    use rand::Rng;
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
