//! Reads: single objects, lists (page and count, see `query`), counts, groups, sums and the
//! change feed.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::Row;

use super::MysqlStore;
use super::encode::{self, string_form};
use super::query::{self, column, select_list};
use super::sql::{Param, Statement, ident};
use super::write::change_type;
use crate::mirror::kind::{ColumnType, KindSpec};
use crate::store::{
    Change, Cursor, GroupBy, ListPage, ListQuery, MirrorObject, Revision, SortField, StoreError,
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
    let fail = |e| store.error(Some(kind), "cannot list", e);
    let total: i64 = statements
        .count
        .query()
        .fetch_one(&store.pool)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(fail)?;
    let mut items = Vec::new();
    if let Some(page) = &statements.page {
        for row in page.query().fetch_all(&store.pool).await.map_err(fail)? {
            items.push(encode::decode(&table.spec, &row)?.1);
        }
    }
    let more = items.len() > query.limit;
    items.truncate(query.limit);
    let next = if more {
        items.last().map(|last| cursor_of(&table.spec, query, last))
    } else {
        None
    };
    Ok(ListPage {
        items,
        total: usize::try_from(total).unwrap_or(0),
        next,
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

pub(super) async fn revision(store: &MysqlStore) -> Result<Revision, StoreError> {
    store.limits().await?;
    sqlx::query_scalar("SELECT `revision` FROM `stowage_meta` WHERE `id` = 1")
        .fetch_one(&store.pool)
        .await
        .map_err(|e| store.error(None, "cannot read the revision", e))
}

pub(super) async fn changes(
    store: &MysqlStore,
    kind: Option<&KindSpec>,
    since: Revision,
    limit: usize,
) -> Result<Vec<Change>, StoreError> {
    store.limits().await?;
    let fail = |e| store.error(None, "cannot read the change feed", e);
    // One statement, so the bounds and the changes come from the same snapshot.
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
    let rows = select.query().fetch_all(&store.pool).await.map_err(fail)?;
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        let min: Option<u64> = row.try_get(4).map_err(fail)?;
        let current: u64 = row.try_get(5).map_err(fail)?;
        let oldest = min.unwrap_or(current + 1);
        if since.saturating_add(1) < oldest {
            return Err(StoreError::Expired {
                requested: since,
                oldest,
            });
        }
        let Some(revision) = row.try_get::<Option<u64>, _>(0).map_err(fail)? else {
            continue;
        };
        let kind = super::sql::required_text(&row, 1).map_err(fail)?;
        let code: u8 = row.try_get(2).map_err(fail)?;
        let text = super::sql::required_text(&row, 3).map_err(fail)?;
        let change = change_type(code).ok_or_else(|| StoreError::Unavailable {
            message: format!("change {revision} has an unknown type {code}"),
            source: None,
        })?;
        changes.push(Change {
            revision,
            kind,
            change,
            object: encode::decode_change(&text)?,
        });
    }
    Ok(changes)
}
