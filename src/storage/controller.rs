//! The storage controller: kube-runtime controllers on PersistentVolumeClaims (also woken by
//! PersistentVolumes, StorageClasses and Nodes) and on PersistentVolumes (woken by their claims).
//! They fetch from reflector caches, ask the pure functions of `bind`, `class` and `expand` what
//! to do, and write the result with field manager `stowage`, only while this replica holds the
//! leader Lease.
//!
//! Provisioner mode provisions, expands and deletes; binder mode also runs `bind::plan_claim` and
//! `bind::plan_volume` (binding, release, reclaim, Lost).

mod assume;
mod claims;
mod error;
mod lean;
mod volumes;
mod writes;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::storage::bind;
use crate::storage::metrics::StorageMetrics;
use crate::storage::provision::{HostPathSettings, NfsSettings, ProvisionerSettings, Provisioners};
use lean::Lean;

pub use error::ControllerError;

/// Name of the field manager and of the event reporter.
pub const MANAGER: &str = "stowage";
/// Finalizer on the PVs Stowage provisions: their storage is dealt with (per reclaim policy)
/// before the object goes, however it is deleted.
pub const FINALIZER: &str = "stowage.io/volume-protection";
/// How often `stowage_storage_claims` is recomputed from the cache.
const CLAIM_GAUGE_INTERVAL: Duration = Duration::from_secs(2);
/// Claims not bound yet, and every volume, are looked at again this often (as upstream's
/// resync): it heals decisions made on a cache that lagged behind another watch.
pub(crate) const RESYNC_PENDING: Duration = Duration::from_secs(10);
/// Bound claims are looked at again this often.
pub(crate) const RESYNC: Duration = Duration::from_secs(30);
/// Retry after a transient failure (conflicts are retried sooner).
const RETRY: Duration = Duration::from_secs(5);
const RETRY_CONFLICT: Duration = Duration::from_millis(50);
/// How long running reconciles may take to finish after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Which of the two modes of `storage.md` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Provision, expand and delete; the cluster binds.
    Provisioner,
    /// Also bind, release, reclaim and mark claims Lost.
    Binder,
}

/// Everything the controller needs besides the client.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// Provisioner or binder mode.
    pub mode: Mode,
    /// Settings of the hostPath and NFS provisioners.
    pub provisioners: ProvisionerSettings,
    /// The reporting instance of events (this replica's identity).
    pub instance: String,
}

impl ControllerSettings {
    /// The settings `storage.*` gives, for the replica `instance`.
    pub fn from_config(config: &Config, instance: String) -> Self {
        let storage = &config.storage;
        Self {
            mode: if storage.binder {
                Mode::Binder
            } else {
                Mode::Provisioner
            },
            provisioners: ProvisionerSettings {
                hostpath: HostPathSettings {
                    namespace: storage.controller.namespace.clone(),
                    helper_image: storage.controller.helper_image.clone(),
                    helper_timeout: storage.controller.helper_timeout,
                    default_paths: storage.hostpath.default_paths.clone(),
                    node_paths: storage.hostpath.node_paths.clone(),
                },
                nfs: NfsSettings {
                    mount_path: storage.nfs.mount_path.clone(),
                },
            },
            instance,
        }
    }
}

/// What every reconcile shares.
pub(crate) struct Context {
    /// The Kubernetes client.
    client: Client,
    /// Provisioner or binder mode.
    mode: Mode,
    /// Publishes Events as reporter `stowage`.
    events: writes::Events,
    /// The storage metrics.
    metrics: StorageMetrics,
    /// The hostPath and NFS provisioners.
    provisioners: Provisioners,
    /// Cached claims (the claim controller's reflector).
    claims: Store<PersistentVolumeClaim>,
    /// Cached volumes (the volume controller's reflector).
    volumes: Store<PersistentVolume>,
    /// Cached classes.
    classes: Store<StorageClass>,
    /// Volumes written but maybe not in the cache yet (binder mode's assume cache), and the
    /// index of volumes binding decisions look at.
    assumed: Arc<assume::Assumed>,
    /// True while this replica holds the leader Lease.
    leading: watch::Receiver<bool>,
}

impl Context {
    fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    fn class(&self, name: &str) -> Option<Arc<StorageClass>> {
        if name.is_empty() {
            return None;
        }
        self.classes.get(&ObjectRef::new(name))
    }

    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims.get(&ObjectRef::new(name).within(namespace))
    }

    async fn caches_ready(&self) {
        // Cannot fail while the stores' writers live, which they do as long as the controller runs.
        let _ = self.volumes.wait_until_ready().await;
        let _ = self.classes.wait_until_ready().await;
        let _ = self.claims.wait_until_ready().await;
    }
}

