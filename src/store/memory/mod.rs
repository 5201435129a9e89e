//! The embedded default store: every kind in a `parking_lot::RwLock`ed ordered map plus one global,
//! bounded change log, built for ~100k objects per kind and thousands of writes per second.
//!
//! Layout and locking:
//! - `tables` maps [`KindSpec::id`] to a `Table`; the map lock is held only to look a table up.
//! - A table (`table`) keeps `BTreeMap<Key, Entry>` (so a namespace is a cheap range and the
//!   default sort is the map's own order) and a uid index. An entry holds the object's compact,
//!   immutable record (`record`: the object serialised once as JSON, plus only what the object
//!   does not yield itself) and what filters and sorts read without opening the record: the
//!   interned label set, the lower-cased name and one typed cell per column (`layout`; JSON
//!   columns equal to their path's extraction are only marked, and re-derived on read).
//! - The change log shares the records of the table, so recording a change never copies an
//!   object. Revisions are assigned under the log lock, which writers take after their table lock
//!   (always in that order), so revisions are strictly increasing across kinds and a batch's
//!   changes are numbered consecutively.
//! - No lock is ever held across an `.await`: every trait method runs synchronous code.
//! - Reads pick records under a read lock (`filter`, `order`, `page`) and materialise
//!   [`MirrorObject`]s (parsing the stored JSON) only for the items they return, after releasing
//!   it; `list_json` hands the stored JSON over without parsing it, and
//!   `revision_and_write_list_json` copies it into the REST answer while the lock is held, taking
//!   no reference on any record. Each interned label set keeps its members in key order, so a
//!   list with a label selector walks only the sets it matches (`by_labels`) when sets are few.
//!   A batch's written objects are dropped together after the locks are released.
//!
//! `unregister` drops a kind's objects without emitting `Deleted` changes: the kind is gone, and
//! feed consumers learn that from the registry, not from thousands of synthetic deletions.

mod by_labels;
mod filter;
mod labels;
mod layout;
mod log;
mod order;
mod page;
mod record;
mod set_index;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use self::filter::{ColumnRef, Filter};
use self::log::{ChangeLog, LogEntry};
use self::order::Order;
use self::record::{BatchScratch, Key};
use self::table::TableData;
use super::{
    Change, ChangeType, GroupBy, JsonPage, ListPage, ListQuery, MirrorObject, PageSummary,
    Revision, Store, StoreError, WriteBatch, WriteOp, WriteOutcome,
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
                let data = RwLock::new(TableData::new(kind));
                tables.insert(kind.id(), Arc::new(Table { data }));
            }
        }
        Ok(())
    }

    fn unregister_sync(&self, kind: &KindSpec) {
        let removed = self.tables.write().remove(&kind.id());
        if let Some(table) = removed {
            table.data.write().remove();
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
        objects.retain(|key, entry| {
            if entry.epoch >= epoch {
                return true;
            }
            uids.remove(&*entry.record.uid);
            label_sets.release(&entry.labels, key);
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
        let (window, order) = self.with_window(kind, query, |window| window.owned())?;
        window.into_page(&order)
    }

    fn list_json_sync(&self, kind: &KindSpec, query: &ListQuery) -> Result<JsonPage, StoreError> {
        let (window, order) = self.with_window(kind, query, |window| window.owned())?;
        window.into_json_page(&order)
    }

    /// The page's objects copied into `out` under the read lock, without taking a reference on
    /// any record or buffer; only the cursor is made after the lock.
    fn write_list_json_sync(
        &self,
        kind: &KindSpec,
        query: &ListQuery,
        out: &mut Vec<u8>,
    ) -> Result<PageSummary, StoreError> {
        let (written, order) = self.with_window(kind, query, |window| {
            let total = window.total;
            window
                .write_json(out)
                .map(|(count, last)| (count, total, last))
        })?;
        let (count, total, last) = written?;
        let next = last
            .map(|record| order.cursor_of_record(&record))
            .transpose()?;
        Ok(PageSummary { count, total, next })
    }

    /// Filters, orders and pages under the table's read lock and hands the page's records to
    /// `finish` before releasing it.
    fn with_window<'q, R>(
        &self,
        kind: &KindSpec,
        query: &'q ListQuery,
        finish: impl FnOnce(page::Window<&Arc<record::Record>>) -> R,
    ) -> Result<(R, Order<'q>), StoreError> {
        let table = self.table(kind)?;
        let data = table.data.read();
        let mut filter = Filter::new(&data.spec, query)?;
        let order = Order::new(&data.spec, query)?;
        let scope = page::scope(query.namespace.as_deref());
        let window = if !order.is_key_order() {
            page::sorted_window(&data.objects, scope, &mut filter, &order, query)
        } else if filter.is_trivial() {
            page::unfiltered_in_map_order(&data.objects, scope, &order, query)
        } else if let Some(selector) = filter.selector_without_columns()
            && by_labels::label_sets_are_few(data.label_sets.len(), data.objects.len())
        {
            by_labels::label_set_members_in_map_order(
                &data.label_sets,
                selector,
                scope,
                &filter,
                &order,
                query,
            )
        } else {
            page::filtered_in_map_order(&data.objects, scope, &mut filter, &order, query)
        };
        let finished = finish(window);
        drop(data);
        Ok((finished, order))
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

#[async_trait::async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    /// A write fails only for a kind that is not registered, which the pipeline resyncs.
    fn transient_write_failures(&self) -> bool {
        false
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

    async fn list_json(&self, kind: &KindSpec, query: &ListQuery) -> Result<JsonPage, StoreError> {
        self.list_json_sync(kind, query)
    }

    async fn revision_and_write_list_json(
        &self,
        kind: &KindSpec,
        query: &ListQuery,
        out: &mut Vec<u8>,
    ) -> Result<(Revision, PageSummary), StoreError> {
        let revision = self.log.lock().revision;
        Ok((revision, self.write_list_json_sync(kind, query, out)?))
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
