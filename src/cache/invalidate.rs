//! The two tasks that keep the cache honest: [`Cache::follow`] turns the store's changes into
//! invalidations (this replica's mirror writes them), [`Cache::listen`] applies the ones other
//! replicas publish on Redis pub/sub.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::{Cache, Inner, deps};
use crate::mirror::breaker::Outcome;
use crate::mirror::registry::KindsReceiver;
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};

/// Changes read from the store per call.
const CHANGES_PER_READ: usize = 1_000;
/// How often invalidations Redis missed are retried without a new change.
const RETRY_PENDING: Duration = Duration::from_secs(1);
/// Pause between pub/sub connection attempts.
const RESUBSCRIBE: Duration = Duration::from_millis(500);

/// What one replica publishes after a batch of changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The publishing replica (it ignores its own messages).
    #[serde(rename = "o")]
    pub origin: String,
    /// New list generation per kind.
    #[serde(rename = "g")]
    pub generations: BTreeMap<String, u64>,
    /// Keys to drop.
    #[serde(rename = "k")]
    pub keys: BTreeSet<String>,
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        // Plain strings and numbers always serialise.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `None` for anything that is not a message of ours.
    pub fn decode(raw: &[u8]) -> Option<Self> {
        serde_json::from_slice(raw).ok()
    }
}

impl Cache {
    /// Follows `store`'s changes from its current revision and invalidates what each batch
    /// makes stale, until `shutdown`. `kinds` tells which kinds' lists to drop when the changes
    /// fell out of the store's history. Does nothing for a disabled cache.
    pub fn follow(
        &self,
        store: Arc<dyn Store>,
        kinds: KindsReceiver,
        shutdown: Shutdown,
    ) -> Option<JoinHandle<()>> {
        let inner = self.inner.clone()?;
        Some(tokio::spawn(async move {
            follow(inner, store, kinds, shutdown).await;
        }))
    }

    /// Applies other replicas' invalidations from Redis pub/sub until `shutdown`, reconnecting
    /// when Redis goes away. Does nothing without Redis.
    pub fn listen(&self, shutdown: Shutdown) -> Option<JoinHandle<()>> {
        let inner = self.inner.clone().filter(|inner| inner.l2.is_some())?;
        Some(tokio::spawn(async move { listen(inner, shutdown).await }))
    }

    /// Whether the pub/sub listener is subscribed (always false without Redis).
    pub fn is_subscribed(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|inner| inner.subscribed.load(Ordering::Acquire))
    }
}

async fn follow(
    inner: Arc<Inner>,
    store: Arc<dyn Store>,
    kinds: KindsReceiver,
    shutdown: Shutdown,
) {
    let mut revisions = store.subscribe();
    let mut since = *revisions.borrow_and_update();
    let mut retry = tokio::time::interval(RETRY_PENDING);
    loop {
        tokio::select! {
            changed = revisions.changed() => if changed.is_err() { return },
            _ = retry.tick() => {}
            () = shutdown.wait() => return,
        }
        loop {
            match store.changes(None, since, CHANGES_PER_READ).await {
                Ok(changes) => {
                    let Some(last) = changes.last() else { break };
                    since = last.revision;
                    inner.metrics.invalidations.inc_by(changes.len() as u64);
                    inner
                        .invalidate(deps::invalidations(&inner.keys, &changes))
                        .await;
                    if changes.len() < CHANGES_PER_READ {
                        break;
                    }
                }
                Err(StoreError::Expired { .. }) => {
                    // Changes were lost: everything may be stale.
                    warn!("the cache fell behind the store's change history; dropping everything");
                    since = *revisions.borrow_and_update();
                    let all = kinds.borrow().all().map(|k| k.id()).collect::<Vec<_>>();
                    inner.l1.clear();
                    inner
                        .invalidate(deps::everything(
                            &inner.keys,
                            all.iter().map(String::as_str),
                        ))
                        .await;
                    break;
                }
                Err(err) => {
                    debug!(error = %err, "cannot read the store's changes; retrying");
                    break;
                }
            }
        }
        // Retries what Redis missed while it was unreachable.
        inner.invalidate(deps::Invalidation::default()).await;
    }
}

async fn listen(inner: Arc<Inner>, shutdown: Shutdown) {
    let Some(l2) = &inner.l2 else { return };
    let channel = inner.keys.channel();
    loop {
        let connect = async {
            let mut pubsub = l2.client().get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(l2.timeout() * 4, connect).await {
            Ok(Ok(pubsub)) => {
                // Redis answers: close its breaker even if no read has probed it yet.
                l2.record(Outcome::Success);
                inner.resubscribed();
                inner.subscribed.store(true, Ordering::Release);
                info!(%channel, "listening for other replicas' cache invalidations");
                let mut messages = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => match Message::decode(message.get_payload_bytes()) {
                                Some(message) => inner.apply_remote(message),
                                None => debug!(%channel, "ignored a message that is not an invalidation"),
                            },
                            None => break,
                        },
                        () = shutdown.wait() => return,
                    }
                }
                inner.subscribed.store(false, Ordering::Release);
                warn!(%channel, "lost the Redis invalidation channel; reconnecting");
            }
            Ok(Err(err)) => {
                debug!(error = %err, "cannot subscribe to Redis");
                l2.record(Outcome::TransientFailure);
            }
            Err(_) => {
                debug!("no answer from Redis while subscribing");
                l2.record(Outcome::TransientFailure);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RESUBSCRIBE) => {}
            () = shutdown.wait() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_foreign_ones_are_ignored() {
        let message = Message {
            origin: "a".into(),
            generations: BTreeMap::from([("core/v1/Pod".into(), 3)]),
            keys: BTreeSet::from(["s:resources".into()]),
        };
        assert_eq!(Message::decode(&message.encode()), Some(message));
        assert_eq!(Message::decode(b"hello"), None);
        assert_eq!(Message::decode(br#"{"o":1}"#), None);
    }
}
