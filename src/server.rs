//! Stowage's own HTTP server: `/healthz`, `/readyz`, `/metrics`, and routes later subsystems add.
//!
//! Build the router with [`ServerBuilder`]: it starts with the built-in routes, takes more with
//! [`ServerBuilder::merge`], and [`ServerBuilder::build`] wraps everything in the request metrics
//! middleware. Serve it with [`serve`].

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Errors from binding or serving HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound (in use, not permitted, not local).
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("HTTP server failed")]
    Serve {
        #[source]
        source: std::io::Error,
    },
}

/// Readiness shared between the parts of Stowage and `/readyz`.
///
/// Each part registers a named check that starts not ready; `/readyz` answers 200 only when
/// every check is ready. Clones share state.
#[derive(Clone, Default)]
pub struct Health {
    checks: Arc<RwLock<BTreeMap<String, Option<String>>>>,
}

impl Health {
    /// No checks yet: ready until something registers one.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `check` not ready, with the reason `/readyz` reports.
    pub fn set_not_ready(&self, check: &str, reason: impl Into<String>) {
        self.write(check, Some(reason.into()));
    }

    /// Marks `check` ready.
    pub fn set_ready(&self, check: &str) {
        self.write(check, None);
    }

    /// `Ok` when every check is ready, otherwise each unready check with its reason.
    pub fn readiness(&self) -> Result<(), BTreeMap<String, String>> {
        let checks = self.checks.read().unwrap_or_else(PoisonError::into_inner);
        let waiting: BTreeMap<String, String> = checks
            .iter()
            .filter_map(|(name, reason)| {
                reason.as_ref().map(|reason| (name.clone(), reason.clone()))
            })
            .collect();
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(waiting)
        }
    }

    fn write(&self, check: &str, state: Option<String>) {
        self.checks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(check.to_owned(), state);
    }
}

/// Assembles Stowage's router from the built-in routes and routers that later subsystems add.
pub struct ServerBuilder {
    routes: Router,
    metrics: Metrics,
}

impl ServerBuilder {
    /// Starts with `/healthz`, `/readyz` (from `health`) and `/metrics` (from `metrics`).
    pub fn new(metrics: Metrics, health: Health) -> Self {
        let routes = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz).with_state(health))
            .route("/metrics", get(metrics_text).with_state(metrics.clone()));
        Self { routes, metrics }
    }

    /// Adds a subsystem's routes (state already applied); paths must not clash with existing ones.
    pub fn merge(mut self, routes: Router) -> Self {
        self.routes = self.routes.merge(routes);
        self
    }

    /// The finished router: unknown paths answer 404 and every request is counted and timed.
    pub fn build(self) -> Router {
        self.routes
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(self.metrics, track_requests))
    }
}

/// Binds `addr`; port 0 lets the OS choose (read it back with `local_addr`).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServerError::Serve { source })
}

async fn readyz(State(health): State<Health>) -> Response {
    match health.readiness() {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(waiting) => {
            let reason = waiting
                .iter()
                .map(|(check, why)| format!("{check}: {why}"))
                .collect::<Vec<_>>()
                .join("; ");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not ready", "reason": reason, "checks": waiting})),
            )
                .into_response()
        }
    }
}

async fn metrics_text(State(metrics): State<Metrics>) -> Response {
    match metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot encode metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        "not found; Stowage serves /healthz, /readyz and /metrics\n",
    )
}

/// Counts and times every request, labelled by route template so label values stay bounded.
async fn track_requests(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe_http(
        &route,
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Standard methods by name; anything else as `OTHER` so clients cannot invent label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_is() {
        let health = Health::new();
        assert!(health.readiness().is_ok());
        health.set_not_ready("apiserver", "waiting");
        health.set_ready("store");
        assert_eq!(
            health.readiness(),
            Err(BTreeMap::from([(
                "apiserver".to_owned(),
                "waiting".to_owned()
            )]))
        );
        health.set_ready("apiserver");
        assert!(health.readiness().is_ok());
    }
}
