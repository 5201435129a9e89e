//! The controller's writes: full replaces (the resourceVersion makes them conditional) and status
//! replaces with field manager `stowage`, and Events through kube-runtime's recorder.

use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus, PersistentVolumeStatus,
};
use kube::api::{DeleteParams, PostParams};
use std::collections::HashMap;

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Resource, ResourceExt};
use parking_lot::Mutex;
use tracing::warn;

use super::lean::Lean;
use super::{Context, ControllerError, MANAGER};

fn post() -> PostParams {
    PostParams {
        dry_run: false,
        field_manager: Some(MANAGER.to_owned()),
    }
}

// The writes' answers are decoded without managedFields (`Lean`), as the watches are.
fn claims(ctx: &Context, claim: &PersistentVolumeClaim) -> Api<Lean<PersistentVolumeClaim>> {
    Api::namespaced(
        ctx.client.clone(),
        claim.metadata.namespace.as_deref().unwrap_or_default(),
    )
}

fn volumes(ctx: &Context) -> Api<Lean<PersistentVolume>> {
    Api::all(ctx.client.clone())
}

fn describe<K: Resource<DynamicType = ()>>(object: &K) -> String {
    match object.meta().namespace.as_deref() {
        Some(namespace) => format!("{} {namespace}/{}", K::kind(&()), object.name_any()),
        None => format!("{} {}", K::kind(&()), object.name_any()),
    }
}

impl Context {
    /// Replaces a claim's metadata and spec.
    pub(super) async fn replace_claim(
        &self,
        claim: &PersistentVolumeClaim,
    ) -> Result<PersistentVolumeClaim, ControllerError> {
        let Lean(written) = claims(self, claim)
            .replace(&claim.name_any(), &post(), &Lean(claim.clone()))
            .await
            .map_err(|source| {
                ControllerError::api(format!("update {}", describe(claim)), source)
            })?;
        self.assumed.claim_written(&written);
        Ok(written)
    }

    /// Replaces a claim's status.
    pub(super) async fn replace_claim_status(
        &self,
        claim: &PersistentVolumeClaim,
        status: PersistentVolumeClaimStatus,
    ) -> Result<PersistentVolumeClaim, ControllerError> {
        let mut object = Lean(claim.clone());
        object.0.status = Some(status);
        let Lean(written) = claims(self, claim)
            .replace_status(&claim.name_any(), &post(), &object)
            .await
            .map_err(|source| {
                ControllerError::api(format!("update the status of {}", describe(claim)), source)
            })?;
        self.assumed.claim_written(&written);
        Ok(written)
    }

    /// Creates a volume; one that exists already (a retried provision) is read back.
    pub(super) async fn create_volume(
        &self,
        volume: &PersistentVolume,
    ) -> Result<PersistentVolume, ControllerError> {
        match volumes(self).create(&post(), &Lean(volume.clone())).await {
            Ok(Lean(created)) => Ok(created),
            Err(kube::Error::Api(status)) if status.code == 409 => volumes(self)
                .get(&volume.name_any())
                .await
                .map(|Lean(volume)| volume)
                .map_err(|source| {
                    ControllerError::api(format!("read {}", describe(volume)), source)
                }),
            Err(source) => Err(ControllerError::api(
                format!("create {}", describe(volume)),
                source,
            )),
        }
    }

    /// Replaces a volume's metadata and spec.
    pub(super) async fn replace_volume(
        &self,
        volume: &PersistentVolume,
    ) -> Result<PersistentVolume, ControllerError> {
        volumes(self)
            .replace(&volume.name_any(), &post(), &Lean(volume.clone()))
            .await
            .map(|Lean(volume)| volume)
            .map_err(|source| ControllerError::api(format!("update {}", describe(volume)), source))
    }

    /// Replaces a volume's status (binder mode only: provisioner mode never writes PV phases).
    pub(super) async fn replace_volume_status(
        &self,
        volume: &PersistentVolume,
        status: PersistentVolumeStatus,
    ) -> Result<PersistentVolume, ControllerError> {
        let mut object = Lean(volume.clone());
        object.0.status = Some(status);
        volumes(self)
            .replace_status(&volume.name_any(), &post(), &object)
            .await
            .map(|Lean(volume)| volume)
            .map_err(|source| {
                ControllerError::api(format!("update the status of {}", describe(volume)), source)
            })
    }

    /// Deletes a volume object (its storage is already dealt with); gone already is fine.
    pub(super) async fn delete_volume_object(
        &self,
        volume: &PersistentVolume,
    ) -> Result<(), ControllerError> {
        match volumes(self)
            .delete(&volume.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(source) => Err(ControllerError::api(
                format!("delete {}", describe(volume)),
                source,
            )),
        }
    }

    /// Publishes an Event about `object`; a failure is logged, never fatal.
    pub(super) async fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note)),
            action: action.to_owned(),
            secondary: None,
        };
        let recorder =
            self.events
                .recorder(object, reason, event.note.as_deref().unwrap_or_default());
        if let Err(err) = recorder.publish(&event, &object.object_ref(&())).await {
            warn!(object = %describe(object), reason, error = %err, "cannot publish an Event");
        }
    }
}

/// Most (object, reason) pairs tracked before the table starts afresh.
const EVENT_KEYS: usize = 10_000;

/// kube-runtime's recorder folds repeats of an Event (same object, reason and action) into one
/// Event's series and keeps the first message. A repeat with the same message should be folded;
/// one with a new message (what to fix changed) must be seen, so it gets a fresh recorder.
pub(super) struct Events {
    client: kube::Client,
    reporter: Reporter,
    /// "uid/reason" → the last message and the recorder that published it.
    last: Mutex<HashMap<String, (String, Recorder)>>,
}

impl Events {
    pub(super) fn new(client: kube::Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            last: Mutex::new(HashMap::new()),
        }
    }

    fn recorder<K: Resource>(&self, object: &K, reason: &str, note: &str) -> Recorder {
        let key = format!(
            "{}/{reason}",
            object.meta().uid.as_deref().unwrap_or_default()
        );
        let mut last = self.last.lock();
        if let Some((message, recorder)) = last.get(&key)
            && message == note
        {
            return recorder.clone();
        }
        if last.len() >= EVENT_KEYS {
            last.clear();
        }
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        last.insert(key, (note.to_owned(), recorder.clone()));
        recorder
    }
}

/// Event notes are limited to 1 kB.
fn truncate(mut note: String) -> String {
    const LIMIT: usize = 1024;
    if note.len() > LIMIT {
        let mut end = LIMIT - 3;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    note
}
