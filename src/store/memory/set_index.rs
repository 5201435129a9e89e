//! A label set's members as one flat snapshot for lists: their records in key order and their
//! lower-cased names in one buffer. A name search is then one SIMD substring scan over the set
//! instead of a comparison per member behind a pointer, and a namespace is a binary search.
//! The snapshot is built by the first list after the set changed.

use std::collections::BTreeMap;
use std::ops::{Bound, Range};
use std::sync::Arc;

use memchr::memmem::Finder;

use super::page::KeyRange;
use super::record::{Key, Record};

/// Separates names in the buffer: a needle without it cannot match across two names.
const SEPARATOR: u8 = 0;

pub(super) struct SetIndex {
    /// The members in key order.
    records: Vec<Arc<Record>>,
    /// Each member's lower-cased name followed by [`SEPARATOR`].
    names: Vec<u8>,
    /// Where each member's name starts in `names`, plus the buffer's length at the end.
    starts: Vec<usize>,
    /// The names as stored (same layout as `names`), kept only when one differs from its
    /// lower-cased form. Key bounds are found by binary search over these flat buffers: probing
    /// each record's name behind two pointers missed the cache at every step.
    exact: Option<(Vec<u8>, Vec<usize>)>,
    /// Each namespace of the members with their positions, in order: a key is found by its
    /// namespace first, so a namespace's bounds cost no name comparisons.
    namespaces: Vec<(Arc<str>, Range<usize>)>,
    /// Each member's [`name_prefix`], so merging sets mostly compares numbers.
    prefixes: Vec<u128>,
}

/// The first 16 bytes of `name` as a big-endian number, zero-padded: when two prefixes differ,
/// they order as the names do (a zero pad stands where the shorter name has ended, which comes
/// first); when they are equal, the names must be compared.
pub(super) fn name_prefix(name: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let len = name.len().min(16);
    bytes[..len].copy_from_slice(&name[..len]);
    u128::from_be_bytes(bytes)
}

/// The members of one set a list's filters select: a whole range (no name search) or positions.
pub(super) enum Selected {
    Range(Range<usize>),
    Positions(Vec<usize>),
}

impl Selected {
    pub(super) fn len(&self) -> usize {
        match self {
            Self::Range(range) => range.len(),
            Self::Positions(positions) => positions.len(),
        }
    }

    /// The selected positions inside `within`, in ascending order.
    pub(super) fn within(&self, within: Range<usize>) -> Positions<'_> {
        match self {
            Self::Range(range) => {
                Positions::Range(range.start.max(within.start)..range.end.min(within.end))
            }
            Self::Positions(positions) => {
                let from = positions.partition_point(|&p| p < within.start);
                let to = positions.partition_point(|&p| p < within.end);
                Positions::Listed(positions[from..to].iter())
            }
        }
    }
}

/// Selected positions in ascending order, walked from either end (no allocation per walk).
pub(super) enum Positions<'s> {
    Range(Range<usize>),
    Listed(std::slice::Iter<'s, usize>),
}

impl Iterator for Positions<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            Self::Range(range) => range.next(),
            Self::Listed(positions) => positions.next().copied(),
        }
    }
}

impl DoubleEndedIterator for Positions<'_> {
    fn next_back(&mut self) -> Option<usize> {
        match self {
            Self::Range(range) => range.next_back(),
            Self::Listed(positions) => positions.next_back().copied(),
        }
    }
}

impl SetIndex {
    pub(super) fn build(members: &BTreeMap<Key, Arc<Record>>) -> Self {
        let mut index = Self {
            records: Vec::with_capacity(members.len()),
            names: Vec::new(),
            starts: Vec::with_capacity(members.len() + 1),
            exact: None,
            namespaces: Vec::new(),
            prefixes: Vec::with_capacity(members.len()),
        };
        let mut lower_is_exact = true;
        for (position, record) in members.values().enumerate() {
            match index.namespaces.last_mut() {
                Some((namespace, range)) if *namespace == record.key.namespace => {
                    range.end = position + 1;
                }
                _ => index
                    .namespaces
                    .push((Arc::clone(&record.key.namespace), position..position + 1)),
            }
            let lower = record.key.name.to_lowercase();
            lower_is_exact &= *lower == *record.key.name;
            index.starts.push(index.names.len());
            index.names.extend_from_slice(lower.as_bytes());
            index.names.push(SEPARATOR);
            index.prefixes.push(name_prefix(record.key.name.as_bytes()));
            index.records.push(Arc::clone(record));
        }
        index.starts.push(index.names.len());
        if !lower_is_exact {
            // Rare (Kubernetes names are lower-case), so the copy is made only when needed.
            let mut names = Vec::new();
            let mut starts = Vec::with_capacity(index.records.len() + 1);
            for record in &index.records {
                starts.push(names.len());
                names.extend_from_slice(record.key.name.as_bytes());
            }
            starts.push(names.len());
            index.exact = Some((names, starts));
        }
        index
    }

