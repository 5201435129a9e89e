//! Resource handlers: get, list, create, update, patch, delete and delete-collection.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AppContext, Query, ResourceRequest, bytes_response, json_response, table, watch};
use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector, supported_fields};
use crate::state::{
    DeleteOptions, DeleteOutcome, Filter, ListQuery, PatchKind, Stored, WriteOptions,
};
use crate::status::{ApiError, delete_success};

pub async fn handle(
    ctx: &AppContext,
    method: &Method,
    req: ResourceRequest,
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    match route(ctx, method, req, query, headers, body) {
        Ok(Route::Done(resp)) => resp,
        Ok(Route::Watch(rt, filter)) => {
            watch::serve(ctx, rt, filter, query, as_table(headers, query))
        }
        Err(e) => e.into_response(),
    }
}

/// `Some(includeObject)` when the client asked for server-side printing.
fn as_table(headers: &HeaderMap, query: &Query) -> Option<Option<String>> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    table::wants_table(accept).then(|| query.get("includeObject").map(str::to_string))
}

enum Route {
    Done(Response),
    Watch(Arc<ResourceType>, Filter),
}

fn route(
    ctx: &AppContext,
    method: &Method,
    req: ResourceRequest,
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Route, ApiError> {
    let rt = ctx
        .state
        .resolve(&req.group, &req.version, &req.plural)
        .ok_or_else(|| {
            ApiError::path_not_found(&format!("{}/{}/{}", req.group, req.version, req.plural))
        })?;
    if !rt.namespaced && req.namespace.is_some() {
        return Err(ApiError::path_not_found(&format!(
            "namespaces/{}/{}",
            req.namespace.as_deref().unwrap_or_default(),
            rt.plural
        )));
    }
    if let Some(sub) = req.subresource.as_deref() {
        let known = (sub == "status" && rt.status) || (sub == "scale" && rt.scale);
        if !known {
            return Err(ApiError::path_not_found(&format!("{}/{sub}", rt.plural)));
        }
    }
    let ns = req.namespace.clone().unwrap_or_default();
    let state = &ctx.state;
    let opts = write_options(query, headers);
    let watching = req.watch_path || query.flag("watch");
    let resp = match (method.as_str(), req.name.as_deref()) {
        ("GET", _) if watching => {
            let mut filter = filter(&rt, query, req.namespace.clone())?;
            if let Some(name) = req.name.as_deref() {
                filter.field = FieldSelector::parse(&format!("metadata.name={name}"), &[])
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
            }
            return Ok(Route::Watch(rt, filter));
        }
        ("GET", Some(name)) => {
            let stored = state.get(&rt, &ns, name)?;
            if req.subresource.as_deref() == Some("scale") {
                json_response(StatusCode::OK, &scale_view(&stored.value))
            } else if let Some(include) = as_table(headers, query) {
                let obj = crate::state::view(&rt, &stored.value);
                json_response(
                    StatusCode::OK,
                    &table::table(&rt, &[obj], None, include.as_deref()),
                )
            } else {
                bytes_response(StatusCode::OK, render(&rt, &stored))
            }
        }
        ("GET", None) => list(
            ctx,
            &rt,
            query,
            req.namespace.clone(),
            as_table(headers, query),
        )?,
        ("POST", None) => {
            let body = decode_json(headers, &body)?;
            let created =
                state.write(|inner| inner.create(&rt, req.namespace.as_deref(), body, &opts))?;
            json_response(StatusCode::CREATED, &created)
        }
        ("PUT", Some(name)) => {
            let body = decode_json(headers, &body)?;
            let body = if req.subresource.as_deref() == Some("scale") {
                scale_to_patch(&body)?
            } else {
                body
            };
            if req.subresource.as_deref() == Some("scale") {
                let updated = state
                    .write(|inner| {
                        inner.patch(&rt, &ns, name, PatchKind::Merge, &body, None, &opts)
                    })
                    .map(|(v, _)| scale_view(&v))?;
                json_response(StatusCode::OK, &updated)
            } else {
                let written = state.put(&rt, &ns, name, body, req.subresource.as_deref(), &opts)?;
                bytes_response(StatusCode::OK, render(&rt, &written))
            }
        }
        ("PATCH", Some(name)) => patch(
            ctx,
            &rt,
            &ns,
            name,
            req.subresource.as_deref(),
            query,
            headers,
            &body,
            opts,
        )?,
        ("DELETE", Some(name)) => {
            let dopts = delete_options(query, &body)?;
            match state.write(|inner| inner.delete(&rt, &ns, name, &dopts))? {
                DeleteOutcome::Deleted(obj) if rt.kind != "Pod" => {
                    let uid = obj
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    json_response(
                        StatusCode::OK,
                        &delete_success(&rt.group, &rt.plural, name, uid),
                    )
                }
                DeleteOutcome::Deleted(obj) => json_response(StatusCode::OK, &obj),
                DeleteOutcome::Pending(obj) => json_response(StatusCode::ACCEPTED, &obj),
            }
        }
        ("DELETE", None) => {
            let dopts = delete_options(query, &body)?;
            let filter = filter(&rt, query, req.namespace.clone())?;
            let items = state.write(|inner| inner.delete_collection(&rt, &filter, &dopts))?;
            let list = json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
                "metadata": {"resourceVersion": state.current_rv().to_string()}, "items": items});
            json_response(StatusCode::OK, &list)
        }
        (m, _) => return Err(ApiError::method_not_allowed(m)),
    };
    Ok(Route::Done(resp))
}

