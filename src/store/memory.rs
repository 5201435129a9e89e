//! The embedded default store: every kind in a `parking_lot::RwLock`ed ordered map plus one global,
//! bounded change log, built for ~100k objects per kind and thousands of writes per second.
//!
//! Layout and locking:
//! - `tables` maps [`KindSpec::id`] to a `Table`; the map lock is held only to look a table up.
//! - A table keeps `BTreeMap<(namespace, name), Entry>` (so a namespace is a cheap range and the
//!   default sort is the map's own order; an entry holds the object's `Arc` and what filters need)
//!   and a uid index.
//! - The change log holds `Arc`s of stored objects, so recording a change never copies an object.
//!   Revisions are assigned under the log lock, which writers take after their table lock (always
//!   in that order), so revisions are strictly increasing across kinds and a batch's changes are
//!   numbered consecutively.
//! - No lock is ever held across an `.await`: every trait method runs synchronous code.
//! - Lists filter, sort (by reference, only as far as the page needs) and pick the page's `Arc`s
//!   under a read lock, then clone only the page's objects after releasing it.
//!
//! `unregister` drops a kind's objects without emitting `Deleted` changes: the kind is gone, and
//! feed consumers learn that from the registry, not from thousands of synthetic deletions.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde_json::{Map, Number, Value};
use stowage_emulator::selectors::LabelSelector;
use tokio::sync::watch;

use super::{
    Change, ChangeType, Cursor, GroupBy, ListPage, ListQuery, MirrorObject, Revision, SortField,
    Store, StoreError, WriteBatch, WriteOp, WriteOutcome,
};
use crate::mirror::kind::KindSpec;

/// `(namespace, name)`: the table key, ordered like the default sort.
type Key = (String, String);

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
    /// Set by `unregister`, so a writer that looked the table up just before fails cleanly.
    removed: bool,
    objects: BTreeMap<Key, Entry>,
    uids: HashMap<String, Key>,
    label_sets: LabelSets,
}

/// One stored object with what filters read kept inside the entry, so scanning a namespace
/// follows as few pointers as possible.
struct Entry {
    object: Arc<MirrorObject>,
    /// `object.labels` as the JSON map `LabelSelector::matches` reads, shared by every object
    /// with the same labels (a list evaluates a selector once per distinct set).
    labels: Arc<LabelMap>,
    /// Lower-cased name for case-insensitive search.
    name: LowerName,
    /// The kind's columns in spec order, so filters and sorts need not open the object.
    cells: Box<[Cell]>,
    /// Last batch epoch that upserted this object; updated in place for unchanged upserts.
    epoch: u64,
}

type LabelMap = Map<String, Value>;

/// A column value as an entry keeps it: scalars in the entry (strings in one allocation),
/// documents (arrays, objects) only in the object.
enum Cell {
    Null,
    Bool(bool),
    Number(Number),
    Str(Box<str>),
    Document,
}

impl Cell {
    fn of(value: Option<&Value>) -> Self {
        match value {
            None | Some(Value::Null) => Self::Null,
            Some(Value::Bool(b)) => Self::Bool(*b),
            Some(Value::Number(n)) => Self::Number(n.clone()),
            Some(Value::String(s)) => Self::Str(s.as_str().into()),
            Some(_) => Self::Document,
        }
    }

    fn row(spec: &KindSpec, object: &MirrorObject) -> Box<[Cell]> {
        spec.columns
            .iter()
            .map(|c| Self::of(object.columns.get(&c.name)))
            .collect()
    }
}

/// A column of the kind, resolved once per query.
#[derive(Clone, Copy)]
struct ColumnRef<'q> {
    index: usize,
    name: &'q str,
}

impl<'q> ColumnRef<'q> {
    fn resolve(spec: &KindSpec, name: &'q str) -> Result<Self, StoreError> {
        match spec.columns.iter().position(|c| c.name == name) {
            Some(index) => Ok(Self { index, name }),
            None => Err(StoreError::UnknownColumn {
                kind: spec.id(),
                column: name.to_owned(),
            }),
        }
    }

