//! The key layout (pure): namespaced objects at `{prefix}/{group}/{version}/{kind}/{namespace}/{name}`,
//! cluster-scoped ones at `{prefix}/{group}/{version}/{kind}/{name}`, the core group written `core`.

use crate::mirror::kind::KindSpec;

/// The default key prefix (`storage.etcd.prefix`).
pub const DEFAULT_PREFIX: &str = "/kubernetes";

/// The keys of one store: everything lives under `prefix` (no trailing slash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// `prefix` as configured; trailing slashes are dropped so `/kubernetes/` and `/kubernetes`
    /// name the same keys.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    /// `{prefix}/`: every key of this store (and nothing of a store whose prefix merely starts
    /// with ours, like `/kubernetes2`).
    pub fn root(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// `{prefix}/.revision`: put by every transaction of the store, so its `mod_revision` is the
    /// last revision that changed anything under the prefix. Never a kind's key (API groups do
    /// not start with a dot).
    pub fn marker(&self) -> String {
        format!("{}/.revision", self.prefix)
    }

    /// `{prefix}/{group}/{version}/{kind}/`: every key of one kind.
    pub fn kind_prefix(&self, kind: &KindSpec) -> String {
        let group = if kind.group.is_empty() {
            "core"
        } else {
            &kind.group
        };
        format!("{}/{group}/{}/{}/", self.prefix, kind.version, kind.kind)
    }

    /// The keys of one namespace of a namespaced kind; the whole kind otherwise.
    pub fn scope_prefix(&self, kind: &KindSpec, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if kind.namespaced => format!("{}{ns}/", self.kind_prefix(kind)),
            _ => self.kind_prefix(kind),
        }
    }

    /// The key of one object. Cluster-scoped kinds ignore `namespace`.
    pub fn object_key(&self, kind: &KindSpec, namespace: &str, name: &str) -> String {
        if kind.namespaced {
            format!("{}{namespace}/{name}", self.kind_prefix(kind))
        } else {
            format!("{}{name}", self.kind_prefix(kind))
        }
    }

    /// The `(group, version, kind)` segments of a key under [`Self::root`], as written in keys
    /// (core group as `core`); `None` for keys outside the layout.
    pub fn kind_of<'k>(&self, key: &'k str) -> Option<(&'k str, &'k str, &'k str)> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let mut parts = rest.splitn(4, '/');
        let (group, version, kind) = (parts.next()?, parts.next()?, parts.next()?);
        parts.next()?;
        Some((group, version, kind))
    }
}

/// Why a namespace or name cannot be a key segment: `/` would make two objects share a key.
pub fn invalid_segment(namespace: &str, name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("the name is empty")
    } else if name.contains('/') || namespace.contains('/') {
        Some("namespace and name must not contain '/' (they are etcd key segments)")
    } else {
        None
    }
}

/// The first key after every key starting with `prefix` (etcd's `range_end` for a prefix).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Only 0xff bytes: everything after the prefix.
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::sample_kind;

    fn kind(group: &str, namespaced: bool) -> KindSpec {
        KindSpec {
            group: group.to_owned(),
            version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            namespaced,
            ..sample_kind("Pod")
        }
    }

    #[test]
    fn namespaced_and_cluster_scoped_keys() {
        let layout = Layout::new(DEFAULT_PREFIX);
        assert_eq!(
            layout.object_key(&kind("", true), "default", "web-0"),
            "/kubernetes/core/v1/Pod/default/web-0"
        );
        assert_eq!(
            layout.object_key(&kind("apps", true), "ns", "a"),
            "/kubernetes/apps/v1/Pod/ns/a"
        );
        assert_eq!(
            layout.object_key(&kind("", false), "ignored", "node-1"),
            "/kubernetes/core/v1/Pod/node-1"
        );
    }

    #[test]
    fn prefixes_end_with_a_slash() {
        let layout = Layout::new("/mirror-a/");
        assert_eq!(layout.root(), "/mirror-a/");
        assert_eq!(
            layout.kind_prefix(&kind("", true)),
            "/mirror-a/core/v1/Pod/"
        );
        assert_eq!(
            layout.scope_prefix(&kind("", true), Some("ns")),
            "/mirror-a/core/v1/Pod/ns/"
        );
        assert_eq!(
            layout.scope_prefix(&kind("", false), Some("ns")),
            "/mirror-a/core/v1/Pod/",
            "cluster-scoped kinds have no namespace segment"
        );
    }

    #[test]
    fn kind_of_a_key() {
        let layout = Layout::new("/k");
        assert_eq!(
            layout.kind_of("/k/core/v1/Pod/ns/a"),
            Some(("core", "v1", "Pod"))
        );
        assert_eq!(
            layout.kind_of("/k/apps/v1/Deployment/x"),
            Some(("apps", "v1", "Deployment"))
        );
        assert_eq!(layout.kind_of("/k/core/v1"), None, "too short");
        assert_eq!(
            layout.kind_of(&layout.marker()),
            None,
            "the revision marker"
        );
        assert_eq!(layout.kind_of("/kx/core/v1/Pod/a"), None, "another prefix");
        assert_eq!(layout.kind_of("/other/core/v1/Pod/a"), None);
    }

    #[test]
    fn segments_with_slashes_are_refused() {
        assert_eq!(invalid_segment("ns", "a"), None);
        assert_eq!(invalid_segment("", "node"), None);
        assert!(invalid_segment("ns", "a/b").is_some());
        assert!(invalid_segment("a/b", "c").is_some());
        assert!(invalid_segment("ns", "").is_some());
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end("ab"), b"ac".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }
}
