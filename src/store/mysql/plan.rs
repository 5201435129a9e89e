//! Pure planning of a write batch: given the operations and what the table held for their keys,
//! which change each operation is (in order), which rows to upsert, soft-delete or only mark as
//! seen in the batch's epoch. The SQL that carries the plan out is in `write`.

use std::collections::{HashMap, HashSet};

use crate::store::ChangeType;

/// `(namespace, name)`.
pub(super) type Key = (String, String);

/// One operation of the batch; upserts point at their encoded row.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum PlanOp {
    Upsert {
        key: Key,
        resource_version: String,
        row: usize,
    },
    Delete {
        key: Key,
    },
}

/// A key's row in the table before the batch.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StoredRow {
    pub id: u64,
    pub resource_version: String,
    /// Not soft-deleted.
    pub live: bool,
    /// The lean change record the row backs (see `feed`), 0 for none.
    pub feed_revision: u64,
}

/// Where a change's object comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum ChangeSource {
    /// An encoded row of this batch.
    Row(usize),
    /// The table's row with this id, as it was before the batch.
    Stored(u64),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Plan {
    /// Changes in operation order; the batch's revisions are numbered in this order.
    pub changes: Vec<(ChangeType, ChangeSource)>,
    /// Encoded rows to insert or update (each key's last upsert).
    pub upserts: Vec<usize>,
    /// Ids to soft-delete.
    pub deletes: Vec<u64>,
    /// Ids only marked as seen in the epoch (upserted with their stored resourceVersion).
    pub seen: Vec<u64>,
}

/// Batches at least this large may be written insert-only (see [`insert_only`]); smaller ones,
/// the steady state of watch events, always look their keys up.
pub(super) const INSERT_ONLY_MIN: usize = 64;

/// Whether a batch is written insert-only: planned as if none of its keys were stored, without
/// the key lookup, the rows inserted with a plain `INSERT` that fails on any stored key (then
/// the transaction is rolled back and the batch written the usual way). Tried when the kind's
/// previous batch found none of its keys (an initial sync) and the batch only upserts: a delete
/// could concern a stored key that no insert would collide with.
pub(super) fn insert_only(ops: &[PlanOp], previous_all_new: bool) -> bool {
    previous_all_new
        && ops.len() >= INSERT_ONLY_MIN
        && ops.iter().all(|op| matches!(op, PlanOp::Upsert { .. }))
}

/// Whether the kind's next batch should try [`insert_only`], after a batch of `ops` operations of
/// which `stored` keys were found in the table.
pub(super) fn all_new(ops: usize, stored: usize) -> bool {
    ops >= INSERT_ONLY_MIN && stored == 0
}

#[derive(Clone, Copy)]
enum Final {
    Upsert(usize),
    Delete,
}

