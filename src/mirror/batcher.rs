//! The store side of one kind's pipeline: takes events off the bounded queue, groups them into
//! batches (by size or age, whichever first), and writes them in order through the breaker.
//! While the store is unavailable, sealed batches wait in an ordered buffer; when the buffer
//! grows past the breaker's limit it is dropped and the kind asks for a full resync.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, instrument, warn};

use crate::mirror::breaker::{Breaker, Permit};
use crate::mirror::kind::KindSpec;
use crate::mirror::metrics::MirrorMetrics;
use crate::mirror::tracker::KindTracker;
use crate::store::{MirrorObject, Store, StoreError, WriteBatch, WriteOp};

/// Longest a single store call may take before it counts as a transient failure.
pub const STORE_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the stored object count is refreshed while writes happen.
const COUNT_INTERVAL: Duration = Duration::from_secs(1);

/// What the watcher side puts on the queue.
// Nearly every message is an upsert, so boxing the object would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Msg {
    /// A (re)list starts: later upserts belong to a new epoch.
    Relist,
    Upsert {
        object: MirrorObject,
        received: Instant,
    },
    Delete {
        namespace: String,
        name: String,
        resource_version: String,
        received: Instant,
    },
    /// The (re)list is complete: flush, then sweep what it did not see.
    RelistDone,
}

/// Why the batcher stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The buffer overflowed or the store lost the kind: restart with a fresh list.
    Resync,
    /// The watcher side went away.
    Closed,
}

/// Whether the batch being filled must be sealed now: when it is full, when it is `interval` old,
/// or when nothing more is waiting in the queue (group commit: while one batch is written the next
/// one fills, so batches grow with load and a lone event is not held back for `interval`). Not
/// on an empty queue while a list is read (`listing`): nobody waits for one object of a list,
/// and a store faster than the watcher would otherwise get a batch per object (measured: 50-60k
/// batches for a 100k-object list, and a sync 1.7x slower).
pub fn batch_due(
    len: usize,
    batch_size: usize,
    started: Option<Instant>,
    interval: Duration,
    now: Instant,
    queue_empty: bool,
    listing: bool,
) -> bool {
    len > 0
        && (len >= batch_size
            || (queue_empty && !listing)
            || started.is_some_and(|at| now >= at + interval))
}

/// The earliest of the instants the batcher must wake up at.
pub fn next_wake(deadlines: &[Option<Instant>]) -> Option<Instant> {
    deadlines.iter().flatten().min().copied()
}

/// One unit of ordered store work.
#[derive(Debug)]
enum Pending {
    Write {
        batch: WriteBatch,
        received: Vec<Instant>,
        last_version: Option<String>,
    },
    Sweep {
        epoch: u64,
    },
}

impl Pending {
    fn ops(&self) -> usize {
        match self {
            Self::Write { batch, .. } => batch.ops.len(),
            Self::Sweep { .. } => 0,
        }
    }
}

/// Settings of one kind's batcher.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    pub batch_size: usize,
    pub batch_interval: Duration,
}

pub struct Batcher {
    pub spec: KindSpec,
    pub store: Arc<dyn Store>,
    pub breaker: Breaker,
    pub metrics: MirrorMetrics,
    pub tracker: KindTracker,
    pub settings: BatchSettings,
    /// Relist generation source, shared so epochs grow across restarts of the kind.
    pub next_epoch: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// Send the store a copy of each batch, keeping the original for a retry after a transient
    /// failure. Without it the batch itself is sent (a deep copy of every object saved), and a
    /// transient failure resyncs the kind instead.
    pub retry_copies: bool,
}

/// The batcher's moving parts during one watch cycle.
struct Run {
    epoch: u64,
    ops: Vec<WriteOp>,
    received: Vec<Instant>,
    last_version: Option<String>,
    started: Option<Instant>,
    buffer: VecDeque<Pending>,
    retry_at: Option<Instant>,
    count_at: Option<Instant>,
    /// Between a `Relist` and its `RelistDone`.
    listing: bool,
}

