//! Batches and sweeps, each one transaction: lock the revision row, look up the batch's keys,
//! carry out the [`plan`](super::plan), record the changes with consecutive revisions (lean where
//! the row holds the object, see `feed`), commit, then wake feed readers (and trim the feed in the
//! background when due, see `feed::Trim`). Insert-only batches of an initial sync go through
//! [`pipeline`](super::pipeline) first, which overlaps encoding with the server's work.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sqlx::mysql::{MySqlArguments, MySqlRow};
use sqlx::{Arguments, MySql, Row, Transaction};
use tracing::warn;

use super::encode::{self, EncodedRow};
use super::feed::{self, RevisionRow, lock_revision, object_json, push_list};
use super::plan::{self, ChangeSource, Key, PlanOp, StoredRow};
use super::query::select_list;
use super::sql::{self, Param, Statement, ident, required_text};
use super::{MysqlStore, Table, pipeline, tables};
use crate::mirror::kind::KindSpec;
use crate::store::{ChangeType, MirrorObject, StoreError, WriteBatch, WriteOp, WriteOutcome};

/// MySQL's limit on placeholders in one statement.
pub(super) const MAX_PARAMS: usize = 65_535;
/// Keys looked up per statement.
const LOOKUP_CHUNK: usize = 1_000;

/// The columns an upsert writes, in bind order (`updated_at`, `deleted_at` are set in SQL).
const UPSERT_BASE: [&str; 10] = [
    "namespace",
    "name",
    "uid",
    "resource_version",
    "labels",
    "annotations",
    "created_at",
    "seen_epoch",
    "object",
    "feed_revision",
];

pub(super) fn change_code(change: ChangeType) -> u8 {
    match change {
        ChangeType::Added => 1,
        ChangeType::Modified => 2,
        ChangeType::Deleted => 3,
    }
}

pub(super) fn change_type(code: u8) -> Option<ChangeType> {
    match code {
        1 => Some(ChangeType::Added),
        2 => Some(ChangeType::Modified),
        3 => Some(ChangeType::Deleted),
        _ => None,
    }
}

pub(super) async fn write(
    store: &MysqlStore,
    kind: &KindSpec,
    batch: WriteBatch,
) -> Result<WriteOutcome, StoreError> {
    let table = store.table(kind)?;
    let limits = store.limits().await?;
    let batch = match pipelined(store, &table, batch, limits.statement_bytes).await? {
        Ok(outcome) => {
            tables::purge_if_due(store, &table).await;
            return Ok(outcome);
        }
        Err(batch) => batch,
    };
    let spec = &table.spec;
    // Encode first: an object the database would refuse is left out (and reported), the rest
    // of the batch is written.
    let mut rows: Vec<EncodedRow> = Vec::new();
    let mut objects: Vec<&MirrorObject> = Vec::new();
    let mut ops: Vec<PlanOp> = Vec::with_capacity(batch.ops.len());
    let mut rejected: Vec<(String, String, String)> = Vec::new();
    for op in &batch.ops {
        match op {
            WriteOp::Upsert(object) => {
                match EncodedRow::new(spec, object, limits.statement_bytes) {
                    Ok(row) => {
                        ops.push(PlanOp::Upsert {
                            key: (object.namespace.clone(), object.name.clone()),
                            resource_version: object.resource_version.clone(),
                            row: rows.len(),
                        });
                        rows.push(row);
                        objects.push(object);
                    }
                    Err(reason) => {
                        warn!(kind = %kind.id(), namespace = %object.namespace, name = %object.name,
                        %reason, "object rejected by the MySQL store");
                        rejected.push((object.namespace.clone(), object.name.clone(), reason));
                    }
                }
            }
            WriteOp::Delete { namespace, name } => ops.push(PlanOp::Delete {
                key: (namespace.clone(), name.clone()),
            }),
        }
    }
    let batch = Batch {
        rows: &rows,
        objects: &objects,
        ops: &ops,
        epoch: batch.epoch,
        statement_bytes: limits.statement_bytes,
    };
    let fresh = plan::insert_only(&ops, table.all_new.load(Ordering::Relaxed));
    let written = match fresh {
        true => write_planned(store, &table, &batch, true).await?,
        false => None,
    };
    let outcome = match written {
        Some(outcome) => outcome,
        None => {
            // A key of an insert-only batch was stored after all: look the keys up.
            let outcome = write_planned(store, &table, &batch, false).await?;
            outcome.ok_or_else(|| StoreError::Unavailable {
                message: format!("a batch of {} was not written", table.name),
                source: None,
            })?
        }
    };
    tables::purge_if_due(store, &table).await;
    if let Some((namespace, name, reason)) = rejected.first() {
        let more = rejected.len() - 1;
        let reason = if more > 0 {
            format!("{reason} (and {more} more objects of the batch rejected)")
        } else {
            reason.clone()
        };
        return Err(StoreError::Rejected {
            namespace: namespace.clone(),
            name: name.clone(),
            reason,
        });
    }
    Ok(outcome)
}

