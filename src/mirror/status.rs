//! `ResourceMirror` status: what each one should report (pure, [`desired_status`]) and a writer
//! that applies it to the status subresource (server-side apply, field manager `stowage`) only
//! when it changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tracing::{debug, instrument, warn};

use crate::crd::{Condition, ConditionStatus, ResourceMirror, ResourceMirrorStatus};
use crate::mirror::health::{KindHealth, MirrorHealth, SyncState};
use crate::mirror::resolve::{MirrorOutcome, Resolution};

/// Field manager of everything Stowage writes.
pub const FIELD_MANAGER: &str = "stowage";
/// The condition every `ResourceMirror` carries.
pub const SYNCED: &str = "Synced";
/// How often statuses are recomputed between registry changes.
const STATUS_INTERVAL: Duration = Duration::from_secs(2);

/// The condition's status, reason and message for an outcome and the kind's health.
fn synced(
    outcome: &MirrorOutcome,
    health: Option<&KindHealth>,
) -> (ConditionStatus, &'static str, String) {
    use ConditionStatus::{False, True};
    match outcome {
        MirrorOutcome::Disabled => (
            False,
            "Disabled",
            "spec.enabled is false; the kind is not mirrored".into(),
        ),
        MirrorOutcome::Invalid { reason } => (False, "Invalid", reason.clone()),
        MirrorOutcome::NotServed { reason, .. } => {
            (False, "NotServed", format!("{reason}; retrying"))
        }
        MirrorOutcome::Pending { kind } => (
            False,
            "Syncing",
            format!("waiting for API discovery of {kind}"),
        ),
        MirrorOutcome::Active { kind } => match health.map(|h| (h.state, h.last_error.clone())) {
            Some((SyncState::Synced, _)) => (True, "Synced", format!("{kind} is mirrored")),
            Some((SyncState::Degraded, error)) => (
                False,
                "Degraded",
                error.unwrap_or_else(|| "errors while mirroring".into()),
            ),
            Some((SyncState::NotServed, error)) => (False, "NotServed", error.unwrap_or_default()),
            Some((SyncState::Pending | SyncState::Syncing, _)) | None => {
                (False, "Syncing", format!("listing {kind}"))
            }
        },
    }
}

/// The status a `ResourceMirror` should have. `previous` keeps the condition's
/// `lastTransitionTime` while its status does not change; `now` is RFC 3339.
pub fn desired_status(
    outcome: &MirrorOutcome,
    health: Option<&KindHealth>,
    generation: Option<i64>,
    previous: Option<&ResourceMirrorStatus>,
    now: &str,
) -> ResourceMirrorStatus {
    let (status, reason, message) = synced(outcome, health);
    let before = previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == SYNCED));
    let last_transition_time = match before {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Some(now.to_owned()),
    };
    let active = matches!(outcome, MirrorOutcome::Active { .. });
    let health = health.filter(|_| active);
    let last_error = match outcome {
        MirrorOutcome::Invalid { reason } => Some(reason.clone()),
        MirrorOutcome::NotServed { reason, .. } => Some(reason.clone()),
        _ => health.and_then(|h| h.last_error.clone()),
    };
    ResourceMirrorStatus {
        conditions: vec![Condition {
            type_: SYNCED.into(),
            status,
            reason: reason.into(),
            message,
            last_transition_time,
            observed_generation: generation,
        }],
        objects: health.map(|h| h.objects as i64),
        last_event_time: health.and_then(|h| h.last_event_time.clone()),
        last_error,
        observed_generation: generation,
    }
}

