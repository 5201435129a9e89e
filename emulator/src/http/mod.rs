//! HTTP front of the emulator: authentication, fault injection, path routing and responses.

mod discovery;
mod handlers;
mod table;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::faults::Faults;
use crate::state::State;
use crate::status::ApiError;

/// Shared by every request.
#[derive(Clone)]
pub struct AppContext {
    pub state: Arc<State>,
    pub faults: Faults,
    pub token: Option<String>,
    pub bookmark_interval: Duration,
}

pub fn router(ctx: AppContext) -> Router {
    Router::new().fallback(dispatch).with_state(ctx)
}

/// Query parameters; repeated keys keep the last value.
pub struct Query(HashMap<String, String>);

impl Query {
    fn parse(uri: &Uri) -> Result<Self, ApiError> {
        let raw = uri.query().unwrap_or_default();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        Ok(Query(pairs.into_iter().collect()))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Booleans are true unless `0` or `false` (as the Go server parses them).
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| v != "0" && v != "false")
    }
}

pub fn json_response(code: StatusCode, value: &Value) -> Response {
    bytes_response(
        code,
        Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    )
}

pub fn bytes_response(code: StatusCode, body: Bytes) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(code, &self.to_json())
    }
}

/// A request against a resource path, after routing.
pub struct ResourceRequest {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub watch_path: bool,
}

impl ResourceRequest {
    /// Parses `/api/v1/...` and `/apis/{group}/{version}/...`; `None` for discovery roots.
    fn parse(path: &str) -> Option<Result<Self, ApiError>> {
        let segs: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let (group, version, rest) = match segs.as_slice() {
            ["api", v, rest @ ..] => ("", *v, rest),
            ["apis", g, v, rest @ ..] => (*g, *v, rest),
            _ => return None,
        };
        if rest.is_empty() {
            return None;
        }
        let (watch_path, rest) = match rest {
            ["watch", tail @ ..] => (true, tail),
            _ => (false, rest),
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, tail @ ..]
                if !tail.is_empty() && !matches!(tail[0], "status" | "finalize") =>
            {
                (Some(ns.to_string()), tail)
            }
            _ => (None, rest),
        };
        let req = match rest {
            [plural] => (plural.to_string(), None, None),
            [plural, name] => (plural.to_string(), Some(name.to_string()), None),
            [plural, name, sub] => (
                plural.to_string(),
                Some(name.to_string()),
                Some(sub.to_string()),
            ),
            _ => return Some(Err(ApiError::path_not_found(path))),
        };
        Some(Ok(ResourceRequest {
            group: group.into(),
            version: version.into(),
            namespace,
            plural: req.0,
            name: req.1,
            subresource: req.2,
            watch_path,
        }))
    }

    fn verb(&self, method: &Method, query: &Query) -> &'static str {
        match (method.as_str(), self.name.is_some()) {
            ("GET", _) if self.watch_path || query.flag("watch") => "watch",
            ("GET", true) => "get",
            ("GET", false) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            _ => "unknown",
        }
    }
}

async fn dispatch(
    AxState(ctx): AxState<AppContext>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let open = matches!(path.as_str(), "/healthz" | "/readyz" | "/livez");
    if let Some(token) = &ctx.token {
        let ok = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t == token);
        if !ok && !open {
            return ApiError::unauthorized().into_response();
        }
    }
    if path == "/_emulator/faults" && method == Method::POST {
        return discovery::faults(&ctx, &body);
    }
    let query = match Query::parse(&uri) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    if let Some(latency) = ctx.faults.latency() {
        tokio::time::sleep(latency).await;
    }
    match ResourceRequest::parse(&path) {
        None => {
            if let Some(code) = ctx.faults.failure_for("discovery") {
                return injected(code);
            }
            discovery::serve(&ctx, &method, &path)
        }
        Some(Err(e)) => e.into_response(),
        Some(Ok(req)) => {
            let verb = req.verb(&method, &query);
            if let Some(code) = ctx.faults.failure_for(verb) {
                return injected(code);
            }
            handlers::handle(&ctx, &method, req, &query, &headers, body).await
        }
    }
}

fn injected(code: u16) -> Response {
    let err = if code == 429 {
        ApiError::too_many_requests("injected fault: too many requests, please try again later")
    } else {
        let mut e = ApiError::internal("injected fault: internal error");
        e.code = code;
        e
    };
    let mut resp = err.into_response();
    if code == 429 {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_like_the_api_server() {
        let r = ResourceRequest::parse("/api/v1/namespaces/ns1/pods/p1/status")
            .and_then(Result::ok)
            .expect("routes");
        assert_eq!(
            (
                r.namespace.as_deref(),
                r.plural.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            (Some("ns1"), "pods", Some("p1"), Some("status"))
        );
        let ns = ResourceRequest::parse("/api/v1/namespaces/ns1/status")
            .and_then(Result::ok)
            .expect("routes");
        assert_eq!(
            (
                ns.namespace,
                ns.plural.as_str(),
                ns.name.as_deref(),
                ns.subresource.as_deref()
            ),
            (None, "namespaces", Some("ns1"), Some("status"))
        );
        let crs = ResourceRequest::parse("/apis/example.com/v1/widgets")
            .and_then(Result::ok)
            .expect("routes");
        assert_eq!(
            (crs.group.as_str(), crs.namespace, crs.name),
            ("example.com", None, None)
        );
        let w = ResourceRequest::parse("/api/v1/watch/namespaces/a/configmaps")
            .and_then(Result::ok)
            .expect("routes");
        assert!(w.watch_path && w.namespace.as_deref() == Some("a"));
        assert!(ResourceRequest::parse("/apis").is_none());
        assert!(ResourceRequest::parse("/api/v1").is_none());
        assert!(matches!(
            ResourceRequest::parse("/api/v1/a/b/c/d/e"),
            Some(Err(_))
        ));
    }
}
