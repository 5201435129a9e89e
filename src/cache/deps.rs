//! The dependency table, declared in one place: which cached values a change of one object makes
//! stale. [`invalidations`] turns a batch of changes into what to drop, without I/O.

use std::collections::{BTreeMap, BTreeSet};

use super::keys::{Family, Keys};
use crate::store::Change;

/// Which changes make a family's values stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependsOn {
    /// A change of this very object (by namespace/name or uid).
    SameObject,
    /// Any change of the same kind (lists: adds, deletes and updates move items in and out).
    SameKind,
    /// Any change of any kind (counts and sums over kinds).
    AnyKind,
}

/// The table.
pub const DEPENDENCIES: [(Family, DependsOn); 4] = [
    (Family::Object, DependsOn::SameObject),
    (Family::List, DependsOn::SameKind),
    (Family::Stats, DependsOn::AnyKind),
    (Family::Resources, DependsOn::AnyKind),
];

/// What a batch of changes invalidates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invalidation {
    /// Keys to delete from L1 and Redis.
    pub keys: BTreeSet<String>,
    /// Kinds whose list generation moves on (their list keys become unreachable).
    pub kinds: BTreeSet<String>,
}

impl Invalidation {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.kinds.is_empty()
    }

    pub fn merge(&mut self, other: Invalidation) {
        self.keys.extend(other.keys);
        self.kinds.extend(other.kinds);
    }
}

/// Applies [`DEPENDENCIES`] to `changes`.
pub fn invalidations(keys: &Keys, changes: &[Change]) -> Invalidation {
    let mut out = Invalidation::default();
    if changes.is_empty() {
        return out;
    }
    // Per kind, the objects that changed.
    let mut objects: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
    for change in changes {
        objects
            .entry(change.kind.as_str())
            .or_default()
            .push(change);
    }
    for (family, depends) in DEPENDENCIES {
        match depends {
            DependsOn::SameObject => {
                for (kind, changed) in &objects {
                    for change in changed {
                        let object = &change.object;
                        out.keys
                            .insert(keys.object(kind, &object.namespace, &object.name).text);
                        if !object.uid.is_empty() {
                            out.keys.insert(keys.uid(kind, &object.uid).text);
                        }
                    }
                }
            }
            DependsOn::SameKind => {
                debug_assert_eq!(family, Family::List, "only lists depend on a whole kind");
                out.kinds
                    .extend(objects.keys().map(|kind| kind.to_string()));
            }
            DependsOn::AnyKind => {
                out.keys.insert(match family {
                    Family::Stats => keys.stats(0).text,
                    _ => keys.resources(0).text,
                });
            }
        }
    }
    out
}

/// Everything stale at once (the change history was lost, e.g. the invalidation task fell
/// behind the store's retained changes): every listed kind's generation plus the cross-kind keys.
pub fn everything<'a>(keys: &Keys, kinds: impl IntoIterator<Item = &'a str>) -> Invalidation {
    Invalidation {
        keys: BTreeSet::from([keys.stats(0).text, keys.resources(0).text]),
        kinds: kinds.into_iter().map(str::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::store::{ChangeType, MirrorObject};

    fn change(kind: &str, namespace: &str, name: &str, uid: &str) -> Change {
        Change {
            revision: 1,
            kind: kind.into(),
            change: ChangeType::Modified,
            object: MirrorObject {
                namespace: namespace.into(),
                name: name.into(),
                uid: uid.into(),
                resource_version: "1".into(),
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                created_at: None,
                columns: BTreeMap::new(),
                object: json!({}).into(),
            },
        }
    }

    #[test]
    fn a_change_invalidates_its_object_its_kinds_lists_and_the_cross_kind_values() {
        let keys = Keys::new("s");
        let out = invalidations(&keys, &[change("core/v1/Pod", "shop", "web-0", "u1")]);
        assert_eq!(
            out.keys,
            BTreeSet::from([
                "s:core/v1/Pod:obj:shop:web-0".to_string(),
                "s:core/v1/Pod:uid:u1".to_string(),
                "s:stats:overview".to_string(),
                "s:resources".to_string(),
            ])
        );
        assert_eq!(out.kinds, BTreeSet::from(["core/v1/Pod".to_string()]));
    }

    #[test]
    fn a_batch_covers_every_kind_once() {
        let keys = Keys::new("s");
        let out = invalidations(
            &keys,
            &[
                change("core/v1/Pod", "a", "x", ""),
                change("core/v1/Pod", "a", "y", "u2"),
                change("core/v1/Node", "", "n1", "u3"),
            ],
        );
        assert_eq!(out.kinds.len(), 2);
        assert!(out.keys.contains("s:core/v1/Node:obj::n1"));
        assert!(out.keys.contains("s:core/v1/Pod:obj:a:y"));
        // An empty uid has no uid key.
        assert!(!out.keys.iter().any(|k| k.ends_with(":uid:")));
        assert_eq!(out.keys.len(), 2 + 3 + 2);
    }

    #[test]
    fn no_changes_invalidate_nothing() {
        assert!(invalidations(&Keys::new("s"), &[]).is_empty());
        let all = everything(&Keys::new("s"), ["a", "b"]);
        assert_eq!(all.kinds.len(), 2);
        assert!(all.keys.contains("s:stats:overview"));
    }
}