    fn sort_value<'e>(&self, entry: &'e Entry) -> SortValue<'e> {
        match entry.cells.get(self.index) {
            None | Some(Cell::Null) => SortValue::Null,
            Some(Cell::Bool(b)) => SortValue::Bool(*b),
            Some(Cell::Number(n)) => SortValue::Number(n),
            Some(Cell::Str(s)) => SortValue::Str(s),
            Some(Cell::Document) => SortValue::of(entry.object.columns.get(self.name)),
        }
    }

    /// The value's string form (see [`string_form`]); `None` for null.
    fn string_form(&self, entry: &Entry) -> Option<String> {
        match entry.cells.get(self.index) {
            None | Some(Cell::Null) => None,
            Some(Cell::Bool(b)) => Some(b.to_string()),
            Some(Cell::Number(n)) => Some(n.to_string()),
            Some(Cell::Str(s)) => Some(s.to_string()),
            Some(Cell::Document) => entry.object.columns.get(self.name).and_then(string_form),
        }
    }

    /// Equality with a filter's string, without allocating for strings and booleans.
    fn equals(&self, entry: &Entry, want: &str) -> bool {
        match entry.cells.get(self.index) {
            None | Some(Cell::Null) => false,
            Some(Cell::Bool(b)) => want == if *b { "true" } else { "false" },
            Some(Cell::Str(s)) => **s == *want,
            Some(_) => self.string_form(entry).as_deref() == Some(want),
        }
    }

    fn integer(&self, entry: &Entry) -> i64 {
        match entry.cells.get(self.index) {
            Some(Cell::Number(n)) => n.as_i64().unwrap_or(0),
            _ => 0,
        }
    }
}

/// Interned label sets of one table: objects of one workload usually share their labels.
#[derive(Default)]
struct LabelSets(HashMap<BTreeMap<String, String>, Arc<LabelMap>>);

impl LabelSets {
    fn intern(&mut self, labels: &BTreeMap<String, String>) -> Arc<LabelMap> {
        if let Some(shared) = self.0.get(labels) {
            return Arc::clone(shared);
        }
        let map: LabelMap = labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let shared = Arc::new(map);
        self.0.insert(labels.clone(), Arc::clone(&shared));
        shared
    }

    /// Forgets a set when `entry`, about to be dropped, is its last user.
    fn release(&mut self, entry: &Entry) {
        if Arc::strong_count(&entry.labels) <= 2 {
            self.0.remove(&entry.object.labels);
        }
    }
}

/// Names up to this many bytes are searched without following a pointer.
const INLINE_NAME: usize = 38;

/// A lower-cased name, inline when short (as most Kubernetes names are).
enum LowerName {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Heap(Box<str>),
}

impl LowerName {
    fn new(name: &str) -> Self {
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
    /// boundaries, so this equals `str::contains` without its per-call searcher setup.
    fn contains(&self, needle: &[u8]) -> bool {
        let haystack = self.as_bytes();
        match needle {
            [] => true,
            [first, rest @ ..] => haystack
                .iter()
                .enumerate()
                .filter(|(_, b)| *b == first)
                .any(|(i, _)| haystack.get(i + 1..i + 1 + rest.len()) == Some(rest)),
        }
    }
}

/// One change as retained: shares the object with the table.
#[derive(Clone)]
struct LogEntry {
    revision: Revision,
    kind: Arc<str>,
    change: ChangeType,
    object: Arc<MirrorObject>,
}

struct ChangeLog {
    /// Last revision assigned.
    revision: Revision,
    /// Retained changes, oldest first, at most `history`.
    entries: VecDeque<LogEntry>,
    history: usize,
}

impl ChangeLog {
    /// Assigns the next revision to a change and retains it, dropping the oldest beyond `history`.
    fn record(&mut self, kind: &Arc<str>, change: ChangeType, object: Arc<MirrorObject>) {
        self.revision += 1;
        if self.history == 0 {
            return;
        }
        if self.entries.len() == self.history {
            self.entries.pop_front();
        }
        self.entries.push_back(LogEntry {
            revision: self.revision,
            kind: Arc::clone(kind),
            change,
            object,
        });
    }

