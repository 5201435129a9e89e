//! The change feed's records and how they are read back.
//!
//! A change whose object is what its row holds after the batch (each key's last upsert) is
//! recorded lean, without the object: the row keeps the change's revision in `feed_revision` and
//! readers take the object from the row. Before a row's content is replaced or removed (an upsert
//! of an existing key, a purge, a migration, dropping the table) [`preserve`] copies the row's
//! object into the lean record it backs, so every retained change still carries the object as it
//! was at its revision. Soft deletes leave the row's content as it was; `Deleted` changes carry
//! their object. The initial sync, where nearly every change is an `Added` of a new row, writes
//! each object once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sqlx::{MySql, MySqlPool, Row, Transaction};
use tracing::debug;

use super::MysqlStore;
use super::encode::{self, SELECT_BASE_LEN, decode_change};
use super::query::select_list;
use super::sql::{self, Param, Statement, ident, required_text};
use super::write::{MAX_PARAMS, change_code, change_type};
use crate::mirror::kind::KindSpec;
use crate::store::{Change, ChangeType, MirrorObject, Revision, StoreError};

/// Rows read per statement while preserving or resolving.
const CHUNK: usize = 500;

/// Locks the revision row until commit: writers queue here, in revision order.
pub(super) async fn lock_revision(tx: &mut Transaction<'_, MySql>) -> Result<u64, sqlx::Error> {
    sqlx::query_scalar("SELECT `revision` FROM `stowage_meta` WHERE `id` = 1 FOR UPDATE")
        .fetch_one(&mut **tx)
        .await
}

/// Locks the revision row and moves the revision on by `by` in one statement (for a batch whose
/// number of changes is known before it looks at the table); returns the new revision.
pub(super) async fn advance_revision(
    tx: &mut Transaction<'_, MySql>,
    by: u64,
) -> Result<u64, sqlx::Error> {
    // `LAST_INSERT_ID(expr)` hands the new value back in the statement's OK packet.
    let result = sqlx::query(
        "UPDATE `stowage_meta` SET `revision` = LAST_INSERT_ID(`revision` + ?) WHERE `id` = 1",
    )
    .bind(by)
    .execute(&mut **tx)
    .await?;
    match result.last_insert_id() {
        0 if by > 0 => Err(sqlx::Error::RowNotFound),
        revision => Ok(revision),
    }
}

/// Whether the revision row still has to be set when changes are recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum RevisionRow {
    /// Locked with [`lock_revision`]: set to the new revision.
    Locked,
    /// Already moved on by [`advance_revision`].
    Advanced,
}

/// Appends changes numbered from `before + 1` (`None`: the object is read from the row) and
/// stores the new revision; returns it. Changes beyond the retention are not written; older
/// records are deleted later, off the writer's transaction (see [`trim_if_due`]).
pub(super) async fn record(
    tx: &mut Transaction<'_, MySql>,
    store: &MysqlStore,
    kind: &str,
    before: u64,
    changes: &[(ChangeType, Option<String>)],
    statement_bytes: usize,
    revision_row: RevisionRow,
) -> Result<u64, sqlx::Error> {
    if changes.is_empty() {
        return Ok(before);
    }
    let revision = before + changes.len() as u64;
    for (insert, lean) in record_statements(
        kind,
        before,
        changes,
        statement_bytes,
        store.options.history,
    ) {
        // Lean statements are small and, batch after batch, the same text: kept prepared.
        insert.query().persistent(lean).execute(&mut **tx).await?;
    }
    if revision_row == RevisionRow::Locked {
        sqlx::query("UPDATE `stowage_meta` SET `revision` = ? WHERE `id` = 1")
            .bind(revision)
            .execute(&mut **tx)
            .await?;
    }
    Ok(revision)
}

