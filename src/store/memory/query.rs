//! Lists over a table: filters, sort orders and the three ways a page is cut (a plain key range,
//! a filtered walk in key order, a partial sort of the matches). All of it runs under the table's
//! read lock and keeps only the page's records; they are materialised after the lock is released.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use serde_json::{Number, Value};
use stowage_emulator::selectors::LabelSelector;

use super::Entry;
use super::labels::LabelSet;
use super::layout::Cell;
use super::record::{Key, Record};
use crate::mirror::kind::KindSpec;
use crate::store::{Cursor, ListPage, ListQuery, MirrorObject, SortField, StoreError};

/// A column of the kind, resolved once per query.
#[derive(Clone, Copy)]
pub(super) struct ColumnRef<'q> {
    index: usize,
    name: &'q str,
}

impl<'q> ColumnRef<'q> {
    pub fn resolve(spec: &KindSpec, name: &'q str) -> Result<Self, StoreError> {
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
            None | Some(Cell::Absent | Cell::Null) => SortValue::Null,
            Some(Cell::Bool(b)) => SortValue::Bool(*b),
            Some(Cell::Number(n)) => SortValue::Number(n.clone()),
            Some(Cell::Str(s)) => SortValue::Str(Cow::Borrowed(&**s)),
            Some(Cell::Document(document)) => SortValue::of(document),
            Some(Cell::Derived) => entry
                .record
                .derived(self.index)
                .map_or(SortValue::Null, |d| SortValue::of(&d).into_owned()),
        }
    }

    /// The value's string form (see [`string_form`]); `None` for null.
    pub fn string_form<'e>(&self, entry: &'e Entry) -> Option<Cow<'e, str>> {
        match entry.cells.get(self.index) {
            None | Some(Cell::Absent | Cell::Null) => None,
            Some(Cell::Bool(b)) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Some(Cell::Number(n)) => Some(Cow::Owned(n.to_string())),
            Some(Cell::Str(s)) => Some(Cow::Borrowed(&**s)),
            Some(Cell::Document(document)) => string_form(document).map(Cow::Owned),
            Some(Cell::Derived) => entry
                .record
                .derived(self.index)
                .and_then(|d| string_form(&d))
                .map(Cow::Owned),
        }
    }

    /// Equality with a filter's string, without allocating for strings and booleans.
    fn equals(&self, entry: &Entry, want: &str) -> bool {
        match entry.cells.get(self.index) {
            None | Some(Cell::Absent | Cell::Null) => false,
            Some(Cell::Bool(b)) => want == if *b { "true" } else { "false" },
            Some(Cell::Str(s)) => **s == *want,
            Some(_) => self.string_form(entry).as_deref() == Some(want),
        }
    }

    pub fn integer(&self, entry: &Entry) -> i64 {
        match entry.cells.get(self.index) {
            Some(Cell::Number(n)) => n.as_i64().unwrap_or(0),
            _ => 0,
        }
    }
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

/// A range of table keys.
pub(super) type KeyRange = (Bound<Key>, Bound<Key>);

/// The keys of one namespace, or of all namespaces.
pub(super) fn scope(namespace: Option<&str>) -> KeyRange {
    namespace.map_or((Bound::Unbounded, Bound::Unbounded), namespace_range)
}

/// All keys `(ns, _)`: from `(ns, "")` up to `(ns + "\0", "")`, the smallest key of a greater namespace.
fn namespace_range(ns: &str) -> KeyRange {
    (
        Bound::Included(Key::new(ns, "")),
        Bound::Excluded(Key::new(&format!("{ns}\0"), "")),
    )
}

/// Distinct label sets whose selector result a list remembers; beyond this, sets are evaluated
/// each time (objects with unique labels gain nothing from remembering).
const LABEL_MEMO_LIMIT: usize = 4096;

