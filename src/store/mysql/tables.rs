//! Tables over time: the store's own tables at start, a kind's table created or migrated on
//! `register` (new columns filled from the stored objects), dropped on `unregister`, and the
//! purge of soft-deleted rows. Lean change records are filled before their rows change shape or
//! go (see `feed`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sqlx::{MySqlPool, Row};
use tracing::{info, warn};

use super::feed;
use super::schema::{self, LiveColumn};
use super::sql::{self, Param, Statement, ident};
use super::{Limits, MysqlStore, Table};
use crate::mirror::kind::{ColumnSpec, KindSpec};
use crate::mirror::object::column_value;
use crate::mirror::path;
use crate::store::StoreError;

/// Rows filled per statement when a new column is backfilled.
const BACKFILL_CHUNK: usize = 500;

/// Creates the store's own tables and reads `max_allowed_packet`.
pub(super) async fn init(pool: &MySqlPool, database: &str) -> Result<Limits, StoreError> {
    let fail = |what: &str, e| sql::store_error(None, what, database, e);
    for ddl in schema::META_TABLES {
        sqlx::query(ddl)
            .execute(pool)
            .await
            .map_err(|e| fail("cannot prepare the store's tables", e))?;
    }
    let nullable: Option<String> = sqlx::query_scalar(
        "SELECT CAST(IS_NULLABLE AS CHAR) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = \
         DATABASE() AND TABLE_NAME = 'stowage_changes' AND COLUMN_NAME = 'object'",
    )
    .fetch_optional(pool)
    .await
    .map_err(|e| fail("cannot read the change table", e))?;
    if nullable.as_deref() == Some("NO") {
        sqlx::query(schema::NULLABLE_CHANGE_OBJECT)
            .execute(pool)
            .await
            .map_err(|e| fail("cannot migrate the change table", e))?;
    }
    let packet: u64 = sqlx::query_scalar("SELECT @@max_allowed_packet")
        .fetch_one(pool)
        .await
        .map_err(|e| fail("cannot read max_allowed_packet", e))?;
    Ok(Limits {
        statement_bytes: usize::try_from(packet / 2).unwrap_or(usize::MAX),
    })
}

fn refused(kind: &KindSpec, reason: String) -> StoreError {
    StoreError::Rejected {
        namespace: String::new(),
        name: kind.id(),
        reason,
    }
}

pub(super) async fn register(store: &MysqlStore, kind: &KindSpec) -> Result<(), StoreError> {
    schema::check(kind).map_err(|reason| refused(kind, reason))?;
    store.limits().await?;
    let fail = |what: &str, e| store.error(None, what, e);
    let name = kind.table_name();
    sqlx::query(&schema::create_table(kind))
        .execute(&store.pool)
        .await
        .map_err(|e| fail(&format!("cannot create table {name}"), e))?;
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
    )
    .bind(&name)
    .fetch_all(&store.pool)
    .await
    .map_err(|e| fail(&format!("cannot read the columns of {name}"), e))?;
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT CAST(INDEX_NAME AS CHAR) FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    )
    .bind(&name)
    .fetch_all(&store.pool)
    .await
    .map_err(|e| fail(&format!("cannot read the indexes of {name}"), e))?;
    let live: Vec<LiveColumn> = columns
        .into_iter()
        .map(|(name, data_type)| LiveColumn { name, data_type })
        .collect();
    let migration = schema::migrate(kind, &live, &indexes);
    if let Some(alter) = &migration.alter {
        // Lean records are read through the spec the table had when they were written.
        if let Some(old) = feed::table_spec(store, &kind.id()).await? {
            feed::materialize(store, &old).await?;
        }
        info!(table = %name, %alter, "migrating table");
        sqlx::query(alter)
            .execute(&store.pool)
            .await
            .map_err(|e| fail(&format!("cannot migrate table {name}"), e))?;
    }
    if !migration.backfill.is_empty() {
        backfill(store, kind, &migration.backfill).await?;
    }
    feed::save_spec(store, kind).await?;
    let table = Arc::new(Table {
        spec: kind.clone(),
        name,
        last_purge: Mutex::new(Instant::now()),
        all_new: AtomicBool::new(false),
    });
    store.tables.write().insert(kind.id(), table);
    Ok(())
}