/// The `INSERT`s of [`record`], each with whether it is lean (every record without its object).
/// Only the newest `history` changes are kept, so older ones of the batch are left out.
pub(super) fn record_statements(
    kind: &str,
    before: u64,
    changes: &[(ChangeType, Option<String>)],
    statement_bytes: usize,
    history: usize,
) -> Vec<(Statement, bool)> {
    let revision = before + changes.len() as u64;
    let keep_from = floor(revision, history);
    let mut numbered = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (before + 1 + i as u64, c))
        .filter(|(r, _)| *r > keep_from)
        .peekable();
    let mut statements = Vec::new();
    while numbered.peek().is_some() {
        let mut insert = Statement::default();
        insert.push(
            "INSERT INTO `stowage_changes` (`revision`, `kind`, `change_type`, `object`) VALUES ",
        );
        let mut bytes = 0;
        let mut first = true;
        let mut lean = true;
        while let Some((revision, (change, json))) = numbered.peek() {
            let size = json.as_ref().map_or(0, String::len) + kind.len() + 16;
            if !first && (bytes + size > statement_bytes || insert.params.len() + 4 > MAX_PARAMS) {
                break;
            }
            if !first {
                insert.push(", ");
            }
            first = false;
            bytes += size;
            insert.push("(");
            insert.bind(Param::UInt(*revision));
            insert.push(", ");
            insert.bind(Param::Str(kind.to_owned()));
            insert.push(", ");
            insert.bind(Param::UInt(u64::from(change_code(*change))));
            insert.push(", ");
            insert.bind(json.clone().map_or(Param::Null, Param::Str));
            insert.push(")");
            lean &= json.is_none();
            numbered.next();
        }
        statements.push((insert, lean));
    }
    statements
}

/// Retention of the change feed. Readers are served exactly the newest `history` changes: a
/// revision at or below [`floor`] of the current revision is expired whether or not its record
/// is still in the table (see [`changes`]), and writers neither write nor preserve records at or
/// below it. Deleting those records is no part of a write: after a commit, once the floor is
/// [`trim_slack`] changes past what was last deleted, one background task (at most one at a
/// time) deletes them in chunks of [`TRIM_CHUNK`] on its own pooled connection, each chunk its
/// own short transaction. The table therefore holds up to `history` + slack records (more while
/// a trim runs or after one failed: the next commit retries).
#[derive(Debug, Default)]
pub(super) struct Trim {
    /// Records at or below this revision are known deleted.
    trimmed: AtomicU64,
    /// A trim task is running.
    running: AtomicBool,
}

/// Records deleted per statement by a trim.
const TRIM_CHUNK: u64 = 5_000;

/// How far the floor moves on before a trim starts: a tenth of the history (at least one), at
/// most [`TRIM_CHUNK`] × 10.
pub(super) fn trim_slack(history: usize) -> u64 {
    (history as u64 / 10).clamp(1, TRIM_CHUNK * 10)
}

/// After a commit that stored `revision`: starts a background trim if one is due and none runs.
pub(super) fn trim_if_due(store: &MysqlStore, revision: u64) {
    let state = &store.trim;
    let target = floor(revision, store.options.history);
    let done = state.trimmed.load(Ordering::Relaxed);
    if target < done.saturating_add(trim_slack(store.options.history))
        || state.running.swap(true, Ordering::AcqRel)
    {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        state.running.store(false, Ordering::Release);
        return;
    };
    let pool = store.pool.clone();
    let state = Arc::clone(state);
    runtime.spawn(async move {
        match trim(&pool, target).await {
            Ok(()) => {
                state.trimmed.fetch_max(target, Ordering::Relaxed);
            }
            Err(error) => debug!(%error, "change feed trim failed (retried after the next write)"),
        }
        state.running.store(false, Ordering::Release);
    });
}

/// Deletes the records at or below `target`, oldest first, [`TRIM_CHUNK`] per autocommitted
/// statement read-committed (no gap locks: writers appending new records never wait on it).
async fn trim(pool: &MySqlPool, target: u64) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    loop {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .execute(&mut *conn)
            .await?;
        let deleted = sqlx::query(
            "DELETE FROM `stowage_changes` WHERE `revision` <= ? ORDER BY `revision` LIMIT ?",
        )
        .bind(target)
        .bind(TRIM_CHUNK)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if deleted < TRIM_CHUNK {
            return Ok(());
        }
    }
}

/// Changes at or below this revision are not retained.
pub(super) fn floor(revision: u64, history: usize) -> u64 {
    revision.saturating_sub(history as u64)
}

