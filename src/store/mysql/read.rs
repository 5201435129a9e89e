//! Reads: single objects, lists (page and count, see `query`; the REST path gets the stored JSON
//! as it is), counts, groups and sums.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::Value;
use sqlx::Row;
use sqlx::mysql::{MySql, MySqlConnection, MySqlRow};
use sqlx::pool::PoolConnection;

use super::MysqlStore;
use super::encode::{self, string_form};
use super::query::{self, column, select_list};
use super::sql::{Param, Statement, ident};
use crate::mirror::kind::{ColumnType, KindSpec};
use crate::store::{
    Cursor, GroupBy, JsonPage, ListPage, ListQuery, MirrorObject, Revision, SortField, StoreError,
};

async fn one(
    store: &MysqlStore,
    kind: &KindSpec,
    filter: &str,
    params: Vec<Param>,
) -> Result<Option<MirrorObject>, StoreError> {
    let table = store.table(kind)?;
    let statement = Statement {
        sql: format!(
            "SELECT {} FROM {} WHERE `deleted_at` IS NULL AND {filter}",
            select_list(&table.spec),
            ident(&table.name)
        ),
        params,
    };
    let row = statement
        .query()
        .fetch_optional(&store.pool)
        .await
        .map_err(|e| store.error(Some(kind), "cannot read an object", e))?;
    row.map(|row| encode::decode(&table.spec, &row).map(|(_, object)| object))
        .transpose()
}

pub(super) async fn get(
    store: &MysqlStore,
    kind: &KindSpec,
    namespace: &str,
    name: &str,
) -> Result<Option<MirrorObject>, StoreError> {
    let params = vec![
        Param::Str(namespace.to_owned()),
        Param::Str(name.to_owned()),
    ];
    one(store, kind, "`namespace` = ? AND `name` = ?", params).await
}

pub(super) async fn get_by_uid(
    store: &MysqlStore,
    kind: &KindSpec,
    uid: &str,
) -> Result<Option<MirrorObject>, StoreError> {
    one(store, kind, "`uid` = ?", vec![Param::Str(uid.to_owned())]).await
}

pub(super) async fn list(
    store: &MysqlStore,
    kind: &KindSpec,
    query: &ListQuery,
) -> Result<ListPage, StoreError> {
    let table = store.table(kind)?;
    let statements = query::list(&table.spec, query)?;
    let mut conn = acquire(store, kind).await?;
    let (rows, total) = page_and_total(store, kind, query, &statements, &mut conn).await?;
    let more = rows.len() > query.limit;
    let mut items = Vec::with_capacity(rows.len().min(query.limit));
    for row in rows.iter().take(query.limit) {
        items.push(encode::decode(&table.spec, row)?.1);
    }
    let next = if more {
        items.last().map(|last| cursor_of(&table.spec, query, last))
    } else {
        None
    };
    Ok(ListPage { items, total, next })
}

/// One pooled connection for the statements of a list (each acquisition and release of a
/// pooled connection is a round trip of its own).
async fn acquire(store: &MysqlStore, kind: &KindSpec) -> Result<PoolConnection<MySql>, StoreError> {
    store
        .pool
        .acquire()
        .await
        .map_err(|e| store.error(Some(kind), "cannot list", e))
}

