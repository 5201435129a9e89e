//! Reconciling one PersistentVolumeClaim: binding (binder mode), provisioning of Stowage's
//! classes, and expansion. Decisions come from `bind::plan_claim`, `class::classify` and
//! `expand::plan_expansion`; this file only fetches, calls them, and writes.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use tracing::{debug, info, instrument};

use super::{Context, ControllerError, Mode};
use crate::storage::bind::{self, ClaimAction};
use crate::storage::class::{self, ClassKind};
use crate::storage::expand::{self, ExpansionPlan};
use crate::storage::metrics::Operation;
use crate::storage::provision::ProvisionRequest;

/// Condition type set on a claim whose growth its class does not allow.
const EXPANSION_REFUSED: &str = "ExpansionRefused";

/// The claim controller's reconcile.
#[instrument(skip_all, fields(claim = %describe(&claim)))]
pub(super) async fn reconcile(
    claim: Arc<PersistentVolumeClaim>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    if !ctx.is_leader() || ctx.assumed.claim_is_stale(&claim) {
        return Ok(Action::await_change());
    }
    ctx.caches_ready().await;
    let class = ctx.class(bind::claim_class(&claim));
    // Boxed: kube-runtime moves each reconcile future several times when it spawns it, and
    // inlined these made it kilobytes large (a burst of claims spent a fifth of its
    // instructions copying them), although most reconciles take none of these paths.
    let settled = match ctx.mode {
        Mode::Binder => Box::pin(bind_claim(&claim, class.as_deref(), &ctx)).await?,
        Mode::Provisioner => {
            Box::pin(provision_for_cluster(&claim, class.as_deref(), &ctx)).await?
        }
    };
    if settled {
        Box::pin(expand_claim(&claim, class.as_deref(), &ctx)).await?;
        Ok(Action::requeue(super::RESYNC))
    } else {
        Ok(Action::requeue(super::RESYNC_PENDING))
    }
}

/// Counts, logs and requeues.
pub(super) fn error_policy(
    claim: Arc<PersistentVolumeClaim>,
    error: &ControllerError,
    ctx: Arc<Context>,
) -> Action {
    super::requeue_after(error, &ctx.metrics, &describe(&claim))
}

fn describe(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.namespace().unwrap_or_default(),
        claim.name_any()
    )
}

fn class_label(claim: &PersistentVolumeClaim) -> &str {
    bind::claim_class(claim)
}

/// Binder mode: runs `plan_claim` and carries it out. True when the claim needs nothing more
/// from binding (expansion may follow).
async fn bind_claim(
    claim: &PersistentVolumeClaim,
    class: Option<&StorageClass>,
    ctx: &Context,
) -> Result<bool, ControllerError> {
    // Only the volumes plan_claim could choose (the index's candidates): a decision does not
    // grow with the number of volumes.
    let (action, chosen) = ctx.assumed.decide(claim, |volumes| {
        let action = bind::plan_claim(claim, volumes, class);
        let chosen = match &action {
            ClaimAction::Bind { volume, .. } | ClaimAction::CompleteBind { volume } => volumes
                .iter()
                .find(|v| v.metadata.name.as_deref() == Some(volume.as_str()))
                .cloned(),
            _ => None,
        };
        let reserve = match (&action, &chosen) {
            (ClaimAction::Bind { .. }, Some(volume)) => Some(bind::bound_volume(volume, claim)),
            _ => None,
        };
        ((action, chosen), reserve)
    });
    debug!(?action, "binder decision");
    match action {
        ClaimAction::Nothing => Ok(true),
        ClaimAction::Bind { volume, .. } => {
            let Some(chosen) = chosen else {
                return Ok(false);
            };
            let result = bind(claim, &chosen, ctx).await;
            match &result {
                Ok(()) => ctx.metrics.succeeded(Operation::Bind, class_label(claim)),
                Err(err) => {
                    ctx.assumed.failed(&volume);
                    ctx.metrics
                        .failed(Operation::Bind, class_label(claim), err.category());
                }
            }
            result.map(|()| false)
        }
        ClaimAction::CompleteBind { .. } => {
            if let Some(chosen) = chosen {
                complete_bind(claim, &chosen, ctx).await?;
            }
            Ok(false)
        }
        ClaimAction::Provision => {
            if let Some(class) = class {
                provision(claim, class, ctx).await?;
            }
            Ok(false)
        }
        ClaimAction::WaitForFirstConsumer => {
            ctx.event(
                claim,
                EventType::Normal,
                "WaitForFirstConsumer",
                "Binding",
                "waiting for first consumer to be created before binding".to_owned(),
            )
            .await;
            if bind::claim_phase(claim).is_empty() {
                ctx.replace_claim_status(claim, bind::pending_claim_status(claim))
                    .await?;
            }
            Ok(false)
        }
        ClaimAction::Pending { reason, message } => {
            ctx.event(claim, EventType::Warning, &reason, "Binding", message)
                .await;
            if bind::claim_phase(claim).is_empty() {
                ctx.replace_claim_status(claim, bind::pending_claim_status(claim))
                    .await?;
            }
            Ok(false)
        }
        ClaimAction::Lost {
            reason, message, ..
        } => {
            ctx.replace_claim_status(claim, bind::lost_claim_status(claim))
                .await?;
            ctx.event(claim, EventType::Warning, &reason, "Binding", message)
                .await;
            Ok(false)
        }
    }
}

