//! When the follower watch is wanted. Following streams every value written under the prefix
//! back from etcd, which costs etcd and this process about as much as the writes themselves
//! (measured: a bulk sync ran at 0.68x the raw rate with the watch, 0.90x without). So the
//! follower runs only while someone reads the change feed: while a subscription is held, and for
//! [`FOLLOW_IDLE`] after the last `changes` call. Without it, `changes` opens a watch of its own.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// How long the follower keeps watching after the last feed read with no subscriber left.
pub(super) const FOLLOW_IDLE: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(super) struct Demand {
    last_read: Mutex<Option<Instant>>,
    woken: Notify,
}

impl Demand {
    /// A feed read or a new subscription: start the follower if it is not running.
    pub(super) fn touch(&self) {
        *self.last_read.lock() = Some(Instant::now());
        self.woken.notify_one();
    }

    /// Whether the follower should run now, with `subscribers` subscriptions held.
    pub(super) fn wanted(&self, subscribers: usize) -> bool {
        wanted(*self.last_read.lock(), Instant::now(), subscribers)
    }

    /// Waits until the follower is wanted.
    pub(super) async fn until_wanted(&self, subscribers: impl Fn() -> usize) {
        loop {
            let woken = self.woken.notified();
            if self.wanted(subscribers()) {
                return;
            }
            // Subscriptions are counted, not announced: look again now and then.
            let _ = tokio::time::timeout(Duration::from_secs(1), woken).await;
        }
    }

    /// Waits until the follower is no longer wanted.
    pub(super) async fn until_idle(&self, subscribers: impl Fn() -> usize) {
        while self.wanted(subscribers()) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// The decision itself: any subscriber, or a feed read within [`FOLLOW_IDLE`].
fn wanted(last_read: Option<Instant>, now: Instant, subscribers: usize) -> bool {
    subscribers > 0 || last_read.is_some_and(|at| now.saturating_duration_since(at) < FOLLOW_IDLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followed_while_subscribed_or_recently_read() {
        let now = Instant::now();
        assert!(!wanted(None, now, 0), "nobody ever read the feed");
        assert!(wanted(None, now, 1), "a subscriber");
        assert!(wanted(Some(now), now, 0), "a read just now");
        let later = now + FOLLOW_IDLE - Duration::from_millis(1);
        assert!(wanted(Some(now), later, 0));
        assert!(
            !wanted(Some(now), now + FOLLOW_IDLE, 0),
            "idle for FOLLOW_IDLE"
        );
        assert!(wanted(Some(now), now + FOLLOW_IDLE, 2), "still subscribed");
    }

    #[tokio::test]
    async fn a_touch_wakes_the_waiting_follower() {
        let demand = std::sync::Arc::new(Demand::default());
        let waiting = tokio::spawn({
            let demand = std::sync::Arc::clone(&demand);
            async move { demand.until_wanted(|| 0).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        demand.touch();
        tokio::time::timeout(Duration::from_millis(500), waiting)
            .await
            .expect("woken at once, not after the 1 s look")
            .expect("task");
    }
}