/// The page's rows (up to `limit + 1`) and the total. The page comes first: when it is the
/// first page (or an offset page that is not past the end) and not full, it holds every
/// match, so the count statement, which would filter the same rows again, is skipped.
async fn page_and_total(
    store: &MysqlStore,
    kind: &KindSpec,
    query: &ListQuery,
    statements: &query::ListStatements,
    conn: &mut MySqlConnection,
) -> Result<(Vec<MySqlRow>, usize), StoreError> {
    let fail = |e| store.error(Some(kind), "cannot list", e);
    let rows = match &statements.page {
        Some(page) => page.query().fetch_all(&mut *conn).await.map_err(fail)?,
        None => Vec::new(),
    };
    let complete = statements.page.is_some()
        && query.after.is_none()
        && rows.len() <= query.limit
        && (!rows.is_empty() || query.offset == 0);
    if complete {
        let total = query.offset + rows.len();
        return Ok((rows, total));
    }
    // Prepared afresh each time: MariaDB 10.11 re-executing a kept prepared count after the
    // page statement read the same table on that connection no longer reads the list index
    // alone (the plan turns from `Using index` to `Using index condition`), so the count of
    // 1 000 matches read 1 000 rows (3 000 pages) instead of 6 pages, from disk once the
    // rows outgrow the buffer pool (docs/benchmarks.md, MySQL store).
    let total: i64 = statements
        .count
        .query()
        .persistent(false)
        .fetch_one(&mut *conn)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(fail)?;
    Ok((rows, usize::try_from(total).unwrap_or(0)))
}

/// [`list`] answered with the stored object JSON as it is, without decoding it: only the key,
/// the object and the sort value are selected.
pub(super) async fn list_json(
    store: &MysqlStore,
    kind: &KindSpec,
    query: &ListQuery,
) -> Result<JsonPage, StoreError> {
    let mut conn = acquire(store, kind).await?;
    list_json_on(store, kind, query, &mut conn).await
}

/// The revision, then [`list_json`], on one connection.
pub(super) async fn revision_and_list_json(
    store: &MysqlStore,
    kind: &KindSpec,
    query: &ListQuery,
) -> Result<(Revision, JsonPage), StoreError> {
    store.limits().await?;
    let mut conn = acquire(store, kind).await?;
    let revision = sqlx::query_scalar(REVISION)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| store.error(None, "cannot read the revision", e))?;
    let page = list_json_on(store, kind, query, &mut conn).await?;
    Ok((revision, page))
}

async fn list_json_on(
    store: &MysqlStore,
    kind: &KindSpec,
    query: &ListQuery,
    conn: &mut MySqlConnection,
) -> Result<JsonPage, StoreError> {
    let table = store.table(kind)?;
    let select = query::json_select_list(&table.spec, &query.sort.field)?;
    let statements = query::list_of(&table.spec, query, &select)?;
    let (rows, total) = page_and_total(store, kind, query, &statements, conn).await?;
    let more = rows.len() > query.limit;
    let mut items = Vec::with_capacity(rows.len().min(query.limit));
    for row in rows.iter().take(query.limit) {
        items.push(Bytes::from(encode::object_bytes(row, 2)?));
    }
    let next = match rows.get(query.limit.wrapping_sub(1)) {
        Some(last) if more => Some(
            json_cursor(&table.spec, query, last)
                .map_err(|e| store.error(Some(kind), "cannot list", e))?,
        ),
        _ => None,
    };
    Ok(JsonPage { items, total, next })
}

/// The cursor of a row selected by [`query::json_select_list`].
fn json_cursor(spec: &KindSpec, query: &ListQuery, row: &MySqlRow) -> Result<Cursor, sqlx::Error> {
    let value = match &query.sort.field {
        SortField::Name => Value::Null,
        SortField::CreatedAt => super::sql::text(row, 3)?.map_or(Value::Null, Value::String),
        SortField::Column(name) => match spec.column(name) {
            Some(column) => encode::column_value(row, 3, column.column_type)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            None => Value::Null,
        },
    };
    Ok(Cursor {
        value,
        namespace: super::sql::required_text(row, 0)?,
        name: super::sql::required_text(row, 1)?,
    })
}

/// The keyset cursor after `object` in the query's sort order.
fn cursor_of(spec: &KindSpec, query: &ListQuery, object: &MirrorObject) -> Cursor {
    let value = match &query.sort.field {
        SortField::Name => Value::Null,
        SortField::CreatedAt => object.created_at.clone().map_or(Value::Null, Value::String),
        SortField::Column(name) => spec
            .column(name)
            .and_then(|c| object.columns.get(&c.name))
            .cloned()
            .unwrap_or(Value::Null),
    };
    Cursor {
        value,
        namespace: object.namespace.clone(),
        name: object.name.clone(),
    }
}

