//! One kind's entry on the health board, kept by the pipeline: the sync state derived from a few
//! flags (pure, see [`state_of`]), counters, the resourceVersion watermark and the last error.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::mirror::health::{KindHealth, MirrorHealth, SyncState};
use crate::mirror::metrics::MirrorMetrics;
use crate::mirror::wire::WatchObserver;

/// What the pipeline knows about a kind right now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    /// A (re)list is in progress.
    pub listing: bool,
    /// The initial list completed at least once.
    pub initial_sync_done: bool,
    /// The watch failed and has not been re-established.
    pub watch_failing: bool,
    /// Store writes for this kind fail (or wait behind an open breaker).
    pub store_failing: bool,
    /// The kind cannot be mirrored at all (e.g. an invalid path in its spec).
    pub invalid: bool,
}

/// The sync state the flags add up to.
pub fn state_of(flags: Flags) -> SyncState {
    if flags.invalid || flags.watch_failing || flags.store_failing {
        SyncState::Degraded
    } else if flags.listing {
        SyncState::Syncing
    } else if flags.initial_sync_done {
        SyncState::Synced
    } else {
        SyncState::Pending
    }
}

/// Whether `candidate` is a newer resourceVersion than `current` (numeric when both are, as
/// every API server today uses etcd revisions; otherwise the newest seen wins).
pub fn newer_version(current: Option<&str>, candidate: &str) -> bool {
    match (current.map(str::parse::<u64>), candidate.parse::<u64>()) {
        (Some(Ok(current)), Ok(candidate)) => candidate > current,
        (_, _) => !candidate.is_empty(),
    }
}

/// Cheap to clone; clones update the same entry.
#[derive(Clone)]
pub struct KindTracker {
    id: String,
    plural: String,
    health: MirrorHealth,
    metrics: MirrorMetrics,
    flags: Arc<Mutex<Flags>>,
}