    /// The oldest revision a reader can still receive (one past the current one when none is kept).
    fn oldest(&self) -> Revision {
        self.entries
            .front()
            .map_or(self.revision + 1, |e| e.revision)
    }
}

impl MemoryStore {
    /// A store that retains the last `history` changes for the change feed; older `since` values
    /// get [`StoreError::Expired`].
    pub fn new(history: usize) -> Self {
        let (notify, _) = watch::channel(0);
        Self {
            tables: RwLock::new(HashMap::new()),
            log: Mutex::new(ChangeLog {
                revision: 0,
                entries: VecDeque::with_capacity(history.min(1 << 16)),
                history,
            }),
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

    fn register_sync(&self, kind: &KindSpec) {
        let mut tables = self.tables.write();
        match tables.get(&kind.id()) {
            Some(table) => {
                let mut data = table.data.write();
                if data.spec.columns != kind.columns {
                    for entry in data.objects.values_mut() {
                        entry.cells = Cell::row(kind, &entry.object);
                    }
                }
                data.spec = kind.clone();
            }
            None => {
                let data = TableData {
                    spec: kind.clone(),
                    removed: false,
                    objects: BTreeMap::new(),
                    uids: HashMap::new(),
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
        let TableData {
            spec,
            objects,
            uids,
            label_sets,
            ..
        } = &mut *data;
        let mut log = self.log.lock();
        let mut changed = 0;
        for op in batch.ops {
            match op {
                WriteOp::Upsert(object) => {
                    let key = (object.namespace.clone(), object.name.clone());
                    let change = match objects.get_mut(&key) {
                        Some(old) if old.object.resource_version == object.resource_version => {
                            old.epoch = batch.epoch;
                            continue;
                        }
                        Some(old) => {
                            if old.object.uid != object.uid {
                                uids.remove(&old.object.uid);
                            }
                            ChangeType::Modified
                        }
                        None => ChangeType::Added,
                    };
                    let object = Arc::new(object);
                    log.record(&kind_id, change, Arc::clone(&object));
                    uids.insert(object.uid.clone(), key.clone());
                    let entry = Entry::new(spec, object, batch.epoch, label_sets);
                    if let Some(old) = objects.insert(key, entry) {
                        label_sets.release(&old);
                    }
                    changed += 1;
                }
                WriteOp::Delete { namespace, name } => {
                    if let Some(old) = objects.remove(&(namespace, name)) {
                        uids.remove(&old.object.uid);
                        label_sets.release(&old);
                        log.record(&kind_id, ChangeType::Deleted, Arc::clone(&old.object));
                        changed += 1;
                    }
                }
            }
        }
        let revision = log.revision;
        drop(log);
        drop(data);
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
            uids.remove(&entry.object.uid);
            label_sets.release(entry);
            log.record(&kind_id, ChangeType::Deleted, Arc::clone(&entry.object));
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
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|e| Arc::clone(&e.object));
        Ok(found.map(|object| (*object).clone()))
    }

    fn get_by_uid_sync(
        &self,
        kind: &KindSpec,
        uid: &str,
    ) -> Result<Option<MirrorObject>, StoreError> {
        let table = self.table(kind)?;
        let found = {
            let data = table.data.read();
            data.uids
                .get(uid)
                .and_then(|key| data.objects.get(key))
                .map(|e| Arc::clone(&e.object))
        };
        Ok(found.map(|object| (*object).clone()))
    }

    /// Filters, orders and pages under the table's read lock, keeping only `Arc`s of the page;
    /// the page's objects are cloned after the lock is released.
    fn list_sync(&self, kind: &KindSpec, query: &ListQuery) -> Result<ListPage, StoreError> {
        let table = self.table(kind)?;
        let data = table.data.read();
        let mut filter = Filter::new(&data.spec, query)?;
        let order = Order::new(&data.spec, query)?;
        let scope = scope(query.namespace.as_deref());
        let window = if order.column.is_some() || order.by_created {
            sorted_window(&data.objects, scope, &mut filter, &order, query)
        } else if filter.is_trivial() {
            unfiltered_in_map_order(&data.objects, scope, &order, query)
        } else {
            filtered_in_map_order(&data.objects, scope, &mut filter, &order, query)
        };
        drop(data);
        Ok(window.into_page(&order))
    }

    fn group_count_sync(
        &self,
        kind: &KindSpec,
        by: &GroupBy,
    ) -> Result<BTreeMap<String, usize>, StoreError> {
        let table = self.table(kind)?;
        let data = table.data.read();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        match by {
            GroupBy::Namespace => {
                for (namespace, _) in data.objects.keys() {
                    match counts.get_mut(namespace) {
                        Some(n) => *n += 1,
                        None => {
                            counts.insert(namespace.clone(), 1);
                        }
                    }
                }
            }
            GroupBy::Column(column) => {
                let column = ColumnRef::resolve(&data.spec, column)?;
                for entry in data.objects.values() {
                    let group = column.string_form(entry).unwrap_or_default();
                    *counts.entry(group).or_default() += 1;
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
        Ok(picked
            .iter()
            .map(|e| Change {
                revision: e.revision,
                kind: e.kind.to_string(),
                change: e.change,
                object: (*e.object).clone(),
            })
            .collect())
    }
}

impl Entry {
    fn new(
        spec: &KindSpec,
        object: Arc<MirrorObject>,
        epoch: u64,
        label_sets: &mut LabelSets,
    ) -> Self {
        Self {
            labels: label_sets.intern(&object.labels),
            name: LowerName::new(&object.name),
            cells: Cell::row(spec, &object),
            object,
            epoch,
        }
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn register(&self, kind: &KindSpec) -> Result<(), StoreError> {
        self.register_sync(kind);
        Ok(())
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

// ---------------------------------------------------------------------------------------------
// Queries: filtering, ordering, paging
// ---------------------------------------------------------------------------------------------

/// A range of table keys.
type KeyRange = (Bound<Key>, Bound<Key>);

/// The keys of one namespace, or of all namespaces.
fn scope(namespace: Option<&str>) -> KeyRange {
    namespace.map_or((Bound::Unbounded, Bound::Unbounded), namespace_range)
}

/// All keys `(ns, _)`: from `(ns, "")` up to `(ns + "\0", "")`, the smallest key of a greater namespace.
fn namespace_range(ns: &str) -> KeyRange {
    (
        Bound::Included((ns.to_owned(), String::new())),
        Bound::Excluded((format!("{ns}\0"), String::new())),
    )
}

/// A column value as filters and groups compare it: strings as is, numbers and booleans printed,
/// JSON documents serialised; `null` has no string form.
fn string_form(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Distinct label sets whose selector result a list remembers; beyond this, sets are evaluated
/// each time (objects with unique labels gain nothing from remembering).
const LABEL_MEMO_LIMIT: usize = 4096;

/// The query's filters, validated against the kind.
struct Filter<'q> {
    search: Option<String>,
    labels: Option<&'q LabelSelector>,
    columns: Vec<(ColumnRef<'q>, &'q str)>,
    /// Selector results by label set (the shared map's address).
    label_memo: HashMap<*const LabelMap, bool>,
}

impl<'q> Filter<'q> {
    fn new(spec: &KindSpec, query: &'q ListQuery) -> Result<Self, StoreError> {
        let columns = query
            .columns
            .iter()
            .map(|(name, want)| Ok((ColumnRef::resolve(spec, name)?, want.as_str())))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self {
            search: query
                .search
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(str::to_lowercase),
            labels: query.labels.as_ref().filter(|s| !s.is_empty()),
            columns,
            label_memo: HashMap::new(),
        })
    }

    /// Whether every object matches (no object needs to be looked at).
    fn is_trivial(&self) -> bool {
        self.search.is_none() && self.labels.is_none() && self.columns.is_empty()
    }

    fn matches(&mut self, entry: &Entry) -> bool {
        if let Some(needle) = &self.search
            && !entry.name.contains(needle.as_bytes())
        {
            return false;
        }
        if let Some(selector) = self.labels
            && !self.labels_match(selector, &entry.labels)
        {
            return false;
        }
        self.columns
            .iter()
            .all(|(column, want)| column.equals(entry, want))
    }
}

impl Filter<'_> {
    fn labels_match(&mut self, selector: &LabelSelector, labels: &Arc<LabelMap>) -> bool {
        let set = Arc::as_ptr(labels);
        if let Some(known) = self.label_memo.get(&set) {
            return *known;
        }
        let matched = selector.matches(Some(labels));
        if self.label_memo.len() < LABEL_MEMO_LIMIT {
            self.label_memo.insert(set, matched);
        }
        matched
    }
}

/// The resolved sort order: `(value, namespace, name)`, all reversed when descending.
struct Order<'q> {
    /// Sorting by this column.
    column: Option<ColumnRef<'q>>,
    by_created: bool,
    descending: bool,
}

impl<'q> Order<'q> {
    fn new(spec: &KindSpec, query: &'q ListQuery) -> Result<Self, StoreError> {
        let (column, by_created) = match &query.sort.field {
            SortField::Name => (None, false),
            SortField::CreatedAt => (None, true),
            SortField::Column(column) => (Some(ColumnRef::resolve(spec, column)?), false),
        };
        Ok(Self {
            column,
            by_created,
            descending: query.sort.descending,
        })
    }

    fn value<'e>(&self, entry: &'e Entry) -> SortValue<'e> {
        if self.by_created {
            entry
                .object
                .created_at
                .as_deref()
                .map_or(SortValue::Null, SortValue::Str)
        } else if let Some(column) = self.column {
            column.sort_value(entry)
        } else {
            SortValue::Null
        }
    }

    /// The sort value as a cursor carries it.
    fn cursor_value(&self, object: &MirrorObject) -> Value {
        if self.by_created {
            object.created_at.clone().map_or(Value::Null, Value::String)
        } else if let Some(column) = self.column {
            object
                .columns
                .get(column.name)
                .cloned()
                .unwrap_or(Value::Null)
        } else {
            Value::Null
        }
    }

    fn cursor_of(&self, object: &MirrorObject) -> Cursor {
        Cursor {
            value: self.cursor_value(object),
            namespace: object.namespace.clone(),
            name: object.name.clone(),
        }
    }

    fn directed(&self, ordering: Ordering) -> Ordering {
        if self.descending {
            ordering.reverse()
        } else {
            ordering
        }
    }

    fn compare_keys(
        &self,
        a: (SortValue<'_>, &str, &str),
        b: (SortValue<'_>, &str, &str),
    ) -> Ordering {
        self.directed(
            a.0.cmp(&b.0)
                .then_with(|| a.1.cmp(b.1))
                .then_with(|| a.2.cmp(b.2)),
        )
    }

    /// Whether `entry` comes strictly after `cursor` (always true without a cursor).
    fn after_cursor(&self, entry: &Entry, cursor: Option<&Cursor>) -> bool {
        let Some(cursor) = cursor else { return true };
        let cursor_value = match (self.column, self.by_created) {
            (Some(_), _) => SortValue::of(Some(&cursor.value)),
            (None, true) => cursor
                .value
                .as_str()
                .map_or(SortValue::Null, SortValue::Str),
            (None, false) => SortValue::Null,
        };
        let object = &entry.object;
        self.compare_keys(
            (self.value(entry), &object.namespace, &object.name),
            (cursor_value, &cursor.namespace, &cursor.name),
        ) == Ordering::Greater
    }
}

/// A JSON value ordered null < bool < number < string < array < object.
#[derive(Debug, Clone, Copy)]
enum SortValue<'a> {
    Null,
    Bool(bool),
    Number(&'a Number),
    Str(&'a str),
    /// Arrays and objects (JSON columns): compared by their serialised form.
    Document(&'a Value),
}

impl<'a> SortValue<'a> {
    fn of(value: Option<&'a Value>) -> Self {
        match value {
            None | Some(Value::Null) => Self::Null,
            Some(Value::Bool(b)) => Self::Bool(*b),
            Some(Value::Number(n)) => Self::Number(n),
            Some(Value::String(s)) => Self::Str(s),
            Some(other) => Self::Document(other),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Self::Null => 0,
            Self::Bool(_) => 1,
            Self::Number(_) => 2,
            Self::Str(_) => 3,
            Self::Document(Value::Array(_)) => 4,
            Self::Document(_) => 5,
        }
    }

    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Bool(a), Self::Bool(b)) => a.cmp(b),
            (Self::Number(a), Self::Number(b)) => compare_numbers(a, b),
            (Self::Str(a), Self::Str(b)) => a.cmp(b),
            (Self::Document(a), Self::Document(b)) if self.rank() == other.rank() => {
                a.to_string().cmp(&b.to_string())
            }
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return a.cmp(&b);
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return a.cmp(&b);
    }
    let (a, b) = (
        a.as_f64().unwrap_or(f64::NAN),
        b.as_f64().unwrap_or(f64::NAN),
    );
    a.total_cmp(&b)
}

/// The page of a list as picked under the lock, plus what is needed to finish it.
struct Window {
    items: Vec<Arc<MirrorObject>>,
    total: usize,
    more: bool,
}

impl Window {
    fn into_page(self, order: &Order<'_>) -> ListPage {
        let next = if self.more {
            self.items.last().map(|object| order.cursor_of(object))
        } else {
            None
        };
        ListPage {
            items: self.items.iter().map(|object| (**object).clone()).collect(),
            total: self.total,
            next,
        }
    }
}

/// Name order without filters: the total is a count of keys and the page a range read from the
/// cursor, so neither touches objects outside the page.
fn unfiltered_in_map_order(
    objects: &BTreeMap<Key, Entry>,
    scope: KeyRange,
    order: &Order<'_>,
    query: &ListQuery,
) -> Window {
    let total = match scope {
        (Bound::Unbounded, Bound::Unbounded) => objects.len(),
        ref bounded => objects.range(bounded.clone()).count(),
    };
    let cursor = query
        .after
        .as_ref()
        .map(|c| (c.namespace.clone(), c.name.clone()));
    let Some(range) = after_cursor_range(scope, cursor, order.descending) else {
        return Window {
            items: Vec::new(),
            total,
            more: false,
        };
    };
    let skip = if query.after.is_some() {
        0
    } else {
        query.offset
    };
    let entries = objects.range(range).map(|(_, e)| &e.object);
    let entries: Box<dyn Iterator<Item = &Arc<MirrorObject>>> = if order.descending {
        Box::new(entries.rev())
    } else {
        Box::new(entries)
    };
    let mut items: Vec<Arc<MirrorObject>> = entries
        .skip(skip)
        .take(query.limit.saturating_add(1))
        .cloned()
        .collect();
    let more = items.len() > query.limit;
    items.truncate(query.limit);
    Window { items, total, more }
}

/// `scope` narrowed to the keys strictly after `cursor` in the walking direction; `None` when
/// nothing is left (an empty range `BTreeMap::range` would refuse).
fn after_cursor_range(scope: KeyRange, cursor: Option<Key>, descending: bool) -> Option<KeyRange> {
    let (mut lower, mut upper) = scope;
    if let Some(cursor) = cursor {
        if descending {
            if bound_key(&upper).is_none_or(|upper| cursor < *upper) {
                upper = Bound::Excluded(cursor);
            }
        } else if bound_key(&lower).is_none_or(|lower| cursor >= *lower) {
            lower = Bound::Excluded(cursor);
        }
    }
    let non_empty = match (&lower, &upper) {
        (Bound::Included(lo), Bound::Included(hi)) => lo <= hi,
        (lo, hi) => match (bound_key(lo), bound_key(hi)) {
            (Some(lo), Some(hi)) => lo < hi,
            _ => true,
        },
    };
    non_empty.then_some((lower, upper))
}

fn bound_key(bound: &Bound<Key>) -> Option<&Key> {
    match bound {
        Bound::Included(key) | Bound::Excluded(key) => Some(key),
        Bound::Unbounded => None,
    }
}

/// Name order with filters: one walk that counts every match and keeps only the page. The walk is
/// in sort order, so the cursor is compared only until the first match past it.
fn filtered_in_map_order(
    objects: &BTreeMap<Key, Entry>,
    scope: KeyRange,
    filter: &mut Filter<'_>,
    order: &Order<'_>,
    query: &ListQuery,
) -> Window {
    let entries = objects.range(scope).map(|(_, e)| e);
    let entries: Box<dyn Iterator<Item = &Entry>> = if order.descending {
        Box::new(entries.rev())
    } else {
        Box::new(entries)
    };
    let mut window = Window {
        items: Vec::with_capacity(query.limit.min(1024)),
        total: 0,
        more: false,
    };
    let mut skip = if query.after.is_some() {
        0
    } else {
        query.offset
    };
    let mut past_cursor = query.after.is_none();
    for entry in entries.filter(|e| filter.matches(e)) {
        window.total += 1;
        if !past_cursor {
            past_cursor = order.after_cursor(entry, query.after.as_ref());
            if !past_cursor {
                continue;
            }
        }
        if skip > 0 {
            skip -= 1;
        } else if window.items.len() < query.limit {
            window.items.push(Arc::clone(&entry.object));
        } else {
            window.more = true;
        }
    }
    window
}

/// Any other order: collects the matches after the cursor as `(sort value, object)` pairs and
/// sorts them just enough to cut out the page (a selection, then a sort of the first
/// `offset + limit`). This runs under the table's read lock, which costs less than taking a
/// reference count on every match.
fn sorted_window(
    objects: &BTreeMap<Key, Entry>,
    scope: KeyRange,
    filter: &mut Filter<'_>,
    order: &Order<'_>,
    query: &ListQuery,
) -> Window {
    let mut total = 0;
    let mut keyed: Vec<(SortValue<'_>, &Key, &Arc<MirrorObject>)> = Vec::new();
    for (key, entry) in objects.range(scope) {
        if !filter.matches(entry) {
            continue;
        }
        total += 1;
        if order.after_cursor(entry, query.after.as_ref()) {
            keyed.push((order.value(entry), key, &entry.object));
        }
    }
    type Keyed<'a> = (SortValue<'a>, &'a Key, &'a Arc<MirrorObject>);
    let compare = |a: &Keyed<'_>, b: &Keyed<'_>| {
        order.compare_keys((a.0, &a.1.0, &a.1.1), (b.0, &b.1.0, &b.1.1))
    };
    let offset = if query.after.is_some() {
        0
    } else {
        query.offset
    };
    let end = offset.saturating_add(query.limit);
    let more = end < keyed.len();
    if more {
        keyed.select_nth_unstable_by(end, compare);
        keyed.truncate(end);
    }
    keyed.sort_unstable_by(compare);
    let items = keyed
        .iter()
        .skip(offset)
        .map(|(_, _, object)| Arc::clone(object))
        .collect();
    Window { items, total, more }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sort_values_order_null_bool_number_string() {
        let values = [
            json!(null),
            json!(false),
            json!(true),
            json!(-3),
            json!(2),
            json!(2.5),
            json!(10),
            json!(""),
            json!("a"),
        ];
        for pair in values.windows(2) {
            let (a, b) = (SortValue::of(Some(&pair[0])), SortValue::of(Some(&pair[1])));
            assert_eq!(a.cmp(&b), Ordering::Less, "{} < {}", pair[0], pair[1]);
            assert_eq!(b.cmp(&a), Ordering::Greater, "{} > {}", pair[1], pair[0]);
        }
        assert_eq!(SortValue::of(None).cmp(&SortValue::Null), Ordering::Equal);
    }

    #[test]
    fn string_forms_of_column_values() {
        assert_eq!(string_form(&json!("Running")), Some("Running".to_owned()));
        assert_eq!(string_form(&json!(3)), Some("3".to_owned()));
        assert_eq!(string_form(&json!(true)), Some("true".to_owned()));
        assert_eq!(string_form(&json!(null)), None);
        let spec = crate::store::conformance::sample_kind("Cells");
        let mut object = crate::store::conformance::sample_object("ns", "a", "1");
        object.columns.insert("replicas".to_owned(), json!(7));
        object.columns.insert("ready".to_owned(), json!(false));
        object
            .columns
            .insert("spec".to_owned(), json!({ "replicas": 7 }));
        let entry = Entry::new(&spec, Arc::new(object), 1, &mut LabelSets::default());
        let column = |name: &'static str| ColumnRef::resolve(&spec, name).expect("sample column");
        assert!(column("replicas").equals(&entry, "7"));
        assert!(column("ready").equals(&entry, "false"));
        assert!(column("spec").equals(&entry, r#"{"replicas":7}"#));
        assert!(!column("phase").equals(&entry, "null"));
        assert!(!column("phase").equals(&entry, ""));
        assert_eq!(column("phase").string_form(&entry), None);
        assert_eq!(column("replicas").integer(&entry), 7);
        assert_eq!(column("ready").integer(&entry), 0);
        assert!(ColumnRef::resolve(&spec, "nope").is_err());
    }

    #[test]
    fn namespace_range_covers_exactly_one_namespace() {
        let mut map: BTreeMap<Key, u8> = BTreeMap::new();
        for (ns, name) in [
            ("a", "x"),
            ("ab", "y"),
            ("a\u{1}", "z"),
            ("a", ""),
            ("b", "a"),
            ("", "c"),
        ] {
            map.insert((ns.to_owned(), name.to_owned()), 0);
        }
        let names: Vec<&str> = map
            .range(namespace_range("a"))
            .map(|((_, n), _)| n.as_str())
            .collect();
        assert_eq!(names, ["", "x"]);
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
            assert_eq!(name.contains(needle.as_bytes()), expected, "{needle:?}");
        }
        let unicode = LowerName::new("ÜNÏ-名前");
        assert!(unicode.contains("ünï".as_bytes()));
        assert!(unicode.contains("名前".as_bytes()));
    }

    #[test]
    fn cursor_ranges_stay_inside_the_namespace() {
        let key = |ns: &str, name: &str| (ns.to_owned(), name.to_owned());
        let ns = namespace_range("b");
        let asc = after_cursor_range(ns.clone(), Some(key("b", "m")), false);
        assert_eq!(asc.map(|r| r.0), Some(Bound::Excluded(key("b", "m"))));
        let before = after_cursor_range(ns.clone(), Some(key("a", "z")), false);
        assert_eq!(before.map(|r| r.0), Some(Bound::Included(key("b", ""))));
        assert_eq!(
            after_cursor_range(ns.clone(), Some(key("c", "a")), false),
            None
        );
        let desc = after_cursor_range(ns.clone(), Some(key("b", "m")), true);
        assert_eq!(desc.map(|r| r.1), Some(Bound::Excluded(key("b", "m"))));
        assert_eq!(
            after_cursor_range(ns.clone(), Some(key("a", "z")), true),
            None
        );
        assert_eq!(
            after_cursor_range(ns.clone(), Some(key("b", "")), true),
            None
        );
        let unbounded = after_cursor_range(scope(None), Some(key("b", "m")), true);
        assert_eq!(
            unbounded,
            Some((Bound::Unbounded, Bound::Excluded(key("b", "m"))))
        );
    }

    #[tokio::test]
    async fn label_sets_are_shared_and_forgotten_with_their_last_object() {
        let store = MemoryStore::new(16);
        let kind = crate::store::conformance::sample_kind("LabelSets");
        store.register(&kind).await.expect("register");
        let object = |name: &str, app: &str| {
            let mut object = crate::store::conformance::sample_object("ns", name, "1");
            object.labels.insert("app".to_owned(), app.to_owned());
            WriteOp::Upsert(object)
        };
        let ops = vec![object("a", "web"), object("b", "web"), object("c", "api")];
        store
            .write(&kind, WriteBatch { ops, epoch: 1 })
            .await
            .expect("write");
        let sets = |store: &MemoryStore| {
            store
                .table(&kind)
                .expect("table")
                .data
                .read()
                .label_sets
                .0
                .len()
        };
        assert_eq!(sets(&store), 2);
        let delete = |name: &str| WriteOp::Delete {
            namespace: "ns".to_owned(),
            name: name.to_owned(),
        };
        let ops = vec![delete("a"), delete("c")];
        store
            .write(&kind, WriteBatch { ops, epoch: 1 })
            .await
            .expect("delete");
        assert_eq!(sets(&store), 1, "api is unused, web still used by b");
        let mut relabelled = crate::store::conformance::sample_object("ns", "b", "2");
        relabelled.labels.insert("app".to_owned(), "db".to_owned());
        let ops = vec![WriteOp::Upsert(relabelled)];
        store
            .write(&kind, WriteBatch { ops, epoch: 2 })
            .await
            .expect("relabel");
        assert_eq!(sets(&store), 1, "web forgotten, db interned");
        assert_eq!(store.sweep(&kind, 3).await.expect("sweep"), 1);
        assert_eq!(sets(&store), 0);
    }
    #[tokio::test]
    async fn a_changed_column_list_keeps_filters_right() {
        let store = MemoryStore::new(16);
        let mut kind = crate::store::conformance::sample_kind("Reordered");
        store.register(&kind).await.expect("register");
        let mut object = crate::store::conformance::sample_object("ns", "a", "1");
        object.columns.insert("phase".to_owned(), json!("Running"));
        object.columns.insert("replicas".to_owned(), json!(2));
        let ops = vec![WriteOp::Upsert(object)];
        store
            .write(&kind, WriteBatch { ops, epoch: 1 })
            .await
            .expect("write");
        kind.columns.reverse();
        store.register(&kind).await.expect("register reordered");
        let filtered = |column: &str, value: &str| ListQuery {
            columns: vec![(column.to_owned(), value.to_owned())],
            limit: 10,
            ..ListQuery::default()
        };
        let page = store
            .list(&kind, &filtered("phase", "Running"))
            .await
            .expect("list");
        assert_eq!(page.total, 1, "phase after reordering");
        let page = store
            .list(&kind, &filtered("replicas", "2"))
            .await
            .expect("list");
        assert_eq!(page.total, 1, "replicas after reordering");
        let sums = store
            .column_sums(&kind, &["replicas".to_owned()])
            .await
            .expect("sums");
        assert_eq!(sums.get("replicas"), Some(&2));
    }
}
