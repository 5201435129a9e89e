//! Object routes: lists (page or `continue` paging, filters, sort; `watch=true` hands over to the
//! change feed) and single objects by uid or by namespace/name.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

use super::error::{ApiError, PathParams, QueryPairs};
use super::params::{self, ListRequest, Request};
use super::{ApiState, feed, token};
use crate::mirror::kind::KindSpec;
use crate::store::Revision;

/// The list document.
#[derive(Debug, Serialize)]
pub struct ListResponse {
    /// `<Kind>List`.
    pub kind: String,
    /// The stored (pruned) objects of this page.
    pub items: Vec<Value>,
    /// Matching objects in all pages.
    pub total: usize,
    pub page: usize,
    pub limit: usize,
    /// Store revision read before the list: watch with `since=<revision>` to follow changes
    /// without a gap (changes already reflected in the list may be replayed).
    pub revision: Revision,
    /// Token for the next page; absent on the last page.
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
}

/// `GET /api/v1/{plural}`.
pub async fn list(
    State(state): State<ApiState>,
    PathParams(plural): PathParams<String>,
    headers: HeaderMap,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    list_or_watch(state, &plural, None, &pairs, &headers).await
}

/// `GET /api/v1/namespace/{namespace}/{plural}`.
pub async fn list_in_namespace(
    State(state): State<ApiState>,
    PathParams((namespace, plural)): PathParams<(String, String)>,
    headers: HeaderMap,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    list_or_watch(state, &plural, Some(&namespace), &pairs, &headers).await
}

/// `GET /api/v1/{plural}/{uid}`.
pub async fn by_uid(
    State(state): State<ApiState>,
    PathParams((plural, uid)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let kind = state.kind(&plural)?;
    match state.store.get_by_uid(&kind, &uid).await? {
        Some(object) => Ok(Json(object.object)),
        None => Err(ApiError::NotFound(format!(
            "{} with uid \"{uid}\" not found",
            kind.kind
        ))),
    }
}

/// `GET /api/v1/namespaces/{namespace}/{plural}/{name}`.
pub async fn by_name(
    State(state): State<ApiState>,
    PathParams((namespace, plural, name)): PathParams<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let kind = state.kind(&plural)?;
    if !kind.namespaced {
        return Err(ApiError::bad(
            "namespace",
            format!("{} is cluster-scoped; it has no namespaces", kind.kind),
        ));
    }
    match state.store.get(&kind, &namespace, &name).await? {
        Some(object) => Ok(Json(object.object)),
        None => Err(ApiError::NotFound(format!(
            "{} {namespace}/{name} not found",
            kind.kind
        ))),
    }
}

async fn list_or_watch(
    state: ApiState,
    plural: &str,
    namespace: Option<&str>,
    pairs: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let kind = state.kind(plural)?;
    match params::parse(&kind, namespace, pairs)? {
        Request::List(request) => {
            super::cached::list(&state, &kind, namespace, pairs, request).await
        }
        Request::Watch(request) => feed::watch(state, kind, request, headers).await,
    }
}

pub(super) async fn list_page(
    state: &ApiState,
    kind: &KindSpec,
    request: ListRequest,
) -> Result<ListResponse, ApiError> {
    let revision = state.store.revision().await?;
    let page = state.store.list(kind, &request.query).await?;
    let continue_token = page
        .next
        .as_ref()
        .map(|cursor| token::encode(cursor, request.page + 1, request.fingerprint));
    Ok(ListResponse {
        kind: format!("{}List", kind.kind),
        items: page.items.into_iter().map(|object| object.object).collect(),
        total: page.total,
        page: request.page,
        limit: request.query.limit,
        revision,
        continue_token,
    })
}
