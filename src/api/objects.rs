//! Object routes: lists (page or `continue` paging, filters, sort; `watch=true` hands over to the
//! change feed) and single objects by uid or by namespace/name.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::error::{ApiError, PathParams, QueryPairs};
use super::params::{self, ListRequest, Request};
use super::{ApiState, feed, token};
use crate::mirror::kind::KindSpec;
use crate::store::Revision;

/// The list document's fields besides `items`, in the order they are written.
#[derive(Debug, Serialize)]
struct ListFields<'a> {
    /// Matching objects in all pages.
    total: usize,
    page: usize,
    limit: usize,
    /// Store revision read before the list: watch with `since=<revision>` to follow changes
    /// without a gap (changes already reflected in the list may be replayed).
    revision: Revision,
    /// Token for the next page; absent on the last page.
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    continue_token: Option<&'a str>,
}

/// Room left after a page's items for the fields that close the document.
const TAIL_ROOM: usize = 256;

/// The list document up to its items: `{"kind":"<Kind>List","items":[`, with [`TAIL_ROOM`] to
/// spare. The store appends the items' stored JSON as it is: a list page is mostly objects, and
/// decoding them only to encode them again was most of a list's cost.
fn document_head(kind: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(kind.len() + 24 + TAIL_ROOM);
    body.extend_from_slice(b"{\"kind\":");
    serde_json::to_writer(&mut body, kind).expect("a string serialises");
    // `"<Kind>"` becomes `"<Kind>List"`.
    body.pop();
    body.extend_from_slice(b"List\"");
    body.extend_from_slice(b",\"items\":[");
    body
}

/// Closes the items and writes the other fields: `],<fields>}`.
fn finish_document(body: &mut Vec<u8>, fields: &ListFields<'_>) {
    body.extend_from_slice(b"],");
    let at = body.len();
    serde_json::to_writer(&mut *body, fields).expect("list fields serialise");
    // `fields` is an object: keep its members, spliced after the items.
    body.remove(at);
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
        Some(object) => Ok(Json(object.object.into_tree())),
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
        Some(object) => Ok(Json(object.object.into_tree())),
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
        Request::Watch(request) => {
            feed::watch(state, KindSpec::clone(&kind), request, headers).await
        }
    }
}

/// One list page as its JSON document (the cache keeps and serves these bytes).
pub(super) async fn list_page(
    state: &ApiState,
    kind: &KindSpec,
    request: ListRequest,
) -> Result<Bytes, ApiError> {
    let mut body = document_head(&kind.kind);
    let (revision, page) = state
        .store
        .revision_and_write_list_json(kind, &request.query, &mut body)
        .await?;
    let continue_token = page
        .next
        .as_ref()
        .map(|cursor| token::encode(cursor, request.page + 1, request.fingerprint));
    let fields = ListFields {
        total: page.total,
        page: request.page,
        limit: request.query.limit,
        revision,
        continue_token: continue_token.as_deref(),
    };
    finish_document(&mut body, &fields);
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::store::JsonPage;

    fn list_document(kind: &str, items: &[Bytes], fields: &ListFields<'_>) -> Vec<u8> {
        let mut body = document_head(kind);
        let page = JsonPage {
            items: items.to_vec(),
            total: 0,
            next: None,
        };
        page.write_items(&mut body);
        let (data, spare) = (body.as_ptr(), body.capacity() - body.len());
        finish_document(&mut body, fields);
        assert!(spare >= TAIL_ROOM, "room is kept after the items");
        assert_eq!(body.as_ptr(), data, "closing the document does not move it");
        body
    }

    #[test]
    fn list_document_is_the_json_of_its_parts() {
        let items = [
            Bytes::from_static(br#"{"metadata":{"name":"a"}}"#),
            Bytes::from_static(br#"{"metadata":{"name":"b \"q\""}}"#),
        ];
        let fields = ListFields {
            total: 7,
            page: 2,
            limit: 2,
            revision: 41,
            continue_token: Some("tok"),
        };
        let body: Value = serde_json::from_slice(&list_document("Pod", &items, &fields)).unwrap();
        assert_eq!(
            body,
            json!({"kind": "PodList", "items": [{"metadata": {"name": "a"}},
                {"metadata": {"name": "b \"q\""}}], "total": 7, "page": 2, "limit": 2,
                "revision": 41, "continue": "tok"})
        );
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "kind", "items", "total", "page", "limit", "revision", "continue"
            ]
        );
    }

    #[test]
    fn an_empty_last_page_has_no_continue() {
        let fields = ListFields {
            total: 0,
            page: 1,
            limit: 10,
            revision: 0,
            continue_token: None,
        };
        let body: Value = serde_json::from_slice(&list_document("Node", &[], &fields)).unwrap();
        assert_eq!(
            body,
            json!({"kind": "NodeList", "items": [], "total": 0, "page": 1, "limit": 10, "revision": 0})
        );
    }
}
