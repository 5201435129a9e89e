//! Splitting a batch into etcd transactions (pure): etcd refuses a transaction with more than
//! `--max-txn-ops` operations (128 by default), a request over `--max-request-bytes` (1.5 MiB by
//! default), or the same key twice. Operations keep their order across the transactions.

use std::collections::HashSet;
use std::ops::Range;

/// etcd's defaults for `--max-txn-ops` and `--max-request-bytes`.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1_572_864;

/// Room kept for the request's own framing (header, auth token) out of `max_request_bytes`.
const REQUEST_RESERVE: usize = 4096;
/// Protobuf framing of one operation besides its key and value (tags, lengths, flags).
const OP_OVERHEAD: usize = 32;

/// The server's limits as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_ops: usize,
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_ops: DEFAULT_MAX_TXN_OPS,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

impl Limits {
    /// Bytes the operations of one transaction may take.
    fn budget(&self) -> usize {
        self.max_request_bytes.saturating_sub(REQUEST_RESERVE)
    }

    /// What one operation costs against the budget.
    pub fn cost(key: &str, value_len: usize) -> usize {
        key.len() + value_len + OP_OVERHEAD
    }

    /// Whether one operation fits a transaction at all (an object over this is rejected alone).
    pub fn fits(&self, key: &str, value_len: usize) -> bool {
        Self::cost(key, value_len) <= self.budget()
    }
}

/// One operation to place: its key and its cost ([`Limits::cost`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sized<'a> {
    pub key: &'a str,
    pub cost: usize,
}

/// Cuts `ops` into consecutive ranges, one per transaction: each within the op count and byte
/// budget and without a repeated key. An operation that does not fit alone (callers reject those
/// first) still gets a transaction of its own rather than being dropped.
pub fn split(ops: &[Sized<'_>], limits: Limits) -> Vec<Range<usize>> {
    let max_ops = limits.max_ops.max(1);
    let budget = limits.budget();
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    let mut keys: HashSet<&str> = HashSet::new();
    for (index, op) in ops.iter().enumerate() {
        let full = index - start >= max_ops
            || (index > start && bytes + op.cost > budget)
            || keys.contains(op.key);
        if full {
            ranges.push(start..index);
            start = index;
            bytes = 0;
            keys.clear();
        }
        bytes += op.cost;
        keys.insert(op.key);
    }
    if start < ops.len() {
        ranges.push(start..ops.len());
    }
    ranges
}

/// Whether no key occurs twice in `ops`: then their transactions touch disjoint keys and may
/// be applied in any order, so they can be in flight together.
pub fn distinct(ops: &[Sized<'_>]) -> bool {
    let mut keys: HashSet<&str> = HashSet::with_capacity(ops.len());
    ops.iter().all(|op| keys.insert(op.key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(keys: &[&'static str], cost: usize) -> Vec<Sized<'static>> {
        keys.iter().map(|key| Sized { key, cost }).collect()
    }

    fn limits(max_ops: usize, max_request_bytes: usize) -> Limits {
        Limits {
            max_ops,
            max_request_bytes,
        }
    }

    #[test]
    fn empty_batches_need_no_transaction() {
        assert!(split(&[], Limits::default()).is_empty());
    }

    #[test]
    fn small_batches_are_one_transaction() {
        let ops = sized(&["a", "b", "c"], 100);
        assert_eq!(split(&ops, Limits::default()), vec![(0..3)]);
    }

    #[test]
    fn splits_by_operation_count() {
        let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
        let ops: Vec<Sized> = keys.iter().map(|key| Sized { key, cost: 10 }).collect();
        assert_eq!(split(&ops, Limits::default()), [0..128, 128..256, 256..300]);
        assert_eq!(
            split(&ops[..128], Limits::default()),
            vec![(0..128)],
            "exactly 128"
        );
    }

    #[test]
    fn splits_by_request_bytes() {
        // Budget 10_000 - 4096 = 5904 bytes: two 2000-byte operations fit, a third does not.
        let ops = sized(&["a", "b", "c", "d", "e"], 2000);
        assert_eq!(split(&ops, limits(128, 10_000)), [0..2, 2..4, 4..5]);
    }

    #[test]
    fn a_repeated_key_starts_a_new_transaction() {
        let ops = sized(&["a", "b", "a", "c", "b", "b"], 1);
        assert_eq!(
            split(&ops, Limits::default()),
            [0..2, 2..5, 5..6],
            "etcd refuses a key twice in one transaction; order is kept"
        );
    }

    #[test]
    fn an_oversized_operation_gets_its_own_transaction() {
        let ops = vec![
            Sized { key: "a", cost: 10 },
            Sized {
                key: "big",
                cost: 50_000,
            },
            Sized { key: "b", cost: 10 },
        ];
        assert_eq!(split(&ops, limits(128, 10_000)), [0..1, 1..2, 2..3]);
    }

    #[test]
    fn fits_counts_key_value_and_framing() {
        let limits = limits(128, 4096 + 100);
        assert!(limits.fits("k", 100 - 1 - OP_OVERHEAD));
        assert!(!limits.fits("k", 100 - OP_OVERHEAD));
        assert!(Limits::default().fits("k", 1_500_000));
        assert!(!Limits::default().fits("k", 1_572_864));
    }

    #[test]
    fn distinct_is_false_for_a_key_in_two_transactions() {
        let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
        let mut ops: Vec<Sized> = keys.iter().map(|key| Sized { key, cost: 10 }).collect();
        assert!(distinct(&ops));
        assert!(distinct(&[]));
        // k5 again after the first transaction's 128: split keeps both, in order.
        ops.push(Sized {
            key: "k5",
            cost: 10,
        });
        assert!(
            !distinct(&ops),
            "k5 twice: its transactions must run in order"
        );
    }

    #[test]
    fn zero_max_ops_is_treated_as_one() {
        let ops = sized(&["a", "b"], 1);
        assert_eq!(split(&ops, limits(0, 10_000)), [0..1, 1..2]);
    }
}
