//! The REST API's error type and its JSON form: bad input answers 400 naming the parameter,
//! unknown things 404, expired revisions 410, store trouble 503 — never 500 for a known category.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::store::{Revision, StoreError};

/// Why a request failed; each variant has one status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A query parameter, path segment or header the client sent is invalid (400).
    #[error("{message}")]
    BadParameter { parameter: String, message: String },
    /// `{plural}` names no mirrored kind (404).
    #[error("unknown resource type \"{0}\"")]
    UnknownResource(String),
    /// The addressed object does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The requested change-feed revision is no longer retained (410); the client must relist.
    #[error("{message}")]
    Expired { message: String, oldest: Revision },
    /// The store cannot answer right now (503).
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// A 400 naming `parameter`.
    pub fn bad(parameter: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadParameter {
            parameter: parameter.into(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadParameter { .. } => StatusCode::BAD_REQUEST,
            Self::UnknownResource(_) | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Expired { .. } => StatusCode::GONE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The JSON body: always `error`, plus `parameter`, `reason` or `oldestRevision` where they apply.
    pub fn body(&self) -> serde_json::Value {
        let error = self.to_string();
        match self {
            Self::BadParameter { parameter, .. } => json!({"error": error, "parameter": parameter}),
            Self::UnknownResource(_) => json!({"error": error, "parameter": "plural"}),
            Self::NotFound(_) => json!({"error": error, "reason": "NotFound"}),
            Self::Expired { oldest, .. } => {
                json!({"error": error, "reason": "Expired", "oldestRevision": oldest})
            }
            Self::Unavailable(_) => json!({"error": error, "reason": "Unavailable"}),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Expired { requested, oldest } => Self::Expired {
                message: format!(
                    "revision {requested} is no longer retained (oldest available: {oldest}); relist and watch from the list's revision"
                ),
                oldest,
            },
            StoreError::UnknownColumn { kind, column } => Self::bad(
                column.clone(),
                format!("kind {kind} has no column \"{column}\""),
            ),
            StoreError::UnknownKind(kind) => Self::Unavailable(format!(
                "kind {kind} is not mirrored into the store yet; retry shortly"
            )),
            other @ (StoreError::Unavailable { .. } | StoreError::Rejected { .. }) => {
                Self::Unavailable(other.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self.body())).into_response()
    }
}

/// Query string pairs in order; an undecodable query string is a 400 naming `query`.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|Query(pairs)| Self(pairs))
            .map_err(|err: QueryRejection| ApiError::bad("query", err.body_text()))
    }
}

/// Path parameters whose rejection is a JSON 400 rather than axum's plain text.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|err: PathRejection| ApiError::bad("path", err.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_client_facing_statuses() {
        let expired: ApiError = StoreError::Expired {
            requested: 3,
            oldest: 9,
        }
        .into();
        assert_eq!(expired.status(), StatusCode::GONE);
        assert_eq!(expired.body()["oldestRevision"], 9);
        assert_eq!(expired.body()["reason"], "Expired");

        let column: ApiError = StoreError::UnknownColumn {
            kind: "core/v1/Pod".into(),
            column: "x".into(),
        }
        .into();
        assert_eq!(column.status(), StatusCode::BAD_REQUEST);
        assert_eq!(column.body()["parameter"], "x");

        let down: ApiError = StoreError::Unavailable {
            message: "connection refused".into(),
            source: None,
        }
        .into();
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(down.to_string().contains("connection refused"));

        let unknown: ApiError = StoreError::UnknownKind("core/v1/Pod".into()).into();
        assert_eq!(unknown.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn unknown_resource_names_the_plural() {
        let err = ApiError::UnknownResource("foo".into());
        assert_eq!(err.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            err.body(),
            json!({"error": "unknown resource type \"foo\"", "parameter": "plural"})
        );
    }
}