fn write_options(query: &Query, headers: &HeaderMap) -> WriteOptions {
    let manager = query
        .get("fieldManager")
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| {
            // The Go server names an unnamed manager after the User-Agent's product token.
            let ua = headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("unknown");
            ua.split('/')
                .next()
                .unwrap_or("unknown")
                .chars()
                .take(128)
                .collect()
        });
    WriteOptions {
        dry_run: query.get("dryRun").is_some_and(|v| !v.is_empty()),
        manager,
        seeding: false,
    }
}

fn filter(rt: &ResourceType, query: &Query, namespace: Option<String>) -> Result<Filter, ApiError> {
    let label = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let field = FieldSelector::parse(
        query.get("fieldSelector").unwrap_or_default(),
        supported_fields(&rt.storage.group, &rt.storage.plural),
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Filter {
        namespace,
        label,
        field,
        storage: rt.storage.clone(),
    })
}

/// The serialised object as `rt` presents it; cached bytes when no conversion is needed.
pub fn render(rt: &ResourceType, stored: &Stored) -> Bytes {
    let same = !rt.converts()
        && stored.value.get("apiVersion").and_then(Value::as_str)
            == Some(rt.api_version().as_str());
    if same {
        stored.json.clone()
    } else {
        Bytes::from(serde_json::to_vec(&crate::state::view(rt, &stored.value)).unwrap_or_default())
    }
}

fn list(
    ctx: &AppContext,
    rt: &ResourceType,
    query: &Query,
    namespace: Option<String>,
    as_table: Option<Option<String>>,
) -> Result<Response, ApiError> {
    let f = filter(rt, query, namespace)?;
    let limit = match query.get("limit").filter(|s| !s.is_empty()) {
        Some(l) => Some(
            l.parse::<i64>()
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "limit: Invalid value: \"{l}\": must be an integer"
                    ))
                })?
                .max(0) as usize,
        ),
        None => None,
    };
    let q = ListQuery {
        limit,
        continue_token: query.get("continue").map(str::to_string),
        resource_version: query.get("resourceVersion").map(str::to_string),
        resource_version_match: query.get("resourceVersionMatch").map(str::to_string),
    };
    let page = ctx.state.list(rt, &f, &q)?;
    if let Some(include) = as_table {
        let objects: Vec<Value> = page
            .items
            .iter()
            .map(|s| crate::state::view(rt, &s.value))
            .collect();
        let mut t = table::table(rt, &objects, Some(page.rv.to_string()), include.as_deref());
        if let Some(c) = &page.continue_token {
            t["metadata"]["continue"] = json!(c);
        }
        return Ok(json_response(StatusCode::OK, &t));
    }
    let mut meta = json!({"resourceVersion": page.rv.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(r) = page.remaining {
        meta["remainingItemCount"] = json!(r);
    }
    let head = format!(
        "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
        rt.kind,
        rt.api_version(),
        meta
    );
    let mut out = Vec::with_capacity(
        head.len() + page.items.iter().map(|s| s.json.len() + 1).sum::<usize>() + 2,
    );
    out.extend_from_slice(head.as_bytes());
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&render(rt, item));
    }
    out.extend_from_slice(b"]}");
    Ok(bytes_response(StatusCode::OK, Bytes::from(out)))
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