/// Fills columns added to a live table from each row's stored object, as the pipeline would
/// have extracted them.
async fn backfill(
    store: &MysqlStore,
    kind: &KindSpec,
    columns: &[ColumnSpec],
) -> Result<(), StoreError> {
    let table = ident(&kind.table_name());
    let paths = columns
        .iter()
        .map(|c| path::parse(&c.path).map_err(|e| refused(kind, format!("column {}: {e}", c.name))))
        .collect::<Result<Vec<_>, _>>()?;
    let fail = |e| store.error(Some(kind), "cannot fill new columns", e);
    let mut after = 0_u64;
    loop {
        let rows = sqlx::query(&format!(
            "SELECT `id`, `object` FROM {table} WHERE `id` > ? ORDER BY `id` LIMIT ?"
        ))
        .bind(after)
        .bind(BACKFILL_CHUNK as u64)
        .fetch_all(&store.pool)
        .await
        .map_err(fail)?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.try_get(0).map_err(fail)?;
        let mut tx = store.pool.begin().await.map_err(fail)?;
        for row in &rows {
            let id: u64 = row.try_get(0).map_err(fail)?;
            let text = super::sql::required_text(row, 1).map_err(fail)?;
            let object: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let mut update = Statement::default();
            update.push(&format!("UPDATE {table} SET "));
            for (i, (column, path)) in columns.iter().zip(&paths).enumerate() {
                if i > 0 {
                    update.push(", ");
                }
                update.push(&format!("{} = ", ident(&column.name)));
                let value = column_value(column.column_type, path.get(&object));
                update.bind(super::encode::column_param(column.column_type, &value));
            }
            update.push(" WHERE `id` = ");
            update.bind(Param::UInt(id));
            update.query().execute(&mut *tx).await.map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
    }
}

pub(super) async fn unregister(store: &MysqlStore, kind: &KindSpec) -> Result<(), StoreError> {
    store.limits().await?;
    if let Some(old) = feed::table_spec(store, &kind.id()).await? {
        feed::materialize(store, &old).await?;
    }
    sqlx::query(&format!(
        "DROP TABLE IF EXISTS {}",
        ident(&kind.table_name())
    ))
    .execute(&store.pool)
    .await
    .map_err(|e| store.error(None, "cannot drop the kind's table", e))?;
    sqlx::query("DELETE FROM `stowage_kinds` WHERE `kind` = ?")
        .bind(kind.id())
        .execute(&store.pool)
        .await
        .map_err(|e| store.error(None, "cannot forget the kind's spec", e))?;
    store.tables.write().remove(&kind.id());
    Ok(())
}

/// How often writes look for rows to purge: a quarter of the purge age, at most every 10 min.
fn purge_every(purge_after: Duration) -> Duration {
    (purge_after / 4).min(Duration::from_secs(600))
}

/// Purges when the last purge of the table is older than [`purge_every`]. Runs after a write
/// committed, so a failure is only logged (the next due purge tries again).
pub(super) async fn purge_if_due(store: &MysqlStore, table: &Table) {
    let due = {
        let mut last = table.last_purge.lock();
        let due = last.elapsed() >= purge_every(store.options.purge_after);
        if due {
            *last = Instant::now();
        }
        due
    };
    if due && let Err(error) = purge(store, table).await {
        warn!(table = %table.name, error = %crate::report::chain(&error), "purge failed");
    }
}

/// Deletes soft-deleted rows older than the purge age, after filling the lean records they back.
pub(super) async fn purge(store: &MysqlStore, table: &Table) -> Result<u64, StoreError> {
    let age = u64::try_from(store.options.purge_after.as_micros()).unwrap_or(u64::MAX);
    let fail = |e| store.error(Some(&table.spec), "cannot purge deleted rows", e);
    let mut tx = store.pool.begin().await.map_err(fail)?;
    let revision = feed::lock_revision(&mut tx).await.map_err(fail)?;
    // One cutoff for both statements.
    let cutoff: String = sqlx::query_scalar("SELECT CAST(NOW(6) - INTERVAL ? MICROSECOND AS CHAR)")
        .bind(age)
        .fetch_one(&mut *tx)
        .await
        .map_err(fail)?;
    let mut filter = Statement::default();
    filter.push("`deleted_at` IS NOT NULL AND `deleted_at` <= ");
    filter.bind(Param::Str(cutoff));
    let floor = feed::floor(revision, store.options.history);
    feed::preserve(&mut tx, store, &table.spec, &filter, floor).await?;
    let mut delete = Statement::default();
    delete.push(&format!("DELETE FROM {} WHERE ", ident(&table.name)));
    delete.sql.push_str(&filter.sql);
    delete.params.extend(filter.params);
    let result = delete.query().execute(&mut *tx).await.map_err(fail)?;
    tx.commit().await.map_err(fail)?;
    Ok(result.rows_affected())
}
