//! What list filters read without opening a record: interned label sets (objects of one workload
//! share theirs) and lower-cased names for case-insensitive search.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use memchr::memmem::Finder;
use serde_json::{Map, Value};

use super::record::{Key, Record};
use super::set_index::SetIndex;

/// One distinct set of labels, in both forms the store reads.
#[derive(Debug, PartialEq)]
pub(super) struct LabelSet {
    /// As `LabelSelector::matches` reads them.
    pub json: Map<String, Value>,
    /// As [`crate::store::MirrorObject::labels`] holds them.
    pub map: BTreeMap<String, String>,
}

/// An interned set, hashed and compared by its labels.
struct Shared(Arc<LabelSet>);

impl Hash for Shared {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.map.hash(state);
    }
}

impl PartialEq for Shared {
    fn eq(&self, other: &Self) -> bool {
        self.0.map == other.0.map
    }
}

impl Eq for Shared {}

impl Borrow<BTreeMap<String, String>> for Shared {
    fn borrow(&self) -> &BTreeMap<String, String> {
        &self.0.map
    }
}

/// The table entries using one label set, in key order: a list with a label selector visits only
/// the entries of the sets the selector matches, instead of every entry of the namespace.
#[derive(Default)]
pub(super) struct Members {
    entries: BTreeMap<Key, Arc<Record>>,
    /// The flat form lists read, built on the first list after a change.
    index: OnceLock<SetIndex>,
}

impl Members {
    fn insert(&mut self, key: Key, record: Arc<Record>) {
        self.entries.insert(key, record);
        self.index.take();
    }

    fn remove(&mut self, key: &Key) {
        if self.entries.remove(key).is_some() {
            self.index.take();
        }
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The members as lists read them.
    pub fn index(&self) -> &SetIndex {
        self.index.get_or_init(|| SetIndex::build(&self.entries))
    }

    #[cfg(test)]
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.entries.keys()
    }
}

/// Interned label sets of one table, each with the table entries using it. Change-log records may
/// keep a set alive after its last entry is gone; it is forgotten here all the same.
#[derive(Default)]
pub(super) struct LabelSets(HashMap<Shared, Members>);

impl LabelSets {
    /// The shared set equal to `labels` (a new one has no members until [`LabelSets::add`]).
    pub fn intern(&mut self, labels: &BTreeMap<String, String>) -> Arc<LabelSet> {
        if let Some((shared, _)) = self.0.get_key_value(labels) {
            return Arc::clone(&shared.0);
        }
        let json = labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let set = Arc::new(LabelSet {
            json,
            map: labels.clone(),
        });
        self.0.insert(Shared(Arc::clone(&set)), Members::default());
        set
    }

    /// Records that the entry under `key` (now `record`) uses `set`.
    pub fn add(&mut self, set: &LabelSet, key: Key, record: Arc<Record>) {
        if let Some(members) = self.0.get_mut(&set.map) {
            members.insert(key, record);
        }
    }

    /// Records that the entry under `key` no longer uses `set`, forgetting the set after its
    /// last entry.
    pub fn release(&mut self, set: &LabelSet, key: &Key) {
        if let Some(members) = self.0.get_mut(&set.map) {
            members.remove(key);
            if members.is_empty() {
                self.0.remove(&set.map);
            }
        }
    }

    /// Distinct sets in use.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Every set with its entries.
    pub fn iter(&self) -> impl Iterator<Item = (&LabelSet, &Members)> {
        self.0.iter().map(|(shared, members)| (&*shared.0, members))
    }
}

/// Names up to this many bytes are searched without following a pointer.
const INLINE_NAME: usize = 38;

/// A lower-cased name, inline when short (as most Kubernetes names are).
pub(super) enum LowerName {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Heap(Box<str>),
}

impl LowerName {
    pub fn new(name: &str) -> Self {
        let lower = name.to_lowercase();
        match u8::try_from(lower.len()) {
            Ok(len) if lower.len() <= INLINE_NAME => {
                let mut bytes = [0; INLINE_NAME];
                bytes[..lower.len()].copy_from_slice(lower.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(lower.into_boxed_str()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(name) => name.as_bytes(),
        }
    }

    /// Substring test on UTF-8 bytes: a valid UTF-8 needle can only match at character
    /// boundaries, so this equals `str::contains`.
    pub fn contains(&self, needle: &Finder<'_>) -> bool {
        needle.find(self.as_bytes()).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A record of a sample object stored under `ns/name`.
    fn record(name: &str, set: &Arc<LabelSet>) -> Arc<Record> {
        let kind = crate::store::conformance::sample_kind("Labels");
        let layout = Arc::new(super::super::layout::Layout::new(&kind));
        let object = crate::store::conformance::sample_object("ns", name, "1");
        let (record, _) = Record::new(
            object,
            Key::new("ns", name),
            Arc::clone(set),
            &layout,
            &mut super::super::record::BatchScratch::default(),
        );
        Arc::new(record)
    }

    fn members(sets: &LabelSets, set: &LabelSet) -> Vec<String> {
        sets.iter()
            .filter(|(s, _)| s.map == set.map)
            .flat_map(|(_, members)| members.keys().map(|k| k.name.to_string()))
            .collect()
    }

    #[test]
    fn equal_sets_are_shared_until_their_last_member_leaves() {
        let mut sets = LabelSets::default();
        let web = sets.intern(&labels(&[("app", "web")]));
        sets.add(&web, Key::new("ns", "a"), record("a", &web));
        let again = sets.intern(&labels(&[("app", "web")]));
        assert!(Arc::ptr_eq(&web, &again));
        sets.add(&again, Key::new("ns", "b"), record("b", &again));
        assert_eq!(web.json.get("app"), Some(&Value::String("web".into())));
        let api = sets.intern(&labels(&[("app", "api")]));
        sets.add(&api, Key::new("ns", "c"), record("c", &api));
        assert_eq!(sets.len(), 2);
        assert_eq!(members(&sets, &web), ["a", "b"], "members in key order");
        sets.release(&web, &Key::new("ns", "a"));
        assert_eq!(sets.len(), 2, "b still uses web");
        assert_eq!(members(&sets, &web), ["b"]);
        sets.release(&again, &Key::new("ns", "b"));
        sets.release(&api, &Key::new("ns", "c"));
        assert_eq!(sets.len(), 0);
        sets.release(&api, &Key::new("ns", "c"));
        assert_eq!(sets.len(), 0, "releasing a forgotten set is harmless");
    }

    #[test]
    fn lower_names_match_substrings_inline_and_on_the_heap() {
        let short = LowerName::new("Web-1");
        assert!(matches!(short, LowerName::Inline { .. }));
        let long_name = format!("{}-Tail", "x".repeat(60));
        let long = LowerName::new(&long_name);
        assert!(matches!(long, LowerName::Heap(_)));
        for (name, needle, expected) in [
            (&short, "web", true),
            (&short, "b-1", true),
            (&short, "", true),
            (&short, "web-1", true),
            (&short, "web-12", false),
            (&short, "1-", false),
            (&long, "x-tail", true),
            (&long, "tail-", false),
        ] {
            assert_eq!(name.contains(&Finder::new(needle)), expected, "{needle:?}");
        }
        let unicode = LowerName::new("ÜNÏ-名前");
        assert!(unicode.contains(&Finder::new("ünï")));
        assert!(unicode.contains(&Finder::new("名前")));
    }
}