    /// The name of the member at `position`, as stored.
    pub(super) fn name(&self, position: usize) -> &[u8] {
        match &self.exact {
            Some((names, starts)) => &names[starts[position]..starts[position + 1]],
            // Without the separator that follows each name.
            None => &self.names[self.starts[position]..self.starts[position + 1] - 1],
        }
    }

    /// [`name_prefix`] of the member at `position`.
    pub(super) fn prefix(&self, position: usize) -> u128 {
        self.prefixes[position]
    }

    /// The key of the member at `position`: its namespace and its name as stored, from the
    /// snapshot's own buffers (no record is read).
    pub(super) fn key_at(&self, position: usize) -> (&str, &[u8]) {
        let block = self
            .namespaces
            .partition_point(|(_, members)| members.end <= position);
        (&self.namespaces[block].0, self.name(position))
    }

    pub(super) fn record(&self, position: usize) -> &Arc<Record> {
        &self.records[position]
    }

    /// Positions of the members whose keys lie in `range`.
    pub(super) fn positions(&self, range: &KeyRange) -> Range<usize> {
        let start = match &range.0 {
            Bound::Unbounded => 0,
            Bound::Included(key) => self.before(key, false),
            Bound::Excluded(key) => self.before(key, true),
        };
        let end = match &range.1 {
            Bound::Unbounded => self.records.len(),
            Bound::Included(key) => self.before(key, true),
            Bound::Excluded(key) => self.before(key, false),
        };
        start..end.max(start)
    }

    /// Positions of the members in `namespace`: [`SetIndex::positions`] of its key range, with
    /// one lookup.
    pub(super) fn namespace_positions(&self, namespace: &str) -> Range<usize> {
        let block = self
            .namespaces
            .partition_point(|(candidate, _)| **candidate < *namespace);
        match self.namespaces.get(block) {
            Some((candidate, members)) if **candidate == *namespace => members.clone(),
            Some((_, members)) => members.start..members.start,
            None => self.records.len()..self.records.len(),
        }
    }

