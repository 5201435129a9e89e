//! One kind's mirror, three tasks joined by bounded queues (backpressure: a stage waits when the
//! next one's queue is full): the kube-runtime watcher decodes events, the converter prunes them
//! into store objects, the [`Batcher`] writes them. Decoding and converting are the two largest
//! costs of a list, so they run on different workers. Relists bump the epoch and end with a
//! sweep; a resync (buffer overflow, store lost the kind) restarts the watcher once the store
//! takes writes again.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use kube::Api;
use kube::core::ApiResource;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, instrument, warn};

use crate::mirror::batcher::{BatchSettings, Batcher, Msg, Stop, bounded};
use crate::mirror::breaker::{Breaker, Permit};
use crate::mirror::kind::KindSpec;
use crate::mirror::metrics::MirrorMetrics;
use crate::mirror::object::Processor;
use crate::mirror::tracker::KindTracker;
use crate::mirror::wire::{RawObject, observed_client};
use crate::store::Store;

/// First and largest pause between attempts to register a kind with the store.
const REGISTER_RETRY_MIN: Duration = Duration::from_millis(200);
const REGISTER_RETRY_MAX: Duration = Duration::from_secs(30);

/// Relist epochs: strictly increasing, and larger than any epoch an earlier process used (they
/// start from the wall clock in microseconds), so a sweep never spares objects a previous run
/// stored in a persistent backend.
#[derive(Debug, Default)]
pub struct Epochs {
    last: AtomicU64,
}

impl Epochs {
    pub fn next(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let previous = self
            .last
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last + 1))
            });
        previous.map_or(now, |last| now.max(last + 1))
    }
}

/// A task that is aborted when its handle is dropped, so stopping a parent stops its children.
#[derive(Debug)]
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Aborts the task and waits until it is gone.
    pub async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Pipeline settings shared by every kind.
#[derive(Debug, Clone, Copy)]
pub struct PipelineSettings {
    pub batch: BatchSettings,
    pub queue_capacity: usize,
    /// Fetch initial lists as streaming lists (`sendInitialEvents`).
    pub streaming: bool,
}

/// Everything one kind's task needs.
pub struct KindContext {
    pub spec: KindSpec,
    pub client: kube::Client,
    pub store: Arc<dyn Store>,
    pub breaker: Breaker,
    pub metrics: MirrorMetrics,
    pub tracker: KindTracker,
    pub settings: PipelineSettings,
    pub epochs: Arc<Epochs>,
}

/// Mirrors one kind until the task is aborted.
#[instrument(name = "mirror_kind", skip_all, fields(kind = %ctx.spec.id()))]
pub async fn run_kind(ctx: KindContext) {
    let processor = match Processor::new(&ctx.spec) {
        Ok(processor) => processor,
        Err(err) => {
            let reason = crate::report::chain(&err);
            warn!(error = %reason, "kind cannot be mirrored");
            ctx.tracker.invalid(reason);
            return;
        }
    };
    let ctx = Arc::new(ctx);
    let epochs = ctx.epochs.clone();
    let batcher = Batcher {
        spec: ctx.spec.clone(),
        store: ctx.store.clone(),
        breaker: ctx.breaker.clone(),
        metrics: ctx.metrics.clone(),
        tracker: ctx.tracker.clone(),
        settings: ctx.settings.batch,
        next_epoch: Arc::new(move || epochs.next()),
        retry_copies: ctx.store.transient_write_failures(),
    };
    loop {
        register(&ctx).await;
        // The converter's queue only decouples the two stages; `queue_capacity` bounds the
        // batcher's, where objects wait while the store is slow or its breaker open.
        let (raw_tx, raw_rx) = mpsc::channel(ctx.settings.batch.batch_size.max(1));
        let (tx, rx) = mpsc::channel(ctx.settings.queue_capacity.max(1));
        let watcher = AbortOnDrop(tokio::spawn(watch_kind(ctx.clone(), raw_tx)));
        let converter = AbortOnDrop(tokio::spawn(convert_events(
            ctx.clone(),
            processor.clone(),
            raw_rx,
            tx,
        )));
        let stop = batcher.run(rx).await;
        watcher.stop().await;
        converter.stop().await;
        match stop {
            Stop::Resync => {
                ctx.metrics
                    .resyncs
                    .with_label_values(&[ctx.tracker.id()])
                    .inc();
                info!("resyncing with a fresh list once the store takes writes");
            }
            Stop::Closed => warn!("watcher stopped unexpectedly; restarting"),
        }
    }
}

/// Registers the kind with the store, waiting for the breaker and retrying with backoff. After a
/// resync this is the probe that tells whether the store is back.
async fn register(ctx: &KindContext) {
    let mut delay = REGISTER_RETRY_MIN;
    let mut changed = ctx.breaker.subscribe();
    loop {
        if let Permit::Wait(until) = ctx.breaker.permit() {
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                _ = changed.changed() => {}
            }
            continue;
        }
        let result = bounded(ctx.store.register(&ctx.spec)).await;
        ctx.breaker.record(result.as_ref().copied());
        match result {
            Ok(()) => {
                ctx.tracker.store_ok();
                return;
            }
            Err(err) => {
                let reason = crate::report::chain(&err);
                ctx.metrics
                    .store_errors
                    .with_label_values(&[ctx.tracker.id(), err.category()])
                    .inc();
                warn!(error = %reason, retry_in = ?delay, "cannot register kind with the store");
                ctx.tracker
                    .store_failed(format!("cannot register with the store: {reason}"));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(REGISTER_RETRY_MAX);
            }
        }
    }
}

