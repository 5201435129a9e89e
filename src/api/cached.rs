//! Where REST reads go through the cache: each cached route builds its key, and on a miss runs
//! the uncached handler and keeps its JSON body. Answers carry `X-Stowage-Cache` (`hit-l1`,
//! `hit-l2`, `miss`); one served from the cache while the store cannot answer also carries
//! `X-Stowage-Stale: true` and `Age` (seconds since it was read from the store).

use axum::Json;
use axum::extract::State;
use axum::http::header::{AGE, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

use super::error::{ApiError, PathParams};
use super::params::ListRequest;
use super::{ApiState, info, objects, stats};
use crate::cache::keys::{fingerprint, list_query};
use crate::cache::{Key, LoadError, Served, Source};
use crate::mirror::health::BreakerState;
use crate::mirror::kind::KindSpec;

/// Which tier answered.
pub const CACHE_HEADER: &str = "x-stowage-cache";
/// Present (`true`) when the answer may be out of date.
pub const STALE_HEADER: &str = "x-stowage-stale";

impl LoadError for ApiError {
    fn is_unavailable(&self) -> bool {
        matches!(self, ApiError::Unavailable(_))
    }
}

fn body<T: Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|err| ApiError::Unavailable(format!("cannot serialise the answer: {err}")))
}

fn respond(served: Served) -> Response {
    let mut response = (
        StatusCode::OK,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        served.body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        CACHE_HEADER,
        HeaderValue::from_static(served.source.as_str()),
    );
    if let Some(age) = served.stale_age {
        headers.insert(STALE_HEADER, HeaderValue::from_static("true"));
        headers.insert(AGE, HeaderValue::from(age.as_secs()));
    }
    response
}

async fn serve<F, Fut>(state: &ApiState, key: &Key, load: F) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Bytes, ApiError>>,
{
    // The mirror's writes wait behind an open breaker, so nothing invalidates meanwhile.
    let degraded = state.health.breaker().state == BreakerState::Open;
    state.cache.serve(key, degraded, load).await.map(respond)
}

/// One list page (called once parameters are validated).
pub async fn list(
    state: &ApiState,
    kind: &KindSpec,
    namespace: Option<&str>,
    pairs: &[(String, String)],
    request: ListRequest,
) -> Result<Response, ApiError> {
    if !state.cache.is_enabled() {
        // Nothing would be kept: skip building the key (sorted, formatted query pairs).
        let body = objects::list_page(state, kind, request).await?;
        return Ok(respond(Served {
            body,
            source: Source::Store,
            stale_age: None,
        }));
    }
    let key = state
        .cache
        .list_key(&kind.id(), &list_query(namespace, pairs))
        .await;
    serve(state, &key, || objects::list_page(state, kind, request)).await
}

/// `GET /api/v1/{plural}/{uid}`.
pub async fn by_uid(
    State(state): State<ApiState>,
    PathParams((plural, uid)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let kind = state.kind(&plural)?;
    let key = state.cache.keys().uid(&kind.id(), &uid);
    serve(&state, &key, || async {
        let Json(object) = objects::by_uid(State(state.clone()), PathParams((plural, uid))).await?;
        body(&object)
    })
    .await
}

/// `GET /api/v1/namespaces/{namespace}/{plural}/{name}`.
pub async fn by_name(
    State(state): State<ApiState>,
    PathParams((namespace, plural, name)): PathParams<(String, String, String)>,
) -> Result<Response, ApiError> {
    let kind = state.kind(&plural)?;
    let key = state.cache.keys().object(&kind.id(), &namespace, &name);
    serve(&state, &key, || async {
        let path = PathParams((namespace, plural, name));
        let Json(object) = objects::by_name(State(state.clone()), path).await?;
        body(&object)
    })
    .await
}

/// `GET /api/v1/stats/overview`: tagged with the set of kinds it covers.
pub async fn overview(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let ids: Vec<String> = state.kinds.borrow().all().map(KindSpec::id).collect();
    let key = state
        .cache
        .keys()
        .stats(fingerprint(ids.iter().map(String::as_str)));
    serve(&state, &key, || async {
        let Json(overview) = stats::overview(State(state.clone())).await?;
        body(&overview)
    })
    .await
}

/// `GET /api/v1/resources`: tagged with the kinds and their sync states, which change without
/// a store change.
pub async fn resources(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let parts: Vec<String> = state
        .kinds
        .borrow()
        .all()
        .map(|spec| {
            let health = state.health.kind(&spec.id()).map(|h| h.state);
            format!("{}={health:?}{:?}", spec.id(), spec.columns)
        })
        .collect();
    let key = state
        .cache
        .keys()
        .resources(fingerprint(parts.iter().map(String::as_str)));
    serve(&state, &key, || async {
        let Json(resources) = info::resources(State(state.clone())).await?;
        body(&resources)
    })
    .await
}