/// Plans `ops` against the `stored` rows of their keys (keys missing from `stored` have no row).
pub(super) fn plan(ops: &[PlanOp], stored: &HashMap<Key, StoredRow>) -> Plan {
    // Each key's current state while walking the batch: live resourceVersion and its source.
    let mut current: HashMap<&Key, Option<(&str, ChangeSource)>> = HashMap::new();
    let mut finals: HashMap<&Key, Final> = HashMap::new();
    let mut order: Vec<&Key> = Vec::new();
    let mut dirty: HashSet<&Key> = HashSet::new();
    let mut seen: Vec<(&Key, u64)> = Vec::new();
    let mut plan = Plan::default();
    for op in ops {
        let key = match op {
            PlanOp::Upsert { key, .. } | PlanOp::Delete { key } => key,
        };
        let state = current.entry(key).or_insert_with(|| {
            stored
                .get(key)
                .filter(|row| row.live)
                .map(|row| (row.resource_version.as_str(), ChangeSource::Stored(row.id)))
        });
        match op {
            PlanOp::Upsert {
                resource_version,
                row,
                ..
            } => {
                if let Some((live_rv, source)) = state
                    && *live_rv == resource_version.as_str()
                {
                    if let ChangeSource::Stored(id) = source {
                        seen.push((key, *id));
                    }
                    continue;
                }
                let change = if state.is_some() {
                    ChangeType::Modified
                } else {
                    ChangeType::Added
                };
                plan.changes.push((change, ChangeSource::Row(*row)));
                *state = Some((resource_version.as_str(), ChangeSource::Row(*row)));
                if finals.insert(key, Final::Upsert(*row)).is_none() {
                    order.push(key);
                }
                dirty.insert(key);
            }
            PlanOp::Delete { .. } => {
                let Some((_, source)) = state.take() else {
                    continue;
                };
                plan.changes.push((ChangeType::Deleted, source));
                if finals.insert(key, Final::Delete).is_none() {
                    order.push(key);
                }
                dirty.insert(key);
            }
        }
    }
    for key in order {
        match finals[key] {
            Final::Upsert(row) => plan.upserts.push(row),
            Final::Delete => {
                if let Some(row) = stored.get(key).filter(|row| row.live) {
                    plan.deletes.push(row.id);
                }
            }
        }
    }
    plan.seen = seen
        .into_iter()
        .filter(|(key, _)| !dirty.contains(key))
        .map(|(_, id)| id)
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChangeSource::{Row, Stored};
    use ChangeType::{Added, Deleted, Modified};

    fn key(name: &str) -> Key {
        ("ns".to_owned(), name.to_owned())
    }

    fn upsert(name: &str, rv: &str, row: usize) -> PlanOp {
        PlanOp::Upsert {
            key: key(name),
            resource_version: rv.to_owned(),
            row,
        }
    }

    fn delete(name: &str) -> PlanOp {
        PlanOp::Delete { key: key(name) }
    }

    fn stored(rows: &[(&str, u64, &str, bool)]) -> HashMap<Key, StoredRow> {
        rows.iter()
            .map(|(name, id, rv, live)| {
                let row = StoredRow {
                    id: *id,
                    resource_version: (*rv).to_owned(),
                    live: *live,
                    feed_revision: 0,
                };
                (key(name), row)
            })
            .collect()
    }

    #[test]
    fn the_conformance_batch() {
        let ops = [
            upsert("x", "1", 0),
            upsert("y", "1", 1),
            upsert("x", "2", 2),
            delete("y"),
            delete("unknown"),
            upsert("z", "1", 3),
        ];
        let plan = plan(&ops, &HashMap::new());
        assert_eq!(
            plan.changes,
            [
                (Added, Row(0)),
                (Added, Row(1)),
                (Modified, Row(2)),
                (Deleted, Row(1)),
                (Added, Row(3))
            ]
        );
        assert_eq!(
            plan.upserts,
            [2, 3],
            "last upsert of x, and z; y never reaches the table"
        );
        assert!(plan.deletes.is_empty() && plan.seen.is_empty());
    }

    #[test]
    fn unchanged_upserts_are_only_seen() {
        let rows = stored(&[("a", 10, "7", true), ("b", 11, "1", true)]);
        let plan = plan(&[upsert("a", "7", 0), upsert("b", "2", 1)], &rows);
        assert_eq!(plan.changes, [(Modified, Row(1))]);
        assert_eq!((plan.upserts, plan.seen), (vec![1], vec![10]));
    }

    #[test]
    fn soft_deleted_rows_come_back_as_added() {
        let rows = stored(&[("a", 10, "7", false)]);
        let plan = plan(&[upsert("a", "7", 0), delete("a")], &rows);
        assert_eq!(plan.changes, [(Added, Row(0)), (Deleted, Row(0))]);
        assert!(plan.upserts.is_empty(), "the final state is deleted");
        assert!(plan.deletes.is_empty(), "the row is already soft-deleted");
        let plan = super::plan(&[delete("a")], &rows);
        assert!(
            plan.changes.is_empty(),
            "deleting a deleted object changes nothing"
        );
    }

    #[test]
    fn only_large_upsert_batches_after_an_all_new_one_skip_the_lookup() {
        let upserts: Vec<PlanOp> = (0..INSERT_ONLY_MIN)
            .map(|i| upsert(&format!("p{i}"), "1", i))
            .collect();
        assert!(insert_only(&upserts, true));
        assert!(
            !insert_only(&upserts, false),
            "the previous batch found keys"
        );
        assert!(
            !insert_only(&upserts[1..], true),
            "small batches look up their keys"
        );
        let mut with_delete = upserts.clone();
        with_delete.push(delete("old"));
        assert!(
            !insert_only(&with_delete, true),
            "a delete needs the lookup"
        );
        assert!(all_new(INSERT_ONLY_MIN, 0));
        assert!(!all_new(INSERT_ONLY_MIN, 1));
        assert!(!all_new(INSERT_ONLY_MIN - 1, 0));
        // Planned as if nothing were stored, repeated keys still end as one row each.
        let mut repeated = upserts;
        repeated.push(upsert("p0", "2", INSERT_ONLY_MIN));
        let plan = plan(&repeated, &HashMap::new());
        assert_eq!(plan.changes.len(), INSERT_ONLY_MIN + 1);
        assert_eq!(plan.upserts.len(), INSERT_ONLY_MIN);
        assert_eq!(plan.upserts[0], INSERT_ONLY_MIN, "p0's last upsert");
    }

    #[test]
    fn deletes_of_stored_rows_carry_the_stored_state() {
        let rows = stored(&[("a", 10, "4", true)]);
        let plan = plan(&[delete("a"), delete("a"), upsert("a", "4", 0)], &rows);
        assert_eq!(plan.changes, [(Deleted, Stored(10)), (Added, Row(0))]);
        assert_eq!(plan.upserts, [0], "re-added after the delete");
        assert!(plan.deletes.is_empty() && plan.seen.is_empty());
        let plan = super::plan(&[upsert("a", "4", 0), delete("a")], &rows);
        assert_eq!(plan.changes, [(Deleted, Stored(10))]);
        assert_eq!((plan.deletes, plan.seen), (vec![10], vec![]));
    }
}
