//! L1: a moka cache in this process, bounded by entries and bytes at once, each entry living for
//! its family's TTL plus the stale window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::sync::Cache;

use super::metrics::CacheMetrics;
use super::value::Entry;

/// Memory an entry costs besides its key and body (moka node, Arc, header), roughly.
const OVERHEAD: u64 = 128;

#[derive(Debug)]
struct Slot {
    entry: Entry,
    /// How long moka keeps it.
    life: Duration,
}

struct Lifetime;

impl moka::Expiry<String, Arc<Slot>> for Lifetime {
    fn expire_after_create(&self, _: &String, slot: &Arc<Slot>, _: Instant) -> Option<Duration> {
        Some(slot.life)
    }

    fn expire_after_update(
        &self,
        _: &String,
        slot: &Arc<Slot>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(slot.life)
    }
}

/// Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct L1 {
    cache: Cache<String, Arc<Slot>>,
    metrics: CacheMetrics,
}

fn cost(key: &str, slot: &Slot) -> u64 {
    key.len() as u64 + slot.entry.body.len() as u64 + OVERHEAD
}

impl L1 {
    /// Every entry weighs at least `max_bytes / max_entries`, so a total weight within
    /// `max_bytes` also keeps the count within `max_entries`.
    pub fn new(max_entries: u64, max_bytes: u64, metrics: CacheMetrics) -> Self {
        let floor = (max_bytes / max_entries.max(1)).max(1);
        let listener_metrics = metrics.clone();
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |key: &String, slot: &Arc<Slot>| {
                u32::try_from(cost(key, slot).max(floor)).unwrap_or(u32::MAX)
            })
            .expire_after(Lifetime)
            .support_invalidation_closures()
            .eviction_listener(move |key: Arc<String>, slot: Arc<Slot>, cause| {
                listener_metrics.l1_entries.dec();
                listener_metrics.l1_bytes.sub(cost(&key, &slot) as i64);
                if cause == RemovalCause::Size {
                    listener_metrics.evictions.with_label_values(&["l1"]).inc();
                }
            })
            .build();
        Self { cache, metrics }
    }

    pub fn get(&self, key: &str) -> Option<Entry> {
        self.cache.get(key).map(|slot| slot.entry.clone())
    }

    pub fn insert(&self, key: String, entry: Entry, life: Duration) {
        let slot = Arc::new(Slot { entry, life });
        self.metrics.l1_entries.inc();
        self.metrics.l1_bytes.add(cost(&key, &slot) as i64);
        self.cache.insert(key, slot);
    }

    pub fn remove(&self, key: &str) {
        self.cache.invalidate(key);
    }

    /// Drops every key starting with `prefix` (lazily, as moka runs its housekeeping).
    pub fn remove_prefix(&self, prefix: &str) {
        let prefix = prefix.to_string();
        // Only fails when closures are not supported, which `new` enables.
        let _ = self
            .cache
            .invalidate_entries_if(move |key, _| key.starts_with(&prefix));
    }

    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// Runs moka's pending housekeeping (removals, listener calls) now; tests and gauges use it.
    pub fn settle(&self) {
        self.cache.run_pending_tasks();
    }

    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn entry(len: usize) -> Entry {
        Entry::new(Bytes::from(vec![b'x'; len]), 0)
    }

    #[test]
    fn bounded_by_entries() {
        let l1 = L1::new(10, 1 << 20, CacheMetrics::unregistered().expect("metrics"));
        for i in 0..100 {
            l1.insert(format!("k{i}"), entry(10), Duration::from_secs(60));
        }
        l1.settle();
        assert!(l1.entry_count() <= 10, "{} entries", l1.entry_count());
    }

    #[test]
    fn bounded_by_bytes() {
        let metrics = CacheMetrics::unregistered().expect("metrics");
        let l1 = L1::new(1_000, 100_000, metrics.clone());
        for i in 0..100 {
            l1.insert(format!("k{i}"), entry(10_000), Duration::from_secs(60));
        }
        l1.settle();
        assert!(l1.entry_count() <= 10, "{} entries", l1.entry_count());
        assert!(
            metrics.l1_bytes.get() <= 100_000,
            "{}",
            metrics.l1_bytes.get()
        );
        assert!(metrics.evictions.with_label_values(&["l1"]).get() > 0);
        assert_eq!(metrics.l1_entries.get() as u64, l1.entry_count());
    }

    #[test]
    fn prefixes_and_single_keys_are_dropped() {
        let l1 = L1::new(100, 1 << 20, CacheMetrics::unregistered().expect("metrics"));
        for key in ["p:list:1:a", "p:list:2:b", "p:obj:x"] {
            l1.insert(key.into(), entry(1), Duration::from_secs(60));
        }
        l1.remove_prefix("p:list:");
        l1.remove("p:obj:x");
        l1.settle();
        assert!(l1.get("p:list:1:a").is_none() && l1.get("p:list:2:b").is_none());
        assert!(l1.get("p:obj:x").is_none());
    }
}
