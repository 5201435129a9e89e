//! The REST API over the store: kinds, object lists and lookups, stats, status and the change
//! feed, under `/api/v1`. Every kind is served by the same generic routes; `{plural}` resolves
//! through the registry's current [`Kinds`](crate::mirror::registry::Kinds) snapshot.
//!
//! Build the router with [`router`] and merge it into the server with
//! [`ServerBuilder::merge`](crate::server::ServerBuilder::merge).

mod cached;
mod error;
mod feed;
mod info;
mod objects;
mod openapi;
mod params;
mod stats;
mod token;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{MethodRouter, get};

pub use cached::{CACHE_HEADER, STALE_HEADER};
pub use error::ApiError;
pub use feed::{DEFAULT_BOOKMARK_INTERVAL, FeedGauge};
pub use params::{DEFAULT_LIMIT, MAX_LIMIT};

use crate::cache::Cache;
use crate::mirror::health::MirrorHealth;
use crate::mirror::kind::KindSpec;
use crate::mirror::registry::KindsReceiver;
use crate::shutdown::Shutdown;
use crate::store::Store;

/// What the handlers share. Cloned for every request, so it is one reference count: cloning
/// each of its parts cost a contended atomic apiece.
#[derive(Clone)]
pub struct ApiState(Arc<Shared>);

/// The parts of [`ApiState`], read through it (`state.store`).
#[derive(Clone)]
pub struct Shared {
    /// Where mirrored objects are read from.
    pub store: Arc<dyn Store>,
    /// The registry's snapshots; `{plural}` resolves against the current one.
    pub kinds: KindsReceiver,
    /// Sync and breaker health for `/api/v1/status` and `/api/v1/resources`.
    pub health: MirrorHealth,
    /// Quiet time after which the change feed sends a `BOOKMARK`.
    pub bookmark_interval: Duration,
    /// Ends every change feed when triggered, so graceful shutdown is not held up by them.
    pub shutdown: Shutdown,
    /// Change feeds currently streaming.
    pub feeds: FeedGauge,
    /// The read cache in front of the store (disabled unless [`ApiState::with_cache`]).
    pub cache: Cache,
}

impl std::ops::Deref for ApiState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl ApiState {
    /// Bookmarks every [`DEFAULT_BOOKMARK_INTERVAL`]; feeds end only with their clients until
    /// [`ApiState::with_shutdown`] is used.
    pub fn new(store: Arc<dyn Store>, kinds: KindsReceiver, health: MirrorHealth) -> Self {
        Self(Arc::new(Shared {
            store,
            kinds,
            health,
            bookmark_interval: DEFAULT_BOOKMARK_INTERVAL,
            shutdown: Shutdown::new(),
            feeds: FeedGauge::default(),
            cache: Cache::disabled(),
        }))
    }

    /// The parts, to change while building (copied first if already shared).
    fn parts(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }

    /// Serve objects, lists, stats and resources through `cache`.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.parts().cache = cache;
        self
    }

    pub fn with_bookmark_interval(mut self, interval: Duration) -> Self {
        self.parts().bookmark_interval = interval;
        self
    }

    /// Pass the server's shutdown signal so open change feeds end when it fires.
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.parts().shutdown = shutdown;
        self
    }

    /// The kind `{plural}` names in the current snapshot.
    fn kind(&self, plural: &str) -> Result<Arc<KindSpec>, ApiError> {
        self.kinds
            .borrow()
            .by_plural(plural)
            .cloned()
            .ok_or_else(|| ApiError::UnknownResource(plural.to_string()))
    }
}

/// Every route with its handler; [`router`] serves exactly these and the OpenAPI document's
/// test checks each is described. Static segments win over `{plural}` in axum's matcher.
fn routes() -> Vec<(&'static str, MethodRouter<ApiState>)> {
    vec![
        ("/api/v1/resources", get(cached::resources)),
        ("/api/v1/health", get(info::health)),
        ("/api/v1/status", get(info::status)),
        ("/api/v1/openapi.json", get(openapi::serve)),
        ("/api/v1/stats/overview", get(cached::overview)),
        ("/api/v1/{plural}", get(objects::list)),
        ("/api/v1/{plural}/{uid}", get(cached::by_uid)),
        (
            "/api/v1/namespace/{namespace}/{plural}",
            get(objects::list_in_namespace),
        ),
        (
            "/api/v1/namespaces/{namespace}/{plural}/{name}",
            get(cached::by_name),
        ),
    ]
}

/// The REST API's routes with `state` applied, ready for [`crate::server::ServerBuilder::merge`].
pub fn router(state: ApiState) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (path, route)| {
            router.route(path, route)
        })
        .with_state(state)
}