fn decode_json(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let ct = content_type(headers);
    let value: Value = match ct.as_str() {
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        })?,
        "application/yaml" => serde_yaml::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as YAML: {e}"
            ))
        })?,
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format ({other}) - accepted media types include: application/json, application/yaml"
            )));
        }
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    Ok(value)
}

#[allow(clippy::too_many_arguments)]
fn patch(
    ctx: &AppContext,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    subresource: Option<&str>,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
    opts: WriteOptions,
) -> Result<Response, ApiError> {
    let kind = match content_type(headers).as_str() {
        "application/merge-patch+json" => PatchKind::Merge,
        "application/json-patch+json" => PatchKind::Json,
        "application/strategic-merge-patch+json" => PatchKind::Strategic,
        "application/apply-patch+yaml" | "application/apply-patch+json" => PatchKind::Apply {
            force: query.flag("force"),
        },
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format ({other}) - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, \
                 application/strategic-merge-patch+json"
            )));
        }
    };
    let patch: Value = match kind {
        PatchKind::Apply { .. } => {
            if query.get("fieldManager").is_none_or(str::is_empty) {
                return Err(ApiError::bad_request(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
            serde_yaml::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
        }
        _ => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        })?,
    };
    if subresource == Some("scale") {
        let patch = match kind {
            PatchKind::Json => {
                return Err(ApiError::unsupported_media_type(
                    "JSON patches on scale are not supported",
                ));
            }
            _ => scale_to_patch(&patch)?,
        };
        let (v, _) = ctx
            .state
            .write(|inner| inner.patch(rt, ns, name, PatchKind::Merge, &patch, None, &opts))?;
        return Ok(json_response(StatusCode::OK, &scale_view(&v)));
    }
    let (obj, created) = ctx
        .state
        .write(|inner| inner.patch(rt, ns, name, kind, &patch, subresource, &opts))?;
    Ok(json_response(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &obj,
    ))
}

fn delete_options(query: &Query, body: &Bytes) -> Result<DeleteOptions, ApiError> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let dry_run = query.get("dryRun").is_some_and(|v| !v.is_empty())
        || body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
    let mut propagation = query
        .get("propagationPolicy")
        .map(str::to_string)
        .or_else(|| {
            body.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    if propagation.is_none() && body.get("orphanDependents").and_then(Value::as_bool) == Some(true)
    {
        propagation = Some("Orphan".into());
    }
    if let Some(p) = propagation.as_deref()
        && !matches!(p, "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
        )));
    }
    let pre = body.get("preconditions");
    Ok(DeleteOptions {
        dry_run,
        precondition_uid: pre
            .and_then(|p| p.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_rv: pre
            .and_then(|p| p.get("resourceVersion"))
            .and_then(Value::as_str)
            .map(str::to_string),
        propagation,
    })
}

/// The `autoscaling/v1` Scale of a workload.
fn scale_view(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
    })
}

/// Turns a Scale body or patch into a merge patch of the workload's `spec.replicas`.
fn scale_to_patch(scale: &Value) -> Result<Value, ApiError> {
    let replicas = scale
        .pointer("/spec/replicas")
        .ok_or_else(|| ApiError::bad_request("spec.replicas is required"))?;
    let mut patch = json!({"spec": {"replicas": replicas}});
    if let Some(rv) = scale.pointer("/metadata/resourceVersion") {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    Ok(patch)
}