impl Batcher {
    /// Consumes the queue until the watcher side closes it or a resync is needed.
    #[instrument(name = "batcher", skip_all, fields(kind = %self.spec.id()))]
    pub async fn run(&self, mut rx: mpsc::Receiver<Msg>) -> Stop {
        let mut run = Run {
            epoch: 0,
            ops: Vec::new(),
            received: Vec::new(),
            last_version: None,
            started: None,
            buffer: VecDeque::new(),
            retry_at: None,
            count_at: None,
            listing: false,
        };
        let mut breaker_changed = self.breaker.subscribe();
        let mut inbox = Vec::with_capacity(self.settings.batch_size);
        let id = self.spec.id();
        let depth = self.metrics.queue_depth.with_label_values(&[id.as_str()]);
        let stop = loop {
            let batch_deadline = run.started.map(|at| at + self.settings.batch_interval);
            let wake = next_wake(&[batch_deadline, run.retry_at, run.count_at]);
            tokio::select! {
                received = rx.recv_many(&mut inbox, self.settings.batch_size) => {
                    if received == 0 {
                        break Stop::Closed;
                    }
                    depth.set(rx.len() as i64);
                    let mut stop = None;
                    for msg in inbox.drain(..) {
                        if let Err(s) = self.handle(&mut run, msg) {
                            stop = Some(s);
                            break;
                        }
                    }
                    if let Some(stop) = stop {
                        break stop;
                    }
                }
                () = sleep_until(wake) => {}
                changed = breaker_changed.changed(), if !run.buffer.is_empty() => {
                    if changed.is_err() {
                        break Stop::Closed;
                    }
                }
            }
            let now = Instant::now();
            if batch_due(
                run.ops.len(),
                self.settings.batch_size,
                run.started,
                self.settings.batch_interval,
                now,
                rx.is_empty(),
                run.listing,
            ) && let Err(stop) = self.seal(&mut run)
            {
                break stop;
            }
            if let Err(stop) = self.drain(&mut run).await {
                break stop;
            }
            if run.count_at.is_some_and(|at| Instant::now() >= at) {
                run.count_at = None;
                self.refresh_count().await;
            }
        };
        let dropped: usize = run.buffer.iter().map(Pending::ops).sum();
        self.breaker.release(dropped);
        depth.set(0);
        stop
    }

    fn handle(&self, run: &mut Run, msg: Msg) -> Result<(), Stop> {
        match msg {
            Msg::Relist => {
                self.seal(run)?;
                run.epoch = (self.next_epoch)();
                run.listing = true;
            }
            Msg::Upsert { object, received } => {
                run.last_version = Some(object.resource_version.clone());
                self.push(run, WriteOp::Upsert(object), received)?;
            }
            Msg::Delete {
                namespace,
                name,
                resource_version,
                received,
            } => {
                run.last_version = Some(resource_version);
                self.push(run, WriteOp::Delete { namespace, name }, received)?;
            }
            Msg::RelistDone => {
                run.listing = false;
                self.seal(run)?;
                run.buffer.push_back(Pending::Sweep { epoch: run.epoch });
            }
        }
        Ok(())
    }

    fn push(&self, run: &mut Run, op: WriteOp, received: Instant) -> Result<(), Stop> {
        run.ops.push(op);
        run.received.push(received);
        run.started.get_or_insert(received);
        if run.ops.len() >= self.settings.batch_size {
            self.seal(run)?;
        }
        Ok(())
    }

    /// Moves the batch being filled into the ordered buffer.
    fn seal(&self, run: &mut Run) -> Result<(), Stop> {
        if run.ops.is_empty() {
            return Ok(());
        }
        let ops = std::mem::take(&mut run.ops);
        let count = ops.len();
        run.buffer.push_back(Pending::Write {
            batch: WriteBatch {
                ops,
                epoch: run.epoch,
            },
            received: std::mem::take(&mut run.received),
            last_version: run.last_version.take(),
        });
        run.started = None;
        if self.breaker.hold(count) {
            return Ok(());
        }
        let dropped: usize = run.buffer.drain(..).map(|p| p.ops()).sum();
        self.breaker.release(dropped);
        warn!(
            dropped,
            "store buffer full; dropped buffered writes, will resync this kind with a full list"
        );
        self.tracker.store_failed(format!(
            "store buffer full: dropped {dropped} buffered writes; resyncing"
        ));
        Err(Stop::Resync)
    }

    /// Writes buffered work in order while the breaker allows it.
    async fn drain(&self, run: &mut Run) -> Result<(), Stop> {
        while let Some(front) = run.buffer.front_mut() {
            if let Permit::Wait(until) = self.breaker.permit() {
                run.retry_at = Some(until);
                self.tracker
                    .store_failed("store breaker open; writes are buffered".into());
                return Ok(());
            }
            let ops = front.ops();
            let result = self.execute(front).await;
            self.breaker.record(result.as_ref().map(|_| ()));
            match result {
                Ok(()) => {
                    run.retry_at = None;
                    self.tracker.store_ok();
                }
                Err(err) if err.is_transient() && !self.retry_copies => {
                    self.store_error(&err);
                    warn!(error = %err, "a batch sent without a copy failed; resyncing");
                    run.buffer.pop_front();
                    self.breaker.release(ops);
                    return Err(Stop::Resync);
                }
                Err(err) if err.is_transient() => {
                    self.store_error(&err);
                    self.tracker.store_failed(crate::report::chain(&err));
                    run.retry_at = Some(
                        Instant::now()
                            + self.settings.batch_interval.max(Duration::from_millis(10)),
                    );
                    return Ok(());
                }
                Err(err @ StoreError::UnknownKind(_)) => {
                    self.store_error(&err);
                    warn!(error = %err, "the store lost this kind; registering again and resyncing");
                    return Err(Stop::Resync);
                }
                Err(err) => {
                    // Not retried: one object refused (the rest applied) or a bug in the request.
                    self.store_error(&err);
                    warn!(error = %crate::report::chain(&err), "store refused a write; skipped");
                }
            }
            if let Some(done) = run.buffer.pop_front() {
                self.committed(run, done);
            }
            self.breaker.release(ops);
        }
        Ok(())
    }

