//! The change feed behind `GET /api/v1/{plural}?watch=true`: replays retained changes after
//! `since` (or `Last-Event-ID`), then follows new ones, as NDJSON or Server-Sent Events, with a
//! `BOOKMARK` after each quiet interval. Each feed is one stream polled by the connection itself
//! (no spawned task): it ends when the client goes away, the store closes or the API shuts down.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::ApiState;
use super::error::ApiError;
use super::params::{Filters, WatchRequest};
use crate::mirror::kind::KindSpec;
use crate::shutdown::Shutdown;
use crate::store::{Change, ChangeType, Revision, Store, StoreError};

/// Changes read from the store per call.
pub const FEED_BATCH: usize = 500;
/// Default quiet time after which a `BOOKMARK` is sent.
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);
/// Content type of the NDJSON feed.
pub const NDJSON: &str = "application/x-ndjson";
/// Content type of the SSE feed.
pub const EVENT_STREAM: &str = "text/event-stream";
/// The SSE resume header.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// How feed events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One JSON document per line.
    Ndjson,
    /// `id:` / `event:` / `data:` blocks.
    Sse,
}

impl Framing {
    /// SSE when the client accepts `text/event-stream`, NDJSON otherwise.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let sse = headers
            .get_all(header::ACCEPT)
            .iter()
            .any(|value| value.to_str().is_ok_and(|v| v.contains(EVENT_STREAM)));
        if sse { Self::Sse } else { Self::Ndjson }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Ndjson => NDJSON,
            Self::Sse => EVENT_STREAM,
        }
    }
}

/// `Last-Event-ID` as a revision; it takes precedence over `since` (a reconnecting
/// `EventSource` repeats the original URL).
pub fn last_event_id(headers: &HeaderMap) -> Result<Option<Revision>, ApiError> {
    let Some(value) = headers.get(LAST_EVENT_ID) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    text.parse().map(Some).map_err(|_| {
        ApiError::bad(
            "Last-Event-ID",
            format!("Last-Event-ID must be a store revision, not \"{text}\""),
        )
    })
}

/// One line of the feed.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    Change(&'a Change),
    /// Nothing of interest up to `revision`; resume from here.
    Bookmark(Revision),
    /// The feed cannot go on; the client resumes (or relists on `Expired`).
    Error(&'a ApiError, Revision),
}

#[derive(Serialize)]
struct ChangeLine<'a> {
    #[serde(rename = "type")]
    change: ChangeType,
    revision: Revision,
    object: &'a Value,
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::Change(change) => match change.change {
                ChangeType::Added => "ADDED",
                ChangeType::Modified => "MODIFIED",
                ChangeType::Deleted => "DELETED",
            },
            Self::Bookmark(_) => "BOOKMARK",
            Self::Error(..) => "ERROR",
        }
    }

    fn json(&self) -> Vec<u8> {
        let value = match self {
            Self::Change(change) => {
                let line = ChangeLine {
                    change: change.change,
                    revision: change.revision,
                    object: &change.object.object,
                };
                return serde_json::to_vec(&line).unwrap_or_default();
            }
            Self::Bookmark(revision) => json!({"type": "BOOKMARK", "revision": revision}),
            Self::Error(error, revision) => {
                let mut body = error.body();
                if let Value::Object(map) = &mut body {
                    map.insert("type".into(), json!("ERROR"));
                    map.insert("revision".into(), json!(revision));
                }
                body
            }
        };
        serde_json::to_vec(&value).unwrap_or_default()
    }
}

/// Encodes one event. NDJSON: the JSON and a newline. SSE: `id` (not for errors, so a
/// reconnect resumes after the last delivered revision), `event` and `data`.
pub fn frame(framing: Framing, event: &Event<'_>) -> Bytes {
    let json = event.json();
    let mut out = Vec::with_capacity(json.len() + 48);
    match framing {
        Framing::Ndjson => {
            out.extend_from_slice(&json);
            out.push(b'\n');
        }
        Framing::Sse => {
            match event {
                Event::Change(change) => {
                    out.extend_from_slice(format!("id: {}\n", change.revision).as_bytes())
                }
                Event::Bookmark(revision) => {
                    out.extend_from_slice(format!("id: {revision}\n").as_bytes())
                }
                Event::Error(..) => {}
            }
            out.extend_from_slice(format!("event: {}\ndata: ", event.name()).as_bytes());
            out.extend_from_slice(&json);
            out.extend_from_slice(b"\n\n");
        }
    }
    Bytes::from(out)
}