    /// How many members come before `key` (`and_key`: before it or equal to it).
    fn before(&self, key: &Key, and_key: bool) -> usize {
        let block = self
            .namespaces
            .partition_point(|(namespace, _)| **namespace < *key.namespace);
        let Some((namespace, members)) = self.namespaces.get(block) else {
            return self.records.len();
        };
        if *namespace != key.namespace {
            // Every member of this block comes after `key`.
            return members.start;
        }
        if key.name.is_empty() && !and_key {
            // A namespace's own bound: no name comes before the empty one.
            return members.start;
        }
        // Binary search of the block for the first member not before `key`.
        let name = key.name.as_bytes();
        let (mut low, mut high) = (members.start, members.end);
        while low < high {
            let middle = low + (high - low) / 2;
            let probe = self.name(middle);
            if probe < name || (and_key && probe == name) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    /// The members in `range` whose lower-cased name contains `needle` (all of them without one).
    pub(super) fn select(&self, range: Range<usize>, needle: Option<&Finder<'_>>) -> Selected {
        match needle {
            None => Selected::Range(range),
            Some(finder) => Selected::Positions(self.search(range, finder)),
        }
    }

    /// The member in `from..last` whose name (or separator) holds byte `at` of `names`, for
    /// `starts[from] <= at < starts[last]`.
    fn member_at(&self, at: usize, from: usize, last: usize) -> usize {
        let mut low = from;
        let mut step = 1;
        while low + step < last && self.starts[low + step] <= at {
            low += step;
            step *= 2;
        }
        let high = (low + step).min(last);
        low + self.starts[low + 1..high].partition_point(|&s| s <= at)
    }

    fn search(&self, range: Range<usize>, finder: &Finder<'_>) -> Vec<usize> {
        if finder.needle().contains(&SEPARATOR) {
            // A match could run across two names: look at each name on its own (no Kubernetes
            // name holds the separator, so this is only for odd input).
            return range
                .filter(|&member| {
                    let name = &self.names[self.starts[member]..self.starts[member + 1] - 1];
                    finder.find(name).is_some()
                })
                .collect();
        }
        // Any match lies inside one name, so one pass of the searcher finds them all in order
        // (non-overlapping, but matches that overlap share their name). A name can hold several;
        // only its first counts.
        let (start, end) = (self.starts[range.start], self.starts[range.end]);
        let mut found = Vec::with_capacity(range.len().min(256));
        let mut member = range.start;
        let mut next_name = start;
        for offset in finder.find_iter(&self.names[start..end]) {
            let hit = start + offset;
            if hit < next_name {
                continue;
            }
            // The member whose name holds the hit: usually one of the next few, so gallop
            // forward before the binary search.
            member = self.member_at(hit, member, range.end);
            found.push(member);
            member += 1;
            next_name = self.starts[member];
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::labels::LabelSets;

    fn index(names: &[(&str, &str)]) -> SetIndex {
        let kind = crate::store::conformance::sample_kind("SetIndex");
        let layout = Arc::new(super::super::layout::Layout::new(&kind));
        let set = LabelSets::default().intern(&BTreeMap::new());
        let mut members = BTreeMap::new();
        for (ns, name) in names {
            let object = crate::store::conformance::sample_object(ns, name, "1");
            let (record, _) = Record::new(
                object,
                Key::new(ns, name),
                Arc::clone(&set),
                &layout,
                &mut Default::default(),
            );
            members.insert(Key::new(ns, name), Arc::new(record));
        }
        SetIndex::build(&members)
    }

    fn names(index: &SetIndex, positions: impl Iterator<Item = usize>) -> Vec<String> {
        positions
            .map(|p| {
                format!(
                    "{}/{}",
                    index.record(p).key.namespace,
                    index.record(p).key.name
                )
            })
            .collect()
    }

    #[test]
    fn search_finds_each_member_once_and_never_across_names() {
        let index = index(&[
            ("a", "ab"),
            ("a", "ba-Web"),
            ("b", "webweb"),
            ("b", "x"),
            ("b", "ÄÖ-web"),
        ]);
        let all = index.positions(&(Bound::Unbounded, Bound::Unbounded));
        assert_eq!(all, 0..5);
        let search = |needle: &str, range: Range<usize>| {
            let finder = Finder::new(needle);
            let selected = index.select(range.clone(), Some(&finder));
            names(&index, selected.within(range))
        };
        assert_eq!(
            search("web", all.clone()),
            ["a/ba-Web", "b/webweb", "b/ÄÖ-web"]
        );
        // "bba" only exists across "ab" and "ba-web".
        assert_eq!(search("bba", all.clone()), Vec::<String>::new());
        assert_eq!(search("b\0b", all.clone()), Vec::<String>::new());
        assert_eq!(search("äö", all.clone()), ["b/ÄÖ-web"]);
        assert_eq!(search("x", all.clone()), ["b/x"]);
        let b = index.positions(&(
            Bound::Included(Key::new("b", "")),
            Bound::Excluded(Key::new("b\0", "")),
        ));
        assert_eq!(b, 2..5);
        assert_eq!(search("web", b.clone()), ["b/webweb", "b/ÄÖ-web"]);
        assert_eq!(search("ab", b), Vec::<String>::new());
    }

    #[test]
    fn a_needle_holding_the_separator_matches_inside_one_name_only() {
        let index = index(&[("a", "p\0q"), ("a", "q"), ("a", "qp\0q")]);
        let all = index.positions(&(Bound::Unbounded, Bound::Unbounded));
        let search = |needle: &str| {
            let finder = Finder::new(needle);
            let selected = index.select(all.clone(), Some(&finder));
            names(&index, selected.within(all.clone()))
        };
        // The buffer is "p\0q\0q\0qp\0q\0": "\0q" also occurs across names.
        assert_eq!(search("\0q"), ["a/p\0q", "a/qp\0q"]);
        assert_eq!(search("q\0q"), Vec::<String>::new());
        assert_eq!(search("q"), ["a/p\0q", "a/q", "a/qp\0q"]);
        assert_eq!(search("qp"), ["a/qp\0q"]);
    }

    #[test]
    fn prefixes_order_as_names_do_unless_equal() {
        let names: [&[u8]; 10] = [
            b"",
            b"a",
            b"a\0",
            b"ab",
            b"app-000123",
            b"app-000124",
            b"app-0001230000000",
            b"app-00012300000000",
            b"app-00012300000001",
            b"\xff\xff",
        ];
        for a in names {
            for b in names {
                let (pa, pb) = (name_prefix(a), name_prefix(b));
                if pa != pb {
                    assert_eq!(pa.cmp(&pb), a.cmp(b), "{a:?} {b:?}");
                }
            }
        }
        // Equal prefixes for different names: the 16-byte cut, and a trailing NUL.
        assert_eq!(
            name_prefix(b"app-00012300000000"),
            name_prefix(b"app-00012300000001")
        );
        assert_eq!(name_prefix(b"a"), name_prefix(b"a\0"));
    }

    #[test]
    fn member_at_equals_a_linear_scan() {
        let names: Vec<String> = (0..100).map(|i| "n".repeat(1 + i % 7)).collect();
        let owned: Vec<(&str, String)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| ("ns", format!("{i:03}{n}")))
            .collect();
        let pairs: Vec<(&str, &str)> = owned.iter().map(|(ns, n)| (*ns, n.as_str())).collect();
        let index = index(&pairs);
        let last = pairs.len();
        for from in [0, 1, 17, 63] {
            for at in index.starts[from]..index.starts[last] {
                let expected = (from..last)
                    .rev()
                    .find(|&m| index.starts[m] <= at)
                    .expect("a member holds the byte");
                assert_eq!(
                    index.member_at(at, from, last),
                    expected,
                    "at {at} from {from}"
                );
            }
        }
    }

    #[test]
    fn positions_follow_bounds_and_selections_follow_windows() {
        let index = index(&[("a", "1"), ("a", "2"), ("a", "3"), ("b", "1")]);
        let key = Key::new;
        assert_eq!(
            index.positions(&(Bound::Excluded(key("a", "1")), Bound::Unbounded)),
            1..4
        );
        assert_eq!(
            index.positions(&(
                Bound::Included(key("a", "2")),
                Bound::Included(key("a", "3"))
            )),
            1..3
        );
        assert_eq!(
            index.positions(&(Bound::Unbounded, Bound::Excluded(key("a", "1")))),
            0..0
        );
        assert_eq!(
            index.positions(&(Bound::Included(key("c", "")), Bound::Unbounded)),
            4..4
        );
        // Namespace scopes, and keys in a namespace no member has.
        let namespace = |ns: &str| {
            (
                Bound::Included(key(ns, "")),
                Bound::Excluded(key(&format!("{ns}\0"), "")),
            )
        };
        assert_eq!(index.positions(&namespace("a")), 0..3);
        assert_eq!(index.positions(&namespace("b")), 3..4);
        assert_eq!(index.positions(&namespace("aa")), 3..3);
        assert_eq!(index.positions(&namespace("")), 0..0);
        for ns in ["a", "b", "aa", "", "c", "a\0"] {
            assert_eq!(
                index.namespace_positions(ns),
                index.positions(&namespace(ns)),
                "namespace {ns:?}"
            );
        }
        assert_eq!(
            index.positions(&(
                Bound::Excluded(key("a", "3")),
                Bound::Included(key("b", "1"))
            )),
            3..4
        );
        assert_eq!(
            index.positions(&(
                Bound::Included(key("a", "9")),
                Bound::Excluded(key("aa", ""))
            )),
            3..3
        );
        // Names that differ from their lower-cased form are compared as stored.
        let mixed = super::tests::index(&[("a", "B"), ("a", "a"), ("a", "b"), ("b", "A")]);
        assert_eq!(
            names(
                &mixed,
                mixed.positions(&(Bound::Included(key("a", "B")), Bound::Unbounded))
            ),
            ["a/B", "a/a", "a/b", "b/A"]
        );
        assert_eq!(
            mixed.positions(&(
                Bound::Excluded(key("a", "B")),
                Bound::Included(key("a", "a"))
            )),
            1..2
        );
        assert_eq!(
            mixed.positions(&(
                Bound::Included(key("a", "C")),
                Bound::Excluded(key("b", "A"))
            )),
            1..3
        );
        // Keys read from the buffers, names as stored.
        assert_eq!(index.key_at(2), ("a", &b"3"[..]));
        assert_eq!(index.key_at(3), ("b", &b"1"[..]));
        assert_eq!(mixed.key_at(0), ("a", &b"B"[..]));
        assert_eq!(mixed.key_at(3), ("b", &b"A"[..]));
        let all = index.select(0..4, None);
        assert_eq!(all.len(), 4);
        assert_eq!(all.within(1..3).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(all.within(1..3).rev().collect::<Vec<_>>(), [2, 1]);
        let some = Selected::Positions(vec![0, 2, 3]);
        assert_eq!(some.within(1..4).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(some.within(1..2).count(), 0);
    }
}