/// Writes the batch the [`pipeline`] way if it may be written insert-only; `Ok(Err(batch))`:
/// it is written the sequential way.
async fn pipelined(
    store: &MysqlStore,
    table: &Arc<Table>,
    batch: WriteBatch,
    statement_bytes: usize,
) -> Result<Result<WriteOutcome, WriteBatch>, StoreError> {
    let previous_all_new = table.all_new.load(Ordering::Relaxed);
    if !previous_all_new || batch.ops.len() < plan::INSERT_ONLY_MIN {
        return Ok(Err(batch));
    }
    let ops = pipeline::plan_ops(&batch);
    // Deletes are left out of `ops`: then it is shorter than the batch and not insert-only.
    if ops.len() < batch.ops.len() || !plan::insert_only(&ops, previous_all_new) {
        return Ok(Err(batch));
    }
    pipeline::write(store, table, batch, &ops, statement_bytes).await
}

/// A batch's encoded rows (and the objects they encode) and operations.
struct Batch<'a> {
    rows: &'a [EncodedRow],
    objects: &'a [&'a MirrorObject],
    ops: &'a [PlanOp],
    epoch: u64,
    statement_bytes: usize,
}

/// Writes the batch in one transaction. `insert_only` (see [`plan::insert_only`]) plans without
/// looking the keys up and returns `None`, rolled back, when a key turns out to be stored.
async fn write_planned(
    store: &MysqlStore,
    table: &Table,
    batch: &Batch<'_>,
    insert_only: bool,
) -> Result<Option<WriteOutcome>, StoreError> {
    let spec = &table.spec;
    let rows = batch.rows;
    let fail = |e| store.error(Some(spec), "cannot write a batch", e);
    let mut tx = store.pool.begin().await.map_err(fail)?;
    let (before, stored, plan) = if insert_only {
        let stored = HashMap::new();
        let plan = plan::plan(batch.ops, &stored);
        let changes = plan.changes.len() as u64;
        let after = feed::advance_revision(&mut tx, changes)
            .await
            .map_err(fail)?;
        (after - changes, stored, plan)
    } else {
        let before = lock_revision(&mut tx).await.map_err(fail)?;
        let stored = lookup(&mut tx, &table.name, batch.ops)
            .await
            .map_err(fail)?;
        let plan = plan::plan(batch.ops, &stored);
        (before, stored, plan)
    };
    let stored_ids: Vec<u64> = plan
        .changes
        .iter()
        .filter_map(|(_, source)| match source {
            ChangeSource::Stored(id) => Some(*id),
            ChangeSource::Row(_) => None,
        })
        .collect();
    let stored_objects = fetch_by_ids(&mut tx, spec, &stored_ids)
        .await
        .map_err(|e| match e {
            Fetch::Sql(e) => fail(e),
            Fetch::Decode(e) => e,
        })?;
    // Each key's last upsert is what its row holds after the batch: its change is lean.
    let revision = before + plan.changes.len() as u64;
    let mut lean: HashMap<usize, u64> = plan.upserts.iter().map(|&i| (i, 0)).collect();
    for (n, (change, source)) in plan.changes.iter().enumerate() {
        if let (ChangeType::Added | ChangeType::Modified, ChangeSource::Row(i)) = (change, source)
            && let Some(at) = lean.get_mut(i)
        {
            *at = before + 1 + n as u64;
        }
    }
    // Rows about to be overwritten keep the objects of their lean records.
    let floor = feed::floor(revision, store.options.history);
    let overwritten: Vec<u64> = plan
        .upserts
        .iter()
        .filter_map(|&i| stored.get(&(rows[i].namespace.clone(), rows[i].name.clone())))
        .filter(|row| row.feed_revision > floor)
        .map(|row| row.id)
        .collect();
    for chunk in overwritten.chunks(LOOKUP_CHUNK) {
        let mut filter = Statement::default();
        filter.push("`id` IN (");
        push_list(&mut filter, chunk);
        feed::preserve(&mut tx, store, spec, &filter, floor).await?;
    }
    let upserts: Vec<(&EncodedRow, u64)> = plan
        .upserts
        .iter()
        .map(|&i| (&rows[i], lean.get(&i).copied().unwrap_or(0)))
        .collect();
    let upserted = upsert_rows(
        &mut tx,
        spec,
        &upserts,
        batch.epoch,
        batch.statement_bytes,
        !insert_only,
    )
    .await;
    match upserted {
        Err(e) if insert_only && sql::error_number(&e) == Some(sql::code::DUP_ENTRY) => {
            table.all_new.store(false, Ordering::Relaxed);
            tx.rollback().await.map_err(fail)?;
            return Ok(None);
        }
        other => other.map_err(fail)?,
    }
    update_ids(
        &mut tx,
        &table.name,
        "`deleted_at` = NOW(6), `updated_at` = NOW(6)",
        None,
        &plan.deletes,
    )
    .await
    .map_err(fail)?;
    update_ids(
        &mut tx,
        &table.name,
        "`seen_epoch` = ",
        Some(batch.epoch),
        &plan.seen,
    )
    .await
    .map_err(fail)?;
    let mut changes = Vec::with_capacity(plan.changes.len());
    for (n, (change, source)) in plan.changes.iter().enumerate() {
        let json = match source {
            ChangeSource::Row(i) if lean.get(i) == Some(&(before + 1 + n as u64)) => None,
            ChangeSource::Row(i) => Some(object_json(batch.objects[*i])),
            ChangeSource::Stored(id) => match stored_objects.get(id) {
                Some(object) => Some(object_json(object)),
                None => {
                    return Err(StoreError::Unavailable {
                        message: format!("row {id} of {} vanished during a batch", table.name),
                        source: None,
                    });
                }
            },
        };
        changes.push((*change, json));
    }
    let revision_row = match insert_only {
        true => RevisionRow::Advanced,
        false => RevisionRow::Locked,
    };
    let recorded = feed::record(
        &mut tx,
        store,
        &spec.id(),
        before,
        &changes,
        batch.statement_bytes,
        revision_row,
    )
    .await
    .map_err(fail)?;
    debug_assert_eq!(recorded, revision);
    tx.commit().await.map_err(fail)?;
    store.committed(revision);
    if !insert_only {
        let all_new = plan::all_new(batch.ops.len(), stored.len());
        table.all_new.store(all_new, Ordering::Relaxed);
    }
    Ok(Some(WriteOutcome {
        revision,
        changed: changes.len(),
    }))
}

