//! Watch streams: synthetic initial events, live changes in order, bookmarks, in-band 410 errors,
//! and a clean end at `timeoutSeconds` or when a fault drops every watch.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;

use super::handlers::render;
use super::{AppContext, Query, table};
use crate::resources::ResourceType;
use crate::state::{ChangeType, Filter, Stored};
use crate::status::ApiError;

const MAX_TIMEOUT_SECS: u64 = 3600;

fn event_line(kind: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta});
    event_line("BOOKMARK", &serde_json::to_vec(&obj).unwrap_or_default())
}

fn error_line(err: &ApiError) -> Bytes {
    event_line(
        "ERROR",
        &serde_json::to_vec(&err.to_json()).unwrap_or_default(),
    )
}

fn change_line(
    rt: &ResourceType,
    kind: ChangeType,
    obj: &Stored,
    as_table: Option<&Option<String>>,
) -> Bytes {
    let name = match kind {
        ChangeType::Added => "ADDED",
        ChangeType::Modified => "MODIFIED",
        ChangeType::Deleted => "DELETED",
    };
    match as_table {
        Some(include) => {
            let view = crate::state::view(rt, &obj.value);
            let t = table::table(rt, &[view], Some(obj.rv.to_string()), include.as_deref());
            event_line(name, &serde_json::to_vec(&t).unwrap_or_default())
        }
        None => event_line(name, &render(rt, obj)),
    }
}

pub fn serve(
    ctx: &AppContext,
    rt: Arc<ResourceType>,
    filter: Filter,
    query: &Query,
    as_table: Option<Option<String>>,
) -> Response {
    let timeout = match query.get("timeoutSeconds").filter(|s| !s.is_empty()) {
        Some(t) => match t.parse::<u64>() {
            Ok(t) => Duration::from_secs(t.min(MAX_TIMEOUT_SECS)),
            Err(_) => {
                return ApiError::bad_request(format!("timeoutSeconds: Invalid value: \"{t}\""))
                    .into_response();
            }
        },
        None => Duration::from_secs(1800),
    };
    let bookmarks = query.flag("allowWatchBookmarks");
    let send_initial = query.flag("sendInitialEvents");
    if send_initial && !bookmarks {
        return ApiError::invalid("ListOptions", "", "allowWatchBookmarks: Required value: allowWatchBookmarks must be set to true when sendInitialEvents is set")
            .into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    // Subscribe before reading the start point so no change between the two is missed.
    let mut changes = ctx.state.subscribe();
    let mut dropped = ctx.faults.watch_epoch();
    let start = ctx
        .state
        .watch_start(&rt, &filter, query.get("resourceVersion"), send_initial);
    let state = ctx.state.clone();
    let interval = ctx.bookmark_interval;
    tokio::spawn(async move {
        let start = match start {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(error_line(&e)).await;
                return;
            }
        };
        for obj in &start.initial {
            if tx
                .send(change_line(&rt, ChangeType::Added, obj, as_table.as_ref()))
                .await
                .is_err()
            {
                return;
            }
        }
        let mut cursor = start.cursor;
        if send_initial && tx.send(bookmark(&rt, cursor, true)).await.is_err() {
            return;
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            let result = state.read(|inner| inner.changes_after(&rt.storage, cursor, &filter));
            match result {
                Ok((events, next)) => {
                    for (kind, obj) in events {
                        if tx
                            .send(change_line(&rt, kind, &obj, as_table.as_ref()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    cursor = next;
                }
                Err(e) => {
                    let _ = tx.send(error_line(&e)).await;
                    return;
                }
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = ticker.tick() => {
                    if bookmarks && tx.send(bookmark(&rt, cursor, false)).await.is_err() {
                        return;
                    }
                }
                _ = dropped.changed() => return,
                _ = &mut deadline => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream =
        tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