/// The API resource a kind spec names.
pub fn api_resource(spec: &KindSpec) -> ApiResource {
    ApiResource {
        group: spec.group.clone(),
        version: spec.version.clone(),
        api_version: spec.api_version(),
        kind: spec.kind.clone(),
        plural: spec.plural.clone(),
    }
}

/// What the watcher hands the converter: a decoded object still to be converted, or a message
/// for the batcher as it is.
enum Step {
    Convert { raw: RawObject, received: Instant },
    Pass(Msg),
}

/// Follows the kind's watcher and queues what it sees for the converter.
#[instrument(name = "watch", skip_all, fields(kind = %ctx.spec.id()))]
async fn watch_kind(ctx: Arc<KindContext>, tx: mpsc::Sender<Step>) {
    let client = observed_client(&ctx.client, Arc::new(ctx.tracker.clone()));
    let api: Api<RawObject> = Api::all_with(client, &api_resource(&ctx.spec));
    let config = if ctx.settings.streaming {
        watcher::Config::default().streaming_lists()
    } else {
        watcher::Config::default()
    };
    let id = ctx.spec.id();
    let count = |kind: &str| ctx.metrics.events.with_label_values(&[id.as_str(), kind]);
    let (listed, applied, deleted, errors) = (
        count("listed"),
        count("applied"),
        count("deleted"),
        count("error"),
    );
    let mut stream = pin!(watcher::watcher(api, config).default_backoff());
    while let Some(item) = stream.next().await {
        let received = Instant::now();
        let msg = match item {
            Ok(Event::Init) => {
                ctx.metrics.relists.with_label_values(&[id.as_str()]).inc();
                ctx.tracker.relist_started();
                debug!("listing");
                Some(Step::Pass(Msg::Relist))
            }
            Ok(Event::InitApply(raw)) => {
                listed.inc();
                Some(Step::Convert { raw, received })
            }
            Ok(Event::Apply(raw)) => {
                applied.inc();
                ctx.tracker.watch_ok();
                Some(Step::Convert { raw, received })
            }
            Ok(Event::Delete(raw)) => {
                deleted.inc();
                ctx.tracker.watch_ok();
                let meta = kube::Resource::meta(&raw);
                Some(Step::Pass(Msg::Delete {
                    namespace: meta.namespace.clone().unwrap_or_default(),
                    name: meta.name.clone().unwrap_or_default(),
                    resource_version: meta.resource_version.clone().unwrap_or_default(),
                    received,
                }))
            }
            Ok(Event::InitDone) => {
                ctx.tracker.watch_ok();
                Some(Step::Pass(Msg::RelistDone))
            }
            Err(err) => {
                errors.inc();
                watch_error(&ctx, &err);
                None
            }
        };
        if let Some(msg) = msg
            && tx.send(msg).await.is_err()
        {
            return;
        }
    }
}

/// Converts the watcher's objects for the store, in the order the watcher saw them.
async fn convert_events(
    ctx: Arc<KindContext>,
    processor: Processor,
    mut rx: mpsc::Receiver<Step>,
    tx: mpsc::Sender<Msg>,
) {
    let id = ctx.spec.id();
    let malformed = ctx
        .metrics
        .events
        .with_label_values(&[id.as_str(), "malformed"]);
    let limit = ctx.settings.batch.batch_size.max(1);
    let mut inbox = Vec::with_capacity(limit);
    while rx.recv_many(&mut inbox, limit).await > 0 {
        for step in inbox.drain(..) {
            let msg = match step {
                Step::Convert { raw, received } => {
                    convert(&ctx, &processor, &malformed, raw, received)
                }
                Step::Pass(msg) => Some(msg),
            };
            if let Some(msg) = msg
                && tx.send(msg).await.is_err()
            {
                return;
            }
        }
    }
}

fn convert(
    ctx: &KindContext,
    processor: &Processor,
    malformed: &prometheus::IntCounter,
    raw: RawObject,
    received: Instant,
) -> Option<Msg> {
    match processor.process_parts(&raw.parts) {
        Ok(object) => Some(Msg::Upsert { object, received }),
        Err(err) => {
            malformed.inc();
            ctx.tracker.malformed();
            warn!(error = %err, "skipping an object that cannot be mirrored");
            None
        }
    }
}

/// Logs a watcher error; a 410 (history expired) is the normal way into a relist.
fn watch_error(ctx: &KindContext, err: &watcher::Error) {
    if let watcher::Error::WatchError(status) = err
        && status.code == 410
    {
        info!("watch history expired (410); relisting");
        return;
    }
    let reason = crate::report::chain(err);
    warn!(error = %reason, "watch failed; retrying with backoff");
    ctx.tracker.watch_failed(reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_strictly_increase_from_the_clock() {
        let epochs = Epochs::default();
        let first = epochs.next();
        let second = epochs.next();
        assert!(second > first);
        assert!(
            first > 1_600_000_000_000_000,
            "epochs start from the wall clock in microseconds"
        );
    }
}
