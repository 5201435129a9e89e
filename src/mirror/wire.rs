//! What the mirror reads off the wire: [`RawObject`], an object of any kind that always decodes,
//! and [`observed_client`], a client that reports each kind's list and watch requests so watch
//! reconnects (which kube-runtime's watcher performs silently) can be counted.
//!
//! Why not `DeserializeGuard<DynamicObject>`: `DynamicObject` only fails to decode when its
//! `metadata` is malformed, and `DeserializeGuard`'s fallback decodes that same `metadata` again,
//! so one object whose `metadata.labels` is a string fails the whole list page or watch stream.
//! `RawObject` keeps the JSON as it came and reads only the metadata the watcher needs (name,
//! namespace, resourceVersion, uid) leniently; [`crate::mirror::object`] then rejects the one
//! malformed object, and the rest of the kind keeps syncing.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::mirror::object::Parts;
use axum::http::{Request, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::client::Body;
use kube::core::{ApiResource, DynamicResourceScope};
use parking_lot::Mutex;
use serde::{Deserialize, Deserializer};

/// An object of any kind as it came from the API server, plus the metadata the watcher needs.
#[derive(Debug, Clone)]
pub struct RawObject {
    meta: ObjectMeta,
    /// The whole object as its members, read in one pass: the pipeline parses only what it needs.
    pub parts: Parts,
}

impl RawObject {
    pub fn new(parts: Parts) -> Self {
        let field = |name: &str| {
            let (_, raw) = parts.metadata()?.iter().find(|(key, _)| key == name)?;
            serde_json::from_str::<String>(raw.get()).ok()
        };
        let meta = ObjectMeta {
            name: field("name"),
            namespace: field("namespace"),
            resource_version: field("resourceVersion"),
            uid: field("uid"),
            ..ObjectMeta::default()
        };
        Self { meta, parts }
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Parts::deserialize(deserializer).map(Self::new)
    }
}

impl kube::Resource for RawObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

/// A request as the watcher issues it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A list; `continued` for the second and later pages.
    List {
        continued: bool,
    },
    /// A watch; `initial_events` when it is a streaming list (`sendInitialEvents=true`).
    Watch {
        initial_events: bool,
    },
    Other,
}

/// Classifies a GET by its query string (the watcher only issues GETs).
pub fn classify(query: Option<&str>) -> RequestKind {
    let mut watch = false;
    let mut continued = false;
    let mut initial_events = false;
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let on = !matches!(value, "false" | "0");
        match key {
            "watch" => watch = on,
            "continue" => continued = !value.is_empty(),
            "sendInitialEvents" => initial_events = on,
            _ => {}
        }
    }
    if watch {
        RequestKind::Watch { initial_events }
    } else {
        RequestKind::List { continued }
    }
}

/// Counts reconnects from the sequence of requests: a watch that does not directly follow a
/// (re)list resumes a stream that ended or failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectCounter {
    after_list: bool,
}

impl ReconnectCounter {
    /// Feeds one request; `true` when it is a reconnect.
    pub fn observe(&mut self, request: RequestKind) -> bool {
        match request {
            RequestKind::List { continued: false } => {
                self.after_list = true;
                false
            }
            RequestKind::Watch {
                initial_events: true,
            } => {
                self.after_list = false;
                false
            }
            RequestKind::Watch {
                initial_events: false,
            } => !std::mem::take(&mut self.after_list),
            RequestKind::List { continued: true } | RequestKind::Other => false,
        }
    }
}

/// Told about a kind's requests by [`observed_client`].
pub trait WatchObserver: Send + Sync + 'static {
    /// A watch started again without a relist.
    fn reconnected(&self);
    /// A watch request was answered with success: the stream is (again) established.
    fn watch_established(&self);
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, kube::Error>> + Send>>;

/// The service behind [`observed_client`].
#[derive(Clone)]
struct Observed {
    inner: kube::Client,
    counter: Arc<Mutex<ReconnectCounter>>,
    observer: Arc<dyn WatchObserver>,
}

