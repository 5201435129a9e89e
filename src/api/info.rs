//! Descriptive endpoints: `GET /api/v1/resources` (the registered kinds), `GET /api/v1/health`
//! (liveness) and `GET /api/v1/status` (store, breaker and per-kind sync health).

use axum::Json;
use axum::extract::State;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};

use super::ApiState;
use super::error::ApiError;
use crate::mirror::health::{BreakerHealth, KindHealth, SyncState};
use crate::mirror::kind::{ColumnSpec, KindSpec};
use crate::store::{Revision, StoreError};

/// One registered kind as `/api/v1/resources` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    /// [`KindSpec::id`].
    pub id: String,
    pub group: String,
    pub version: String,
    pub api_version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    pub columns: Vec<ColumnSpec>,
    /// Objects in the store (0 while the store has not registered the kind yet).
    pub objects: usize,
    pub state: SyncState,
}

/// One kind's line of `/api/v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindStatus {
    /// [`KindSpec::id`].
    pub id: String,
    pub kind: String,
    pub plural: String,
    pub state: SyncState,
    pub objects: u64,
    pub last_event_time: Option<String>,
    /// Seconds since the last watch event was applied.
    pub last_event_age_seconds: Option<i64>,
    /// The watch's resourceVersion watermark.
    pub resource_version: Option<String>,
    pub reconnects: u64,
    pub relists: u64,
    pub malformed: u64,
    pub last_error: Option<String>,
    pub initial_sync_done: bool,
}

/// The store's part of `/api/v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    pub backend: &'static str,
    /// Current revision; `None` when the store cannot be read (see `error`).
    pub revision: Option<Revision>,
    pub error: Option<String>,
    pub breaker: BreakerHealth,
}

/// Seconds from the RFC 3339 time `at` to `now`; `None` when `at` does not parse.
pub fn age_seconds(at: &str, now: Timestamp) -> Option<i64> {
    let at: Timestamp = at.parse().ok()?;
    Some(now.duration_since(at).as_secs())
}

/// A kind's status from its health entry (a kind without one is still pending).
pub fn kind_status(spec: &KindSpec, health: Option<KindHealth>, now: Timestamp) -> KindStatus {
    let health = health.unwrap_or_else(|| KindHealth::new(spec.id(), spec.plural.clone()));
    KindStatus {
        id: spec.id(),
        kind: spec.kind.clone(),
        plural: spec.plural.clone(),
        state: health.state,
        objects: health.objects,
        last_event_age_seconds: health
            .last_event_time
            .as_deref()
            .and_then(|at| age_seconds(at, now)),
        last_event_time: health.last_event_time,
        resource_version: health.resource_version,
        reconnects: health.reconnects,
        relists: health.relists,
        malformed: health.malformed,
        last_error: health.last_error,
        initial_sync_done: health.initial_sync_done,
    }
}

/// `GET /api/v1/health`: the API answers.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /api/v1/resources`.
pub async fn resources(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let kinds = state.kinds.borrow().clone();
    let mut items = Vec::with_capacity(kinds.all().len());
    for spec in kinds.all() {
        let objects = match state.store.count(spec).await {
            Ok(count) => count,
            Err(StoreError::UnknownKind(_)) => 0,
            Err(err) => return Err(err.into()),
        };
        items.push(ResourceInfo {
            id: spec.id(),
            group: spec.group.clone(),
            version: spec.version.clone(),
            api_version: spec.api_version(),
            kind: spec.kind.clone(),
            plural: spec.plural.clone(),
            namespaced: spec.namespaced,
            columns: spec.columns.clone(),
            objects,
            state: state
                .health
                .kind(&spec.id())
                .map_or(SyncState::Pending, |h| h.state),
        });
    }
    Ok(Json(
        json!({"kind": "ResourceList", "total": items.len(), "items": items}),
    ))
}

/// `GET /api/v1/status`: always 200; a store that cannot be read shows in `store.error`.
pub async fn status(State(state): State<ApiState>) -> Json<Value> {
    let (revision, error) = match state.store.revision().await {
        Ok(revision) => (Some(revision), None),
        Err(err) => (None, Some(err.to_string())),
    };
    let store = StoreStatus {
        backend: state.store.backend(),
        revision,
        error,
        breaker: state.health.breaker(),
    };
    let now = Timestamp::now();
    let kinds = state.kinds.borrow().clone();
    let kinds: Vec<KindStatus> = kinds
        .all()
        .map(|spec| kind_status(spec, state.health.kind(&spec.id()), now))
        .collect();
    Json(json!({
        "store": store,
        "synced": state.health.all_synced(),
        "kinds": kinds,
        "cache": state.cache.status(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> KindSpec {
        KindSpec {
            group: String::new(),
            version: "v1".into(),
            kind: "Pod".into(),
            plural: "pods".into(),
            namespaced: true,
            prune: vec![],
            keep_secret_data: false,
            columns: vec![],
        }
    }

    fn now() -> Timestamp {
        "2025-01-01T00:01:00Z".parse().expect("timestamp")
    }

    #[test]
    fn ages_in_seconds() {
        assert_eq!(age_seconds("2025-01-01T00:00:00Z", now()), Some(60));
        assert_eq!(age_seconds("2025-01-01T00:00:30.5+00:00", now()), Some(29));
        assert_eq!(age_seconds("yesterday", now()), None);
    }

    #[test]
    fn kind_status_copies_health() {
        let mut health = KindHealth::new("core/v1/Pod".into(), "pods".into());
        health.state = SyncState::Synced;
        health.objects = 7;
        health.last_event_time = Some("2025-01-01T00:00:50Z".into());
        health.resource_version = Some("1234".into());
        health.reconnects = 2;
        health.relists = 1;
        health.malformed = 3;
        health.last_error = Some("watch failed".into());
        let status = kind_status(&pods(), Some(health), now());
        assert_eq!(status.state, SyncState::Synced);
        assert_eq!(
            (
                status.objects,
                status.reconnects,
                status.relists,
                status.malformed
            ),
            (7, 2, 1, 3)
        );
        assert_eq!(status.last_event_age_seconds, Some(10));
        assert_eq!(status.resource_version.as_deref(), Some("1234"));
        assert_eq!(status.last_error.as_deref(), Some("watch failed"));
    }

    #[test]
    fn kinds_without_health_are_pending() {
        let status = kind_status(&pods(), None, now());
        assert_eq!(status.state, SyncState::Pending);
        assert_eq!(status.id, "core/v1/Pod");
        assert_eq!(status.last_event_age_seconds, None);
    }
}
