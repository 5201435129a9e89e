//! The embedded default store: every kind in a `parking_lot::RwLock`ed ordered map plus one global,
//! bounded change log, built for ~100k objects per kind and thousands of writes per second.
//!
//! Layout and locking:
//! - `tables` maps [`KindSpec::id`] to a `Table`; the map lock is held only to look a table up.
//! - A table keeps `BTreeMap<Key, Entry>` (so a namespace is a cheap range and the default sort is
//!   the map's own order) and a uid index. An entry holds the object's compact, immutable
//!   [`Record`] (see [`record`]: the object serialised once, typed scalar columns, JSON columns
//!   and annotations re-derived on read) plus what list filters read without opening it.
//! - The change log shares the records of the table, so recording a change never copies an
//!   object. Revisions are assigned under the log lock, which writers take after their table lock
//!   (always in that order), so revisions are strictly increasing across kinds and a batch's
//!   changes are numbered consecutively.
//! - No lock is ever held across an `.await`: every trait method runs synchronous code.
//! - Reads pick records under a read lock and materialise [`MirrorObject`]s (parsing the stored
//!   JSON) only for the items they return, after releasing it.
//!
//! `unregister` drops a kind's objects without emitting `Deleted` changes: the kind is gone, and
//! feed consumers learn that from the registry, not from thousands of synthetic deletions.

mod decode;
mod labels;
mod layout;
mod log;
mod query;
mod record;

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use self::labels::{LabelSet, LabelSets, LowerName};
use self::layout::{Cell, Layout};
use self::log::{ChangeLog, LogEntry};
use self::query::{ColumnRef, Filter, Order};
use self::record::{BatchScratch, Key, Record};
use super::{
    Change, ChangeType, GroupBy, ListPage, ListQuery, MirrorObject, Revision, Store, StoreError,
    WriteBatch, WriteOp, WriteOutcome,
};
use crate::mirror::kind::KindSpec;

/// The embedded store. Cheap to share as `Arc<dyn Store>`.
pub struct MemoryStore {
    tables: RwLock<HashMap<String, Arc<Table>>>,
    log: Mutex<ChangeLog>,
    notify: watch::Sender<Revision>,
}

/// One registered kind.
struct Table {
    data: RwLock<TableData>,
}

struct TableData {
    spec: KindSpec,
    /// The spec's columns as records are laid out.
    layout: Arc<Layout>,
    /// Set by `unregister`, so a writer that looked the table up just before fails cleanly.
    removed: bool,
    objects: BTreeMap<Key, Entry>,
    uids: HashSet<ByUid>,
    label_sets: LabelSets,
}

/// One stored object with what filters read kept inside the entry, so scanning a namespace
/// follows as few pointers as possible.
struct Entry {
    record: Arc<Record>,
    /// The record's labels, shared by every object with the same labels (a list evaluates a
    /// selector once per distinct set).
    labels: Arc<LabelSet>,
    /// Lower-cased name for case-insensitive search.
    name: LowerName,
    /// The kind's columns in spec order, so filters and sorts need not open the record.
    cells: Box<[Cell]>,
    /// Last batch epoch that upserted this object; updated in place for unchanged upserts.
    epoch: u64,
}