pub(super) async fn count(store: &MysqlStore, kind: &KindSpec) -> Result<usize, StoreError> {
    let table = store.table(kind)?;
    let count: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {} WHERE `deleted_at` IS NULL",
        ident(&table.name)
    ))
    .fetch_one(&store.pool)
    .await
    .map_err(|e| store.error(Some(kind), "cannot count", e))?;
    Ok(usize::try_from(count).unwrap_or(0))
}

pub(super) async fn group_count(
    store: &MysqlStore,
    kind: &KindSpec,
    by: &GroupBy,
) -> Result<BTreeMap<String, usize>, StoreError> {
    let table = store.table(kind)?;
    let (expression, column_type) = match by {
        GroupBy::Namespace => ("`namespace`".to_owned(), ColumnType::String),
        GroupBy::Column(name) => {
            let column = column(&table.spec, name)?;
            // Typed values come back as text; booleans as 0/1.
            (ident(&column.name), column.column_type)
        }
    };
    let rows = sqlx::query(&format!(
        "SELECT CAST({expression} AS CHAR), COUNT(*) FROM {} WHERE `deleted_at` IS NULL \
         GROUP BY {expression}",
        ident(&table.name)
    ))
    .fetch_all(&store.pool)
    .await
    .map_err(|e| store.error(Some(kind), "cannot count groups", e))?;
    let mut counts = BTreeMap::new();
    for row in rows {
        let fail = |e| store.error(Some(kind), "cannot read a group", e);
        let text = super::sql::text(&row, 0).map_err(fail)?;
        let n: i64 = row.try_get(1).map_err(fail)?;
        let group = match (column_type, text) {
            (_, None) => String::new(),
            (ColumnType::Boolean, Some(t)) => (t != "0").to_string(),
            (ColumnType::Json, Some(t)) => serde_json::from_str::<Value>(&t)
                .ok()
                .and_then(|v| string_form(&v))
                .unwrap_or_default(),
            (_, Some(t)) => t,
        };
        *counts.entry(group).or_insert(0) += usize::try_from(n).unwrap_or(0);
    }
    Ok(counts)
}

pub(super) async fn column_sums(
    store: &MysqlStore,
    kind: &KindSpec,
    columns: &[String],
) -> Result<BTreeMap<String, i64>, StoreError> {
    let table = store.table(kind)?;
    let mut sums = Vec::new();
    for name in columns {
        let column = column(&table.spec, name)?;
        // Only integer columns hold numbers; others sum to 0 as missing values do.
        sums.push(match column.column_type {
            ColumnType::Integer => format!("CAST(COALESCE(SUM({}), 0) AS SIGNED)", ident(name)),
            _ => "0".to_owned(),
        });
    }
    if columns.is_empty() {
        return Ok(BTreeMap::new());
    }
    let row = sqlx::query(&format!(
        "SELECT {} FROM {} WHERE `deleted_at` IS NULL",
        sums.join(", "),
        ident(&table.name)
    ))
    .fetch_one(&store.pool)
    .await
    .map_err(|e| store.error(Some(kind), "cannot sum columns", e))?;
    let mut result = BTreeMap::new();
    for (i, name) in columns.iter().enumerate() {
        let sum: i64 = row
            .try_get(i)
            .map_err(|e| store.error(Some(kind), "cannot read a sum", e))?;
        result.insert(name.clone(), sum);
    }
    Ok(result)
}

const REVISION: &str = "SELECT `revision` FROM `stowage_meta` WHERE `id` = 1";

pub(super) async fn revision(store: &MysqlStore) -> Result<Revision, StoreError> {
    store.limits().await?;
    sqlx::query_scalar(REVISION)
        .fetch_one(&store.pool)
        .await
        .map_err(|e| store.error(None, "cannot read the revision", e))
}