/// Marks every live row of the kind not seen in `epoch` or later as deleted, recording each.
pub(super) async fn sweep(
    store: &MysqlStore,
    kind: &KindSpec,
    epoch: u64,
) -> Result<usize, StoreError> {
    let table = store.table(kind)?;
    let limits = store.limits().await?;
    let fail = |e| store.error(Some(kind), "cannot sweep", e);
    let mut tx = store.pool.begin().await.map_err(fail)?;
    let before = lock_revision(&mut tx).await.map_err(fail)?;
    let mut select = Statement::default();
    select.push(&format!(
        "SELECT {} FROM {} WHERE `deleted_at` IS NULL AND `seen_epoch` < ",
        select_list(&table.spec),
        ident(&table.name)
    ));
    select.bind(Param::UInt(epoch));
    select.push(" ORDER BY `namespace`, `name`");
    let rows = select.query().fetch_all(&mut *tx).await.map_err(fail)?;
    let mut ids = Vec::with_capacity(rows.len());
    let mut changes = Vec::with_capacity(rows.len());
    for row in &rows {
        let (id, object) = encode::decode(&table.spec, row)?;
        ids.push(id);
        changes.push((ChangeType::Deleted, Some(object_json(&object))));
    }
    drop(rows);
    update_ids(
        &mut tx,
        &table.name,
        "`deleted_at` = NOW(6), `updated_at` = NOW(6)",
        None,
        &ids,
    )
    .await
    .map_err(fail)?;
    let revision = feed::record(
        &mut tx,
        store,
        &kind.id(),
        before,
        &changes,
        limits.statement_bytes,
        RevisionRow::Locked,
    )
    .await
    .map_err(fail)?;
    tx.commit().await.map_err(fail)?;
    store.committed(revision);
    tables::purge_if_due(store, &table).await;
    Ok(ids.len())
}