/// Rule 6: the volume's claimRef first (and its phase), then the claim's volumeName and status.
async fn bind(
    claim: &PersistentVolumeClaim,
    volume: &PersistentVolume,
    ctx: &Context,
) -> Result<(), ControllerError> {
    let written = ctx
        .replace_volume(&bind::bound_volume(volume, claim))
        .await?;
    ctx.assumed.written(written.clone());
    let written = ctx
        .replace_volume_status(&written, bind::volume_status(bind::VOLUME_BOUND))
        .await?;
    ctx.assumed.written(written.clone());
    finish_claim(claim, &written, ctx).await?;
    info!(volume = %written.name_any(), "bound");
    Ok(())
}

/// The volume already points at the claim (a crash between the two writes, or a provisioned
/// volume): set the volume's phase and finish the claim's side.
async fn complete_bind(
    claim: &PersistentVolumeClaim,
    volume: &PersistentVolume,
    ctx: &Context,
) -> Result<(), ControllerError> {
    let volume = if bind::volume_phase(volume) == bind::VOLUME_BOUND {
        volume.clone()
    } else {
        let written = ctx
            .replace_volume_status(volume, bind::volume_status(bind::VOLUME_BOUND))
            .await?;
        ctx.assumed.written(written.clone());
        written
    };
    finish_claim(claim, &volume, ctx).await?;
    ctx.metrics.succeeded(Operation::Bind, class_label(claim));
    Ok(())
}

async fn finish_claim(
    claim: &PersistentVolumeClaim,
    volume: &PersistentVolume,
    ctx: &Context,
) -> Result<(), ControllerError> {
    let wanted = bind::bound_claim(claim, volume);
    let claim =
        if wanted.metadata.annotations != claim.metadata.annotations || wanted.spec != claim.spec {
            ctx.replace_claim(&wanted).await?
        } else {
            claim.clone()
        };
    let status = bind::bound_claim_status(&claim, volume);
    if claim.status.as_ref() != Some(&status) {
        ctx.replace_claim_status(&claim, status).await?;
    }
    Ok(())
}

/// Provisioner mode: provisions claims the cluster handed to Stowage (class ours and the
/// storage-provisioner annotation naming it), and nothing else. True when the claim is bound.
async fn provision_for_cluster(
    claim: &PersistentVolumeClaim,
    class: Option<&StorageClass>,
    ctx: &Context,
) -> Result<bool, ControllerError> {
    if bind::claim_volume_name(claim).is_some() {
        return Ok(bind::claim_phase(claim) == bind::CLAIM_BOUND);
    }
    let Some(class) = class else {
        return Ok(false);
    };
    let annotations = claim.annotations();
    let handed_over = [
        bind::ANN_STORAGE_PROVISIONER,
        bind::ANN_BETA_STORAGE_PROVISIONER,
    ]
    .iter()
    .any(|key| annotations.get(*key) == Some(&class.provisioner));
    let ours = matches!(
        class.provisioner.as_str(),
        class::HOSTPATH_PROVISIONER | class::NFS_PROVISIONER
    );
    if ours && handed_over && !bind::is_delay_binding(claim, Some(class)) {
        provision(claim, class, ctx).await?;
    }
    Ok(false)
}

