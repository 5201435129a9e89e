//! L2: Redis through one multiplexed `ConnectionManager`, shared by every replica. Every call has
//! a timeout and goes through a circuit breaker, so an unreachable Redis costs one timeout per
//! breaker cycle instead of one per request: the cache then runs on L1 and the store alone.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use serde::Serialize;
use tokio::time::Instant;

use super::metrics::CacheMetrics;
use crate::config::RedisConfig;
use crate::mirror::breaker::{Machine, Outcome, Permit};
use crate::mirror::health::BreakerState;

/// Consecutive failures that open the breaker.
const BREAKER_FAILURES: u32 = 3;
/// How long Redis is left alone once the breaker opened, before one probe call.
const BREAKER_COOLDOWN: Duration = Duration::from_secs(1);

/// KEYS: the generation counters, then the keys to delete. ARGV: the number of counters, the
/// time in milliseconds. Returns the new generations.
const INVALIDATE_SCRIPT: &str = r"
local counters = tonumber(ARGV[1])
for i = counters + 1, #KEYS do redis.call('DEL', KEYS[i]) end
local out = {}
for i = 1, counters do
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind ~= 'none' and (kind ~= 'string' or not tonumber(redis.call('GET', KEYS[i]))) then
    redis.call('SET', KEYS[i], ARGV[2])
  end
  out[i] = redis.call('INCR', KEYS[i])
end
return out
";

/// Why the Redis tier could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    #[error("invalid cache.redis.address: {0}")]
    Address(String),
    #[error("cannot create the Redis client")]
    Client {
        #[source]
        source: redis::RedisError,
    },
}

/// Why a Redis call returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// The breaker is open: the call was not made.
    BreakerOpen,
    /// The call failed or timed out (counted, and recorded by the breaker).
    Failed,
}

/// The Redis tier as `/api/v1/status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisHealth {
    pub address: String,
    pub db: i64,
    pub state: BreakerState,
    pub up: bool,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
}

pub struct L2 {
    client: Client,
    conn: ConnectionManager,
    timeout: Duration,
    breaker: Mutex<Machine>,
    last_error: Mutex<Option<String>>,
    address: String,
    db: i64,
    metrics: CacheMetrics,
}

