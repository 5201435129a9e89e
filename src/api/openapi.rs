//! `GET /api/v1/openapi.json`: a hand-written OpenAPI 3.0 description of every route, parameter
//! and error shape of the REST API. A test checks it against the router's routes.

use axum::Json;
use serde_json::{Value, json};

use super::params::{DEFAULT_LIMIT, MAX_LIMIT};

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Json<Value> {
    Json(document())
}

fn param(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

fn errors(codes: &[&str]) -> serde_json::Map<String, Value> {
    codes
        .iter()
        .map(|code| {
            (
                code.to_string(),
                json!({"$ref": format!("#/components/responses/{code}")}),
            )
        })
        .collect()
}

fn ok(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

/// `success` with the cache's response headers (routes served through the read cache).
fn cached(mut success: Value) -> Value {
    success["headers"] = json!({
        "X-Stowage-Cache": {"description": "Which tier answered: `hit-l1` (this process), `hit-l2` (Redis), `miss` (the store).", "schema": {"type": "string", "enum": ["hit-l1", "hit-l2", "miss"]}},
        "X-Stowage-Stale": {"description": "`true` when the answer came from the cache while the store could not answer (its breaker open or a read failed); it may be out of date.", "schema": {"type": "string", "enum": ["true"]}},
        "Age": {"description": "With X-Stowage-Stale: seconds since the answer was read from the store.", "schema": {"type": "integer"}}
    });
    success
}

fn operation(
    summary: &str,
    id: &str,
    parameters: Vec<Value>,
    success: Value,
    error_codes: &[&str],
) -> Value {
    let mut responses = errors(error_codes);
    responses.insert("200".into(), success);
    json!({"get": {"summary": summary, "operationId": id, "parameters": parameters, "responses": responses}})
}

/// Parameters of both list routes (besides the path's).
fn list_parameters() -> Vec<Value> {
    [
        "page",
        "limit",
        "namespaceQuery",
        "search",
        "labelSelector",
        "sort",
        "continue",
        "columnFilters",
        "watch",
        "since",
        "lastEventId",
        "accept",
    ]
    .into_iter()
    .map(param)
    .collect()
}

fn list_success() -> Value {
    json!({
        "description": "A page of objects or, with watch=true, the change feed.",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/List"}},
            "application/x-ndjson": {"schema": {"$ref": "#/components/schemas/FeedEvent"}},
            "text/event-stream": {"schema": {"type": "string", "description": "`id: <revision>`, `event: <type>`, `data: <FeedEvent JSON>` blocks."}}
        }
    })
}

/// An object from `(key, value)` pairs (keeps `json!` invocations small enough to expand).
fn object(entries: Vec<(&str, Value)>) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect(),
    )
}

/// The whole document.
pub fn document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Stowage REST API",
            "version": "v1",
            "description": "Read-only access to the Kubernetes objects Stowage mirrors into its store, with paging, filters, stats and a resumable change feed. Every error is JSON: {\"error\": message, \"parameter\": name} for bad input."
        },
        "paths": paths(),
        "components": {"parameters": parameters(), "responses": responses(), "schemas": schemas()}
    })
}

/// Every route.
fn paths() -> Value {
    let list_errors = ["400", "404", "410", "503"];
    object(vec![
        (
            "/api/v1/resources",
            operation(
                "Registered kinds with object counts and sync state",
                "listResources",
                vec![],
                cached(ok("The kinds", "ResourceList")),
                &["503"],
            ),
        ),
        (
            "/api/v1/health",
            operation(
                "Liveness",
                "health",
                vec![],
                ok("The API answers", "Health"),
                &[],
            ),
        ),
        (
            "/api/v1/status",
            operation(
                "Store backend, breaker and per-kind sync status",
                "status",
                vec![],
                ok("Status", "Status"),
                &[],
            ),
        ),
        (
            "/api/v1/openapi.json",
            operation(
                "This document",
                "openapi",
                vec![],
                json!({"description": "OpenAPI 3.0 document", "content": {"application/json": {"schema": {"type": "object"}}}}),
                &[],
            ),
        ),
        (
            "/api/v1/stats/overview",
            operation(
                "Counts by kind and namespace, pods by phase, workload replicas",
                "statsOverview",
                vec![],
                cached(ok("The overview", "Overview")),
                &["503"],
            ),
        ),
        (
            "/api/v1/{plural}",
            operation(
                "List objects of a kind, or follow its changes with watch=true",
                "list",
                [vec![param("plural")], list_parameters()].concat(),
                cached(list_success()),
                &list_errors,
            ),
        ),
        (
            "/api/v1/{plural}/{uid}",
            operation(
                "One object by uid",
                "getByUid",
                vec![param("plural"), param("uid")],
                cached(ok("The stored object", "Object")),
                &["400", "404", "503"],
            ),
        ),
        (
            "/api/v1/namespace/{namespace}/{plural}",
            operation(
                "List objects of a kind in one namespace, or follow its changes with watch=true",
                "listInNamespace",
                [
                    vec![param("namespacePath"), param("plural")],
                    list_parameters(),
                ]
                .concat(),
                cached(list_success()),
                &list_errors,
            ),
        ),
        (
            "/api/v1/namespaces/{namespace}/{plural}/{name}",
            operation(
                "One object by namespace and name",
                "getByName",
                vec![param("namespacePath"), param("plural"), param("name")],
                cached(ok("The stored object", "Object")),
                &["400", "404", "503"],
            ),
        ),
    ])
}

