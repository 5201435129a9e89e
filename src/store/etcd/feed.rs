//! The change feed from etcd's native watch. While the feed is read (see `demand`), a background
//! follower keeps one watch on the whole prefix (reconnecting with backoff when etcd goes away):
//! it wakes subscribers and keeps the recent events (`recent`), from which `changes` answers when
//! they cover `since`. Otherwise
//! `changes` opens a watch from `since + 1` and collects events up to the last revision this store
//! wrote; a compacted `since` is `Expired` (the REST feed's 410).

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Event, EventType, GetOptions, WatchOptions};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::EtcdStore;
use super::connect::{Connection, call, unavailable};
use super::demand::Demand;
use super::recent::Recent;
use crate::mirror::kind::KindSpec;
use crate::store::{Change, ChangeType, Revision, StoreError};

/// Bound on collecting one `changes` answer.
const FEED_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `changes` waits for the follower to receive the last write before opening its own
/// watch (the follower is normally a few milliseconds behind the writer).
const FOLLOWER_WAIT: Duration = Duration::from_millis(250);

impl EtcdStore {
    /// See [`crate::store::Store::changes`]: whole revisions only, so the answer may exceed
    /// `limit` by the rest of its last revision and resuming from its last revision has no gap.
    ///
    /// etcd 3.4 answers a watch progress request at once, even while the watcher is still
    /// replaying history, so the end of the history is found another way: every transaction of
    /// this store also puts the revision marker key, whose `mod_revision` is the last revision
    /// that changed anything under the prefix; the watch (on the whole prefix, marker included)
    /// is read until that revision's events arrived.
    pub(super) async fn feed(
        &self,
        kind: Option<&KindSpec>,
        since: Revision,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        self.demand.touch();
        let clients = self.conn.clients().await?;
        let last = self.last_write().await?;
        if since >= last || limit == 0 {
            return Ok(Vec::new());
        }
        let only = kind.map(|k| self.layout.kind_prefix(k));
        if self.recent.wait_for(last, FOLLOWER_WAIT).await && !self.compacted(since).await? {
            let answer = self.recent.read(since, last, |events| {
                let mut out = Vec::new();
                self.collect(events, only.as_deref(), last, limit, &mut out);
                out
            });
            if let Some(out) = answer {
                return Ok(out);
            }
        }
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(i64::try_from(since + 1).unwrap_or(i64::MAX))
            .with_prev_key();
        let mut client = clients.watch.clone();
        let mut stream = call(
            "opening a watch",
            client.watch(self.layout.root(), Some(options)),
        )
        .await?;
        let deadline = Instant::now() + FEED_TIMEOUT;
        let mut out: Vec<Change> = Vec::new();
        loop {
            let message = tokio::time::timeout_at(deadline, stream.message())
                .await
                .map_err(|_| {
                    closed(&format!(
                        "the watch did not reach revision {last} within {FEED_TIMEOUT:?}"
                    ))
                })?;
            let response = message
                .map_err(|e| unavailable("reading the watch", e))?
                .ok_or_else(|| closed("the watch ended"))?;
            if response.canceled() {
                if response.compact_revision() > 0 {
                    return Err(StoreError::Expired {
                        requested: since,
                        oldest: response.compact_revision() as Revision,
                    });
                }
                return Err(closed(&format!(
                    "watch cancelled: {}",
                    response.cancel_reason()
                )));
            }
            if self.collect(response.events(), only.as_deref(), last, limit, &mut out) {
                break;
            }
        }
        Ok(out)
    }

    /// Whether etcd compacted the history after `since` away. Memory may still hold it, but every
    /// backend answers a compacted revision the same way (`Expired`), so the watch path decides.
    async fn compacted(&self, since: Revision) -> Result<bool, StoreError> {
        let mut kv = self.conn.clients().await?.kv;
        let at = GetOptions::new().with_revision(i64::try_from(since + 1).unwrap_or(i64::MAX));
        match tokio::time::timeout(FEED_TIMEOUT, kv.get(self.layout.marker(), Some(at))).await {
            Ok(Ok(_)) => Ok(false),
            Ok(Err(error)) if error.to_string().contains("compacted") => Ok(true),
            Ok(Err(error)) => Err(unavailable("reading an old revision", error)),
            Err(_) => Err(closed("no answer about an old revision")),
        }
    }

    /// The revision of this store's last transaction (0 before the first).
    pub(super) async fn last_write(&self) -> Result<Revision, StoreError> {
        let mut kv = self.conn.clients().await?.kv;
        let response = call(
            "reading the revision marker",
            kv.get(self.layout.marker(), None),
        )
        .await?;
        if let Some(header) = response.header() {
            self.saw(header.revision() as Revision);
        }
        Ok(response
            .kvs()
            .first()
            .map_or(0, |kv| kv.mod_revision() as Revision))
    }