/// The query's filters, validated against the kind.
pub(super) struct Filter<'q> {
    search: Option<String>,
    labels: Option<&'q LabelSelector>,
    columns: Vec<(ColumnRef<'q>, &'q str)>,
    /// Selector results by label set (the shared set's address).
    label_memo: HashMap<*const LabelSet, bool>,
}

impl<'q> Filter<'q> {
    pub fn new(spec: &KindSpec, query: &'q ListQuery) -> Result<Self, StoreError> {
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
    pub fn is_trivial(&self) -> bool {
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

    fn labels_match(&mut self, selector: &LabelSelector, labels: &Arc<LabelSet>) -> bool {
        let set = Arc::as_ptr(labels);
        if let Some(known) = self.label_memo.get(&set) {
            return *known;
        }
        let matched = selector.matches(Some(&labels.json));
        if self.label_memo.len() < LABEL_MEMO_LIMIT {
            self.label_memo.insert(set, matched);
        }
        matched
    }
}

/// The resolved sort order: `(value, namespace, name)`, all reversed when descending.
pub(super) struct Order<'q> {
    /// Sorting by this column.
    column: Option<ColumnRef<'q>>,
    by_created: bool,
    descending: bool,
    /// The keyset cursor's position, resolved once.
    after: Option<(SortValue<'q>, &'q str, &'q str)>,
}

impl<'q> Order<'q> {
    pub fn new(spec: &KindSpec, query: &'q ListQuery) -> Result<Self, StoreError> {
        let (column, by_created) = match &query.sort.field {
            SortField::Name => (None, false),
            SortField::CreatedAt => (None, true),
            SortField::Column(column) => (Some(ColumnRef::resolve(spec, column)?), false),
        };
        let after = query.after.as_ref().map(|cursor| {
            let value = match (column, by_created) {
                (Some(_), _) => SortValue::of(&cursor.value),
                (None, true) => cursor
                    .value
                    .as_str()
                    .map_or(SortValue::Null, |s| SortValue::Str(Cow::Borrowed(s))),
                (None, false) => SortValue::Null,
            };
            (value, cursor.namespace.as_str(), cursor.name.as_str())
        });
        Ok(Self {
            column,
            by_created,
            descending: query.sort.descending,
            after,
        })
    }

    /// Whether the order is the table's key order (or its reverse).
    pub fn is_key_order(&self) -> bool {
        self.column.is_none() && !self.by_created
    }

    fn value<'e>(&self, entry: &'e Entry) -> SortValue<'e> {
        if self.by_created {
            entry
                .record
                .created_at
                .as_deref()
                .map_or(SortValue::Null, |s| SortValue::Str(Cow::Borrowed(s)))
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

    fn compare_keys(
        &self,
        a: (&SortValue<'_>, &str, &str),
        b: (&SortValue<'_>, &str, &str),
    ) -> Ordering {
        let ordering =
            a.0.cmp(b.0)
                .then_with(|| a.1.cmp(b.1))
                .then_with(|| a.2.cmp(b.2));
        if self.descending {
            ordering.reverse()
        } else {
            ordering
        }
    }

    /// Whether the entry under `key` comes strictly after the query's cursor (always true
    /// without one).
    fn after_cursor(&self, key: &Key, entry: &Entry) -> bool {
        let Some((value, namespace, name)) = &self.after else {
            return true;
        };
        self.compare_keys(
            (&self.value(entry), &key.namespace, &key.name),
            (value, namespace, name),
        ) == Ordering::Greater
    }
}

/// A JSON value ordered null < bool < number < string < array < object.
#[derive(Debug, Clone)]
enum SortValue<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    /// Arrays and objects (JSON columns): compared by their serialised form.
    Document {
        array: bool,
        text: String,
    },
}

impl<'a> SortValue<'a> {
    fn of(value: &'a Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => Self::Number(n.clone()),
            Value::String(s) => Self::Str(Cow::Borrowed(s)),
            other => Self::Document {
                array: other.is_array(),
                text: other.to_string(),
            },
        }
    }

    fn into_owned(self) -> SortValue<'static> {
        match self {
            Self::Null => SortValue::Null,
            Self::Bool(b) => SortValue::Bool(b),
            Self::Number(n) => SortValue::Number(n),
            Self::Str(s) => SortValue::Str(Cow::Owned(s.into_owned())),
            Self::Document { array, text } => SortValue::Document { array, text },
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Self::Null => 0,
            Self::Bool(_) => 1,
            Self::Number(_) => 2,
            Self::Str(_) => 3,
            Self::Document { array: true, .. } => 4,
            Self::Document { array: false, .. } => 5,
        }
    }

    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Bool(a), Self::Bool(b)) => a.cmp(b),
            (Self::Number(a), Self::Number(b)) => compare_numbers(a, b),
            (Self::Str(a), Self::Str(b)) => a.cmp(b),
            (Self::Document { text: a, .. }, Self::Document { text: b, .. })
                if self.rank() == other.rank() =>
            {
                a.cmp(b)
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
pub(super) struct Window {
    items: Vec<Arc<Record>>,
    total: usize,
    more: bool,
}

impl Window {
    /// Materialises the page's objects (after the table lock is released).
    pub fn into_page(self, order: &Order<'_>) -> Result<ListPage, StoreError> {
        let items = self
            .items
            .iter()
            .map(|record| record.to_mirror_object())
            .collect::<Result<Vec<_>, _>>()?;
        let next = if self.more {
            items.last().map(|object| order.cursor_of(object))
        } else {
            None
        };
        Ok(ListPage {
            items,
            total: self.total,
            next,
        })
    }
}

/// Items to skip before the page: the offset, unless keyset paging.
fn skipped(query: &ListQuery) -> usize {
    if query.after.is_some() {
        0
    } else {
        query.offset
    }
}

/// Name order without filters: the total is a count of keys and the page a range read from the
/// cursor, so neither touches objects outside the page.
pub(super) fn unfiltered_in_map_order(
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
        .map(|c| Key::new(&c.namespace, &c.name));
    let Some(range) = after_cursor_range(scope, cursor, order.descending) else {
        return Window {
            items: Vec::new(),
            total,
            more: false,
        };
    };
    let records = objects.range(range).map(|(_, e)| &e.record);
    let records: Box<dyn Iterator<Item = &Arc<Record>>> = if order.descending {
        Box::new(records.rev())
    } else {
        Box::new(records)
    };
    let mut items: Vec<Arc<Record>> = records
        .skip(skipped(query))
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
pub(super) fn filtered_in_map_order(
    objects: &BTreeMap<Key, Entry>,
    scope: KeyRange,
    filter: &mut Filter<'_>,
    order: &Order<'_>,
    query: &ListQuery,
) -> Window {
    let entries = objects.range(scope);
    let entries: Box<dyn Iterator<Item = (&Key, &Entry)>> = if order.descending {
        Box::new(entries.rev())
    } else {
        Box::new(entries)
    };
    let mut window = Window {
        items: Vec::with_capacity(query.limit.min(1024)),
        total: 0,
        more: false,
    };
    let mut skip = skipped(query);
    let mut past_cursor = query.after.is_none();
    for (key, entry) in entries.filter(|(_, e)| filter.matches(e)) {
        window.total += 1;
        if !past_cursor {
            past_cursor = order.after_cursor(key, entry);
            if !past_cursor {
                continue;
            }
        }
        if skip > 0 {
            skip -= 1;
        } else if window.items.len() < query.limit {
            window.items.push(Arc::clone(&entry.record));
        } else {
            window.more = true;
        }
    }
    window
}

/// Any other order: collects the matches after the cursor as `(sort value, record)` pairs and
/// sorts them just enough to cut out the page (a selection, then a sort of the first
/// `offset + limit`). This runs under the table's read lock, which costs less than taking a
/// reference count on every match.
pub(super) fn sorted_window(
    objects: &BTreeMap<Key, Entry>,
    scope: KeyRange,
    filter: &mut Filter<'_>,
    order: &Order<'_>,
    query: &ListQuery,
) -> Window {
    type Keyed<'a> = (SortValue<'a>, &'a Key, &'a Entry);
    let mut total = 0;
    let mut keyed: Vec<Keyed<'_>> = Vec::new();
    for (key, entry) in objects.range(scope) {
        if !filter.matches(entry) {
            continue;
        }
        total += 1;
        if order.after_cursor(key, entry) {
            keyed.push((order.value(entry), key, entry));
        }
    }
    let compare = |a: &Keyed<'_>, b: &Keyed<'_>| {
        order.compare_keys(
            (&a.0, &a.1.namespace, &a.1.name),
            (&b.0, &b.1.namespace, &b.1.name),
        )
    };
    let offset = skipped(query);
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
        .map(|(_, _, entry)| Arc::clone(&entry.record))
        .collect();
    Window { items, total, more }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::labels::LabelSets;
    use super::super::layout::Layout;
    use super::*;
    use crate::store::conformance::{sample_kind, sample_object};

    #[test]
    fn sort_values_order_null_bool_number_string_array_object() {
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
            json!([1]),
            json!([2]),
            json!({ "a": 1 }),
        ];
        for pair in values.windows(2) {
            let (a, b) = (SortValue::of(&pair[0]), SortValue::of(&pair[1]));
            assert_eq!(a.cmp(&b), Ordering::Less, "{} < {}", pair[0], pair[1]);
            assert_eq!(b.cmp(&a), Ordering::Greater, "{} > {}", pair[1], pair[0]);
        }
    }

    #[test]
    fn string_forms_of_column_values() {
        assert_eq!(string_form(&json!("Running")), Some("Running".to_owned()));
        assert_eq!(string_form(&json!(3)), Some("3".to_owned()));
        assert_eq!(string_form(&json!(true)), Some("true".to_owned()));
        assert_eq!(string_form(&json!(null)), None);
        let spec = sample_kind("Cells");
        let mut object = sample_object("ns", "a", "1");
        object.columns.insert("replicas".to_owned(), json!(7));
        object.columns.insert("ready".to_owned(), json!(false));
        object.object["spec"] = json!({ "replicas": 7 });
        object
            .columns
            .insert("spec".to_owned(), json!({ "replicas": 7 }));
        let labels = LabelSets::default().intern(object.labels.clone());
        let key = Key::new(&object.namespace, &object.name);
        let layout = Arc::new(Layout::new(&spec));
        let (record, cells) = Record::new(object, key, labels, &layout, &mut Default::default());
        let entry = Entry::new(Arc::new(record), cells, 1);
        assert!(matches!(entry.cells[3], Cell::Derived));
        let column = |name: &'static str| ColumnRef::resolve(&spec, name).expect("sample column");
        assert!(column("replicas").equals(&entry, "7"));
        assert!(column("ready").equals(&entry, "false"));
        assert!(column("spec").equals(&entry, r#"{"replicas":7}"#));
        assert!(!column("phase").equals(&entry, "null"));
        assert!(!column("phase").equals(&entry, ""));
        assert_eq!(column("phase").string_form(&entry), None);
        assert_eq!(column("replicas").integer(&entry), 7);
        assert_eq!(column("ready").integer(&entry), 0);
        let spec_value = json!({ "replicas": 7 });
        let sorted = column("spec").sort_value(&entry);
        assert_eq!(sorted.cmp(&SortValue::of(&spec_value)), Ordering::Equal);
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
            map.insert(Key::new(ns, name), 0);
        }
        let names: Vec<&str> = map
            .range(namespace_range("a"))
            .map(|(key, _)| &*key.name)
            .collect();
        assert_eq!(names, ["", "x"]);
    }

    #[test]
    fn cursor_ranges_stay_inside_the_namespace() {
        let key = Key::new;
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
}
