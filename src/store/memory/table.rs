//! One registered kind's data in the memory store: the entries in key order, the uid index and
//! the interned label sets, with the writes that keep them consistent.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::labels::{LabelSet, LabelSets, LowerName};
use super::layout::{Cell, Layout};
use super::record::{BatchScratch, Key, Record};
use crate::mirror::kind::KindSpec;
use crate::store::{ChangeType, MirrorObject, StoreError};

/// One registered kind's objects and indexes.
pub(super) struct TableData {
    pub(super) spec: KindSpec,
    /// The spec's columns as records are laid out.
    pub(super) layout: Arc<Layout>,
    /// Set by `unregister`, so a writer that looked the table up just before fails cleanly.
    pub(super) removed: bool,
    pub(super) objects: BTreeMap<Key, Entry>,
    pub(super) uids: HashSet<ByUid>,
    pub(super) label_sets: LabelSets,
}

/// One stored object with what filters read kept inside the entry, so scanning a namespace
/// follows as few pointers as possible.
pub(super) struct Entry {
    pub(super) record: Arc<Record>,
    /// The record's labels, shared by every object with the same labels (a list evaluates a
    /// selector once per distinct set).
    pub(super) labels: Arc<LabelSet>,
    /// Lower-cased name for case-insensitive search.
    pub(super) name: LowerName,
    /// The kind's columns in spec order, so filters and sorts need not open the record.
    pub(super) cells: Box<[Cell]>,
    /// Last batch epoch that upserted this object; updated in place for unchanged upserts.
    pub(super) epoch: u64,
}

impl Entry {
    pub(super) fn new(record: Arc<Record>, cells: Box<[Cell]>, epoch: u64) -> Self {
        Self {
            labels: Arc::clone(&record.labels),
            name: LowerName::new(&record.key.name),
            record,
            cells,
            epoch,
        }
    }
}

/// The uid index's element: a table record, hashed and found by its uid.
pub(super) struct ByUid(pub(super) Arc<Record>);

impl Hash for ByUid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.uid.hash(state);
    }
}

impl PartialEq for ByUid {
    fn eq(&self, other: &Self) -> bool {
        self.0.uid == other.0.uid
    }
}

impl Eq for ByUid {}

impl Borrow<str> for ByUid {
    fn borrow(&self) -> &str {
        &self.0.uid
    }
}

impl TableData {
    /// An empty table for `kind`.
    pub(super) fn new(kind: &KindSpec) -> Self {
        Self {
            spec: kind.clone(),
            layout: Arc::new(Layout::new(kind)),
            removed: false,
            objects: BTreeMap::new(),
            uids: HashSet::new(),
            label_sets: LabelSets::default(),
        }
    }

    /// Drops every object (the kind was unregistered); later writes fail.
    pub(super) fn remove(&mut self) {
        self.removed = true;
        self.objects.clear();
        self.uids.clear();
        self.label_sets = LabelSets::default();
    }

    /// Stores `object` unless its resourceVersion is the stored one (then only marks it seen in
    /// `epoch`); returns the change and the new record to log.
    pub(super) fn upsert(
        &mut self,
        object: MirrorObject,
        epoch: u64,
        scratch: &mut BatchScratch,
    ) -> Option<(ChangeType, Arc<Record>)> {
        let key = Key::new(&object.namespace, &object.name);
        let (change, key) = match self.objects.get_mut(&key) {
            Some(old) if *old.record.resource_version == *object.resource_version => {
                old.epoch = epoch;
                scratch.retire(object);
                return None;
            }
            Some(old) => {
                if *old.record.uid != *object.uid {
                    self.uids.remove(&*old.record.uid);
                }
                // Reuse the key strings the map already holds.
                (ChangeType::Modified, old.record.key.clone())
            }
            None => (ChangeType::Added, key),
        };
        let labels = self.label_sets.intern(&object.labels);
        let (record, cells) = Record::new(
            object,
            key.clone(),
            Arc::clone(&labels),
            &self.layout,
            scratch,
        );
        let record = Arc::new(record);
        self.uids.replace(ByUid(Arc::clone(&record)));
        let entry = Entry::new(Arc::clone(&record), cells, epoch);
        if let Some(old) = self.objects.insert(key.clone(), entry) {
            // Before adding the new membership: the old and the new set may be the same.
            self.label_sets.release(&old.labels, &key);
        }
        self.label_sets.add(&labels, key, Arc::clone(&record));
        Some((change, record))
    }

    /// Removes the object under `key`; returns the change and its last record to log.
    pub(super) fn delete(&mut self, key: &Key) -> Option<(ChangeType, Arc<Record>)> {
        let old = self.objects.remove(key)?;
        self.uids.remove(&*old.record.uid);
        self.label_sets.release(&old.labels, key);
        Some((ChangeType::Deleted, old.record))
    }

    /// Lays every record out for `kind`'s changed columns (sharing the stored objects). Parses
    /// every object once, under the table's write lock: column changes are rare.
    pub(super) fn relayout(&mut self, kind: &KindSpec) -> Result<(), StoreError> {
        let layout = Arc::new(Layout::new(kind));
        let records = self
            .objects
            .values()
            .map(|entry| entry.record.relayout(&layout))
            .collect::<Result<Vec<_>, _>>()?;
        for (entry, (record, cells)) in self.objects.values_mut().zip(records) {
            let record = Arc::new(record);
            let indexed = self
                .uids
                .get(&*record.uid)
                .is_some_and(|by_uid| Arc::ptr_eq(&by_uid.0, &entry.record));
            if indexed {
                self.uids.replace(ByUid(Arc::clone(&record)));
            }
            self.label_sets
                .add(&entry.labels, record.key.clone(), Arc::clone(&record));
            entry.record = record;
            entry.cells = cells;
        }
        self.layout = layout;
        Ok(())
    }
}
