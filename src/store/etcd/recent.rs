//! The recent raw watch events of the store's whole prefix, kept by the long-lived follower watch
//! so that `changes` near the head is answered from memory. Opening a watch per `changes` call
//! costs up to 100 ms on etcd 3.4, which catches new (unsynced) watchers up in a 100 ms loop.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use etcd_client::Event;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::store::Revision;

/// Bounds of the buffer; the oldest events are dropped first.
const MAX_EVENTS: usize = 16_384;
const MAX_BYTES: usize = 32 << 20;

/// Events of the follower's current watch. Every event with a revision above `from` and up to
/// `head` is held while `live`; a reconnect starts afresh (events may have been missed between).
pub(super) struct Recent {
    inner: Mutex<Inner>,
    /// The head after each push, for readers waiting for their revision to arrive.
    progress: watch::Sender<Revision>,
    /// How many `read`s were answered from memory (tests check the path is taken).
    answered: AtomicU64,
}

struct Inner {
    live: bool,
    from: Revision,
    head: Revision,
    bytes: usize,
    events: VecDeque<Event>,
}

impl Recent {
    pub(super) fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                live: false,
                from: 0,
                head: 0,
                bytes: 0,
                events: VecDeque::new(),
            }),
            progress: watch::channel(0).0,
            answered: AtomicU64::new(0),
        }
    }

    /// A new watch starts after `revision`: what came before it is no longer known to be whole.
    pub(super) fn restart(&self, revision: Revision) {
        let mut inner = self.inner.lock();
        inner.live = true;
        inner.from = revision;
        inner.head = revision;
        inner.bytes = 0;
        inner.events.clear();
    }

    /// The watch broke: answer nothing from memory until it is back.
    pub(super) fn stop(&self) {
        self.inner.lock().live = false;
    }

    /// Appends one watch response (etcd sends the events of a revision in one response).
    pub(super) fn push(&self, events: &[Event]) {
        let mut inner = self.inner.lock();
        for event in events {
            let Some(kv) = event.kv() else { continue };
            inner.head = inner.head.max(kv.mod_revision() as Revision);
            inner.bytes += size(event);
            inner.events.push_back(event.clone());
        }
        while inner.events.len() > MAX_EVENTS || inner.bytes > MAX_BYTES {
            let Some(old) = inner.events.pop_front() else {
                break;
            };
            inner.bytes -= size(&old);
            // Other events of the dropped one's revision may remain: that revision is no longer whole.
            let revision = old.kv().map_or(0, |kv| kv.mod_revision() as Revision);
            inner.from = inner.from.max(revision);
        }
        let head = inner.head;
        drop(inner);
        self.progress.send_replace(head);
    }

    /// Waits until `last` was received, at most `wait`; false when it was not.
    pub(super) async fn wait_for(&self, last: Revision, wait: std::time::Duration) -> bool {
        if self.head().is_none() {
            // Not following (nobody read the feed lately, or the watch is down).
            return false;
        }
        let mut progress = self.progress.subscribe();
        let arrived = progress.wait_for(|head| *head >= last);
        tokio::time::timeout(wait, arrived)
            .await
            .is_ok_and(|r| r.is_ok())
            && self.head().is_some_and(|head| head >= last)
    }

    /// The highest revision received while live.
    pub(super) fn head(&self) -> Option<Revision> {
        let inner = self.inner.lock();
        inner.live.then_some(inner.head)
    }

    /// Runs `read` over the events after `since` when memory holds all of them up to `last`;
    /// `None` when it does not (watch down, `since` too old, or `last` not received yet).
    pub(super) fn read<T>(
        &self,
        since: Revision,
        last: Revision,
        read: impl FnOnce(&[Event]) -> T,
    ) -> Option<T> {
        let mut inner = self.inner.lock();
        if !inner.live || since < inner.from || inner.head < last {
            return None;
        }
        let start = inner.events.partition_point(|e| {
            e.kv()
                .is_none_or(|kv| kv.mod_revision() as Revision <= since)
        });
        self.answered.fetch_add(1, Ordering::Relaxed);
        Some(read(&inner.events.make_contiguous()[start..]))
    }

    /// How many answers came from memory so far.
    pub(super) fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

fn size(event: &Event) -> usize {
    let kv =
        |kv: Option<&etcd_client::KeyValue>| kv.map_or(0, |kv| kv.key().len() + kv.value().len());
    kv(event.kv()) + kv(event.prev_kv()) + 64
}