/// Runs the storage controller until `shutdown`. It writes only while `leading` is true and
/// reconciles everything again each time this replica becomes the leader.
pub async fn run(
    client: Client,
    settings: ControllerSettings,
    metrics: StorageMetrics,
    leading: watch::Receiver<bool>,
    shutdown: Shutdown,
) {
    info!(mode = ?settings.mode, "storage controller starting");
    let claim_api: Api<Lean<PersistentVolumeClaim>> = Api::all(client.clone());
    let volume_api: Api<Lean<PersistentVolume>> = Api::all(client.clone());
    let config = watcher::Config::default().any_semantic();

    let (classes, class_writer) = reflector::store::<StorageClass>();
    let class_events = watcher(Api::<StorageClass>::all(client.clone()), config.clone())
        .default_backoff()
        .modify(strip_managed_fields)
        .reflect(class_writer)
        .applied_objects();

    // One watch per kind feeds both controllers (each decoded once, without managedFields).
    let (claims, claim_writer) = reflector::store::<PersistentVolumeClaim>();
    let (volumes, volume_writer) = reflector::store::<PersistentVolume>();
    // The binder's index of volumes is fed by the volume watch before the cache is.
    let assumed = Arc::new(assume::Assumed::default());
    let observer = Arc::clone(&assumed);
    let (claim_feed, claim_applied, claim_touched) =
        shared_watch(claim_api, config.clone(), claim_writer, |_| {}, &shutdown);
    let (volume_feed, volume_applied, volume_touched) = shared_watch(
        volume_api,
        config.clone(),
        volume_writer,
        move |event| observer.observe(event),
        &shutdown,
    );
    let claim_controller = Controller::for_stream(claim_applied, claims.clone());
    let volume_controller = Controller::for_stream(volume_applied, volumes.clone());

    let ctx = Arc::new(Context {
        client: client.clone(),
        mode: settings.mode,
        events: writes::Events::new(
            client.clone(),
            Reporter {
                controller: MANAGER.to_owned(),
                instance: Some(settings.instance.clone()),
            },
        ),
        metrics: metrics.clone(),
        provisioners: Provisioners::new(client.clone(), settings.provisioners),
        claims: claims.clone(),
        volumes,
        classes: classes.clone(),
        assumed,
        leading: leading.clone(),
    });

    let (volume_claims, node_claims) = (claims.clone(), claims.clone());
    // Class changes come from the same reflector that fills `classes`, so a claim woken by a new
    // class always finds it in the cache (a second watch could deliver it first).
    let (class_changed, class_changes) = tokio::sync::mpsc::unbounded_channel::<()>();
    let claim_run = claim_controller
        .watches_stream(volume_touched, move |volume| {
            claims_of_volume(&volume_claims, volume)
        })
        .watches(
            Api::<Node>::all(client.clone()),
            config.clone(),
            move |_| unbound_claims(&node_claims),
        )
        .reconcile_all_on(tokio_stream::wrappers::UnboundedReceiverStream::new(
            class_changes,
        ))
        .reconcile_all_on(became_leader(leading.clone()))
        .graceful_shutdown_on(shutdown.wait_owned())
        .run(claims::reconcile, claims::error_policy, Arc::clone(&ctx))
        .for_each(|result| {
            if let Err(err) = result {
                debug!(error = %err, "claim reconcile");
            }
            future::ready(())
        });
    let volume_run = volume_controller
        .watches_stream(claim_touched, volumes_of_claim)
        .reconcile_all_on(became_leader(leading.clone()))
        .graceful_shutdown_on(shutdown.wait_owned())
        .run(volumes::reconcile, volumes::error_policy, Arc::clone(&ctx))
        .for_each(|result| {
            if let Err(err) = result {
                debug!(error = %err, "volume reconcile");
            }
            future::ready(())
        });
    let classes_run = async {
        let mut events = std::pin::pin!(class_events);
        loop {
            tokio::select! {
                next = events.next() => match next {
                    Some(Ok(_)) => {
                        let _ = class_changed.send(());
                    }
                    Some(Err(err)) => warn!(error = %err, "StorageClass watch failed; retrying"),
                    None => return,
                },
                () = shutdown.wait() => return,
            }
        }
    };
    metrics.initialize_reconcile_errors(ControllerError::CATEGORIES);
    let gauge = claim_gauge(&claims, &classes, &metrics, leading, &shutdown);
    let everything = async {
        tokio::join!(
            claim_run,
            volume_run,
            classes_run,
            gauge,
            claim_feed,
            volume_feed
        );
    };
    // Graceful shutdown lets running reconciles finish; a controller whose watches never
    // connected (API server unreachable) does not end on its own, so it is cut off after a grace.
    tokio::select! {
        () = everything => {}
        () = async {
            shutdown.wait().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => warn!(grace = ?SHUTDOWN_GRACE, "storage controller stopped before its reconciles finished"),
    }
    info!("storage controller stopped");
}

/// A trigger stream of a controller.
type Triggers<K> = futures::stream::BoxStream<'static, Result<K, watcher::Error>>;

/// One watch of `K` (decoded without `managedFields`) shown to `observe`, then reflected into
/// `writer`, fanned out after the store has the change: applied objects (the own controller's
/// trigger, as `Controller::new` has it) and touched ones, deletions included (the other
/// controller's `watches`). The future drives the watch until `shutdown`.
fn shared_watch<K, O>(
    api: Api<Lean<K>>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
    observe: O,
    shutdown: &Shutdown,
) -> (
    impl Future<Output = ()> + Send + use<K, O>,
    Triggers<K>,
    Triggers<K>,
)
where
    K: kube::Resource<DynamicType = ()>
        + lean::Parts
        + Clone
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    O: Fn(&watcher::Event<K>) + Send + 'static,
{
    let (applied_tx, applied_rx) = tokio::sync::mpsc::unbounded_channel();
    let (touched_tx, touched_rx) = tokio::sync::mpsc::unbounded_channel();
    let events = watcher(api, config)
        .default_backoff()
        .map_ok(lean::event)
        .inspect(move |event| {
            if let Ok(event) = event {
                observe(event);
            }
        })
        .reflect(writer);
    let shutdown = shutdown.clone();
    let feed = async move {
        let mut events = std::pin::pin!(events);
        loop {
            let event = tokio::select! {
                next = events.next() => next,
                () = shutdown.wait() => return,
            };
            match event {
                Some(Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object))) => {
                    let _ = applied_tx.send(Ok(object.clone()));
                    let _ = touched_tx.send(Ok(object));
                }
                Some(Ok(watcher::Event::Delete(object))) => {
                    let _ = touched_tx.send(Ok(object));
                }
                Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => {}
                Some(Err(err)) => {
                    warn!(kind = %K::kind(&()), error = %err, "watch failed; retrying")
                }
                None => return,
            }
        }
    };
    let stream =
        |rx| tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed() as Triggers<K>;
    (feed, stream(applied_rx), stream(touched_rx))
}