    async fn execute(&self, work: &mut Pending) -> Result<(), StoreError> {
        match work {
            Pending::Write { batch, .. } => {
                let size = batch.ops.len();
                let attempt = if self.retry_copies {
                    batch.clone()
                } else {
                    WriteBatch {
                        ops: std::mem::take(&mut batch.ops),
                        epoch: batch.epoch,
                    }
                };
                let started = Instant::now();
                let result = bounded(self.store.write(&self.spec, attempt)).await;
                let id = self.spec.id();
                self.metrics
                    .write_duration
                    .with_label_values(&[id.as_str()])
                    .observe(started.elapsed().as_secs_f64());
                self.metrics
                    .batch_size
                    .with_label_values(&[id.as_str()])
                    .observe(size as f64);
                result.map(|_| ())
            }
            Pending::Sweep { epoch } => {
                let removed = bounded(self.store.sweep(&self.spec, *epoch)).await?;
                if removed > 0 {
                    info!(removed, "removed objects that vanished while not watched");
                }
                Ok(())
            }
        }
    }

    fn committed(&self, run: &mut Run, done: Pending) {
        run.count_at.get_or_insert(Instant::now() + COUNT_INTERVAL);
        match done {
            Pending::Write {
                received,
                last_version,
                ..
            } => {
                let lag = self
                    .metrics
                    .sync_lag
                    .with_label_values(&[self.spec.id().as_str()]);
                let now = Instant::now();
                for at in received {
                    lag.observe(now.duration_since(at).as_secs_f64());
                }
                self.tracker.applied(last_version.as_deref());
            }
            Pending::Sweep { .. } => {
                let first = !self.tracker.initial_sync_done();
                self.tracker.relist_done();
                // Count now so the first report after a list is exact.
                run.count_at = Some(Instant::now());
                if first {
                    info!("initial sync complete");
                }
            }
        }
    }

    async fn refresh_count(&self) {
        match bounded(self.store.count(&self.spec)).await {
            Ok(count) => self.tracker.set_objects(count),
            Err(err) => self.store_error(&err),
        }
    }

    fn store_error(&self, err: &StoreError) {
        self.metrics
            .store_errors
            .with_label_values(&[self.spec.id().as_str(), err.category()])
            .inc();
    }
}

/// A store call with [`STORE_CALL_TIMEOUT`]; a timeout is a transient failure.
pub async fn bounded<T>(
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(STORE_CALL_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable {
            message: format!("no answer within {}s", STORE_CALL_TIMEOUT.as_secs()),
            source: None,
        }),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_seal_on_size_or_age() {
        let start = Instant::now();
        let ms = |m: u64| start + Duration::from_millis(m);
        let interval = Duration::from_millis(50);
        let cases = [
            ("empty never seals", 0, None, ms(1000), false, true, false),
            (
                "young and small waits while more is queued",
                3,
                Some(ms(0)),
                ms(10),
                false,
                false,
                false,
            ),
            (
                "young and small seals when the queue is drained",
                3,
                Some(ms(0)),
                ms(10),
                true,
                true,
                false,
            ),
            (
                "young and small waits on a drained queue while listing",
                3,
                Some(ms(0)),
                ms(10),
                false,
                true,
                true,
            ),
            (
                "full seals at once",
                500,
                Some(ms(0)),
                ms(0),
                true,
                false,
                true,
            ),
            ("old seals", 1, Some(ms(0)), ms(50), true, false, false),
            (
                "old seals while listing",
                1,
                Some(ms(0)),
                ms(50),
                true,
                true,
                true,
            ),
            ("older seals", 1, Some(ms(0)), ms(70), true, false, false),
        ];
        for (name, len, started, now, want, queue_empty, listing) in cases {
            assert_eq!(
                batch_due(len, 500, started, interval, now, queue_empty, listing),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn wakes_at_the_earliest_deadline() {
        let start = Instant::now();
        let ms = |m: u64| Some(start + Duration::from_millis(m));
        assert_eq!(next_wake(&[None, None]), None);
        assert_eq!(next_wake(&[ms(30), None, ms(10)]), ms(10));
    }
}
