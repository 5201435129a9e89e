//! Per-kind sync health and the store breaker's state, shared between the pipeline (which writes
//! it) and the REST API, metrics and `/readyz` (which read it).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::Serialize;

/// Where a kind's mirror stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SyncState {
    /// Registered, watcher not started yet.
    Pending,
    /// The cluster does not serve this kind (e.g. its CRD is not installed); retried.
    NotServed,
    /// Initial list or relist in progress.
    Syncing,
    /// Initial list done; following the watch.
    Synced,
    /// Errors: watch failing, store unavailable or events dropped; see `last_error`.
    Degraded,
}

/// What `/api/v1/status` reports for one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindHealth {
    /// [`crate::mirror::kind::KindSpec::id`].
    pub kind: String,
    pub plural: String,
    pub state: SyncState,
    /// Objects currently stored.
    pub objects: u64,
    /// RFC 3339 time of the last watch event applied.
    pub last_event_time: Option<String>,
    /// Highest source resourceVersion seen (the watch bookmark).
    pub resource_version: Option<String>,
    /// Watch reconnects (stream ended or failed and was restarted).
    pub reconnects: u64,
    /// Full relists (initial list included).
    pub relists: u64,
    /// Objects that could not be decoded and were skipped.
    pub malformed: u64,
    pub last_error: Option<String>,
    /// Whether the initial sync has completed at least once.
    pub initial_sync_done: bool,
}

impl KindHealth {
    pub fn new(kind: String, plural: String) -> Self {
        Self {
            kind,
            plural,
            state: SyncState::Pending,
            objects: 0,
            last_event_time: None,
            resource_version: None,
            reconnects: 0,
            relists: 0,
            malformed: 0,
            last_error: None,
            initial_sync_done: false,
        }
    }
}

/// Circuit breaker states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    /// Metric value: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

/// The store breaker as `/api/v1/status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerHealth {
    pub state: BreakerState,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// Operations waiting for the store while the breaker is not closed.
    pub buffered: usize,
}

/// Shared, cheaply cloned health board.
#[derive(Clone)]
pub struct MirrorHealth {
    inner: Arc<RwLock<Board>>,
}

struct Board {
    kinds: BTreeMap<String, KindHealth>,
    breaker: BreakerHealth,
    backend: &'static str,
}

impl MirrorHealth {
    pub fn new(backend: &'static str) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Board {
                kinds: BTreeMap::new(),
                breaker: BreakerHealth {
                    state: BreakerState::Closed,
                    consecutive_failures: 0,
                    last_error: None,
                    buffered: 0,
                },
                backend,
            })),
        }
    }

    pub fn backend(&self) -> &'static str {
        self.inner.read().backend
    }

    /// Changes one kind's entry, creating it if needed.
    pub fn update(&self, kind: &str, plural: &str, f: impl FnOnce(&mut KindHealth)) {
        let mut board = self.inner.write();
        let entry = board
            .kinds
            .entry(kind.to_string())
            .or_insert_with(|| KindHealth::new(kind.into(), plural.into()));
        f(entry);
    }

    pub fn remove(&self, kind: &str) {
        self.inner.write().kinds.remove(kind);
    }

    pub fn kind(&self, kind: &str) -> Option<KindHealth> {
        self.inner.read().kinds.get(kind).cloned()
    }

    pub fn kinds(&self) -> Vec<KindHealth> {
        self.inner.read().kinds.values().cloned().collect()
    }

    pub fn set_breaker(&self, breaker: BreakerHealth) {
        self.inner.write().breaker = breaker;
    }

    pub fn breaker(&self) -> BreakerHealth {
        self.inner.read().breaker.clone()
    }

    /// True once every registered kind that the cluster serves finished its initial sync.
    pub fn all_synced(&self) -> bool {
        self.inner
            .read()
            .kinds
            .values()
            .all(|k| k.initial_sync_done || k.state == SyncState::NotServed)
    }
}
