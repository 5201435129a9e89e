//! Discovery and server metadata: `/version`, `/api`, `/apis`, group-version resource lists,
//! OpenAPI stubs, health, and the fault-injection endpoint.

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppContext, json_response};
use crate::faults::FaultRequest;
use crate::status::ApiError;

pub fn serve(ctx: &AppContext, method: &Method, path: &str) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::method_not_allowed(method.as_str()).into_response();
    }
    let path = path.trim_end_matches('/');
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["healthz"] | ["readyz"] | ["livez"] => plain("ok"),
        ["version"] => json_response(StatusCode::OK, &version()),
        ["api"] => json_response(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        ["apis"] => json_response(StatusCode::OK, &ctx.state.with_registry(|r| r.group_list())),
        ["api", v] => resource_list(ctx, "", v),
        ["apis", g, v] => resource_list(ctx, g, v),
        ["apis", g] => {
            let groups = ctx.state.with_registry(|r| r.group_list());
            let found = groups["groups"]
                .as_array()
                .and_then(|gs| gs.iter().find(|x| x["name"] == *g).cloned());
            match found {
                Some(mut group) => {
                    group["kind"] = json!("APIGroup");
                    group["apiVersion"] = json!("v1");
                    json_response(StatusCode::OK, &group)
                }
                None => ApiError::path_not_found(path).into_response(),
            }
        }
        // kubectl 1.20 fetches this for client-side validation; an empty document disables it.
        ["openapi", "v2"] => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        _ => ApiError::path_not_found(path).into_response(),
    }
}

fn resource_list(ctx: &AppContext, group: &str, version: &str) -> Response {
    match ctx.state.with_registry(|r| r.resource_list(group, version)) {
        Some(list) => json_response(StatusCode::OK, &list),
        None => ApiError::path_not_found(&format!("/apis/{group}/{version}")).into_response(),
    }
}

fn plain(text: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(text))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn version() -> serde_json::Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-stowage-emulator",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32"
    })
}

pub fn faults(ctx: &AppContext, body: &Bytes) -> Response {
    let req: FaultRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::bad_request(format!("invalid fault request: {e}")).into_response();
        }
    };
    match ctx.faults.apply(&req) {
        Ok(()) => json_response(StatusCode::OK, &json!({"ok": true})),
        Err(m) => ApiError::bad_request(m).into_response(),
    }
}