/// Fills the lean records backed by the rows of `spec`'s table that match `filter` (a `WHERE`
/// condition) with their rows' objects; records at or below `floor` are ignored. Call it inside
/// the writer's transaction (the revision row locked), before the rows change.
pub(super) async fn preserve(
    tx: &mut Transaction<'_, MySql>,
    store: &MysqlStore,
    spec: &KindSpec,
    filter: &Statement,
    floor: u64,
) -> Result<(), StoreError> {
    let fail = |e| store.error(Some(spec), "cannot preserve change records", e);
    let kind = spec.id();
    let mut after = floor;
    loop {
        let mut select = Statement::default();
        select.push(&format!(
            "SELECT {}, `feed_revision` FROM {} WHERE ({}) AND `feed_revision` > ",
            select_list(spec),
            ident(&spec.table_name()),
            filter.sql
        ));
        select.params.extend(filter.params.iter().cloned());
        select.bind(Param::UInt(after));
        select.push(&format!(" ORDER BY `feed_revision` LIMIT {CHUNK}"));
        let rows = select.query().fetch_all(&mut **tx).await.map_err(fail)?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut update = Statement::default();
        update.push("UPDATE `stowage_changes` SET `object` = CASE `revision`");
        let mut revisions = Vec::with_capacity(rows.len());
        for row in &rows {
            let (_, object) = encode::decode(spec, row)?;
            let revision: u64 = row
                .try_get(SELECT_BASE_LEN + spec.columns.len())
                .map_err(fail)?;
            update.push(" WHEN ");
            update.bind(Param::UInt(revision));
            update.push(" THEN ");
            update.bind(Param::Str(object_json(&object)));
            revisions.push(revision);
            after = after.max(revision);
        }
        update.push(" END WHERE `object` IS NULL AND `kind` = ");
        update.bind(Param::Str(kind.clone()));
        update.push(" AND `revision` IN (");
        push_list(&mut update, &revisions);
        update
            .query()
            .persistent(false)
            .execute(&mut **tx)
            .await
            .map_err(fail)?;
        if rows.len() < CHUNK {
            return Ok(());
        }
    }
}