impl L2 {
    /// Connects lazily: a Redis that is down at start-up is only a degraded cache.
    pub fn new(config: &RedisConfig, metrics: CacheMetrics) -> Result<Self, L2Error> {
        let (host, port) = config.host_port().map_err(L2Error::Address)?;
        let mut settings = RedisConnectionInfo::default().set_db(config.db);
        if !config.password.is_empty() {
            settings = settings.set_password(&config.password);
        }
        let info = ConnectionAddr::Tcp(host, port)
            .into_connection_info()
            .map_err(|source| L2Error::Client { source })?
            .set_redis_settings(settings);
        let client = Client::open(info).map_err(|source| L2Error::Client { source })?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager)
            .map_err(|source| L2Error::Client { source })?;
        metrics.redis_up.set(1);
        Ok(Self {
            client,
            conn,
            timeout: config.timeout,
            breaker: Mutex::new(Machine::new(BREAKER_FAILURES, BREAKER_COOLDOWN)),
            last_error: Mutex::new(None),
            address: config.address.clone(),
            db: config.db,
            metrics,
        })
    }

    /// For the pub/sub connection, which cannot share the multiplexed one.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn health(&self) -> RedisHealth {
        let breaker = self.breaker.lock().clone();
        RedisHealth {
            address: self.address.clone(),
            db: self.db,
            state: breaker.state(),
            up: breaker.state() == BreakerState::Closed,
            consecutive_failures: breaker.consecutive_failures(),
            last_error: self.last_error.lock().clone(),
        }
    }

    /// The raw value under `key`, `None` when absent.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, Skipped> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("GET").arg(key).clone();
        let value: Option<Vec<u8>> = self
            .call("get", async move { cmd.query_async(&mut conn).await })
            .await?;
        Ok(value.map(Bytes::from))
    }

    /// Stores `value` under `key` for `ttl`.
    pub async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), Skipped> {
        let mut conn = self.conn.clone();
        let millis = ttl.as_millis().max(1) as u64;
        let cmd = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(millis)
            .clone();
        self.call("set", async move { cmd.query_async::<()>(&mut conn).await })
            .await
    }

    /// A kind's list generation (0 when never moved).
    pub async fn generation(&self, key: &str) -> Result<u64, Skipped> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("GET").arg(key).clone();
        let value: Option<String> = self
            .call("get", async move { cmd.query_async(&mut conn).await })
            .await?;
        // A foreign value under the counter's key reads as generation 0.
        Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Deletes `keys` and increments the generation counters `counters` (by kind) in one atomic
    /// round trip; returns each kind's new generation. A counter holding something other than
    /// an integer (another program's value) restarts from the clock in milliseconds, above any
    /// generation counted so far, so no old list key becomes reachable again.
    pub async fn invalidate(
        &self,
        keys: &[String],
        counters: &[(String, String)],
    ) -> Result<BTreeMap<String, u64>, Skipped> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(INVALIDATE_SCRIPT)
            .arg(counters.len() + keys.len())
            .arg(
                counters
                    .iter()
                    .map(|(_, counter)| counter)
                    .collect::<Vec<_>>(),
            )
            .arg(keys)
            .arg(counters.len())
            .arg(super::value::now_ms());
        let mut conn = self.conn.clone();
        let generations: Vec<u64> = self
            .call(
                "invalidate",
                async move { cmd.query_async(&mut conn).await },
            )
            .await?;
        Ok(counters
            .iter()
            .map(|(kind, _)| kind.clone())
            .zip(generations)
            .collect())
    }

    pub async fn publish(&self, channel: &str, message: Vec<u8>) -> Result<(), Skipped> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("PUBLISH").arg(channel).arg(message).clone();
        self.call(
            "publish",
            async move { cmd.query_async::<i64>(&mut conn).await },
        )
        .await
        .map(drop)
    }

    /// Runs one call through the breaker with the timeout, recording metrics.
    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Skipped> {
        if let Permit::Wait(_) = self.breaker.lock().permit(Instant::now()) {
            return Err(Skipped::BreakerOpen);
        }
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, call).await;
        self.metrics
            .redis_duration
            .with_label_values(&[operation])
            .observe(started.elapsed().as_secs_f64());
        let error = match result {
            Ok(Ok(value)) => {
                self.record(Outcome::Success);
                return Ok(value);
            }
            Ok(Err(err)) => {
                // Redis answered (e.g. WRONGTYPE for a foreign value): it is up.
                let unreachable = err.is_io_error()
                    || err.is_timeout()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
                    || err.is_unrecoverable_error();
                if !unreachable {
                    self.record(Outcome::Success);
                    self.metrics
                        .redis_errors
                        .with_label_values(&[operation])
                        .inc();
                    *self.last_error.lock() = Some(format!("{operation}: {err}"));
                    return Err(Skipped::Failed);
                }
                err.to_string()
            }
            Err(_) => format!("no answer within {:?}", self.timeout),
        };
        tracing::debug!(operation, %error, "Redis call failed");
        self.metrics
            .redis_errors
            .with_label_values(&[operation])
            .inc();
        *self.last_error.lock() = Some(format!("{operation}: {error}"));
        self.record(Outcome::TransientFailure);
        Err(Skipped::Failed)
    }

    /// Feeds the breaker; Redis counts as up while it is closed.
    pub fn record(&self, outcome: Outcome) {
        let state = {
            let mut breaker = self.breaker.lock();
            breaker.record(Instant::now(), outcome);
            breaker.state()
        };
        self.metrics
            .redis_up
            .set(i64::from(state == BreakerState::Closed));
    }
}