/// Creates the storage and the PV (claimRef set) for a claim of one of Stowage's classes. Input
/// the user must fix leaves the claim Pending with a Warning Event saying what to fix.
async fn provision(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    ctx: &Context,
) -> Result<(), ControllerError> {
    let class_name = class.name_any();
    let kind = match class::classify(class) {
        Ok(kind) => kind,
        Err(err) => {
            ctx.metrics
                .failed(Operation::Provision, &class_name, "invalid-class");
            let note = format!("StorageClass {class_name:?} cannot be used: {err}");
            ctx.event(
                claim,
                EventType::Warning,
                bind::REASON_PROVISIONING_FAILED,
                "Provisioning",
                note,
            )
            .await;
            return Ok(());
        }
    };
    let Some(provisioner) = ctx.provisioners.for_kind(&kind) else {
        if matches!(kind, ClassKind::Longhorn | ClassKind::Foreign) && ctx.mode == Mode::Binder {
            let note = format!(
                "waiting for a volume to be created by the external provisioner {:?}",
                class.provisioner
            );
            ctx.event(
                claim,
                EventType::Normal,
                "ExternalProvisioning",
                "Provisioning",
                note,
            )
            .await;
        }
        return Ok(());
    };
    let pv_name = format!("pvc-{}", claim.uid().unwrap_or_default());
    if ctx.volumes.get(&ObjectRef::new(&pv_name)).is_some() {
        // Provisioned already; binding (ours or the cluster's) follows.
        return Ok(());
    }
    let request = ProvisionRequest {
        claim: claim.clone(),
        class: class.clone(),
        kind,
        pv_name: pv_name.clone(),
        selected_node: bind::selected_node(claim).map(str::to_owned),
    };
    let started = Instant::now();
    match provisioner.provision(&request).await {
        Ok(mut volume) => {
            // Without it, a PV deleted by hand (not through its claim) would leave its data behind.
            volume
                .metadata
                .finalizers
                .get_or_insert_with(Vec::new)
                .push(super::FINALIZER.to_owned());
            if let Err(err) = ctx.create_volume(&volume).await {
                ctx.metrics
                    .failed(Operation::Provision, &class_name, err.category());
                return Err(err);
            }
            ctx.metrics.provisioned_in(&class_name, started.elapsed());
            ctx.metrics.succeeded(Operation::Provision, &class_name);
            info!(volume = %pv_name, class = %class_name, "provisioned");
            let note = format!("Successfully provisioned volume {pv_name}");
            ctx.event(
                claim,
                EventType::Normal,
                "ProvisioningSucceeded",
                "Provisioning",
                note,
            )
            .await;
            Ok(())
        }
        Err(err) => {
            ctx.metrics
                .failed(Operation::Provision, &class_name, err.category());
            let note = format!(
                "failed to provision volume with StorageClass {class_name:?}: {}",
                crate::report::chain(&err)
            );
            ctx.event(
                claim,
                EventType::Warning,
                bind::REASON_PROVISIONING_FAILED,
                "Provisioning",
                note,
            )
            .await;
            if err.is_permanent() {
                Ok(())
            } else {
                Err(ControllerError::Provision {
                    action: format!("provision a volume for {}", describe(claim)),
                    source: err,
                })
            }
        }
    }
}

/// Growth of a bound claim: refused (condition, Warning Event, metric) when the class does not
/// allow it; completed by Stowage for its own hostPath and NFS volumes; left to Longhorn's CSI.
async fn expand_claim(
    claim: &PersistentVolumeClaim,
    class: Option<&StorageClass>,
    ctx: &Context,
) -> Result<(), ControllerError> {
    if bind::claim_phase(claim) != bind::CLAIM_BOUND {
        return Ok(());
    }
    let volume =
        bind::claim_volume_name(claim).and_then(|name| ctx.volumes.get(&ObjectRef::new(name)));
    let class_name = class_label(claim).to_owned();
    match expand::plan_expansion(claim, volume.as_deref(), class) {
        ExpansionPlan::Nothing | ExpansionPlan::LeaveToCsi => Ok(()),
        ExpansionPlan::Refused { reason, message } => {
            let already = claim
                .status
                .as_ref()
                .and_then(|status| status.conditions.as_ref())
                .is_some_and(|conditions| {
                    conditions.iter().any(|c| {
                        c.type_ == EXPANSION_REFUSED && c.message.as_deref() == Some(&message)
                    })
                });
            if already {
                return Ok(());
            }
            let mut status = claim.status.clone().unwrap_or_default();
            let conditions = status.conditions.get_or_insert_with(Vec::new);
            conditions.retain(|c| c.type_ != EXPANSION_REFUSED);
            conditions.push(expand::refused_condition(&reason, &message));
            ctx.replace_claim_status(claim, status).await?;
            ctx.metrics.expansion_blocked(&class_name);
            ctx.metrics
                .failed(Operation::Expand, &class_name, "expansion-not-allowed");
            ctx.event(claim, EventType::Warning, &reason, "Resizing", message)
                .await;
            Ok(())
        }
        ExpansionPlan::Resize { from, to } => {
            let Some(volume) = volume else {
                return Ok(());
            };
            let result = async {
                let resized = expand::resized_volume(&volume, to);
                if resized != *volume {
                    ctx.replace_volume(&resized).await?;
                }
                ctx.replace_claim_status(claim, expand::resized_claim_status(claim, to))
                    .await
            }
            .await;
            match result {
                Ok(_) => {
                    ctx.metrics.succeeded(Operation::Expand, &class_name);
                    let note = format!(
                        "resize volume {} from {} to {} finished",
                        volume.name_any(),
                        crate::storage::quantity::format_bytes(from).0,
                        crate::storage::quantity::format_bytes(to).0
                    );
                    ctx.event(
                        claim,
                        EventType::Normal,
                        "VolumeResizeSuccessful",
                        "Resizing",
                        note,
                    )
                    .await;
                    Ok(())
                }
                Err(err) => {
                    ctx.metrics
                        .failed(Operation::Expand, &class_name, err.category());
                    Err(err)
                }
            }
        }
    }
}
