//! Reconciling one PersistentVolume: phases, release and reclaim in binder mode (from
//! `bind::plan_volume`), and in both modes the deletion of the storage of Stowage's own volumes
//! whose claim is gone and whose policy is Delete.

use std::sync::Arc;

use k8s_openapi::api::core::v1::PersistentVolume;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tracing::{info, instrument, warn};

use super::{Context, ControllerError, Mode};
use crate::storage::bind::{self, Reclaim, VolumeAction};
use crate::storage::class::{self, ClassKind, HostPathParams, NfsParams, OnDelete};
use crate::storage::metrics::Operation;

const VOLUME_FAILED_DELETE: &str = "VolumeFailedDelete";

/// The volume controller's reconcile.
#[instrument(skip_all, fields(volume = %volume.name_any()))]
pub(super) async fn reconcile(
    volume: Arc<PersistentVolume>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    if !ctx.is_leader() || ctx.assumed.volume_is_stale(&volume) {
        return Ok(Action::await_change());
    }
    ctx.caches_ready().await;
    // Boxed, as in the claim controller: keeps the spawned reconcile future small.
    if volume.metadata.deletion_timestamp.is_some() {
        if has_finalizer(&volume) {
            // Deleted by hand: the reclaim policy still decides what happens to the data.
            if bind::reclaim_policy(&volume) == Ok(Reclaim::Delete) {
                Box::pin(delete(&volume, &ctx)).await?;
            } else {
                Box::pin(release_finalizer(&volume, &ctx)).await?;
            }
        }
        return Ok(Action::await_change());
    }
    match ctx.mode {
        Mode::Binder => Box::pin(sync_volume(&volume, &ctx)).await?,
        Mode::Provisioner => {
            let released = bind::volume_phase(&volume) == bind::VOLUME_RELEASED;
            if released && bind::reclaim_policy(&volume) == Ok(Reclaim::Delete) {
                Box::pin(delete(&volume, &ctx)).await?;
            }
        }
    }
    Ok(Action::requeue(super::RESYNC_PENDING))
}

/// Counts, logs and requeues.
pub(super) fn error_policy(
    volume: Arc<PersistentVolume>,
    error: &ControllerError,
    ctx: Arc<Context>,
) -> Action {
    super::requeue_after(error, &ctx.metrics, &volume.name_any())
}

/// Binder mode: `plan_volume` and its outcome.
async fn sync_volume(volume: &PersistentVolume, ctx: &Context) -> Result<(), ControllerError> {
    let claim = volume
        .spec
        .as_ref()
        .and_then(|spec| spec.claim_ref.as_ref())
        .and_then(|reference| {
            ctx.claim(reference.namespace.as_deref()?, reference.name.as_deref()?)
        });
    let action = bind::plan_volume(volume, claim.as_deref());
    match action {
        VolumeAction::Nothing | VolumeAction::Reclaim(Reclaim::Retain) => Ok(()),
        VolumeAction::MakeAvailable => {
            set_phase(volume, bind::volume_status(bind::VOLUME_AVAILABLE), ctx).await
        }
        VolumeAction::MarkBound => {
            set_phase(volume, bind::volume_status(bind::VOLUME_BOUND), ctx).await
        }
        VolumeAction::Release => {
            info!(volume = %volume.name_any(), "claim gone: volume released");
            set_phase(volume, bind::released_volume_status(), ctx).await
        }
        VolumeAction::Reclaim(Reclaim::Recycle) => {
            if bind::volume_phase(volume) == bind::VOLUME_RELEASED {
                let note = "the Recycle reclaim policy is deprecated and not supported: the \
                            volume stays Released; clear spec.claimRef to reuse it or delete it"
                    .to_owned();
                ctx.event(
                    volume,
                    EventType::Warning,
                    "VolumeUnsupportedReclaimPolicy",
                    "Reclaim",
                    note,
                )
                .await;
                set_phase(
                    volume,
                    bind::failed_volume_status(
                        "VolumeUnsupportedReclaimPolicy",
                        "Recycle is not supported",
                    ),
                    ctx,
                )
                .await?;
            }
            Ok(())
        }
        VolumeAction::Reclaim(Reclaim::Delete) => delete(volume, ctx).await,
        VolumeAction::Unbind => {
            let written = ctx.replace_volume(&bind::unbound_volume(volume)).await?;
            ctx.assumed.written(written.clone());
            set_phase(&written, bind::volume_status(bind::VOLUME_AVAILABLE), ctx).await
        }
        VolumeAction::Fail { reason, message } => {
            if bind::volume_phase(volume) != bind::VOLUME_FAILED {
                set_phase(volume, bind::failed_volume_status(&reason, &message), ctx).await?;
                ctx.event(volume, EventType::Warning, &reason, "Reclaim", message)
                    .await;
            }
            Ok(())
        }
    }
}

async fn set_phase(
    volume: &PersistentVolume,
    status: k8s_openapi::api::core::v1::PersistentVolumeStatus,
    ctx: &Context,
) -> Result<(), ControllerError> {
    let written = ctx.replace_volume_status(volume, status).await?;
    ctx.assumed.written(written);
    Ok(())
}

