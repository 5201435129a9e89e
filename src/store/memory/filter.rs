//! List filters: the kind's typed columns as queries read them from an entry's cells, and the
//! query's name search, label selector and column equalities.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use memchr::memmem::Finder;
use serde_json::Value;
use stowage_emulator::selectors::LabelSelector;

use super::labels::LabelSet;
use super::layout::Cell;
use super::order::SortValue;
use super::table::Entry;
use crate::mirror::kind::KindSpec;
use crate::store::{ListQuery, StoreError};

/// A column of the kind, resolved once per query.
#[derive(Clone, Copy)]
pub(super) struct ColumnRef<'q> {
    index: usize,
    pub(super) name: &'q str,
}

impl<'q> ColumnRef<'q> {
    pub(super) fn resolve(spec: &KindSpec, name: &'q str) -> Result<Self, StoreError> {
        match spec.columns.iter().position(|c| c.name == name) {
            Some(index) => Ok(Self { index, name }),
            None => Err(StoreError::UnknownColumn {
                kind: spec.id(),
                column: name.to_owned(),
            }),
        }
    }

    pub(super) fn sort_value<'e>(&self, entry: &'e Entry) -> SortValue<'e> {
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
    pub(super) fn string_form<'e>(&self, entry: &'e Entry) -> Option<Cow<'e, str>> {
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

    pub(super) fn integer(&self, entry: &Entry) -> i64 {
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

/// Distinct label sets whose selector result a list remembers; beyond this, sets are evaluated
/// each time (objects with unique labels gain nothing from remembering).
const LABEL_MEMO_LIMIT: usize = 4096;

/// The query's filters, validated against the kind.
pub(super) struct Filter<'q> {
    /// The lower-cased name search.
    search: Option<Finder<'static>>,
    labels: Option<&'q LabelSelector>,
    columns: Vec<(ColumnRef<'q>, &'q str)>,
    /// Selector results by label set (the shared set's address).
    label_memo: HashMap<*const LabelSet, bool>,
}

impl<'q> Filter<'q> {
    pub(super) fn new(spec: &KindSpec, query: &'q ListQuery) -> Result<Self, StoreError> {
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
                .map(|s| Finder::new(&s.to_lowercase()).into_owned()),
            labels: query.labels.as_ref().filter(|s| !s.is_empty()),
            columns,
            label_memo: HashMap::new(),
        })
    }

    /// Whether every object matches (no object needs to be looked at).
    pub(super) fn is_trivial(&self) -> bool {
        self.search.is_none() && self.labels.is_none() && self.columns.is_empty()
    }

    /// The selector, when the query has one and no column filters: the only filters a walk of
    /// label-set members can answer (members carry names and records, not cells).
    pub(super) fn selector_without_columns(&self) -> Option<&'q LabelSelector> {
        self.labels.filter(|_| self.columns.is_empty())
    }

    /// The lower-cased name search, when the query has one.
    pub(super) fn name_finder(&self) -> Option<&Finder<'static>> {
        self.search.as_ref()
    }

    pub(super) fn matches(&mut self, entry: &Entry) -> bool {
        if let Some(needle) = &self.search
            && !entry.name.contains(needle)
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

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use serde_json::json;

    use super::super::labels::LabelSets;
    use super::super::layout::Layout;
    use super::super::record::{Key, Record};
    use super::*;
    use crate::store::conformance::{sample_kind, sample_object};

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
        let labels = LabelSets::default().intern(&object.labels);
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
}
