//! Lists with a label selector walk only the members of the label sets the selector matches:
//! objects of one workload share their labels, so a selector usually picks a few sets, and the
//! list costs the matching objects instead of every object of the namespace.

use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::ops::Range;
use std::sync::Arc;

use stowage_emulator::selectors::LabelSelector;

use super::filter::Filter;
use super::labels::LabelSets;
use super::order::Order;
use super::page::{KeyRange, Window, after_cursor_range, skipped};
use super::record::{Key, Record};
use super::set_index::{Positions, Selected, SetIndex};
use crate::store::ListQuery;

/// When a selector-only walk pays: the selector is evaluated once per distinct label set, so
/// it must have far fewer sets than objects (workloads share labels; per-object labels do not).
pub(super) fn label_sets_are_few(sets: usize, objects: usize) -> bool {
    sets.saturating_mul(8) <= objects
}

/// Name order with a label selector (and maybe a name search), walking only the members of the
/// label sets the selector matches. Equals [`filtered_in_map_order`] for such queries; costs the
/// matching sets rather than the whole namespace. The sets are disjoint, so the total is counted
/// set by set on their flat snapshots ([`SetIndex`]); only the page itself is merged into key
/// order, from the cursor on.
///
/// [`filtered_in_map_order`]: super::page::filtered_in_map_order
pub(super) fn label_set_members_in_map_order<'a>(
    sets: &'a LabelSets,
    selector: &LabelSelector,
    scope: KeyRange,
    filter: &Filter<'_>,
    order: &Order<'_>,
    query: &ListQuery,
) -> Window<&'a Arc<Record>> {
    let needle = filter.name_finder();
    // `scope` is the query's namespace (or everything): a namespace is looked up directly.
    let in_scope = |index: &SetIndex| match query.namespace.as_deref() {
        Some(namespace) => index.namespace_positions(namespace),
        None => index.positions(&scope),
    };
    let matching: Vec<(&SetIndex, Range<usize>, Selected)> = sets
        .iter()
        .filter(|(set, _)| selector.matches_strings(|key| set.map.get(key).map(String::as_str)))
        .map(|(_, members)| {
            let index = members.index();
            let scoped = in_scope(index);
            let selected = index.select(scoped.clone(), needle);
            (index, scoped, selected)
        })
        .collect();
    // Matches before the cursor count towards the total but are not returned.
    let mut window = Window {
        items: Vec::new(),
        total: matching.iter().map(|(_, _, selected)| selected.len()).sum(),
        more: false,
    };
    let cursor = query
        .after
        .as_ref()
        .map(|c| Key::new(&c.namespace, &c.name));
    let Some(range) = after_cursor_range(scope, cursor, order.descending) else {
        return window;
    };
    let walks = matching
        .iter()
        .map(|&(index, ref scoped, ref selected)| {
            let after_cursor = match query.after {
                Some(_) => index.positions(&range),
                None => scoped.clone(),
            };
            let positions = selected.within(after_cursor);
            Walk {
                index,
                positions,
                one_namespace: query.namespace.is_some(),
            }
        })
        .collect();
    let mut items: Vec<&Arc<Record>> = merge(walks, order.descending)
        .skip(skipped(query))
        .take(query.limit.saturating_add(1))
        .map(|(index, position)| index.record(position))
        .collect();
    window.more = items.len() > query.limit;
    items.truncate(query.limit);
    window.items = items;
    window
}

/// One set's selected positions in the walking direction (`'s`: the selection's borrow).
struct Walk<'a, 's> {
    index: &'a SetIndex,
    positions: Positions<'s>,
    /// The list is of one namespace: heads compare names only.
    one_namespace: bool,
}

/// The namespace of every head when a list is of one namespace (one slice, so compares skip it).
static SAME_NAMESPACE: [u8; 0] = [];

impl<'a> Walk<'a, '_> {
    fn next_head(&mut self, walk: usize, descending: bool) -> Option<Head<'a>> {
        let position = match descending {
            true => self.positions.next_back()?,
            false => self.positions.next()?,
        };
        let (namespace, name) = match self.one_namespace {
            true => (&SAME_NAMESPACE[..], self.index.name(position)),
            false => {
                let (namespace, name) = self.index.key_at(position);
                (namespace.as_bytes(), name)
            }
        };
        Some(Head {
            namespace,
            prefix: self.index.prefix(position),
            name,
            walk,
            position,
            descending,
        })
    }
}

/// Merges the walks into one sequence of `(set, position)` in the walking direction. Keys are
/// compared as read from the sets' flat buffers: following each record to its key missed the
/// cache at every step.
fn merge<'a: 's, 's>(
    mut walks: Vec<Walk<'a, 's>>,
    descending: bool,
) -> impl Iterator<Item = (&'a SetIndex, usize)> + 's {
    let mut heads: BinaryHeap<Head<'a>> = walks
        .iter_mut()
        .enumerate()
        .filter_map(|(walk, w)| w.next_head(walk, descending))
        .collect();
    std::iter::from_fn(move || {
        // The first head is replaced by its walk's next in place (one sift), or removed.
        let mut first = heads.peek_mut()?;
        let (walk, position) = (first.walk, first.position);
        match walks[walk].next_head(walk, descending) {
            Some(next) => *first = next,
            None => drop(PeekMut::pop(first)),
        }
        Some((walks[walk].index, position))
    })
}

/// One walk's next member in [`merge`]'s heap, which pops the member that comes first.
struct Head<'a> {
    namespace: &'a [u8],
    /// The name's first bytes as a number ([`SetIndex::prefix`]): most compares end here.
    prefix: u128,
    name: &'a [u8],
    walk: usize,
    position: usize,
    descending: bool,
}

impl Head<'_> {
    /// Key order: namespace, then name, bytewise. Heads of one set's namespace block (or of a
    /// one-namespace list) share their namespace slice, so it is compared only when it differs.
    fn key_cmp(&self, other: &Self) -> std::cmp::Ordering {
        let namespaces = match std::ptr::eq(self.namespace, other.namespace) {
            true => std::cmp::Ordering::Equal,
            false => self.namespace.cmp(other.namespace),
        };
        namespaces
            .then_with(|| self.prefix.cmp(&other.prefix))
            .then_with(|| self.name.cmp(other.name))
    }
}

impl Ord for Head<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // The heap pops its greatest element.
        if self.descending {
            self.key_cmp(other)
        } else {
            other.key_cmp(self)
        }
    }
}

impl PartialOrd for Head<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.key_cmp(other).is_eq()
    }
}

impl Eq for Head<'_> {}
