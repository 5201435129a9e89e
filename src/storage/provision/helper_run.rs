//! Runs one helper pod to its end: create (replacing a stale pod of the same name), watch until
//! Succeeded/Failed within a deadline, and always delete it again — also when the caller's future
//! is dropped half-way.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};

use super::error::ProvisionError;
use super::helper_pod::{HELPER_SELECTOR, HelperOutcome, helper_outcome, is_orphaned};

/// Creates `pod`, waits up to `timeout` for it to end and deletes it. Ok when it Succeeded.
pub(crate) async fn run_helper_pod(
    client: &Client,
    pod: Pod,
    timeout: Duration,
) -> Result<(), ProvisionError> {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let image = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);

    create_replacing_stale(&api, &pod, &node, timeout).await?;
    let mut cleanup = Cleanup::armed(api.clone(), name.clone());

    let finished =
        |pod: Option<&Pod>| pod.is_none_or(|p| helper_outcome(p) != HelperOutcome::Running);
    let waited = tokio::time::timeout(timeout, await_condition(api.clone(), &name, finished)).await;
    let result = match waited {
        Err(_elapsed) => Err(ProvisionError::HelperTimeout {
            namespace: namespace.clone(),
            pod: name.clone(),
            node: node.clone(),
            image,
            timeout,
        }),
        Ok(Err(source)) => Err(ProvisionError::Watch {
            namespace: namespace.clone(),
            pod: name.clone(),
            source,
        }),
        Ok(Ok(None)) => Err(ProvisionError::HelperFailed {
            namespace: namespace.clone(),
            pod: name.clone(),
            node: node.clone(),
            message: "the pod was deleted before it finished".to_string(),
        }),
        Ok(Ok(Some(done))) => match helper_outcome(&done) {
            HelperOutcome::Succeeded => Ok(()),
            HelperOutcome::Failed(message) => Err(ProvisionError::HelperFailed {
                namespace: namespace.clone(),
                pod: name.clone(),
                node: node.clone(),
                message,
            }),
            // The wait returns only finished pods; kept as an error rather than a panic.
            HelperOutcome::Running => Err(ProvisionError::HelperFailed {
                namespace: namespace.clone(),
                pod: name.clone(),
                node: node.clone(),
                message: "the watch ended while the pod was still running".to_string(),
            }),
        },
    };
    cleanup.disarm();
    delete_pod(&api, &name).await;
    result
}

/// Creates the pod; a pod left by an earlier, interrupted attempt is deleted first (its result
/// cannot be trusted: it may be Failed, or for another path).
async fn create_replacing_stale(
    api: &Api<Pod>,
    pod: &Pod,
    node: &str,
    timeout: Duration,
) -> Result<(), ProvisionError> {
    let name = pod.name_any();
    let namespace = pod.namespace().unwrap_or_default();
    let action = || format!("create helper pod {namespace}/{name}");
    match api.create(&PostParams::default(), pod).await {
        Ok(_) => return Ok(()),
        Err(kube::Error::Api(status)) if status.is_already_exists() => {}
        Err(source) => return Err(ProvisionError::api(action(), source)),
    }
    tracing::info!(pod = %name, %namespace, "replacing a helper pod left by an earlier attempt");
    let stale = match api.get_opt(&name).await {
        Ok(stale) => stale,
        Err(source) => return Err(ProvisionError::api(action(), source)),
    };
    if let Some(uid) = stale.as_ref().and_then(|p| p.uid()) {
        match api.delete(&name, &now()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(source) => return Err(ProvisionError::api(action(), source)),
        }
        let gone = await_condition(api.clone(), &name, conditions::is_deleted(&uid));
        match tokio::time::timeout(timeout, gone).await {
            Ok(Ok(_)) => {}
            Ok(Err(source)) => {
                return Err(ProvisionError::Watch {
                    namespace,
                    pod: name,
                    source,
                });
            }
            Err(_elapsed) => {
                return Err(ProvisionError::HelperFailed {
                    namespace,
                    pod: name,
                    node: node.to_string(),
                    message: format!("an earlier helper pod was not removed within {timeout:?}"),
                });
            }
        }
    }
    api.create(&PostParams::default(), pod)
        .await
        .map(|_| ())
        .map_err(|source| ProvisionError::api(action(), source))
}

/// Deletes the helper pods in `namespace` nobody waits for any more (left by a crashed or
/// replaced leader); returns their names.
pub(crate) async fn remove_orphaned_helper_pods(
    client: &Client,
    namespace: &str,
    helper_timeout: Duration,
) -> Result<Vec<String>, ProvisionError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = api
        .list(&ListParams::default().labels(HELPER_SELECTOR))
        .await
        .map_err(|e| ProvisionError::api(format!("list helper pods in {namespace}"), e))?;
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut removed = Vec::new();
    for pod in pods
        .items
        .iter()
        .filter(|p| is_orphaned(p, now, helper_timeout))
    {
        let name = pod.name_any();
        delete_pod(&api, &name).await;
        removed.push(name);
    }
    Ok(removed)
}

fn now() -> DeleteParams {
    DeleteParams::background().grace_period(0)
}

/// Deletes the helper pod; a missing pod is fine, other failures are logged (the next attempt
/// replaces a leftover pod anyway).
async fn delete_pod(api: &Api<Pod>, name: &str) {
    match api.delete(name, &now()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.is_not_found() => {}
        Err(err) => tracing::warn!(pod = %name, error = %err, "cannot delete helper pod"),
    }
}

/// Deletes the pod in the background if the run is dropped before it cleaned up itself.
struct Cleanup {
    api: Api<Pod>,
    name: String,
    armed: bool,
}

impl Cleanup {
    fn armed(api: Api<Pod>, name: String) -> Self {
        Self {
            api,
            name,
            armed: true,
        }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let api = self.api.clone();
            let name = std::mem::take(&mut self.name);
            handle.spawn(async move { delete_pod(&api, &name).await });
        }
    }
}