/// The stored rows (live or soft-deleted) of the batch's keys.
async fn lookup(
    tx: &mut Transaction<'_, MySql>,
    table: &str,
    ops: &[PlanOp],
) -> Result<HashMap<Key, StoredRow>, sqlx::Error> {
    let keys: HashSet<&Key> = ops
        .iter()
        .map(|op| match op {
            PlanOp::Upsert { key, .. } | PlanOp::Delete { key } => key,
        })
        .collect();
    let keys: Vec<&Key> = keys.into_iter().collect();
    let mut stored = HashMap::new();
    for chunk in keys.chunks(LOOKUP_CHUNK) {
        // Names are selective (the name index); the namespaces are checked here.
        let mut select = Statement::default();
        select.push(&format!(
            "SELECT `id`, `namespace`, `name`, `resource_version`, `deleted_at` IS NULL, \
             `feed_revision` FROM {} WHERE `name` IN (",
            ident(table)
        ));
        let names: HashSet<&str> = chunk.iter().map(|k| k.1.as_str()).collect();
        for (i, name) in names.into_iter().enumerate() {
            if i > 0 {
                select.push(", ");
            }
            select.bind(Param::Str(name.to_owned()));
        }
        select.push(")");
        let wanted: HashSet<&Key> = chunk.iter().copied().collect();
        for row in select.query().fetch_all(&mut **tx).await? {
            let key: Key = (required_text(&row, 1)?, required_text(&row, 2)?);
            if !wanted.contains(&key) {
                continue;
            }
            let live: i64 = row.try_get(4)?;
            let row = StoredRow {
                id: row.try_get(0)?,
                resource_version: required_text(&row, 3)?,
                live: live != 0,
                feed_revision: row.try_get(5)?,
            };
            stored.insert(key, row);
        }
    }
    Ok(stored)
}

enum Fetch {
    Sql(sqlx::Error),
    Decode(StoreError),
}

/// Full objects of rows by id (the last state of deleted objects).
async fn fetch_by_ids(
    tx: &mut Transaction<'_, MySql>,
    spec: &KindSpec,
    ids: &[u64],
) -> Result<HashMap<u64, MirrorObject>, Fetch> {
    let mut objects = HashMap::new();
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let mut select = Statement::default();
        select.push(&format!(
            "SELECT {} FROM {} WHERE `id` IN (",
            select_list(spec),
            ident(&spec.table_name())
        ));
        push_list(&mut select, chunk);
        let rows: Vec<MySqlRow> = select
            .query()
            .fetch_all(&mut **tx)
            .await
            .map_err(Fetch::Sql)?;
        for row in &rows {
            let (id, object) = encode::decode(spec, row).map_err(Fetch::Decode)?;
            objects.insert(id, object);
        }
    }
    Ok(objects)
}

