//! Every cache key family, named in one place. Keys follow `{prefix}:{kind}:{family}:...`, e.g.
//! `stowage:core/v1/Pod:obj:shop:web-0`; `{kind}` is [`KindSpec::id`](crate::mirror::kind::KindSpec::id).

use std::fmt;

/// What a cached value is; TTLs, metrics labels and invalidation rules are per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// One object, by namespace/name or by uid.
    Object,
    /// One page of a filtered, sorted list of one kind.
    List,
    /// `/api/v1/stats/overview`.
    Stats,
    /// `/api/v1/resources`.
    Resources,
}

impl Family {
    pub const ALL: [Family; 4] = [Self::Object, Self::List, Self::Stats, Self::Resources];

    /// Metrics label and config key (`cache.ttl.<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Object => "object",
            Self::List => "list",
            Self::Stats => "stats",
            Self::Resources => "resources",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What must not have changed while a value was read from the store for it to be cached: the
/// value's kind, or (for cross-kind values) anything at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    Kind(String),
    Any,
}

/// One cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub family: Family,
    /// The full key as stored in L1 and Redis.
    pub text: String,
    pub guard: Guard,
    /// What the value was computed from besides the store (e.g. the set of kinds); a stored value
    /// with another tag is a miss.
    pub tag: u64,
}

/// Builds the keys of one deployment (one prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    /// `{prefix}:{kind}:obj:{namespace}:{name}` (namespace empty for cluster-scoped kinds).
    pub fn object(&self, kind: &str, namespace: &str, name: &str) -> Key {
        self.kind_key(
            Family::Object,
            kind,
            format!("{}:{kind}:obj:{namespace}:{name}", self.prefix),
        )
    }

    /// `{prefix}:{kind}:uid:{uid}`.
    pub fn uid(&self, kind: &str, uid: &str) -> Key {
        self.kind_key(
            Family::Object,
            kind,
            format!("{}:{kind}:uid:{uid}", self.prefix),
        )
    }

    /// `{prefix}:{kind}:list:{generation}:{query-hash}`: a new generation makes every list key of
    /// the kind unreachable without scanning Redis.
    pub fn list(&self, kind: &str, generation: u64, query: &str) -> Key {
        let hash = xxhash_rust::xxh3::xxh3_128(query.as_bytes());
        self.kind_key(
            Family::List,
            kind,
            format!("{}:{kind}:list:{generation}:{hash:032x}", self.prefix),
        )
    }

    /// Prefix shared by every list key of `kind` (any generation), for dropping them from L1.
    pub fn list_prefix(&self, kind: &str) -> String {
        format!("{}:{kind}:list:", self.prefix)
    }

    /// `{prefix}:stats:overview`.
    pub fn stats(&self, tag: u64) -> Key {
        Key {
            family: Family::Stats,
            text: format!("{}:stats:overview", self.prefix),
            guard: Guard::Any,
            tag,
        }
    }

    /// `{prefix}:resources`.
    pub fn resources(&self, tag: u64) -> Key {
        Key {
            family: Family::Resources,
            text: format!("{}:resources", self.prefix),
            guard: Guard::Any,
            tag,
        }
    }

    /// `{prefix}:{kind}:gen`: the kind's list generation counter in Redis.
    pub fn generation(&self, kind: &str) -> String {
        format!("{}:{kind}:gen", self.prefix)
    }

    /// `{prefix}:invalidate`: the pub/sub channel replicas drop L1 entries on.
    pub fn channel(&self) -> String {
        format!("{}:invalidate", self.prefix)
    }

    fn kind_key(&self, family: Family, kind: &str, text: String) -> Key {
        Key {
            family,
            text,
            guard: Guard::Kind(kind.to_string()),
            tag: 0,
        }
    }
}

/// The part of a list request that decides its answer: namespace and query parameters, in a
/// canonical order so `a=1&b=2` and `b=2&a=1` share a key.
pub fn list_query(namespace: Option<&str>, pairs: &[(String, String)]) -> String {
    let mut pairs: Vec<&(String, String)> = pairs.iter().collect();
    pairs.sort();
    let mut out = format!("ns={}", namespace.unwrap_or("*"));
    for (name, value) in pairs {
        // Length prefixes keep `a=b&c` and `a=b%26c` apart without escaping.
        out.push_str(&format!("|{}:{name}={}:{value}", name.len(), value.len()));
    }
    out
}

/// A stable fingerprint of strings (kinds, states) a cross-kind value was computed from.
pub fn fingerprint<'a>(parts: impl IntoIterator<Item = &'a str>) -> u64 {
    let mut joined = String::new();
    for part in parts {
        joined.push_str(&format!("{}:{part}", part.len()));
    }
    xxhash_rust::xxh3::xxh3_64(joined.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn keys_follow_the_family_layout() {
        let keys = Keys::new("stowage");
        assert_eq!(
            keys.object("core/v1/Pod", "shop", "web-0").text,
            "stowage:core/v1/Pod:obj:shop:web-0"
        );
        assert_eq!(
            keys.uid("core/v1/Pod", "u-1").text,
            "stowage:core/v1/Pod:uid:u-1"
        );
        assert_eq!(keys.stats(0).text, "stowage:stats:overview");
        assert_eq!(keys.resources(0).text, "stowage:resources");
        assert_eq!(
            keys.generation("apps/v1/Deployment"),
            "stowage:apps/v1/Deployment:gen"
        );
        let list = keys.list("core/v1/Pod", 7, "ns=*");
        assert!(list.text.starts_with("stowage:core/v1/Pod:list:7:"));
        assert!(list.text.starts_with(&keys.list_prefix("core/v1/Pod")));
        assert_eq!(list.guard, Guard::Kind("core/v1/Pod".into()));
        assert_eq!(keys.stats(0).guard, Guard::Any);
    }

    #[test]
    fn list_keys_ignore_parameter_order_but_not_values() {
        let a = list_query(Some("shop"), &pairs(&[("limit", "5"), ("sort", "name")]));
        let b = list_query(Some("shop"), &pairs(&[("sort", "name"), ("limit", "5")]));
        let c = list_query(Some("shop"), &pairs(&[("sort", "name"), ("limit", "6")]));
        let d = list_query(None, &pairs(&[("sort", "name"), ("limit", "5")]));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        let keys = Keys::new("p");
        assert_eq!(keys.list("k", 1, &a), keys.list("k", 1, &b));
        assert_ne!(keys.list("k", 1, &a).text, keys.list("k", 2, &a).text);
    }

    #[test]
    fn ambiguous_pairs_stay_apart() {
        let joined = list_query(None, &pairs(&[("search", "a=b&c")]));
        let split = list_query(None, &pairs(&[("search", "a"), ("b&c", "")]));
        assert_ne!(joined, split);
        assert_ne!(fingerprint(["ab", "c"]), fingerprint(["a", "bc"]));
    }
}
