//! The `cache` section: the in-process L1, the optional Redis L2 shared by replicas, and TTLs per
//! key family.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Problem, serde_helpers};

/// The `cache` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Cache REST reads at all; `false` reads the store on every request.
    pub enabled: bool,
    /// First segment of every cache key and of the pub/sub channel (`stowage:...`).
    #[serde(deserialize_with = "serde_helpers::lenient_string")]
    pub key_prefix: String,
    /// Lifetime of an entry whose family has no override.
    #[serde(with = "serde_helpers::duration")]
    pub default_ttl: Duration,
    /// Per-family overrides of `default_ttl`.
    pub ttl: FamilyTtls,
    /// How long past its TTL an entry may still be served (marked stale) while the store's
    /// breaker is open or the store cannot be read.
    #[serde(with = "serde_helpers::duration")]
    pub serve_stale_for: Duration,
    /// The in-process tier.
    pub l1: L1Config,
    /// The shared Redis tier.
    pub redis: RedisConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            key_prefix: "stowage".into(),
            default_ttl: Duration::from_secs(300),
            ttl: FamilyTtls::default(),
            serve_stale_for: Duration::from_secs(600),
            l1: L1Config::default(),
            redis: RedisConfig::default(),
        }
    }
}

/// `cache.ttl`: an unset family uses `cache.default_ttl`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FamilyTtls {
    #[serde(with = "serde_helpers::optional_duration")]
    pub object: Option<Duration>,
    #[serde(with = "serde_helpers::optional_duration")]
    pub list: Option<Duration>,
    #[serde(with = "serde_helpers::optional_duration")]
    pub stats: Option<Duration>,
    #[serde(with = "serde_helpers::optional_duration")]
    pub resources: Option<Duration>,
}

/// `cache.l1`: both bounds hold at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct L1Config {
    pub max_entries: u64,
    /// Bytes of keys and values together.
    pub max_bytes: u64,
}

impl Default for L1Config {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// `cache.redis`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    pub enabled: bool,
    /// `host:port`.
    #[serde(deserialize_with = "serde_helpers::lenient_string")]
    pub address: String,
    #[serde(deserialize_with = "serde_helpers::lenient_string")]
    pub password: String,
    /// Database number (0-15 on a default Redis).
    pub db: i64,
    /// Longest wait for one Redis command or connection attempt.
    #[serde(with = "serde_helpers::duration")]
    pub timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            address: "127.0.0.1:6379".into(),
            password: String::new(),
            db: 0,
            timeout: Duration::from_millis(250),
        }
    }
}

impl RedisConfig {
    /// Host and port of `address`, or why it is not `host:port`.
    pub fn host_port(&self) -> Result<(String, u16), String> {
        let (host, port) = self
            .address
            .rsplit_once(':')
            .ok_or_else(|| format!("{:?} must be host:port", self.address))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{:?} has no host", self.address));
        }
        match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok((host.to_string(), port)),
            _ => Err(format!("{:?} has no valid port (1-65535)", self.address)),
        }
    }
}

/// Problems in the `cache` section.
pub(crate) fn problems(cache: &CacheConfig, problems: &mut Vec<Problem>) {
    if cache.key_prefix.trim().is_empty() || cache.key_prefix.contains(char::is_whitespace) {
        problems.push(Problem::new(
            "cache.key_prefix",
            "must be non-empty and without spaces",
        ));
    }
    let ttls = [
        ("cache.default_ttl", Some(cache.default_ttl)),
        ("cache.ttl.object", cache.ttl.object),
        ("cache.ttl.list", cache.ttl.list),
        ("cache.ttl.stats", cache.ttl.stats),
        ("cache.ttl.resources", cache.ttl.resources),
    ];
    for (key, ttl) in ttls {
        if ttl.is_some_and(|ttl| ttl < Duration::from_millis(1)) {
            problems.push(Problem::new(key, "must be at least 1ms"));
        }
    }
    if cache.l1.max_entries == 0 {
        problems.push(Problem::new("cache.l1.max_entries", "must be at least 1"));
    }
    if cache.l1.max_bytes < 1024 {
        problems.push(Problem::new("cache.l1.max_bytes", "must be at least 1024"));
    }
    if let Err(message) = cache.redis.host_port() {
        problems.push(Problem::new("cache.redis.address", message));
    }
    if !(0..=1_000_000).contains(&cache.redis.db) {
        problems.push(Problem::new("cache.redis.db", "must be 0 or more"));
    }
    if cache.redis.timeout.is_zero() {
        problems.push(Problem::new(
            "cache.redis.timeout",
            "must be greater than zero",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(cache: &CacheConfig) -> Vec<String> {
        let mut out = Vec::new();
        problems(cache, &mut out);
        out.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_are_valid() {
        assert!(messages(&CacheConfig::default()).is_empty());
        assert!(!CacheConfig::default().redis.enabled);
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut cache = CacheConfig::default();
        cache.redis.address = "localhost".into();
        cache.l1.max_entries = 0;
        cache.ttl.list = Some(Duration::ZERO);
        cache.key_prefix = " ".into();
        let found = messages(&cache).join("\n");
        for key in [
            "cache.redis.address",
            "cache.l1.max_entries",
            "cache.ttl.list",
            "cache.key_prefix",
        ] {
            assert!(found.contains(key), "{key} missing in {found}");
        }
    }

    #[test]
    fn the_redis_password_is_redacted() {
        let mut config = crate::config::Config::default();
        config.cache.redis.password = "s3cret".into();
        let yaml = config.to_redacted_yaml().expect("yaml");
        assert!(!yaml.contains("s3cret"), "{yaml}");
        assert_eq!(
            config.redacted().cache.redis.password,
            crate::config::REDACTED
        );
    }

    #[test]
    fn addresses_split_into_host_and_port() {
        let mut redis = RedisConfig::default();
        assert_eq!(redis.host_port(), Ok(("127.0.0.1".into(), 6379)));
        redis.address = "[::1]:7000".into();
        assert_eq!(redis.host_port(), Ok(("::1".into(), 7000)));
        redis.address = "redis:0".into();
        assert!(redis.host_port().is_err());
        redis.address = ":6379".into();
        assert!(redis.host_port().is_err());
    }
}