/// `UPDATE … SET {set}[?] WHERE id IN (…)`, chunked.
async fn update_ids(
    tx: &mut Transaction<'_, MySql>,
    table: &str,
    set: &str,
    value: Option<u64>,
    ids: &[u64],
) -> Result<(), sqlx::Error> {
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let mut update = Statement::default();
        update.push(&format!("UPDATE {} SET {set}", ident(table)));
        if let Some(value) = value {
            update.bind(Param::UInt(value));
        }
        update.push(" WHERE `id` IN (");
        push_list(&mut update, chunk);
        update.query().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Whether an insert-only statement of `rows` rows stays prepared on its connection. A sync
/// sends batch after batch of the same size, and preparing a statement of thousands of
/// placeholders each time costs the server a parse and the writer a round trip. Kept statements
/// cost server memory (3.5 MB for 500 rows), so only round sizes of insert-only batches are
/// kept: a connection holds a few, not one per size.
pub(super) fn keep_prepared(rows: usize) -> bool {
    rows >= 100 && rows.is_multiple_of(100)
}

/// The text of an upsert of `rows` rows (a plain `INSERT` without `on_duplicate`, which then fails
/// on a stored key) and the rows a statement may carry by the placeholder limit.
pub(super) struct UpsertSql {
    head: String,
    placeholders: String,
    tail: String,
    pub rows_per_statement: usize,
}

impl UpsertSql {
    pub fn new(spec: &KindSpec, on_duplicate: bool) -> Self {
        let columns: Vec<String> = UPSERT_BASE
            .iter()
            .map(|c| ident(c))
            .chain(["`updated_at`".to_owned(), "`deleted_at`".to_owned()])
            .chain(spec.columns.iter().map(|c| ident(&c.name)))
            .collect();
        let head = format!(
            "INSERT INTO {} ({}) VALUES ",
            ident(&spec.table_name()),
            columns.join(", ")
        );
        let updates: Vec<String> = columns
            .iter()
            .filter(|c| *c != "`namespace`" && *c != "`name`")
            .map(|c| format!("{c} = VALUES({c})"))
            .collect();
        // Without the update clause, a stored key fails the statement (insert-only batches).
        let tail = match on_duplicate {
            true => format!(" ON DUPLICATE KEY UPDATE {}", updates.join(", ")),
            false => String::new(),
        };
        let placeholders = format!(
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOW(6), NULL{})",
            ", ?".repeat(spec.columns.len())
        );
        let per_row = UPSERT_BASE.len() + spec.columns.len();
        Self {
            head,
            placeholders,
            tail,
            rows_per_statement: (MAX_PARAMS / per_row).max(1),
        }
    }

    /// The statement for `rows` rows.
    pub fn text(&self, rows: usize) -> String {
        let mut sql = self.head.clone();
        for i in 0..rows {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&self.placeholders);
        }
        sql.push_str(&self.tail);
        sql
    }
}

/// Binds one row of an upsert (in [`UPSERT_BASE`] order, then the typed columns).
pub(super) fn bind_row(
    args: &mut MySqlArguments,
    row: &EncodedRow,
    epoch: u64,
    feed_revision: u64,
) -> Result<(), sqlx::Error> {
    let encode = sqlx::Error::Encode;
    args.add(row.namespace.as_str()).map_err(encode)?;
    args.add(row.name.as_str()).map_err(encode)?;
    args.add(row.uid.as_str()).map_err(encode)?;
    args.add(row.resource_version.as_str()).map_err(encode)?;
    args.add(row.labels.as_str()).map_err(encode)?;
    args.add(row.annotations.as_str()).map_err(encode)?;
    args.add(row.created_at.as_deref()).map_err(encode)?;
    args.add(epoch).map_err(encode)?;
    args.add(row.object.as_str()).map_err(encode)?;
    args.add(feed_revision).map_err(encode)?;
    for param in &row.columns {
        sql::add(args, param)?;
    }
    Ok(())
}

/// Multi-row `INSERT … ON DUPLICATE KEY UPDATE`, cut into statements under the server's
/// packet size and placeholder limits.
async fn upsert_rows(
    tx: &mut Transaction<'_, MySql>,
    spec: &KindSpec,
    rows: &[(&EncodedRow, u64)],
    epoch: u64,
    statement_bytes: usize,
    on_duplicate: bool,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let text = UpsertSql::new(spec, on_duplicate);
    let mut start = 0;
    while start < rows.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < rows.len() && end - start < text.rows_per_statement {
            let next = rows[end].0.bytes();
            if end > start && bytes + next > statement_bytes {
                break;
            }
            bytes += next;
            end += 1;
        }
        let sql = text.text(end - start);
        // Bound straight from the encoded rows (no copies of the object texts).
        let mut args = MySqlArguments::default();
        for (row, feed_revision) in &rows[start..end] {
            bind_row(&mut args, row, epoch, *feed_revision)?;
        }
        sqlx::query_with(&sql, args)
            .persistent(!on_duplicate && keep_prepared(end - start))
            .execute(&mut **tx)
            .await?;
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::keep_prepared;

    #[test]
    fn only_round_statement_sizes_stay_prepared() {
        assert!(keep_prepared(500));
        assert!(keep_prepared(100));
        assert!(!keep_prepared(499), "the odd last batch of a sync");
        assert!(!keep_prepared(1), "steady-state batches vary in size");
        assert!(!keep_prepared(0));
    }
}