/// Keeps every `ResourceMirror`'s status current until `resolutions` closes, writing only
/// while `leading` is true (the replica holding the Lease); a replica that becomes leader
/// writes every status that differs from what it sees.
#[instrument(name = "status_writer", skip_all)]
pub async fn run(
    client: kube::Client,
    health: MirrorHealth,
    mut resolutions: watch::Receiver<Arc<Resolution>>,
    mut leading: watch::Receiver<bool>,
) {
    let api: Api<ResourceMirror> = Api::all(client);
    let mut written: BTreeMap<String, ResourceMirrorStatus> = BTreeMap::new();
    let mut failing: BTreeMap<String, String> = BTreeMap::new();
    let mut tick = tokio::time::interval(STATUS_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // A closed election keeps its last answer.
    let mut election_open = true;
    loop {
        tokio::select! {
            changed = resolutions.changed() => if changed.is_err() { return },
            changed = leading.changed(), if election_open => election_open = changed.is_ok(),
            _ = tick.tick() => {}
        }
        if !*leading.borrow_and_update() {
            // Another replica writes; forget ours so that leading again rewrites what differs.
            written.clear();
            failing.clear();
            continue;
        }
        let resolution = resolutions.borrow_and_update().clone();
        written.retain(|name, _| resolution.mirrors.contains_key(name));
        let now =
            humantime_serde::re::humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string();
        for (name, report) in &resolution.mirrors {
            let kind = match &report.outcome {
                MirrorOutcome::Active { kind } => health.kind(kind),
                _ => None,
            };
            let previous = written.get(name).or(report.status.as_ref());
            let desired = desired_status(
                &report.outcome,
                kind.as_ref(),
                report.generation,
                previous,
                &now,
            );
            if Some(&desired) == written.get(name) || Some(&desired) == report.status.as_ref() {
                continue;
            }
            let body = json!({"apiVersion": "stowage.io/v1alpha1", "kind": "ResourceMirror", "status": desired});
            match api
                .patch_status(
                    name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await
            {
                Ok(_) => {
                    debug!(%name, "ResourceMirror status written");
                    failing.remove(name);
                    written.insert(name.clone(), desired);
                }
                Err(err) => {
                    let reason = crate::report::chain(&err);
                    if failing.get(name) != Some(&reason) {
                        warn!(%name, error = %reason, "cannot write ResourceMirror status; retrying");
                        failing.insert(name.clone(), reason);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(state: SyncState, error: Option<&str>) -> KindHealth {
        let mut h = KindHealth::new("example.com/v1/Widget".into(), "widgets".into());
        h.state = state;
        h.objects = 3;
        h.last_error = error.map(Into::into);
        h.last_event_time = Some("2024-01-01T00:00:00Z".into());
        h
    }

    fn active() -> MirrorOutcome {
        MirrorOutcome::Active {
            kind: "example.com/v1/Widget".into(),
        }
    }

    fn condition(status: &ResourceMirrorStatus) -> (ConditionStatus, &str) {
        (
            status.conditions[0].status,
            status.conditions[0].reason.as_str(),
        )
    }

    #[test]
    fn condition_follows_outcome_and_health() {
        use ConditionStatus::{False, True};
        let not_served = MirrorOutcome::NotServed {
            kind: "x".into(),
            reason: "no CRD".into(),
        };
        let cases = [
            (
                active(),
                Some(health(SyncState::Synced, None)),
                (True, "Synced"),
            ),
            (
                active(),
                Some(health(SyncState::Syncing, None)),
                (False, "Syncing"),
            ),
            (
                active(),
                Some(health(SyncState::Pending, None)),
                (False, "Syncing"),
            ),
            (active(), None, (False, "Syncing")),
            (
                active(),
                Some(health(SyncState::Degraded, Some("watch failed"))),
                (False, "Degraded"),
            ),
            (not_served, None, (False, "NotServed")),
            (MirrorOutcome::Disabled, None, (False, "Disabled")),
            (
                MirrorOutcome::Invalid {
                    reason: "bad".into(),
                },
                None,
                (False, "Invalid"),
            ),
            (
                MirrorOutcome::Pending { kind: "x".into() },
                None,
                (False, "Syncing"),
            ),
        ];
        for (outcome, health, want) in cases {
            let status = desired_status(&outcome, health.as_ref(), Some(4), None, "now");
            assert_eq!(condition(&status), want, "{outcome:?}");
            assert_eq!(status.observed_generation, Some(4));
        }
    }

    #[test]
    fn counts_and_errors_come_from_health() {
        let status = desired_status(
            &active(),
            Some(&health(SyncState::Degraded, Some("store down"))),
            Some(1),
            None,
            "now",
        );
        assert_eq!(status.objects, Some(3));
        assert_eq!(status.last_error.as_deref(), Some("store down"));
        assert_eq!(
            status.last_event_time.as_deref(),
            Some("2024-01-01T00:00:00Z")
        );
        let not_served = MirrorOutcome::NotServed {
            kind: "x".into(),
            reason: "no CRD".into(),
        };
        let status = desired_status(&not_served, None, Some(1), None, "now");
        assert_eq!(
            (status.objects, status.last_error.as_deref()),
            (None, Some("no CRD"))
        );
    }

    #[test]
    fn transition_time_moves_only_when_the_status_does() {
        let syncing = desired_status(&active(), None, Some(1), None, "t1");
        let still = desired_status(
            &MirrorOutcome::Pending { kind: "x".into() },
            None,
            Some(1),
            Some(&syncing),
            "t2",
        );
        assert_eq!(
            still.conditions[0].last_transition_time.as_deref(),
            Some("t1"),
            "False stays False"
        );
        let synced = desired_status(
            &active(),
            Some(&health(SyncState::Synced, None)),
            Some(1),
            Some(&still),
            "t3",
        );
        assert_eq!(
            synced.conditions[0].last_transition_time.as_deref(),
            Some("t3")
        );
        let again = desired_status(
            &active(),
            Some(&health(SyncState::Synced, None)),
            Some(1),
            Some(&synced),
            "t4",
        );
        assert_eq!(again, synced, "nothing changed, nothing to write");
    }
}
