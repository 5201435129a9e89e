//! Prometheus metrics: one registry whose every metric is named `stowage_*`.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Prefix the registry puts in front of every metric name (`stowage_`).
pub const NAMESPACE: &str = "stowage";

/// Errors from creating, registering or encoding metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A metric could not be created or registered (bad name, duplicate).
    #[error("cannot register metric {name}")]
    Register {
        name: String,
        #[source]
        source: prometheus::Error,
    },
    /// The registry could not be rendered in the text format.
    #[error("cannot encode metrics")]
    Encode {
        #[source]
        source: prometheus::Error,
    },
}

/// Stowage's metrics. Cheap to clone; clones share the same registry and collectors.
///
/// Later subsystems create their collectors and add them with [`Metrics::register`]; the
/// registry's namespace gives them the `stowage_` prefix, so pass names without it.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    apiserver_up: IntGauge,
}

impl Metrics {
    /// A fresh registry with the built-in metrics: `stowage_build_info{version}` (always 1),
    /// `stowage_http_requests_total{route,method,code}`,
    /// `stowage_http_request_duration_seconds{route,method}` and `stowage_apiserver_up`.
    pub fn new() -> Result<Self, MetricsError> {
        let registry =
            Registry::new_custom(Some(NAMESPACE.to_owned()), None).map_err(|source| {
                MetricsError::Register {
                    name: NAMESPACE.to_owned(),
                    source,
                }
            })?;
        let metrics = Self {
            registry,
            http_requests: IntCounterVec::new(
                Opts::new(
                    "http_requests_total",
                    "HTTP requests served by Stowage, by route, method and status code.",
                ),
                &["route", "method", "code"],
            )
            .map_err(|source| register_error("http_requests_total", source))?,
            http_duration: HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "Time to answer HTTP requests, in seconds.",
                ),
                &["route", "method"],
            )
            .map_err(|source| register_error("http_request_duration_seconds", source))?,
            apiserver_up: IntGauge::new(
                "apiserver_up",
                "1 when the Kubernetes API server answered, 0 otherwise.",
            )
            .map_err(|source| register_error("apiserver_up", source))?,
        };
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "Stowage build information; always 1."),
            &["version"],
        )
        .map_err(|source| register_error("build_info", source))?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        metrics.register(Box::new(build_info))?;
        metrics.register(Box::new(metrics.http_requests.clone()))?;
        metrics.register(Box::new(metrics.http_duration.clone()))?;
        metrics.register(Box::new(metrics.apiserver_up.clone()))?;
        Ok(metrics)
    }

    /// Adds a collector to the registry; its name gets the `stowage_` prefix.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), MetricsError> {
        let name = collector
            .desc()
            .first()
            .map(|desc| desc.fq_name.clone())
            .unwrap_or_default();
        self.registry
            .register(collector)
            .map_err(|source| MetricsError::Register { name, source })
    }

    /// Adds several collectors, as [`Metrics::register`] does, stopping at the first failure.
    pub fn register_all(
        &self,
        collectors: Vec<Box<dyn prometheus::core::Collector>>,
    ) -> Result<(), MetricsError> {
        collectors
            .into_iter()
            .try_for_each(|collector| self.register(collector))
    }

    /// The underlying registry, for code that needs to gather directly.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one answered HTTP request.
    pub fn observe_http(&self, route: &str, method: &str, code: u16, elapsed: Duration) {
        let code = code.to_string();
        self.http_requests
            .with_label_values(&[route, method, code.as_str()])
            .inc();
        self.http_duration
            .with_label_values(&[route, method])
            .observe(elapsed.as_secs_f64());
    }

    /// Sets `stowage_apiserver_up`.
    pub fn set_apiserver_up(&self, up: bool) {
        self.apiserver_up.set(i64::from(up));
    }

    /// Everything in the registry, in the Prometheus text exposition format.
    pub fn encode(&self) -> Result<String, MetricsError> {
        let mut buffer = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .map_err(|source| MetricsError::Encode { source })?;
        String::from_utf8(buffer).map_err(|err| MetricsError::Encode {
            source: prometheus::Error::Msg(format!("metrics text is not UTF-8: {err}")),
        })
    }
}

/// Maps a failure to create the collector `name` (without the `stowage_` prefix) to an error
/// naming it with the prefix.
pub fn creation_error(name: &str) -> impl FnOnce(prometheus::Error) -> MetricsError + use<> {
    let name = format!("{NAMESPACE}_{name}");
    move |source| MetricsError::Register { name, source }
}

fn register_error(name: &str, source: prometheus::Error) -> MetricsError {
    MetricsError::Register {
        name: format!("{NAMESPACE}_{name}"),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_metrics_carry_the_prefix() -> Result<(), MetricsError> {
        let metrics = Metrics::new()?;
        metrics.observe_http("/healthz", "GET", 200, Duration::from_millis(3));
        let text = metrics.encode()?;
        assert!(text.contains(&format!(
            "stowage_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(text.contains(
            "stowage_http_requests_total{code=\"200\",method=\"GET\",route=\"/healthz\"} 1"
        ));
        assert!(text.contains("stowage_http_request_duration_seconds_count"));
        assert!(text.contains("stowage_apiserver_up 0"));
        Ok(())
    }
}