    /// Adds the events up to `last` (of the kind under `only`, when given) to `out`, stopping
    /// before a new revision once `limit` is reached. True when the answer is complete.
    fn collect(
        &self,
        events: &[Event],
        only: Option<&str>,
        last: Revision,
        limit: usize,
        out: &mut Vec<Change>,
    ) -> bool {
        for event in events {
            let Some(kv) = event.kv() else {
                continue;
            };
            let revision = kv.mod_revision() as Revision;
            let full = out.len() >= limit && out.last().is_some_and(|c| c.revision != revision);
            if revision > last || full {
                return true;
            }
            let wanted = only.is_none_or(|prefix| kv.key().starts_with(prefix.as_bytes()));
            if wanted && let Some(change) = self.decode_event(event, revision) {
                out.push(change);
            }
        }
        // The events of one revision always come in one response.
        events
            .last()
            .and_then(Event::kv)
            .is_some_and(|kv| kv.mod_revision() as Revision >= last)
    }

    /// A watch event as a change of a registered kind; events of other keys are skipped.
    fn decode_event(&self, event: &Event, revision: Revision) -> Option<Change> {
        let (kv, change) = match event.event_type() {
            EventType::Put => {
                let kv = event.kv()?;
                let change = if kv.version() == 1 {
                    ChangeType::Added
                } else {
                    ChangeType::Modified
                };
                (kv, change)
            }
            EventType::Delete => (event.prev_kv()?, ChangeType::Deleted),
        };
        let key = kv.key_str().ok()?;
        let state = self.kind_of_key(key)?;
        let shape = state.shape();
        match shape.codec.decode(kv.value()) {
            Ok(object) => Some(Change {
                revision,
                kind: shape.spec.id(),
                change,
                object,
            }),
            Err(error) => {
                warn!(key, %error, "skipping an undecodable value in the change feed");
                None
            }
        }
    }
}

fn closed(message: &str) -> StoreError {
    StoreError::Unavailable {
        message: message.to_owned(),
        source: None,
    }
}

/// Publishes `revision` to subscribers when it moves forward.
pub(super) fn publish(notify: &watch::Sender<Revision>, revision: Revision) {
    notify.send_if_modified(|current| {
        let moved = revision > *current;
        if moved {
            *current = revision;
        }
        moved
    });
}

/// What the follower watches and whom it tells.
pub(super) struct Follower {
    pub conn: Arc<Connection>,
    pub root: String,
    pub marker: String,
    pub notify: Arc<watch::Sender<Revision>>,
    pub recent: Arc<Recent>,
    pub demand: Arc<Demand>,
}

/// Follows every change under the prefix (other processes' too) to wake subscribers and keep the
/// recent events while the feed is read; runs until aborted, reconnecting with backoff.
pub(super) async fn follow(follower: Follower) {
    let mut backoff = Duration::from_millis(100);
    let subscribers = || follower.notify.receiver_count();
    loop {
        follower.demand.until_wanted(subscribers).await;
        let result = tokio::select! {
            result = follow_once(&follower) => result,
            () = follower.demand.until_idle(subscribers) => {
                debug!("nobody reads the change feed; etcd watch closed");
                Ok(())
            }
        };
        follower.recent.stop();
        match result {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(error) => {
                debug!(%error, "etcd watch for subscribers interrupted; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn follow_once(follower: &Follower) -> Result<(), StoreError> {
    let clients = follower.conn.clients().await?;
    let mut kv = clients.kv.clone();
    let response = call(
        "reading the revision marker",
        kv.get(follower.marker.as_str(), None),
    )
    .await?;
    let current = response.header().map_or(0, |h| h.revision() as Revision);
    if let Some(kv) = response.kvs().first() {
        publish(&follower.notify, kv.mod_revision() as Revision);
    }
    let options = WatchOptions::new()
        .with_prefix()
        .with_prev_key()
        .with_start_revision(current as i64 + 1);
    let mut client = clients.watch.clone();
    let mut stream = call(
        "opening a watch",
        client.watch(follower.root.as_str(), Some(options)),
    )
    .await?;
    follower.recent.restart(current);
    while let Some(response) = stream
        .message()
        .await
        .map_err(|e| unavailable("reading the watch", e))?
    {
        if response.canceled() {
            return Err(closed("watch cancelled"));
        }
        follower.recent.push(response.events());
        if let Some(kv) = response.events().last().and_then(Event::kv) {
            publish(&follower.notify, kv.mod_revision() as Revision);
        }
    }
    Ok(())
}