impl KindTracker {
    /// Starts the kind's entry afresh as `Pending`.
    pub fn new(id: String, plural: String, health: MirrorHealth, metrics: MirrorMetrics) -> Self {
        health.remove(&id);
        health.update(&id, &plural, |_| {});
        metrics.synced.with_label_values(&[id.as_str()]).set(0);
        Self {
            id,
            plural,
            health,
            metrics,
            flags: Arc::new(Mutex::new(Flags::default())),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the initial list has been written and swept at least once.
    pub fn initial_sync_done(&self) -> bool {
        self.flags.lock().initial_sync_done
    }

    /// Changes the flags and the entry together, keeping the state consistent with the flags.
    fn change(&self, flags: impl FnOnce(&mut Flags), entry: impl FnOnce(&mut KindHealth)) {
        let mut guard = self.flags.lock();
        flags(&mut guard);
        let now = *guard;
        let state = state_of(now);
        self.metrics
            .synced
            .with_label_values(&[self.id.as_str()])
            .set(i64::from(state == SyncState::Synced));
        self.health.update(&self.id, &self.plural, |health| {
            entry(health);
            health.state = state;
            health.initial_sync_done = now.initial_sync_done;
            if !(now.invalid || now.watch_failing || now.store_failing) {
                health.last_error = None;
            }
        });
    }

    pub fn relist_started(&self) {
        self.change(|f| f.listing = true, |h| h.relists += 1);
    }

    /// The list was written and swept: the store holds exactly what the cluster has.
    pub fn relist_done(&self) {
        self.change(
            |f| {
                f.listing = false;
                f.initial_sync_done = true;
            },
            |_| {},
        );
    }

    pub fn watch_failed(&self, error: String) {
        self.change(|f| f.watch_failing = true, |h| h.last_error = Some(error));
    }

    pub fn watch_ok(&self) {
        if self.flags.lock().watch_failing {
            self.change(|f| f.watch_failing = false, |_| {});
        }
    }

    pub fn store_failed(&self, error: String) {
        self.change(|f| f.store_failing = true, |h| h.last_error = Some(error));
    }

    /// Writes wait behind the open breaker; keeps the store error that opened it, if any.
    pub fn store_blocked(&self) {
        self.change(
            |f| f.store_failing = true,
            |h| {
                h.last_error
                    .get_or_insert_with(|| "store breaker open; writes are buffered".into());
            },
        );
    }

    pub fn store_ok(&self) {
        if self.flags.lock().store_failing {
            self.change(|f| f.store_failing = false, |_| {});
        }
    }

    pub fn invalid(&self, error: String) {
        self.change(|f| f.invalid = true, |h| h.last_error = Some(error));
    }

    /// A batch was committed: the newest resourceVersion in it and when.
    pub fn applied(&self, resource_version: Option<&str>) {
        let now =
            humantime_serde::re::humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string();
        self.health.update(&self.id, &self.plural, |h| {
            h.last_event_time = Some(now);
            if let Some(rv) = resource_version
                && newer_version(h.resource_version.as_deref(), rv)
            {
                h.resource_version = Some(rv.to_owned());
            }
        });
    }

    pub fn malformed(&self) {
        self.health
            .update(&self.id, &self.plural, |h| h.malformed += 1);
    }

    pub fn set_objects(&self, objects: usize) {
        self.health
            .update(&self.id, &self.plural, |h| h.objects = objects as u64);
        self.metrics
            .objects
            .with_label_values(&[self.id.as_str()])
            .set(objects as i64);
    }
}

impl WatchObserver for KindTracker {
    fn reconnected(&self) {
        self.metrics
            .reconnects
            .with_label_values(&[self.id.as_str()])
            .inc();
        self.health
            .update(&self.id, &self.plural, |h| h.reconnects += 1);
    }

    fn watch_established(&self) {
        self.watch_ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_follows_the_flags() {
        let f = |listing, done, watch, store| Flags {
            listing,
            initial_sync_done: done,
            watch_failing: watch,
            store_failing: store,
            invalid: false,
        };
        let cases = [
            (f(false, false, false, false), SyncState::Pending),
            (f(true, false, false, false), SyncState::Syncing),
            (f(false, true, false, false), SyncState::Synced),
            (f(true, true, false, false), SyncState::Syncing),
            (f(false, true, true, false), SyncState::Degraded),
            (f(true, false, false, true), SyncState::Degraded),
            (
                Flags {
                    invalid: true,
                    ..Flags::default()
                },
                SyncState::Degraded,
            ),
        ];
        for (flags, want) in cases {
            assert_eq!(state_of(flags), want, "{flags:?}");
        }
    }

    #[test]
    fn resource_versions_compare_numerically() {
        assert!(newer_version(None, "5"));
        assert!(newer_version(Some("5"), "12"));
        assert!(!newer_version(Some("12"), "5"));
        assert!(!newer_version(Some("12"), "12"));
        assert!(newer_version(Some("abc"), "def"));
        assert!(!newer_version(Some("1"), ""));
    }

    #[test]
    fn errors_clear_once_everything_recovers() -> Result<(), crate::metrics::MetricsError> {
        let health = MirrorHealth::new("memory");
        let tracker = KindTracker::new(
            "core/v1/Pod".into(),
            "pods".into(),
            health.clone(),
            MirrorMetrics::unregistered()?,
        );
        let kind = || {
            health
                .kind("core/v1/Pod")
                .unwrap_or_else(|| panic!("entry exists"))
        };
        assert_eq!(kind().state, SyncState::Pending);
        tracker.relist_started();
        assert_eq!((kind().state, kind().relists), (SyncState::Syncing, 1));
        tracker.watch_failed("boom".into());
        tracker.store_failed("down".into());
        assert_eq!(
            (kind().state, kind().last_error.as_deref()),
            (SyncState::Degraded, Some("down"))
        );
        tracker.watch_ok();
        assert_eq!(kind().state, SyncState::Degraded);
        tracker.store_ok();
        tracker.relist_done();
        assert_eq!(
            (kind().state, kind().last_error, kind().initial_sync_done),
            (SyncState::Synced, None, true)
        );
        Ok(())
    }

    #[test]
    fn synced_gauge_is_one_only_while_synced() -> Result<(), crate::metrics::MetricsError> {
        let metrics = MirrorMetrics::unregistered()?;
        let tracker = KindTracker::new(
            "core/v1/Pod".into(),
            "pods".into(),
            MirrorHealth::new("memory"),
            metrics.clone(),
        );
        let gauge = || metrics.synced.with_label_values(&["core/v1/Pod"]).get();
        assert_eq!(gauge(), 0, "pending");
        tracker.relist_started();
        assert_eq!(gauge(), 0, "syncing");
        tracker.relist_done();
        assert_eq!(gauge(), 1, "synced");
        tracker.watch_failed("connection refused".into());
        assert_eq!(gauge(), 0, "degraded");
        tracker.watch_ok();
        assert_eq!(gauge(), 1, "synced again");
        Ok(())
    }
}