/// Path, query and header parameters.
fn parameters() -> Value {
    object(vec![
        (
            "plural",
            json!({"name": "plural", "in": "path", "required": true, "schema": {"type": "string"}, "description": "Plural resource name (`pods`), or `plural.group` when several groups share it (`events.events.k8s.io`)."}),
        ),
        (
            "uid",
            json!({"name": "uid", "in": "path", "required": true, "schema": {"type": "string"}, "description": "metadata.uid of the object."}),
        ),
        (
            "namespacePath",
            json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}),
        ),
        (
            "name",
            json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}),
        ),
        (
            "page",
            json!({"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}, "description": "1-based page number. Not with `continue`."}),
        ),
        (
            "limit",
            json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}, "description": "Page size."}),
        ),
        (
            "namespaceQuery",
            json!({"name": "namespace", "in": "query", "schema": {"type": "string"}, "description": "Only objects of this namespace (namespaced kinds only)."}),
        ),
        (
            "search",
            json!({"name": "search", "in": "query", "schema": {"type": "string"}, "description": "Case-insensitive substring of the name."}),
        ),
        (
            "labelSelector",
            json!({"name": "labelSelector", "in": "query", "schema": {"type": "string"}, "description": "Kubernetes label selector: `k=v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, comma-separated."}),
        ),
        (
            "sort",
            json!({"name": "sort", "in": "query", "schema": {"type": "string", "default": "name"}, "description": "`name`, `createdAt` or a column of the kind; prefix `-` for descending."}),
        ),
        (
            "continue",
            json!({"name": "continue", "in": "query", "schema": {"type": "string"}, "description": "Opaque token from the previous page's `continue`; only valid with the same filters and sort. Not with `page`."}),
        ),
        (
            "columnFilters",
            json!({"name": "columns", "in": "query", "style": "form", "explode": true, "schema": {"type": "object", "additionalProperties": {"type": "string"}}, "description": "Equality filters on the kind's columns, one query parameter per column (`?phase=Running`). Any other unknown parameter is a 400."}),
        ),
        (
            "watch",
            json!({"name": "watch", "in": "query", "schema": {"type": "boolean", "default": false}, "description": "Stream changes instead of listing: NDJSON, or SSE with `Accept: text/event-stream`. Filters apply; page, limit, sort and continue do not."}),
        ),
        (
            "since",
            json!({"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "With watch=true: send changes after this store revision (a list's `revision`, a change's or bookmark's `revision`). Omitted: only new changes. Older than retained history: 410."}),
        ),
        (
            "lastEventId",
            json!({"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer", "minimum": 0}, "description": "SSE resume point; overrides `since`."}),
        ),
        (
            "accept",
            json!({"name": "Accept", "in": "header", "schema": {"type": "string"}, "description": "`text/event-stream` selects SSE framing for watch=true."}),
        ),
    ])
}

