//! Fault injection for tests of clients: drop every open watch, fail chosen verbs with 500 or 429
//! for a while, or add latency to every request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Deserialize;

/// Shared handle; clones control the same emulator.
#[derive(Clone)]
pub struct Faults {
    inner: Arc<Inner>,
}

struct Inner {
    /// Bumped to end every open watch stream.
    watch_epoch: tokio::sync::watch::Sender<u64>,
    failures: Mutex<Vec<Failure>>,
    latency: Mutex<Option<Duration>>,
}

#[derive(Debug, Clone)]
struct Failure {
    verbs: Vec<String>,
    code: u16,
    until: Instant,
}

impl Default for Faults {
    fn default() -> Self {
        let (watch_epoch, _) = tokio::sync::watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                watch_epoch,
                failures: Mutex::new(Vec::new()),
                latency: Mutex::new(None),
            }),
        }
    }
}

/// Body of `POST /_emulator/faults`, for tests that drive the emulator from another process.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRequest {
    #[serde(default)]
    pub drop_watches: bool,
    pub fail: Option<FailRequest>,
    pub latency_ms: Option<u64>,
    #[serde(default)]
    pub clear: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailRequest {
    pub verbs: Vec<String>,
    pub code: u16,
    pub seconds: f64,
}

impl Faults {
    /// Ends every open watch now (clients see the stream close and reconnect).
    pub fn drop_watches(&self) {
        self.inner.watch_epoch.send_modify(|e| *e += 1);
    }

    /// Answers requests with these verbs (`get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection`, or `*`) with `code` (500 or 429) for `duration`.
    pub fn fail(&self, verbs: &[&str], code: u16, duration: Duration) {
        self.inner.failures.lock().push(Failure {
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            code,
            until: Instant::now() + duration,
        });
    }

    /// Delays every API request by `latency` (None removes the delay).
    pub fn set_latency(&self, latency: Option<Duration>) {
        *self.inner.latency.lock() = latency;
    }

    /// Removes failures and latency.
    pub fn clear(&self) {
        self.inner.failures.lock().clear();
        *self.inner.latency.lock() = None;
    }

    pub fn apply(&self, req: &FaultRequest) -> Result<(), String> {
        if req.clear {
            self.clear();
        }
        if let Some(f) = &req.fail {
            if f.code != 500 && f.code != 429 && f.code != 503 {
                return Err(format!("fail.code must be 429, 500 or 503, got {}", f.code));
            }
            if !(f.seconds.is_finite() && f.seconds > 0.0) {
                return Err("fail.seconds must be a positive number".into());
            }
            let verbs: Vec<&str> = f.verbs.iter().map(String::as_str).collect();
            self.fail(&verbs, f.code, Duration::from_secs_f64(f.seconds));
        }
        if let Some(ms) = req.latency_ms {
            self.set_latency((ms > 0).then(|| Duration::from_millis(ms)));
        }
        if req.drop_watches {
            self.drop_watches();
        }
        Ok(())
    }

    /// The status code an injected failure answers `verb` with, if any.
    pub fn failure_for(&self, verb: &str) -> Option<u16> {
        let now = Instant::now();
        let mut failures = self.inner.failures.lock();
        failures.retain(|f| f.until > now);
        failures
            .iter()
            .find(|f| f.verbs.iter().any(|v| v == verb || v == "*"))
            .map(|f| f.code)
    }

    pub fn latency(&self) -> Option<Duration> {
        *self.inner.latency.lock()
    }

    pub(crate) fn watch_epoch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.watch_epoch.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_match_verbs_and_expire() {
        let f = Faults::default();
        f.fail(&["list"], 500, Duration::from_secs(60));
        assert_eq!(f.failure_for("list"), Some(500));
        assert_eq!(f.failure_for("get"), None);
        f.fail(&["*"], 429, Duration::from_millis(0));
        assert_eq!(
            f.failure_for("get"),
            None,
            "a zero-length failure has already expired"
        );
        f.clear();
        assert_eq!(f.failure_for("list"), None);
    }

    #[test]
    fn requests_are_validated() {
        let f = Faults::default();
        let bad = FaultRequest {
            fail: Some(FailRequest {
                verbs: vec!["get".into()],
                code: 404,
                seconds: 1.0,
            }),
            ..Default::default()
        };
        assert!(f.apply(&bad).is_err());
    }
}