impl tower::Service<Request<Body>> for Observed {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let kind = classify(request.uri().query());
        if self.counter.lock().observe(kind) {
            self.observer.reconnected();
        }
        let client = self.inner.clone();
        let observer = self.observer.clone();
        Box::pin(async move {
            let response = client.send(request).await?;
            if matches!(kind, RequestKind::Watch { .. }) && response.status().is_success() {
                observer.watch_established();
            }
            Ok(response)
        })
    }
}

/// A client for one kind's watcher that reports its requests to `observer`. Must be created
/// inside a Tokio runtime.
pub fn observed_client(client: &kube::Client, observer: Arc<dyn WatchObserver>) -> kube::Client {
    let service = Observed {
        inner: client.clone(),
        counter: Arc::new(Mutex::new(ReconnectCounter::default())),
        observer,
    };
    kube::Client::new(service, client.default_namespace().to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn requests_are_classified_by_query() {
        let cases = [
            (Some("limit=500"), RequestKind::List { continued: false }),
            (
                Some("limit=500&continue=abc"),
                RequestKind::List { continued: true },
            ),
            (
                Some("limit=500&continue="),
                RequestKind::List { continued: false },
            ),
            (
                Some("&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=12"),
                RequestKind::Watch {
                    initial_events: false,
                },
            ),
            (
                Some("&watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"),
                RequestKind::Watch {
                    initial_events: true,
                },
            ),
            (Some("watch=false"), RequestKind::List { continued: false }),
            (None, RequestKind::List { continued: false }),
        ];
        for (query, want) in cases {
            assert_eq!(classify(query), want, "{query:?}");
        }
    }

    #[test]
    fn reconnects_are_watches_that_do_not_follow_a_list() {
        use RequestKind::*;
        let list = List { continued: false };
        let page = List { continued: true };
        let watch = Watch {
            initial_events: false,
        };
        let streaming = Watch {
            initial_events: true,
        };
        let cases: &[(&str, Vec<RequestKind>, usize)] = &[
            ("paged list then watch", vec![list, page, watch], 0),
            ("stream ended twice", vec![list, watch, watch, watch], 2),
            ("410 relist", vec![list, watch, list, watch], 0),
            (
                "streaming list then resumes",
                vec![streaming, watch, watch],
                2,
            ),
            ("streaming relist", vec![streaming, streaming], 0),
        ];
        for (name, requests, want) in cases {
            let mut counter = ReconnectCounter::default();
            let got = requests.iter().filter(|r| counter.observe(**r)).count();
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn raw_objects_decode_even_with_malformed_metadata() -> Result<(), serde_json::Error> {
        let raw: RawObject = serde_json::from_str(
            r#"{"metadata": {"name": "bad", "namespace": "a", "resourceVersion": "7", "labels": "oops"}}"#,
        )?;
        let meta = kube::Resource::meta(&raw);
        assert_eq!(meta.name.as_deref(), Some("bad"));
        assert_eq!(meta.resource_version.as_deref(), Some("7"));
        assert!(raw.parts.metadata().is_some_and(|m| {
            m.iter()
                .any(|(k, v)| k == "labels" && v.get() == r#""oops""#)
        }));
        let event: kube::core::WatchEvent<RawObject> = serde_json::from_str(
            r#"{"type": "ADDED", "object": {"metadata": {"name": "in-event", "uid": "u"}}}"#,
        )?;
        let kube::core::WatchEvent::Added(raw) = event else {
            panic!("an ADDED event");
        };
        assert_eq!(kube::Resource::meta(&raw).uid.as_deref(), Some("u"));
        Ok(())
    }

    #[test]
    fn deserialize_guard_cannot_isolate_malformed_metadata() {
        // Why RawObject exists: the guard's fallback decodes the same metadata and fails too.
        let guarded = serde_json::from_value::<
            kube::core::DeserializeGuard<kube::core::DynamicObject>,
        >(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "bad", "labels": "oops"}
        }));
        assert!(guarded.is_err());
    }
}