/// Fills every lean record of the kind (before its table is migrated or dropped). A kind whose
/// table is gone has none left to fill.
pub(super) async fn materialize(store: &MysqlStore, spec: &KindSpec) -> Result<(), StoreError> {
    let fail = |e| store.error(Some(spec), "cannot preserve change records", e);
    let mut tx = store.pool.begin().await.map_err(fail)?;
    let revision = lock_revision(&mut tx).await.map_err(fail)?;
    let all = Statement {
        sql: "TRUE".to_owned(),
        params: Vec::new(),
    };
    match preserve(
        &mut tx,
        store,
        spec,
        &all,
        floor(revision, store.options.history),
    )
    .await
    {
        Ok(()) => tx.commit().await.map_err(fail),
        Err(StoreError::UnknownKind(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

pub(super) fn object_json(object: &MirrorObject) -> String {
    serde_json::to_string(object).unwrap_or_else(|_| "null".to_owned())
}

pub(super) fn push_list(statement: &mut Statement, values: &[u64]) {
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            statement.push(", ");
        }
        statement.bind(Param::UInt(*value));
    }
    statement.push(")");
}

/// Remembers the spec the kind's table now has.
pub(super) async fn save_spec(store: &MysqlStore, spec: &KindSpec) -> Result<(), StoreError> {
    let text = serde_json::to_string(spec).unwrap_or_default();
    sqlx::query(
        "INSERT INTO `stowage_kinds` (`kind`, `spec`) VALUES (?, ?) \
         ON DUPLICATE KEY UPDATE `spec` = VALUES(`spec`)",
    )
    .bind(spec.id())
    .bind(text)
    .execute(&store.pool)
    .await
    .map_err(|e| store.error(None, "cannot record the kind's spec", e))?;
    Ok(())
}

/// The spec the kind's table has: the registered one, else the one last saved.
pub(super) async fn table_spec(
    store: &MysqlStore,
    kind: &str,
) -> Result<Option<KindSpec>, StoreError> {
    if let Some(table) = store.tables.read().get(kind) {
        return Ok(Some(table.spec.clone()));
    }
    let text: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT `spec` FROM `stowage_kinds` WHERE `kind` = ?")
            .bind(kind)
            .fetch_optional(&store.pool)
            .await
            .map_err(|e| store.error(None, "cannot read the kind's spec", e))?;
    Ok(text.and_then(|t| serde_json::from_slice(&t).ok()))
}

pub(super) async fn changes(
    store: &MysqlStore,
    kind: Option<&KindSpec>,
    since: Revision,
    limit: usize,
) -> Result<Vec<Change>, StoreError> {
    store.limits().await?;
    let fail = |e| store.error(None, "cannot read the change feed", e);
    // One snapshot for the records and the rows lean records read from.
    let mut tx = store.pool.begin().await.map_err(fail)?;
    let mut select = Statement::default();
    select.push(
        "SELECT c.`revision`, CAST(c.`kind` AS CHAR), c.`change_type`, c.`object`, \
         (SELECT MIN(`revision`) FROM `stowage_changes`), m.`revision` \
         FROM `stowage_meta` m LEFT JOIN `stowage_changes` c ON c.`revision` > ",
    );
    select.bind(Param::UInt(since));
    if let Some(kind) = kind {
        select.push(" AND c.`kind` = ");
        select.bind(Param::Str(kind.id()));
    }
    select.push(" WHERE m.`id` = 1 ORDER BY c.`revision` LIMIT ");
    select.bind(Param::UInt(
        u64::try_from(limit)
            .unwrap_or(u64::MAX)
            .min(i64::MAX as u64),
    ));
    let rows = select.query().fetch_all(&mut *tx).await.map_err(fail)?;
    let mut records = Vec::with_capacity(rows.len());
    for row in rows {
        let min: Option<u64> = row.try_get(4).map_err(fail)?;
        let current: u64 = row.try_get(5).map_err(fail)?;
        // Records at or below the floor may still be in the table (see `Trim`): expired all the
        // same, and a lean one may no longer find its object.
        let oldest = min
            .unwrap_or(current + 1)
            .max(floor(current, store.options.history) + 1);
        if since.saturating_add(1) < oldest {
            return Err(StoreError::Expired {
                requested: since,
                oldest,
            });
        }
        let Some(revision) = row.try_get::<Option<u64>, _>(0).map_err(fail)? else {
            continue;
        };
        let kind = required_text(&row, 1).map_err(fail)?;
        let code: u8 = row.try_get(2).map_err(fail)?;
        let text = sql::text(&row, 3).map_err(fail)?;
        let change = change_type(code).ok_or_else(|| StoreError::Unavailable {
            message: format!("change {revision} has an unknown type {code}"),
            source: None,
        })?;
        let object = text.map(|t| decode_change(&t)).transpose()?;
        records.push((revision, kind, change, object));
    }
    let mut lean: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (revision, kind, _, object) in &records {
        if object.is_none() {
            lean.entry(kind.as_str()).or_default().push(*revision);
        }
    }
    let mut from_rows = HashMap::new();
    for (kind, revisions) in lean {
        from_rows.extend(read_rows(&mut tx, store, kind, &revisions).await?);
    }
    drop(tx);
    records
        .into_iter()
        .map(|(revision, kind, change, object)| {
            let object = match object {
                Some(object) => object,
                None => from_rows
                    .remove(&revision)
                    .ok_or_else(|| lost(revision, &kind))?,
            };
            Ok(Change {
                revision,
                kind,
                change,
                object,
            })
        })
        .collect()
}

fn lost(revision: u64, kind: &str) -> StoreError {
    StoreError::Unavailable {
        message: format!(
            "change {revision} of {kind} has no object and its row no longer holds it"
        ),
        source: None,
    }
}

/// The objects of lean records of `kind`, by revision, from the kind's rows.
async fn read_rows(
    tx: &mut Transaction<'_, MySql>,
    store: &MysqlStore,
    kind: &str,
    revisions: &[u64],
) -> Result<HashMap<u64, MirrorObject>, StoreError> {
    let Some(spec) = table_spec(store, kind).await? else {
        return Err(lost(revisions[0], kind));
    };
    let fail = |e| store.error(None, "cannot read the change feed", e);
    let mut objects = HashMap::with_capacity(revisions.len());
    for chunk in revisions.chunks(CHUNK) {
        let mut select = Statement::default();
        select.push(&format!(
            "SELECT {}, `feed_revision` FROM {} WHERE `feed_revision` IN (",
            select_list(&spec),
            ident(&spec.table_name())
        ));
        push_list(&mut select, chunk);
        for row in select.query().fetch_all(&mut **tx).await.map_err(fail)? {
            let (_, object) = encode::decode(&spec, &row)?;
            let revision: u64 = row
                .try_get(SELECT_BASE_LEN + spec.columns.len())
                .map_err(fail)?;
            objects.insert(revision, object);
        }
    }
    Ok(objects)
}