fn has_finalizer(volume: &PersistentVolume) -> bool {
    volume.finalizers().iter().any(|f| f == super::FINALIZER)
}

/// Removes Stowage's finalizer (its storage is dealt with), so the object can go.
async fn release_finalizer(
    volume: &PersistentVolume,
    ctx: &Context,
) -> Result<(), ControllerError> {
    if !has_finalizer(volume) {
        return Ok(());
    }
    let mut released = volume.clone();
    if let Some(finalizers) = released.metadata.finalizers.as_mut() {
        finalizers.retain(|f| f != super::FINALIZER);
    }
    match ctx.replace_volume(&released).await {
        Ok(written) => {
            ctx.assumed.written(written);
            Ok(())
        }
        // Gone already: the last finalizer was ours.
        Err(ControllerError::Api {
            source: kube::Error::Api(status),
            ..
        }) if status.code == 404 => Ok(()),
        Err(err) => Err(err),
    }
}

/// The class kind to delete `volume`'s storage with: its class when it still exists, else what
/// the volume itself says (an NFS volume whose class is gone is retained: the policy is unknown).
fn kind_of(volume: &PersistentVolume, ctx: &Context) -> Option<ClassKind> {
    let class = ctx.class(bind::volume_class(volume));
    if let Some(kind) = class
        .as_deref()
        .and_then(|class| class::classify(class).ok())
    {
        return Some(kind);
    }
    let provisioner = volume.annotations().get(bind::ANN_PROVISIONED_BY)?;
    let spec = volume.spec.as_ref()?;
    match provisioner.as_str() {
        class::HOSTPATH_PROVISIONER => Some(ClassKind::HostPath(HostPathParams::default())),
        class::NFS_PROVISIONER => spec.nfs.as_ref().map(|nfs| {
            ClassKind::Nfs(NfsParams {
                server: nfs.server.clone(),
                path: nfs.path.clone(),
                path_pattern: None,
                on_delete: OnDelete::Retain,
            })
        }),
        _ => None,
    }
}

/// Reclaim policy Delete: removes the storage (Stowage's volumes only), then the PV object. A
/// failure is an Event `VolumeFailedDelete` (and phase Failed in binder mode) and a retry.
async fn delete(volume: &PersistentVolume, ctx: &Context) -> Result<(), ControllerError> {
    let class_name = bind::volume_class(volume).to_owned();
    let provisioned_by = volume
        .annotations()
        .get(bind::ANN_PROVISIONED_BY)
        .cloned()
        .unwrap_or_default();
    let ours = matches!(
        provisioned_by.as_str(),
        class::HOSTPATH_PROVISIONER | class::NFS_PROVISIONER
    );
    let provisioner = kind_of(volume, ctx)
        .filter(|_| ours)
        .and_then(|kind| ctx.provisioners.for_kind(&kind).map(|p| (p, kind)));
    let Some((provisioner, kind)) = provisioner else {
        if ctx.mode == Mode::Binder
            && bind::volume_phase(volume) != bind::VOLUME_FAILED
            && provisioned_by.is_empty()
        {
            let message = "the volume's reclaim policy is Delete but it was not provisioned by \
                           Stowage, which cannot remove its data: delete it by hand"
                .to_owned();
            failed_delete(volume, message, ctx).await?;
        }
        return Ok(());
    };
    match provisioner.delete(volume, &kind).await {
        Ok(outcome) => {
            if let Some(warning) = outcome.warning() {
                ctx.event(
                    volume,
                    EventType::Warning,
                    "VolumeDataLeftBehind",
                    "Reclaim",
                    warning,
                )
                .await;
            }
            release_finalizer(volume, ctx).await?;
            if volume.metadata.deletion_timestamp.is_none() {
                ctx.delete_volume_object(volume).await?;
            }
            ctx.metrics.succeeded(Operation::Delete, &class_name);
            info!(volume = %volume.name_any(), %outcome, "volume deleted");
            Ok(())
        }
        Err(err) => {
            ctx.metrics
                .failed(Operation::Delete, &class_name, err.category());
            let message = format!(
                "cannot delete the volume's data: {}",
                crate::report::chain(&err)
            );
            warn!(volume = %volume.name_any(), error = %message, "delete failed");
            failed_delete(volume, message, ctx).await?;
            Err(ControllerError::Provision {
                action: format!("delete the data of volume {}", volume.name_any()),
                source: err,
            })
        }
    }
}

/// A volume whose data could not be removed: `Failed` in binder mode (the cluster's controller
/// owns phases otherwise) and a `VolumeFailedDelete` Warning that says why.
async fn failed_delete(
    volume: &PersistentVolume,
    message: String,
    ctx: &Context,
) -> Result<(), ControllerError> {
    if ctx.mode == Mode::Binder && bind::volume_phase(volume) != bind::VOLUME_FAILED {
        set_phase(
            volume,
            bind::failed_volume_status(VOLUME_FAILED_DELETE, &message),
            ctx,
        )
        .await?;
    }
    ctx.event(
        volume,
        EventType::Warning,
        VOLUME_FAILED_DELETE,
        "Reclaim",
        message,
    )
    .await;
    Ok(())
}