/// Counts feeds currently streaming (clones share the count).
#[derive(Debug, Clone)]
pub struct FeedGauge {
    active: Arc<watch::Sender<usize>>,
}

impl Default for FeedGauge {
    fn default() -> Self {
        Self {
            active: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl FeedGauge {
    pub fn current(&self) -> usize {
        *self.active.borrow()
    }

    /// Completes once exactly `count` feeds are streaming.
    pub async fn wait_for(&self, count: usize) {
        let mut receiver = self.active.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = receiver.wait_for(|active| *active == count).await;
    }

    fn enter(&self) -> FeedGuard {
        self.active.send_modify(|active| *active += 1);
        FeedGuard(self.clone())
    }
}

/// Decrements the gauge when its feed is dropped.
#[derive(Debug)]
struct FeedGuard(FeedGauge);

impl Drop for FeedGuard {
    fn drop(&mut self) {
        self.0
            .active
            .send_modify(|active| *active = active.saturating_sub(1));
    }
}

/// Starts a feed: answers 410 (before streaming) when `since` is no longer retained.
pub async fn watch(
    state: ApiState,
    kind: KindSpec,
    request: WatchRequest,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let framing = Framing::from_headers(headers);
    let since = last_event_id(headers)?.or(request.since);
    // Subscribe before reading so no wake-up between the first read and the wait is lost.
    let wake = state.store.subscribe();
    let current = state.store.revision().await?;
    let cursor = since.unwrap_or(current);
    if cursor > current {
        return Err(ApiError::Expired {
            message: format!(
                "revision {cursor} is ahead of the store (current revision {current}); the store was reset, relist"
            ),
            oldest: current,
        });
    }
    let first = state.store.changes(Some(&kind), cursor, FEED_BATCH).await?;
    let mut feed = Feed {
        store: state.store.clone(),
        kind,
        filters: request.filters,
        framing,
        cursor,
        pending: VecDeque::new(),
        more: false,
        wake,
        interval: state.bookmark_interval,
        shutdown: state.shutdown.clone(),
        finished: false,
        _active: state.feeds.enter(),
    };
    feed.accept(first);
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        let frame = feed.next_frame().await?;
        Some((Ok::<Bytes, Infallible>(frame), feed))
    });
    let headers = [
        (header::CONTENT_TYPE, framing.content_type()),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// One client's position in the change history.
struct Feed {
    store: Arc<dyn Store>,
    kind: KindSpec,
    filters: Filters,
    framing: Framing,
    /// Every change of the kind up to here has been sent or filtered out.
    cursor: Revision,
    pending: VecDeque<Change>,
    /// The last read was a full batch: read again without waiting.
    more: bool,
    wake: watch::Receiver<Revision>,
    interval: Duration,
    shutdown: Shutdown,
    finished: bool,
    _active: FeedGuard,
}

impl Feed {
    /// The next frame to send, or `None` when the feed is over.
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.finished || self.shutdown.is_triggered() {
            return None;
        }
        let deadline = Instant::now() + self.interval;
        loop {
            while let Some(change) = self.pending.pop_front() {
                self.cursor = change.revision;
                if self.filters.matches(&change.object) {
                    return Some(frame(self.framing, &Event::Change(&change)));
                }
            }
            let step = if self.more {
                self.fetch().await.map(|()| None)
            } else {
                tokio::select! {
                    changed = self.wake.changed() => match changed {
                        Ok(()) => self.fetch().await.map(|()| None),
                        // The store is gone: nothing more will come.
                        Err(_) => return None,
                    },
                    () = tokio::time::sleep_until(deadline) => self.bookmark().await,
                    () = self.shutdown.wait() => return None,
                }
            };
            match step {
                Ok(Some(revision)) => return Some(frame(self.framing, &Event::Bookmark(revision))),
                Ok(None) => {}
                Err(err) => {
                    self.finished = true;
                    return Some(frame(
                        self.framing,
                        &Event::Error(&ApiError::from(err), self.cursor),
                    ));
                }
            }
        }
    }

    fn accept(&mut self, batch: Vec<Change>) {
        self.more = batch.len() >= FEED_BATCH;
        let cursor = self.cursor;
        self.pending
            .extend(batch.into_iter().filter(|change| change.revision > cursor));
        // A store answering only old revisions would otherwise be asked again forever.
        self.more &= !self.pending.is_empty();
    }

    async fn fetch(&mut self) -> Result<(), StoreError> {
        let batch = self
            .store
            .changes(Some(&self.kind), self.cursor, FEED_BATCH)
            .await?;
        self.accept(batch);
        Ok(())
    }

    /// After a quiet interval: the revision to announce, or `None` when changes turned up.
    /// The revision is read before the changes, so no change of this kind at or below it is
    /// unsent when the read finds none.
    async fn bookmark(&mut self) -> Result<Option<Revision>, StoreError> {
        let revision = self.store.revision().await?;
        self.fetch().await?;
        if !self.pending.is_empty() {
            return Ok(None);
        }
        self.cursor = self.cursor.max(revision);
        Ok(Some(self.cursor))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::http::HeaderValue;

    use super::*;
    use crate::store::MirrorObject;

    fn change(revision: Revision, change: ChangeType) -> Change {
        Change {
            revision,
            kind: "core/v1/Pod".into(),
            change,
            object: MirrorObject {
                namespace: "shop".into(),
                name: "web".into(),
                uid: "u1".into(),
                resource_version: "7".into(),
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                created_at: None,
                columns: BTreeMap::new(),
                object: json!({"metadata": {"name": "web", "note": "a\nb"}}).into(),
            },
        }
    }

    #[test]
    fn ndjson_lines() {
        let added = change(4, ChangeType::Added);
        let line = frame(Framing::Ndjson, &Event::Change(&added));
        assert_eq!(
            std::str::from_utf8(&line).expect("utf8"),
            "{\"type\":\"ADDED\",\"revision\":4,\"object\":{\"metadata\":{\"name\":\"web\",\"note\":\"a\\nb\"}}}\n"
        );
        assert_eq!(
            &frame(Framing::Ndjson, &Event::Bookmark(9))[..],
            b"{\"type\":\"BOOKMARK\",\"revision\":9}\n"
        );
        let gone = ApiError::Expired {
            message: "gone".into(),
            oldest: 5,
        };
        let error: Value =
            serde_json::from_slice(&frame(Framing::Ndjson, &Event::Error(&gone, 3))).expect("json");
        assert_eq!(
            error,
            json!({"error": "gone", "reason": "Expired", "oldestRevision": 5, "type": "ERROR", "revision": 3})
        );
    }

    #[test]
    fn sse_blocks() {
        let deleted = change(12, ChangeType::Deleted);
        let block = String::from_utf8(frame(Framing::Sse, &Event::Change(&deleted)).to_vec())
            .expect("utf8");
        let (head, data) = block.split_once("data: ").expect("data field");
        assert_eq!(head, "id: 12\nevent: DELETED\n");
        assert!(
            data.ends_with("\n\n") && !data.trim_end().contains('\n'),
            "{data:?}"
        );
        let data: Value = serde_json::from_str(data.trim_end()).expect("json");
        assert_eq!(data["type"], "DELETED");

        let bookmark = frame(Framing::Sse, &Event::Bookmark(20));
        assert_eq!(
            &bookmark[..],
            b"id: 20\nevent: BOOKMARK\ndata: {\"type\":\"BOOKMARK\",\"revision\":20}\n\n"
        );
        let down = ApiError::Unavailable("down".into());
        let error =
            String::from_utf8(frame(Framing::Sse, &Event::Error(&down, 3)).to_vec()).expect("utf8");
        assert!(error.starts_with("event: ERROR\ndata: "), "{error}");
    }

    #[test]
    fn framing_and_last_event_id_from_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(Framing::from_headers(&headers), Framing::Ndjson);
        assert_eq!(last_event_id(&headers), Ok(None));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(LAST_EVENT_ID, HeaderValue::from_static(" 17 "));
        assert_eq!(Framing::from_headers(&headers), Framing::Sse);
        assert_eq!(last_event_id(&headers), Ok(Some(17)));
        headers.insert(LAST_EVENT_ID, HeaderValue::from_static("x"));
        assert!(
            matches!(last_event_id(&headers), Err(ApiError::BadParameter { parameter, .. }) if parameter == "Last-Event-ID")
        );
    }

    #[test]
    fn gauge_counts_live_feeds() {
        let gauge = FeedGauge::default();
        let first = gauge.enter();
        let second = gauge.enter();
        assert_eq!(gauge.current(), 2);
        drop(first);
        drop(second);
        assert_eq!(gauge.current(), 0);
    }
}
