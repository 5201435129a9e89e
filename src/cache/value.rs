//! How a cached value is stored (in L1 and as the Redis string): a 24-byte header, then the JSON
//! response body as it is sent, so a hit serves bytes without serialising again. Anything that
//! does not decode (another program's value under our key, a truncated write) is a miss.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// Marks Stowage's format, version 1.
const MAGIC: &[u8; 4] = b"STC1";
const HEADER: usize = 4 + 8 + 8 + 4;

/// A decoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When the body was read from the store, in milliseconds since the Unix epoch.
    pub stored_at_ms: u64,
    /// See [`super::keys::Key::tag`].
    pub tag: u64,
    pub body: Bytes,
}

impl Entry {
    pub fn new(body: Bytes, tag: u64) -> Self {
        Self {
            stored_at_ms: now_ms(),
            tag,
            body,
        }
    }

    /// Header and body in one buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.stored_at_ms.to_le_bytes());
        out.extend_from_slice(&self.tag.to_le_bytes());
        // Bodies over 4 GiB are never cached (see `fits`).
        out.extend_from_slice(&(self.body.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    /// The value, or `None` when `raw` is not one of ours.
    pub fn decode(raw: Bytes) -> Option<Self> {
        if raw.len() < HEADER || &raw[..4] != MAGIC {
            return None;
        }
        let u64_at = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&raw[at..at + 8]);
            u64::from_le_bytes(word)
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(&raw[20..24]);
        if u32::from_le_bytes(len) as usize != raw.len() - HEADER {
            return None;
        }
        Some(Self {
            stored_at_ms: u64_at(4),
            tag: u64_at(12),
            body: raw.slice(HEADER..),
        })
    }

    /// Whether a body of `len` bytes can be stored.
    pub fn fits(len: usize) -> bool {
        u32::try_from(len).is_ok()
    }

    /// Time since the body was read from the store (zero if clocks disagree).
    pub fn age(&self, now_ms: u64) -> Duration {
        Duration::from_millis(now_ms.saturating_sub(self.stored_at_ms))
    }
}

/// How a found entry may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within its TTL.
    Fresh,
    /// Past its TTL but within the stale window: only served when the store cannot answer.
    Stale,
    /// Too old to serve at all.
    Expired,
}

/// Decides an entry's freshness from its age.
pub fn freshness(age: Duration, ttl: Duration, stale_for: Duration) -> Freshness {
    if age < ttl {
        Freshness::Fresh
    } else if age < ttl + stale_for {
        Freshness::Stale
    } else {
        Freshness::Expired
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let entry = Entry {
            stored_at_ms: 1_700_000_000_000,
            tag: 42,
            body: Bytes::from_static(br#"{"kind":"PodList"}"#),
        };
        assert_eq!(Entry::decode(Bytes::from(entry.encode())), Some(entry));
    }

    #[test]
    fn foreign_or_truncated_values_do_not_decode() {
        let good = Entry::new(Bytes::from_static(b"{}"), 0).encode();
        assert!(Entry::decode(Bytes::from_static(b"hello")).is_none());
        assert!(
            Entry::decode(Bytes::from_static(b"{\"kind\":\"PodList\",\"items\":[]}")).is_none()
        );
        assert!(Entry::decode(Bytes::from(good[..good.len() - 1].to_vec())).is_none());
        let mut longer = good.clone();
        longer.push(b' ');
        assert!(Entry::decode(Bytes::from(longer)).is_none());
        let mut other_magic = good;
        other_magic[3] = b'9';
        assert!(Entry::decode(Bytes::from(other_magic)).is_none());
    }

    #[test]
    fn freshness_by_age() {
        let ttl = Duration::from_secs(10);
        let stale = Duration::from_secs(5);
        assert_eq!(
            freshness(Duration::from_secs(9), ttl, stale),
            Freshness::Fresh
        );
        assert_eq!(freshness(ttl, ttl, stale), Freshness::Stale);
        assert_eq!(
            freshness(Duration::from_secs(14), ttl, stale),
            Freshness::Stale
        );
        assert_eq!(
            freshness(Duration::from_secs(15), ttl, stale),
            Freshness::Expired
        );
        let entry = Entry {
            stored_at_ms: 1_000,
            tag: 0,
            body: Bytes::new(),
        };
        assert_eq!(entry.age(3_500), Duration::from_millis(2_500));
        assert_eq!(entry.age(500), Duration::ZERO);
    }
}