/// Error responses by status code.
fn responses() -> Value {
    object(vec![
        (
            "400",
            json!({"description": "Bad input; `parameter` names it.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        ),
        (
            "404",
            json!({"description": "Unknown resource type (`parameter`: plural) or object.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        ),
        (
            "410",
            json!({"description": "The revision is no longer retained: relist and watch from the list's revision.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        ),
        (
            "503",
            json!({"description": "The store is unavailable; `error` says why.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        ),
    ])
}

/// Response bodies.
fn schemas() -> Value {
    object(vec![
        (
            "Error",
            json!({"type": "object", "required": ["error"], "properties": {
                "error": {"type": "string"},
                "parameter": {"type": "string", "description": "The offending query parameter, path segment or header."},
                "reason": {"type": "string", "enum": ["NotFound", "Expired", "Unavailable"]},
                "oldestRevision": {"type": "integer", "description": "With 410: the oldest retained revision."}
            }}),
        ),
        (
            "Object",
            json!({"type": "object", "additionalProperties": true, "description": "The stored object (managedFields and last-applied configuration pruned, Secret data redacted)."}),
        ),
        (
            "List",
            json!({"type": "object", "required": ["kind", "items", "total", "page", "limit", "revision"], "properties": {
                "kind": {"type": "string", "example": "PodList"},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Object"}},
                "total": {"type": "integer", "description": "Matching objects over all pages."},
                "page": {"type": "integer"},
                "limit": {"type": "integer"},
                "revision": {"type": "integer", "description": "Store revision read before listing; watch with since=revision to follow on."},
                "continue": {"type": "string", "description": "Token for the next page; absent on the last page."}
            }}),
        ),
        (
            "FeedEvent",
            json!({"type": "object", "required": ["type", "revision"], "properties": {
                "type": {"type": "string", "enum": ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]},
                "revision": {"type": "integer"},
                "object": {"$ref": "#/components/schemas/Object"},
                "error": {"type": "string", "description": "ERROR only; the feed ends after it."},
                "reason": {"type": "string"},
                "oldestRevision": {"type": "integer"}
            }}),
        ),
        (
            "Column",
            json!({"type": "object", "properties": {"name": {"type": "string"}, "path": {"type": "string"}, "type": {"type": "string", "enum": ["string", "integer", "boolean", "json"]}, "index": {"type": "boolean"}}}),
        ),
        (
            "SyncState",
            json!({"type": "string", "enum": ["pending", "notServed", "syncing", "synced", "degraded"]}),
        ),
        (
            "ResourceList",
            json!({"type": "object", "properties": {
                "kind": {"type": "string", "example": "ResourceList"},
                "total": {"type": "integer"},
                "items": {"type": "array", "items": {"type": "object", "properties": {
                    "id": {"type": "string", "example": "core/v1/Pod"},
                    "group": {"type": "string"}, "version": {"type": "string"}, "apiVersion": {"type": "string"},
                    "kind": {"type": "string"}, "plural": {"type": "string"}, "namespaced": {"type": "boolean"},
                    "columns": {"type": "array", "items": {"$ref": "#/components/schemas/Column"}},
                    "objects": {"type": "integer"},
                    "state": {"$ref": "#/components/schemas/SyncState"}
                }}}
            }}),
        ),
        (
            "Health",
            json!({"type": "object", "properties": {"status": {"type": "string", "enum": ["ok"]}}}),
        ),
        (
            "Replicas",
            json!({"type": "object", "properties": {"desired": {"type": "integer"}, "ready": {"type": "integer"}}}),
        ),
        (
            "Overview",
            json!({"type": "object", "properties": {
                "revision": {"type": "integer"},
                "objects": {"type": "integer"},
                "byKind": {"type": "object", "additionalProperties": {"type": "object", "properties": {"kind": {"type": "string"}, "plural": {"type": "string"}, "objects": {"type": "integer"}}}},
                "byNamespace": {"type": "object", "additionalProperties": {"type": "integer"}},
                "podsByPhase": {"type": "object", "additionalProperties": {"type": "integer"}},
                "workloads": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Replicas"}},
                "workloadsTotal": {"$ref": "#/components/schemas/Replicas"}
            }}),
        ),
        (
            "Status",
            json!({"type": "object", "properties": {
                "store": {"type": "object", "properties": {
                    "backend": {"type": "string"},
                    "revision": {"type": "integer", "nullable": true},
                    "error": {"type": "string", "nullable": true},
                    "breaker": {"type": "object", "properties": {
                        "state": {"type": "string", "enum": ["closed", "halfOpen", "open"]},
                        "consecutiveFailures": {"type": "integer"},
                        "lastError": {"type": "string", "nullable": true},
                        "buffered": {"type": "integer"}
                    }}
                }},
                "synced": {"type": "boolean"},
                "cache": {"type": "object", "description": "The read cache: hit rates per tier and Redis health.", "properties": {
                    "enabled": {"type": "boolean"},
                    "hitRate": {"type": "number", "nullable": true, "description": "Answers from L1 or L2 over all cached-route requests."},
                    "requests": {"type": "integer"},
                    "l1": {"type": "object", "properties": {"hits": {"type": "integer"}, "misses": {"type": "integer"}, "hitRate": {"type": "number", "nullable": true}, "entries": {"type": "integer"}}},
                    "l2": {"type": "object", "nullable": true, "description": "Null when Redis is not configured.", "properties": {
                        "hits": {"type": "integer"}, "misses": {"type": "integer"}, "hitRate": {"type": "number", "nullable": true},
                        "pendingInvalidations": {"type": "integer", "description": "Invalidations waiting for Redis to come back."},
                        "redis": {"type": "object", "properties": {
                            "address": {"type": "string"}, "db": {"type": "integer"},
                            "state": {"type": "string", "enum": ["closed", "halfOpen", "open"]},
                            "up": {"type": "boolean"}, "consecutiveFailures": {"type": "integer"},
                            "lastError": {"type": "string", "nullable": true}
                        }}
                    }},
                    "storeQueries": {"type": "integer"},
                    "staleServed": {"type": "integer"}
                }},
                "kinds": {"type": "array", "items": {"type": "object", "properties": {
                    "id": {"type": "string"}, "kind": {"type": "string"}, "plural": {"type": "string"},
                    "state": {"$ref": "#/components/schemas/SyncState"},
                    "objects": {"type": "integer"},
                    "lastEventTime": {"type": "string", "nullable": true},
                    "lastEventAgeSeconds": {"type": "integer", "nullable": true},
                    "resourceVersion": {"type": "string", "nullable": true},
                    "reconnects": {"type": "integer"}, "relists": {"type": "integer"}, "malformed": {"type": "integer"},
                    "lastError": {"type": "string", "nullable": true},
                    "initialSyncDone": {"type": "boolean"}
                }}}
            }}),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::params::PARAMETERS;
    use crate::api::routes;

    /// The operation's parameters with `$ref`s resolved.
    fn parameters(doc: &Value, path: &str) -> Vec<Value> {
        let list = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        list.into_iter()
            .map(|p| {
                match p["$ref"]
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/components/parameters/"))
                {
                    Some(name) => doc["components"]["parameters"][name].clone(),
                    None => p,
                }
            })
            .collect()
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let documented: Vec<&String> = doc["paths"].as_object().expect("paths").keys().collect();
        let served: Vec<&str> = routes().into_iter().map(|(path, _)| path).collect();
        for path in &served {
            assert!(
                doc["paths"][path]["get"].is_object(),
                "{path} is not documented"
            );
        }
        for path in documented {
            assert!(
                served.contains(&path.as_str()),
                "{path} is documented but not served"
            );
        }
    }

    #[test]
    fn path_parameters_are_declared() {
        let doc = document();
        for (path, _) in routes() {
            let declared = parameters(&doc, path);
            for segment in path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            {
                assert!(
                    declared.iter().any(|p| p["in"] == "path"
                        && p["name"] == segment
                        && p["required"] == true),
                    "{path}: path parameter {segment} is not declared"
                );
            }
        }
    }

    #[test]
    fn list_routes_document_every_query_parameter() {
        let doc = document();
        for path in ["/api/v1/{plural}", "/api/v1/namespace/{namespace}/{plural}"] {
            let declared = parameters(&doc, path);
            for name in PARAMETERS {
                assert!(
                    declared
                        .iter()
                        .any(|p| p["in"] == "query" && p["name"] == name),
                    "{path}: {name} missing"
                );
            }
            assert!(
                declared
                    .iter()
                    .any(|p| p["name"] == "Last-Event-ID" && p["in"] == "header")
            );
        }
    }

    #[test]
    fn every_reference_resolves() {
        fn refs(value: &Value, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        out.push(r.clone());
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc = document();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        for reference in found {
            let pointer = reference.strip_prefix('#').expect("local reference");
            assert!(doc.pointer(pointer).is_some(), "dangling {reference}");
        }
    }
}
