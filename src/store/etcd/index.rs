//! What the store remembers of one kind's keys between calls (pure): each key's resourceVersion
//! (so an unchanged upsert writes nothing), uid (etcd has no secondary index) and the relist
//! epoch it was last seen in (so a sweep knows the keys of vanished objects without rewriting
//! unchanged ones). Loaded from etcd when the kind is registered; keys found there start at
//! epoch 0, so the first relist's sweep removes what vanished while Stowage was away.

use std::collections::HashMap;

/// One key's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub resource_version: String,
    pub uid: String,
    pub epoch: u64,
}

#[derive(Debug, Default)]
pub struct Index {
    entries: HashMap<String, Entry>,
    uids: HashMap<String, String>,
    /// Set when the kind is unregistered: writers holding the kind must stop.
    pub removed: bool,
}

impl Index {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// The key of the object with `uid`.
    pub fn key_of_uid(&self, uid: &str) -> Option<&str> {
        self.uids.get(uid).map(String::as_str)
    }

    pub fn insert(&mut self, key: String, entry: Entry) {
        let uid = entry.uid.clone();
        if let Some(old) = self.entries.insert(key.clone(), entry)
            && old.uid != uid
            && self.uids.get(&old.uid) == Some(&key)
        {
            self.uids.remove(&old.uid);
        }
        if !uid.is_empty() {
            self.uids.insert(uid, key);
        }
    }

    pub fn remove(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key)
            && self.uids.get(&old.uid).is_some_and(|k| k == key)
        {
            self.uids.remove(&old.uid);
        }
    }

    /// Marks `key` as seen in `epoch` (epochs never go back).
    pub fn mark(&mut self, key: &str, epoch: u64) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.epoch = entry.epoch.max(epoch);
        }
    }

    /// Keys not seen in `epoch` or later, in key order.
    pub fn stale(&self, epoch: u64) -> Vec<String> {
        let mut keys: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.epoch < epoch)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rv: &str, uid: &str, epoch: u64) -> Entry {
        Entry {
            resource_version: rv.to_owned(),
            uid: uid.to_owned(),
            epoch,
        }
    }

    #[test]
    fn uids_follow_their_keys() {
        let mut index = Index::default();
        index.insert("k/a".into(), entry("1", "u1", 1));
        assert_eq!(index.key_of_uid("u1"), Some("k/a"));
        index.insert("k/a".into(), entry("2", "u1", 1));
        assert_eq!(index.key_of_uid("u1"), Some("k/a"), "same uid, new version");
        index.insert("k/a".into(), entry("3", "u2", 1));
        assert_eq!(index.key_of_uid("u1"), None, "recreated: old uid gone");
        assert_eq!(index.key_of_uid("u2"), Some("k/a"));
        index.remove("k/a");
        assert_eq!((index.key_of_uid("u2"), index.get("k/a")), (None, None));
    }

    #[test]
    fn stale_keys_are_those_not_seen_in_the_epoch() {
        let mut index = Index::default();
        index.insert("b".into(), entry("1", "ub", 1));
        index.insert("a".into(), entry("1", "ua", 1));
        index.insert("c".into(), entry("1", "uc", 2));
        index.mark("a", 2);
        index.mark("a", 1);
        assert_eq!(index.stale(2), ["b"]);
        assert_eq!(index.stale(3), ["a", "b", "c"]);
        assert!(index.stale(1).is_empty());
    }
}
