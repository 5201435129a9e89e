//! The three ways a list page is cut from a table: a plain key range, a filtered walk in key
//! order, a partial sort of the matches. All of it runs under the table's read lock and keeps only
//! the page's records; they are materialised after the lock is released.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use super::filter::Filter;
use super::order::{Order, SortValue};
use super::record::{Key, Record};
use super::table::Entry;
use crate::store::{JsonPage, ListPage, ListQuery, StoreError};

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

/// The page of a list as picked under the lock, plus what is needed to finish it. The walks
/// borrow the page's records (`R` = `&Arc<Record>`): taking a reference count on each was a
/// cache miss and a locked instruction per item. [`Window::owned`] keeps them past the lock.
pub(super) struct Window<R> {
    pub(super) items: Vec<R>,
    pub(super) total: usize,
    pub(super) more: bool,
}

#[cfg(test)]
impl<R: AsRef<Record>> Window<R> {
    /// `(namespace/name of each item, total, more)`, for comparing walks.
    pub(super) fn summary(&self) -> (Vec<String>, usize, bool) {
        let names = self
            .items
            .iter()
            .map(|r| format!("{}/{}", r.as_ref().key.namespace, r.as_ref().key.name))
            .collect();
        (names, self.total, self.more)
    }
}

impl Window<&Arc<Record>> {
    /// The page with a reference on each record, to finish it after the lock is released.
    pub(super) fn owned(self) -> Window<Arc<Record>> {
        Window {
            items: self.items.into_iter().map(Arc::clone).collect(),
            total: self.total,
            more: self.more,
        }
    }

    /// Appends the page's objects to `out` as the members of a JSON array, each copied once
    /// from its record; returns how many, and the last record when more items follow (its
    /// cursor may need decoding, which is left for after the lock).
    pub(super) fn write_json(
        self,
        out: &mut Vec<u8>,
    ) -> Result<(usize, Option<Arc<Record>>), StoreError> {
        let items = self.items.iter().map(|r| r.json_len() + 1).sum();
        crate::store::reserve_beyond_spare(out, items);
        for (i, record) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            record.write_json(out)?;
        }
        let last = self.items.last().filter(|_| self.more).copied().cloned();
        Ok((self.items.len(), last))
    }
}

impl Window<Arc<Record>> {
    /// Materialises the page's objects (after the table lock is released).
    pub(super) fn into_page(self, order: &Order<'_>) -> Result<ListPage, StoreError> {
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

    /// The page's objects as stored JSON; the last item is decoded for the cursor only when
    /// sorting by a column.
    pub(super) fn into_json_page(self, order: &Order<'_>) -> Result<JsonPage, StoreError> {
        let items = self
            .items
            .iter()
            .map(|record| record.json())
            .collect::<Result<Vec<_>, _>>()?;
        let next = match self.items.last() {
            Some(last) if self.more => Some(order.cursor_of_record(last)?),
            _ => None,
        };
        Ok(JsonPage {
            items,
            total: self.total,
            next,
        })
    }
}

/// Items to skip before the page: the offset, unless keyset paging.
pub(super) fn skipped(query: &ListQuery) -> usize {
    if query.after.is_some() {
        0
    } else {
        query.offset
    }
}

/// Name order without filters: the total is a count of keys and the page a range read from the
/// cursor, so neither touches objects outside the page.
pub(super) fn unfiltered_in_map_order<'a>(
    objects: &'a BTreeMap<Key, Entry>,
    scope: KeyRange,
    order: &Order<'_>,
    query: &ListQuery,
) -> Window<&'a Arc<Record>> {
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
    let mut items: Vec<&Arc<Record>> = records
        .skip(skipped(query))
        .take(query.limit.saturating_add(1))
        .collect();
    let more = items.len() > query.limit;
    items.truncate(query.limit);
    Window { items, total, more }
}

/// `scope` narrowed to the keys strictly after `cursor` in the walking direction; `None` when
/// nothing is left (an empty range `BTreeMap::range` would refuse).
pub(super) fn after_cursor_range(
    scope: KeyRange,
    cursor: Option<Key>,
    descending: bool,
) -> Option<KeyRange> {
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
pub(super) fn filtered_in_map_order<'a>(
    objects: &'a BTreeMap<Key, Entry>,
    scope: KeyRange,
    filter: &mut Filter<'_>,
    order: &Order<'_>,
    query: &ListQuery,
) -> Window<&'a Arc<Record>> {
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
            window.items.push(&entry.record);
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
pub(super) fn sorted_window<'a>(
    objects: &'a BTreeMap<Key, Entry>,
    scope: KeyRange,
    filter: &mut Filter<'_>,
    order: &Order<'_>,
    query: &ListQuery,
) -> Window<&'a Arc<Record>> {
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
        .map(|(_, _, entry)| &entry.record)
        .collect();
    Window { items, total, more }
}

#[cfg(test)]
mod tests {
    use super::*;

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