impl Entry {
    fn new(record: Arc<Record>, cells: Box<[Cell]>, epoch: u64) -> Self {
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
struct ByUid(Arc<Record>);

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

impl MemoryStore {
    /// A store that retains the last `history` changes for the change feed; older `since` values
    /// get [`StoreError::Expired`].
    pub fn new(history: usize) -> Self {
        let (notify, _) = watch::channel(0);
        Self {
            tables: RwLock::new(HashMap::new()),
            log: Mutex::new(ChangeLog::new(history)),
            notify,
        }
    }

    fn table(&self, kind: &KindSpec) -> Result<Arc<Table>, StoreError> {
        let id = kind.id();
        self.tables
            .read()
            .get(&id)
            .cloned()
            .ok_or(StoreError::UnknownKind(id))
    }

    fn publish(&self, revision: Revision) {
        self.notify.send_if_modified(|current| {
            let moved = revision > *current;
            if moved {
                *current = revision;
            }
            moved
        });
    }

    fn register_sync(&self, kind: &KindSpec) -> Result<(), StoreError> {
        let mut tables = self.tables.write();
        match tables.get(&kind.id()) {
            Some(table) => {
                let mut data = table.data.write();
                if data.spec.columns != kind.columns {
                    data.relayout(kind)?;
                }
                data.spec = kind.clone();
            }
            None => {
                let data = TableData {
                    spec: kind.clone(),
                    layout: Arc::new(Layout::new(kind)),
                    removed: false,
                    objects: BTreeMap::new(),
                    uids: HashSet::new(),
                    label_sets: LabelSets::default(),
                };
                tables.insert(
                    kind.id(),
                    Arc::new(Table {
                        data: RwLock::new(data),
                    }),
                );
            }
        }
        Ok(())
    }

    fn unregister_sync(&self, kind: &KindSpec) {
        let removed = self.tables.write().remove(&kind.id());
        if let Some(table) = removed {
            let mut data = table.data.write();
            data.removed = true;
            data.objects.clear();
            data.uids.clear();
            data.label_sets = LabelSets::default();
        }
    }

    fn write_sync(&self, kind: &KindSpec, batch: WriteBatch) -> Result<WriteOutcome, StoreError> {
        let table = self.table(kind)?;
        let mut data = table.data.write();
        if data.removed {
            return Err(StoreError::UnknownKind(kind.id()));
        }
        let kind_id: Arc<str> = Arc::from(kind.id());
        let mut log = self.log.lock();
        let mut changed = 0;
        let mut scratch = BatchScratch::default();
        for op in batch.ops {
            let change = match op {
                WriteOp::Upsert(object) => data.upsert(object, batch.epoch, &mut scratch),
                WriteOp::Delete { namespace, name } => data.delete(&Key::new(&namespace, &name)),
            };
            if let Some((change, record)) = change {
                log.record(&kind_id, change, record);
                changed += 1;
            }
        }
        let revision = log.revision;
        drop(log);
        drop(data);
        // The batch's objects are freed together, outside the locks.
        drop(scratch);
        if changed > 0 {
            self.publish(revision);
        }
        Ok(WriteOutcome { revision, changed })
    }

    fn sweep_sync(&self, kind: &KindSpec, epoch: u64) -> Result<usize, StoreError> {
        let table = self.table(kind)?;
        let mut data = table.data.write();
        if data.removed {
            return Err(StoreError::UnknownKind(kind.id()));
        }
        let kind_id: Arc<str> = Arc::from(kind.id());
        let TableData {
            objects,
            uids,
            label_sets,
            ..
        } = &mut *data;
        let mut log = self.log.lock();
        let mut removed = 0;
        objects.retain(|_, entry| {
            if entry.epoch >= epoch {
                return true;
            }
            uids.remove(&*entry.record.uid);
            label_sets.release(&entry.labels);
            log.record(&kind_id, ChangeType::Deleted, Arc::clone(&entry.record));
            removed += 1;
            false
        });
        let revision = log.revision;
        drop(log);
        drop(data);
        if removed > 0 {
            self.publish(revision);
        }
        Ok(removed)
    }

    fn get_sync(
        &self,
        kind: &KindSpec,
        namespace: &str,
        name: &str,
    ) -> Result<Option<MirrorObject>, StoreError> {
        let table = self.table(kind)?;
        let found = table
            .data
            .read()
            .objects
            .get(&Key::new(namespace, name))
            .map(|e| Arc::clone(&e.record));
        found.map(|record| record.to_mirror_object()).transpose()
    }

    fn get_by_uid_sync(
        &self,
        kind: &KindSpec,
        uid: &str,
    ) -> Result<Option<MirrorObject>, StoreError> {
        let table = self.table(kind)?;
        let found = table.data.read().uids.get(uid).map(|e| Arc::clone(&e.0));
        found.map(|record| record.to_mirror_object()).transpose()
    }

    /// Filters, orders and pages under the table's read lock, keeping only the page's records;
    /// their objects are materialised after the lock is released.
    fn list_sync(&self, kind: &KindSpec, query: &ListQuery) -> Result<ListPage, StoreError> {
        let table = self.table(kind)?;
        let data = table.data.read();
        let mut filter = Filter::new(&data.spec, query)?;
        let order = Order::new(&data.spec, query)?;
        let scope = query::scope(query.namespace.as_deref());
        let window = if !order.is_key_order() {
            query::sorted_window(&data.objects, scope, &mut filter, &order, query)
        } else if filter.is_trivial() {
            query::unfiltered_in_map_order(&data.objects, scope, &order, query)
        } else {
            query::filtered_in_map_order(&data.objects, scope, &mut filter, &order, query)
        };
        drop(data);
        window.into_page(&order)
    }

    fn group_count_sync(
        &self,
        kind: &KindSpec,
        by: &GroupBy,
    ) -> Result<BTreeMap<String, usize>, StoreError> {
        let table = self.table(kind)?;
        let data = table.data.read();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut count = |group: &str| match counts.get_mut(group) {
            Some(n) => *n += 1,
            None => {
                counts.insert(group.to_owned(), 1);
            }
        };
        match by {
            GroupBy::Namespace => {
                for key in data.objects.keys() {
                    count(&key.namespace);
                }
            }
            GroupBy::Column(column) => {
                let column = ColumnRef::resolve(&data.spec, column)?;
                for entry in data.objects.values() {
                    count(column.string_form(entry).as_deref().unwrap_or(""));
                }
            }
        }
        Ok(counts)
    }

    fn column_sums_sync(
        &self,
        kind: &KindSpec,
        columns: &[String],
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        let table = self.table(kind)?;
        let data = table.data.read();
        let resolved = columns
            .iter()
            .map(|c| ColumnRef::resolve(&data.spec, c))
            .collect::<Result<Vec<_>, _>>()?;
        let mut sums = vec![0_i64; resolved.len()];
        for entry in data.objects.values() {
            for (column, sum) in resolved.iter().zip(sums.iter_mut()) {
                *sum = sum.saturating_add(column.integer(entry));
            }
        }
        Ok(columns.iter().cloned().zip(sums).collect())
    }

    fn changes_sync(
        &self,
        kind: Option<&KindSpec>,
        since: Revision,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let kind_id = kind.map(KindSpec::id);
        let picked: Vec<LogEntry> = {
            let log = self.log.lock();
            let oldest = log.oldest();
            if since.saturating_add(1) < oldest {
                return Err(StoreError::Expired {
                    requested: since,
                    oldest,
                });
            }
            let start = log.entries.partition_point(|e| e.revision <= since);
            log.entries
                .range(start..)
                .filter(|e| kind_id.as_deref().is_none_or(|id| *e.kind == *id))
                .take(limit)
                .cloned()
                .collect()
        };
        picked
            .iter()
            .map(|e| {
                Ok(Change {
                    revision: e.revision,
                    kind: e.kind.to_string(),
                    change: e.change,
                    object: e.record.to_mirror_object()?,
                })
            })
            .collect()
    }
}

impl TableData {
    /// Stores `object` unless its resourceVersion is the stored one (then only marks it seen in
    /// `epoch`); returns the change and the new record to log.
    fn upsert(
        &mut self,
        mut object: MirrorObject,
        epoch: u64,
        scratch: &mut BatchScratch,
    ) -> Option<(ChangeType, Arc<Record>)> {
        let key = Key::new(&object.namespace, &object.name);
        let (change, key) = match self.objects.get_mut(&key) {
            Some(old) if *old.record.resource_version == *object.resource_version => {
                old.epoch = epoch;
                scratch.retire(object.object);
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
        let labels = self.label_sets.intern(std::mem::take(&mut object.labels));
        let (record, cells) = Record::new(object, key.clone(), labels, &self.layout, scratch);
        let record = Arc::new(record);
        self.uids.replace(ByUid(Arc::clone(&record)));
        let entry = Entry::new(Arc::clone(&record), cells, epoch);
        if let Some(old) = self.objects.insert(key, entry) {
            self.label_sets.release(&old.labels);
        }
        Some((change, record))
    }

    /// Removes the object under `key`; returns the change and its last record to log.
    fn delete(&mut self, key: &Key) -> Option<(ChangeType, Arc<Record>)> {
        let old = self.objects.remove(key)?;
        self.uids.remove(&*old.record.uid);
        self.label_sets.release(&old.labels);
        Some((ChangeType::Deleted, old.record))
    }

    /// Lays every record out for `kind`'s changed columns (sharing the stored objects).
    fn relayout(&mut self, kind: &KindSpec) -> Result<(), StoreError> {
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
            entry.record = record;
            entry.cells = cells;
        }
        self.layout = layout;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn register(&self, kind: &KindSpec) -> Result<(), StoreError> {
        self.register_sync(kind)
    }

    /// Unknown kinds are ignored (idempotent); no `Deleted` changes are emitted.
    async fn unregister(&self, kind: &KindSpec) -> Result<(), StoreError> {
        self.unregister_sync(kind);
        Ok(())
    }

    async fn write(&self, kind: &KindSpec, batch: WriteBatch) -> Result<WriteOutcome, StoreError> {
        self.write_sync(kind, batch)
    }

    async fn sweep(&self, kind: &KindSpec, epoch: u64) -> Result<usize, StoreError> {
        self.sweep_sync(kind, epoch)
    }

    async fn get(
        &self,
        kind: &KindSpec,
        namespace: &str,
        name: &str,
    ) -> Result<Option<MirrorObject>, StoreError> {
        self.get_sync(kind, namespace, name)
    }

    async fn get_by_uid(
        &self,
        kind: &KindSpec,
        uid: &str,
    ) -> Result<Option<MirrorObject>, StoreError> {
        self.get_by_uid_sync(kind, uid)
    }

    async fn list(&self, kind: &KindSpec, query: &ListQuery) -> Result<ListPage, StoreError> {
        self.list_sync(kind, query)
    }

    async fn count(&self, kind: &KindSpec) -> Result<usize, StoreError> {
        Ok(self.table(kind)?.data.read().objects.len())
    }

    async fn group_count(
        &self,
        kind: &KindSpec,
        by: &GroupBy,
    ) -> Result<BTreeMap<String, usize>, StoreError> {
        self.group_count_sync(kind, by)
    }

    async fn column_sums(
        &self,
        kind: &KindSpec,
        columns: &[String],
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        self.column_sums_sync(kind, columns)
    }

    async fn changes(
        &self,
        kind: Option<&KindSpec>,
        since: Revision,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        self.changes_sync(kind, since, limit)
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        Ok(self.log.lock().revision)
    }

    fn subscribe(&self) -> watch::Receiver<Revision> {
        self.notify.subscribe()
    }
}

#[cfg(test)]
mod tests;
