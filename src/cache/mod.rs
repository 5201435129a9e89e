//! The read cache in front of the store: L1 in this process (moka), L2 in Redis shared by every
//! API replica, L3 the store itself. Values are the JSON response bodies, so a hit is served as
//! bytes.
//!
//! Invalidation is by event: every change the store records goes through the dependency table
//! ([`deps`]) and drops the object's keys and the cross-kind keys, and moves the kind's list
//! generation so its list keys are never read again (no `KEYS`/`SCAN`). Other replicas drop their
//! L1 entries when the change is published on Redis pub/sub. TTLs are the backstop. The mirror
//! writes around the cache (to the store only); see `docs/architecture.md` for why.
//!
//! | module | job |
//! | --- | --- |
//! | `keys` | key families and key derivation |
//! | `deps` | the dependency table: what a change invalidates |
//! | `value` | the stored form and freshness |
//! | `l1`, `l2` | the tiers |
//! | `invalidate` | the store follower and the pub/sub listener |

pub mod deps;
mod invalidate;
pub mod keys;
mod l1;
mod l2;
pub mod metrics;
pub mod value;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::time::Instant;

pub use deps::Invalidation;
pub use keys::{Family, Guard, Key, Keys};
pub use l2::{L2Error, RedisHealth};
pub use metrics::CacheMetrics;

use crate::config::CacheConfig;
use l1::L1;
use l2::L2;
use value::{Entry, Freshness};

/// Invalidations kept while Redis is unreachable; past this the Redis tier is not read until
/// every value written before the outage has expired.
const PENDING_KEYS: usize = 10_000;

/// Which tier answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    L1,
    L2,
    Store,
}

impl Source {
    /// The `X-Stowage-Cache` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::L1 => "hit-l1",
            Self::L2 => "hit-l2",
            Self::Store => "miss",
        }
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Served {
    /// The JSON body.
    pub body: Bytes,
    pub source: Source,
    /// Set when the body may be out of date (the store's breaker is open or the store failed):
    /// the time since it was read from the store.
    pub stale_age: Option<Duration>,
}

/// Load errors the cache may answer around with a stale value.
pub trait LoadError {
    /// Whether the store could not answer (rather than refusing the request).
    fn is_unavailable(&self) -> bool;
}

/// Why the cache could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot set up the Redis cache tier")]
    Redis {
        #[source]
        source: L2Error,
    },
}

/// The cache. Cheap to clone; a disabled cache sends every read to the store.
#[derive(Clone)]
pub struct Cache {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    keys: Keys,
    ttls: HashMap<&'static str, Duration>,
    stale_for: Duration,
    l1: L1,
    l2: Option<L2>,
    /// Each kind's list generation (part of list keys); learned from Redis when it is used.
    generations: Mutex<HashMap<String, u64>>,
    /// Bumped per kind on every invalidation seen, before Redis is told: a value read from the
    /// store while its guard moved is served but not cached.
    epochs: Mutex<HashMap<String, u64>>,
    any_epoch: AtomicU64,
    /// Invalidations Redis has not seen yet (it was unreachable).
    pending: Mutex<Pending>,
    /// The Redis tier is not read before this (after losing invalidations).
    distrust_l2_until: Mutex<Option<Instant>>,
    /// Tells this replica's pub/sub messages apart.
    origin: String,
    /// Whether the pub/sub listener is subscribed.
    subscribed: std::sync::atomic::AtomicBool,
    counters: Counters,
    metrics: CacheMetrics,
}

#[derive(Default)]
struct Pending {
    invalidation: Invalidation,
    overflow: bool,
}

#[derive(Default)]
struct Counters {
    l1_hits: AtomicU64,
    l1_misses: AtomicU64,
    l2_hits: AtomicU64,
    l2_misses: AtomicU64,
    store_queries: AtomicU64,
    stale_served: AtomicU64,
}

