//! The registry's driver: follows `ResourceMirror` objects, asks API discovery about every wanted
//! group/version, and publishes a fresh [`Resolution`] whenever the outcome changes. Kinds the
//! cluster does not serve are looked up again every `rediscover_interval`; a missing
//! `ResourceMirror` CRD is reported once and retried, never fatal.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::core::DeserializeGuard;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, instrument, warn};

use crate::config::MirrorConfig;
use crate::crd::ResourceMirror;
use crate::mirror::registry::{MirrorSource, wanted};
use crate::mirror::resolve::{GroupVersion, Resolution, discovered, resolution};

/// The longest the first resolution waits for `ResourceMirror`s to be listed.
const FIRST_LIST_WAIT: Duration = Duration::from_secs(10);
/// Served group/versions are looked up again every this many rediscovery ticks.
const FULL_REFRESH_TICKS: u32 = 12;
/// One discovery request may take this long.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The `ResourceMirror` objects seen so far.
#[derive(Default)]
struct Mirrors {
    current: BTreeMap<String, MirrorSource>,
    /// Objects of a relist in progress.
    incoming: Option<BTreeMap<String, MirrorSource>>,
    /// Listed at least once, or found not installed.
    loaded: bool,
    crd_missing_reported: bool,
}

impl Mirrors {
    /// Applies one watcher event; `true` when the visible set changed.
    fn apply(&mut self, event: Event<DeserializeGuard<ResourceMirror>>) -> bool {
        match event {
            Event::Init => {
                self.incoming = Some(BTreeMap::new());
                false
            }
            Event::InitApply(object) => {
                if let Some(source) = source(object) {
                    self.incoming
                        .get_or_insert_default()
                        .insert(source.name.clone(), source);
                }
                false
            }
            Event::InitDone => {
                let listed = self.incoming.take().unwrap_or_default();
                let changed = listed != self.current;
                self.current = listed;
                if self.crd_missing_reported {
                    info!("the ResourceMirror CRD is installed now; following ResourceMirrors");
                    self.crd_missing_reported = false;
                }
                let first = !self.loaded;
                self.loaded = true;
                changed || first
            }
            Event::Apply(object) => match source(object) {
                Some(source) => {
                    self.current.insert(source.name.clone(), source.clone()) != Some(source)
                }
                None => false,
            },
            Event::Delete(object) => {
                let name = kube::Resource::meta(&object)
                    .name
                    .clone()
                    .unwrap_or_default();
                self.current.remove(&name).is_some()
            }
        }
    }

    /// Reports a watcher error; the first one also ends the wait for the first list.
    fn failed(&mut self, err: &watcher::Error) -> bool {
        let missing =
            matches!(err, watcher::Error::InitialListFailed(kube::Error::Api(s)) if s.code == 404);
        if missing && !self.crd_missing_reported {
            warn!(
                "the ResourceMirror CRD is not installed, so only built-in and configured kinds are \
                 mirrored; install it with `stowage crd | kubectl apply -f -` (retrying)"
            );
            self.crd_missing_reported = true;
        } else if !missing {
            warn!(error = %crate::report::chain(err), "cannot follow ResourceMirrors; retrying");
        }
        let first = !self.loaded;
        self.loaded = true;
        first
    }

    fn sources(&self) -> Vec<MirrorSource> {
        self.current.values().cloned().collect()
    }
}

fn source(object: DeserializeGuard<ResourceMirror>) -> Option<MirrorSource> {
    let meta = kube::Resource::meta(&object).clone();
    let name = meta.name.clone()?;
    let (spec, status) = match object.0 {
        Ok(mirror) => (Ok(mirror.spec), mirror.status),
        Err(invalid) => (Err(invalid.error), None),
    };
    Some(MirrorSource {
        name,
        generation: meta.generation,
        spec,
        status,
    })
}

/// Runs the registry until `publish` has no receivers left.
#[instrument(name = "registry", skip_all)]
pub async fn run(
    client: kube::Client,
    config: MirrorConfig,
    publish: watch::Sender<Arc<Resolution>>,
) {
    let api: Api<DeserializeGuard<ResourceMirror>> = Api::all(client.clone());
    let mut events = pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
    let mut tick = tokio::time::interval(config.rediscover_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let first_list_deadline = Instant::now() + FIRST_LIST_WAIT;
    let mut mirrors = Mirrors::default();
    let mut discovery: BTreeMap<String, GroupVersion> = BTreeMap::new();
    let mut ticks: u32 = 0;
    loop {
        let mut refresh = false;
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => { mirrors.apply(event); }
                Some(Err(err)) => { mirrors.failed(&err); }
                None => return,
            },
            _ = tick.tick() => {
                refresh = true;
                ticks = ticks.wrapping_add(1);
            }
            () = publish.closed() => return,
        }
        if !mirrors.loaded && Instant::now() < first_list_deadline {
            continue;
        }
        let sources = mirrors.sources();
        let requests = wanted(&config, &sources);
        let previous = publish.borrow().clone();
        let unresolved: BTreeSet<String> = requests
            .iter()
            .filter(|r| previous.kinds.by_id(&r.id()).is_none())
            .map(|r| r.api_version())
            .collect();
        let needed: BTreeSet<String> = requests.iter().map(|r| r.api_version()).collect();
        for api_version in &needed {
            let stale = match discovery.get(api_version) {
                None | Some(GroupVersion::Unknown) => true,
                Some(_) => {
                    refresh
                        && (unresolved.contains(api_version)
                            || ticks.is_multiple_of(FULL_REFRESH_TICKS))
                }
            };
            if stale {
                let fresh = discover(&client, api_version).await;
                let keep_old =
                    fresh == GroupVersion::Unknown && discovery.contains_key(api_version);
                if !keep_old {
                    discovery.insert(api_version.clone(), fresh);
                }
            }
        }
        discovery.retain(|gv, _| needed.contains(gv));
        let lookup = |gv: &str| discovery.get(gv).cloned().unwrap_or(GroupVersion::Unknown);
        let next = resolution(&requests, &sources, lookup, &previous.kinds);
        publish.send_if_modified(|current| {
            if **current == next {
                return false;
            }
            log_changes(current, &next);
            *current = Arc::new(next);
            true
        });
    }
}

/// Fetches one group/version's discovery document.
async fn discover(client: &kube::Client, api_version: &str) -> GroupVersion {
    let call = async {
        if api_version.contains('/') {
            client.list_api_group_resources(api_version).await
        } else {
            client.list_core_api_resources(api_version).await
        }
    };
    match tokio::time::timeout(DISCOVERY_TIMEOUT, call).await {
        Ok(Ok(list)) => GroupVersion::Served(discovered(&list)),
        Ok(Err(kube::Error::Api(status))) if status.code == 404 => GroupVersion::NotServed,
        Ok(Err(err)) => {
            debug!(%api_version, error = %crate::report::chain(&err), "discovery failed");
            GroupVersion::Unknown
        }
        Err(_) => GroupVersion::Unknown,
    }
}

fn log_changes(before: &Resolution, after: &Resolution) {
    for spec in after.kinds.all() {
        if before.kinds.by_id(&spec.id()).is_none() {
            debug!(kind = %spec.id(), "kind resolved");
        }
    }
    for missing in &after.not_served {
        if !before.not_served.iter().any(|n| n.id == missing.id) {
            info!(kind = %missing.id, reason = %missing.reason, "kind is not served by the cluster; retrying");
        }
    }
}