/// Drops `managedFields` before an object is cached.
fn strip_managed_fields<K: kube::Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// One item each time `leading` turns true.
fn became_leader(leading: watch::Receiver<bool>) -> impl futures::Stream<Item = ()> + Send {
    tokio_stream::wrappers::WatchStream::new(leading)
        .filter(|leads| future::ready(*leads))
        .map(|_| ())
}

/// The claim a volume's claimRef names; for a volume free for anyone, every unbound claim.
fn claims_of_volume(
    claims: &Store<PersistentVolumeClaim>,
    volume: PersistentVolume,
) -> Vec<ObjectRef<PersistentVolumeClaim>> {
    match volume.spec.and_then(|spec| spec.claim_ref) {
        Some(reference) => match (reference.name, reference.namespace) {
            (Some(name), Some(namespace)) => vec![ObjectRef::new(&name).within(&namespace)],
            _ => Vec::new(),
        },
        None => unbound_claims(claims),
    }
}

/// The volume a claim names and the volumes whose claimRef names it.
fn volumes_of_claim(claim: PersistentVolumeClaim) -> Vec<ObjectRef<PersistentVolume>> {
    bind::claim_volume_name(&claim)
        .map(|name| vec![ObjectRef::new(name)])
        .unwrap_or_default()
}

fn unbound_claims(claims: &Store<PersistentVolumeClaim>) -> Vec<ObjectRef<PersistentVolumeClaim>> {
    claims
        .state()
        .iter()
        .filter(|claim| bind::claim_phase(claim) != bind::CLAIM_BOUND)
        .map(|claim| ObjectRef::from_obj(claim.as_ref()))
        .collect()
}

/// Keeps `stowage_storage_claims` current while leading (so replicas do not count twice), and
/// exports zero-valued series for every class.
async fn claim_gauge(
    claims: &Store<PersistentVolumeClaim>,
    classes: &Store<StorageClass>,
    metrics: &StorageMetrics,
    leading: watch::Receiver<bool>,
    shutdown: &Shutdown,
) {
    let mut tick = tokio::time::interval(CLAIM_GAUGE_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.wait() => return,
        }
        for class in classes.state() {
            metrics.initialize_class(&class.name_any());
        }
        let mut counts = BTreeMap::new();
        if *leading.borrow() {
            for claim in claims.state() {
                let phase = match bind::claim_phase(&claim) {
                    "" => bind::CLAIM_PENDING,
                    phase => phase,
                };
                *counts
                    .entry((phase.to_owned(), bind::claim_class(&claim).to_owned()))
                    .or_insert(0) += 1;
            }
        }
        metrics.set_claims(&counts);
    }
}

/// The retry policy shared by both controllers: count, log, requeue (conflicts soon).
fn requeue_after(error: &ControllerError, metrics: &StorageMetrics, object: &str) -> Action {
    metrics.reconcile_error(error.category());
    if error.is_conflict() {
        debug!(%object, "write conflict; retrying");
        return Action::requeue(RETRY_CONFLICT);
    }
    warn!(%object, error = %crate::report::chain(error), category = error.category(), "reconcile failed");
    Action::requeue(RETRY)
}