/// `/api/v1/status`'s `cache` part.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheStatus {
    pub enabled: bool,
    /// (L1 hits + L2 hits) / requests, `null` before the first request.
    pub hit_rate: Option<f64>,
    pub requests: u64,
    pub l1: TierStatus,
    /// `null` when Redis is not configured.
    pub l2: Option<L2Status>,
    /// Reads sent to the store.
    pub store_queries: u64,
    /// Answers served from the cache marked stale.
    pub stale_served: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TierStatus {
    pub hits: u64,
    pub misses: u64,
    pub hit_rate: Option<f64>,
    pub entries: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct L2Status {
    pub hits: u64,
    pub misses: u64,
    pub hit_rate: Option<f64>,
    pub redis: RedisHealth,
    /// Invalidations waiting for Redis to come back.
    pub pending_invalidations: usize,
}

/// A random replica id (std's hasher keys are random per process and per call).
fn origin() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

fn rate(hits: u64, misses: u64) -> Option<f64> {
    let total = hits + misses;
    (total > 0).then(|| hits as f64 / total as f64)
}

impl Cache {
    /// A cache that is not there: every read goes to the store.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Builds the cache `config` describes (disabled when `cache.enabled` is false). Redis is
    /// connected lazily; call [`Cache::follow`] to invalidate from a store's changes and
    /// [`Cache::listen`] to hear other replicas.
    pub fn new(config: &CacheConfig, metrics: CacheMetrics) -> Result<Self, CacheError> {
        if !config.enabled {
            return Ok(Self::disabled());
        }
        let l2 = if config.redis.enabled {
            Some(
                L2::new(&config.redis, metrics.clone())
                    .map_err(|source| CacheError::Redis { source })?,
            )
        } else {
            metrics.redis_up.set(0);
            None
        };
        let ttls = [
            (Family::Object, config.ttl.object),
            (Family::List, config.ttl.list),
            (Family::Stats, config.ttl.stats),
            (Family::Resources, config.ttl.resources),
        ]
        .into_iter()
        .map(|(family, ttl)| (family.as_str(), ttl.unwrap_or(config.default_ttl)))
        .collect();
        Ok(Self {
            inner: Some(Arc::new(Inner {
                keys: Keys::new(&config.key_prefix),
                ttls,
                stale_for: config.serve_stale_for,
                l1: L1::new(config.l1.max_entries, config.l1.max_bytes, metrics.clone()),
                l2,
                generations: Mutex::new(HashMap::new()),
                epochs: Mutex::new(HashMap::new()),
                any_epoch: AtomicU64::new(0),
                pending: Mutex::new(Pending::default()),
                distrust_l2_until: Mutex::new(None),
                origin: origin(),
                subscribed: std::sync::atomic::AtomicBool::new(false),
                counters: Counters::default(),
                metrics,
            })),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The key builder (prefix from `cache.key_prefix`).
    pub fn keys(&self) -> Keys {
        self.inner
            .as_ref()
            .map_or_else(|| Keys::new("stowage"), |inner| inner.keys.clone())
    }

    /// The key of one list page: `query` from [`keys::list_query`], under the kind's current
    /// generation (asked from Redis the first time a kind is listed).
    pub async fn list_key(&self, kind: &str, query: &str) -> Key {
        let Some(inner) = &self.inner else {
            return Keys::new("stowage").list(kind, 0, query);
        };
        let known = inner.generations.lock().get(kind).copied();
        let generation = match known {
            Some(generation) => generation,
            None => {
                let fetched = match &inner.l2 {
                    Some(l2) if inner.l2_readable() => {
                        l2.generation(&inner.keys.generation(kind)).await.ok()
                    }
                    _ => None,
                };
                let mut generations = inner.generations.lock();
                let entry = generations.entry(kind.to_string()).or_insert(0);
                if let Some(fetched) = fetched {
                    *entry = (*entry).max(fetched);
                }
                *entry
            }
        };
        inner.keys.list(kind, generation, query)
    }

    /// Answers `key` from L1, then L2, then `load` (the store), filling the tiers on the way
    /// back. `store_degraded` (the store's breaker is open) serves any cached value still
    /// within the stale window, marked stale; a `load` that fails as unavailable does too.
    pub async fn serve<E, F, Fut>(
        &self,
        key: &Key,
        store_degraded: bool,
        load: F,
    ) -> Result<Served, E>
    where
        E: LoadError,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        let Some(inner) = &self.inner else {
            return load().await.map(|body| Served {
                body,
                source: Source::Store,
                stale_age: None,
            });
        };
        inner.serve(key, store_degraded, load).await
    }

    /// Applies an invalidation to this replica and tells Redis and the other replicas.
    pub async fn invalidate(&self, invalidation: Invalidation) {
        if let Some(inner) = &self.inner {
            inner.invalidate(invalidation).await;
        }
    }

    /// Hit rates and tier health for `/api/v1/status`.
    pub fn status(&self) -> CacheStatus {
        let Some(inner) = &self.inner else {
            return CacheStatus {
                enabled: false,
                hit_rate: None,
                requests: 0,
                l1: TierStatus {
                    hits: 0,
                    misses: 0,
                    hit_rate: None,
                    entries: 0,
                },
                l2: None,
                store_queries: 0,
                stale_served: 0,
            };
        };
        let c = &inner.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (l1_hits, l1_misses) = (get(&c.l1_hits), get(&c.l1_misses));
        let (l2_hits, l2_misses) = (get(&c.l2_hits), get(&c.l2_misses));
        let requests = l1_hits + l1_misses;
        CacheStatus {
            enabled: true,
            hit_rate: rate(
                l1_hits + l2_hits,
                requests.saturating_sub(l1_hits + l2_hits),
            ),
            requests,
            l1: TierStatus {
                hits: l1_hits,
                misses: l1_misses,
                hit_rate: rate(l1_hits, l1_misses),
                entries: inner.l1.entry_count(),
            },
            l2: inner.l2.as_ref().map(|l2| L2Status {
                hits: l2_hits,
                misses: l2_misses,
                hit_rate: rate(l2_hits, l2_misses),
                redis: l2.health(),
                pending_invalidations: {
                    let pending = inner.pending.lock();
                    pending.invalidation.keys.len() + pending.invalidation.kinds.len()
                },
            }),
            store_queries: get(&c.store_queries),
            stale_served: get(&c.stale_served),
        }
    }

    /// Empties this replica's L1 (Redis keeps its values): the benchmark measures L2 hits this way.
    pub fn clear_l1(&self) {
        if let Some(inner) = &self.inner {
            inner.l1.clear();
            inner.l1.settle();
        }
    }

    /// Runs L1's pending housekeeping (tests and benchmarks call it before looking at sizes).
    pub fn settle(&self) {
        if let Some(inner) = &self.inner {
            inner.l1.settle();
        }
    }
}

impl Inner {
    fn ttl(&self, family: Family) -> Duration {
        self.ttls
            .get(family.as_str())
            .copied()
            .unwrap_or(Duration::from_secs(300))
    }

    fn count(&self, tier: &str, family: Family, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.metrics
            .requests
            .with_label_values(&[tier, family.as_str(), result])
            .inc();
        let counter = match (tier, hit) {
            ("l1", true) => &self.counters.l1_hits,
            ("l1", false) => &self.counters.l1_misses,
            (_, true) => &self.counters.l2_hits,
            (_, false) => &self.counters.l2_misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether values read from Redis can be trusted now. Whether Redis is reachable is the
    /// breaker's call on each request (an open breaker skips the call; once its cooldown is
    /// over, one request is the probe).
    fn l2_readable(&self) -> bool {
        if self.l2.is_none() || !self.pending.lock().invalidation.is_empty() {
            return false;
        }
        let mut distrust = self.distrust_l2_until.lock();
        match *distrust {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                *distrust = None;
                true
            }
            None => true,
        }
    }

    fn guard(&self, guard: &Guard) -> u64 {
        match guard {
            Guard::Kind(kind) => self.epochs.lock().get(kind).copied().unwrap_or(0),
            Guard::Any => self.any_epoch.load(Ordering::Acquire),
        }
    }

    async fn serve<E, F, Fut>(&self, key: &Key, store_degraded: bool, load: F) -> Result<Served, E>
    where
        E: LoadError,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        let ttl = self.ttl(key.family);
        let now = value::now_ms();
        // The best value that is too old to serve while the store answers.
        let mut fallback: Option<(Entry, Source)> = None;
        let usable = |entry: &Entry| entry.tag == key.tag;

        match self.l1.get(&key.text).filter(usable) {
            Some(entry) => match value::freshness(entry.age(now), ttl, self.stale_for) {
                Freshness::Fresh if !store_degraded => {
                    self.count("l1", key.family, true);
                    return Ok(self.answer(entry, Source::L1, false, now));
                }
                Freshness::Fresh | Freshness::Stale => {
                    self.count("l1", key.family, store_degraded);
                    if store_degraded {
                        return Ok(self.answer(entry, Source::L1, true, now));
                    }
                    fallback = Some((entry, Source::L1));
                }
                Freshness::Expired => self.count("l1", key.family, false),
            },
            None => self.count("l1", key.family, false),
        }

        if let Some(l2) = self.l2.as_ref().filter(|_| self.l2_readable()) {
            let found = match l2.get(&key.text).await {
                Ok(Some(raw)) => Entry::decode(raw).filter(usable),
                _ => None,
            };
            match found.map(|entry| {
                let freshness = value::freshness(entry.age(now), ttl, self.stale_for);
                (entry, freshness)
            }) {
                Some((entry, Freshness::Fresh)) => {
                    self.count("l2", key.family, true);
                    let life = (ttl + self.stale_for).saturating_sub(entry.age(now));
                    self.l1.insert(key.text.clone(), entry.clone(), life);
                    return Ok(self.answer(entry, Source::L2, store_degraded, now));
                }
                Some((entry, Freshness::Stale)) => {
                    self.count("l2", key.family, store_degraded);
                    if store_degraded {
                        return Ok(self.answer(entry, Source::L2, true, now));
                    }
                    if fallback.is_none() {
                        fallback = Some((entry, Source::L2));
                    }
                }
                _ => self.count("l2", key.family, false),
            }
        }

        let before = self.guard(&key.guard);
        self.counters.store_queries.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .store_queries
            .with_label_values(&[key.family.as_str()])
            .inc();
        let body = match load().await {
            Ok(body) => body,
            Err(err) if err.is_unavailable() => match fallback {
                Some((entry, source)) => return Ok(self.answer(entry, source, true, now)),
                None => return Err(err),
            },
            Err(err) => return Err(err),
        };
        // A change seen while the store was read may not be in `body`: serve it, keep it out.
        if self.guard(&key.guard) == before && Entry::fits(body.len()) {
            let entry = Entry::new(body.clone(), key.tag);
            let life = ttl + self.stale_for;
            if let Some(l2) = &self.l2 {
                let _ = l2.set(&key.text, entry.encode(), life).await;
            }
            self.l1.insert(key.text.clone(), entry, life);
        }
        Ok(Served {
            body,
            source: Source::Store,
            stale_age: None,
        })
    }

    fn answer(&self, entry: Entry, source: Source, stale: bool, now: u64) -> Served {
        if stale {
            self.counters.stale_served.fetch_add(1, Ordering::Relaxed);
        }
        Served {
            stale_age: stale.then(|| entry.age(now)),
            body: entry.body,
            source,
        }
    }

    /// This replica's part of an invalidation: guards first (so no read in flight caches what
    /// it read), then L1.
    fn drop_local(&self, invalidation: &Invalidation) {
        {
            let mut epochs = self.epochs.lock();
            for kind in &invalidation.kinds {
                *epochs.entry(kind.clone()).or_default() += 1;
            }
        }
        self.any_epoch.fetch_add(1, Ordering::AcqRel);
        for key in &invalidation.keys {
            self.l1.remove(key);
        }
        for kind in &invalidation.kinds {
            self.l1.remove_prefix(&self.keys.list_prefix(kind));
        }
    }

    /// Raises known generations to those another replica (or Redis) reported.
    fn learn_generations(&self, learned: &BTreeMap<String, u64>) {
        let mut generations = self.generations.lock();
        for (kind, generation) in learned {
            let entry = generations.entry(kind.clone()).or_insert(0);
            *entry = (*entry).max(*generation);
        }
    }

    /// Applies `invalidation` here, then hands it (with whatever Redis has not heard yet) to
    /// Redis. An empty invalidation only retries the pending ones.
    async fn invalidate(&self, invalidation: Invalidation) {
        if invalidation.is_empty() && self.pending.lock().invalidation.is_empty() {
            return;
        }
        if !invalidation.is_empty() {
            self.drop_local(&invalidation);
        }
        let Some(l2) = &self.l2 else {
            let mut generations = self.generations.lock();
            for kind in &invalidation.kinds {
                *generations.entry(kind.clone()).or_insert(0) += 1;
            }
            return;
        };
        // Older invalidations first, so Redis sees them in order.
        let mut batch = std::mem::take(&mut self.pending.lock().invalidation);
        let overflowed = std::mem::take(&mut self.pending.lock().overflow);
        batch.merge(invalidation);
        if self.tell_redis(l2, &batch).await {
            if overflowed {
                // Some keys were forgotten: values written before the outage may be stale.
                let longest = self.ttls.values().max().copied().unwrap_or_default();
                *self.distrust_l2_until.lock() = Some(Instant::now() + longest + self.stale_for);
            }
            return;
        }
        // Redis did not take it: lists here move on locally; Redis hears it when back.
        {
            let mut generations = self.generations.lock();
            for kind in &batch.kinds {
                *generations.entry(kind.clone()).or_insert(0) += 1;
            }
        }
        let mut pending = self.pending.lock();
        pending.overflow |= overflowed;
        pending.invalidation.merge(batch);
        if pending.invalidation.keys.len() > PENDING_KEYS {
            pending.invalidation.keys.clear();
            pending.overflow = true;
        }
    }

    /// DEL + INCR in one atomic round trip, then PUBLISH. False when Redis did not take it.
    async fn tell_redis(&self, l2: &L2, invalidation: &Invalidation) -> bool {
        let keys: Vec<String> = invalidation.keys.iter().cloned().collect();
        let counters: Vec<(String, String)> = invalidation
            .kinds
            .iter()
            .map(|kind| (kind.clone(), self.keys.generation(kind)))
            .collect();
        let Ok(generations) = l2.invalidate(&keys, &counters).await else {
            return false;
        };
        self.learn_generations(&generations);
        let message = invalidate::Message {
            origin: self.origin.clone(),
            generations,
            keys: invalidation.keys.clone(),
        };
        // Replicas that miss this message drop their L1 when they resubscribe.
        let _ = l2.publish(&self.keys.channel(), message.encode()).await;
        true
    }

    /// Another replica's invalidation, heard on pub/sub.
    fn apply_remote(&self, message: invalidate::Message) {
        if message.origin == self.origin {
            return;
        }
        let invalidation = Invalidation {
            keys: message.keys,
            kinds: message.generations.keys().cloned().collect::<BTreeSet<_>>(),
        };
        self.drop_local(&invalidation);
        self.learn_generations(&message.generations);
    }

    /// After (re)subscribing: messages may have been missed, so forget L1 and the generations.
    fn resubscribed(&self) {
        self.generations.lock().clear();
        self.any_epoch.fetch_add(1, Ordering::AcqRel);
        {
            let mut epochs = self.epochs.lock();
            for epoch in epochs.values_mut() {
                *epoch += 1;
            }
        }
        self.l1.clear();
    }
}
