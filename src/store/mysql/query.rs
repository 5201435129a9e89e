//! Pure building of the read statements: filters (namespace, name search, label selector, column
//! equalities), sort orders and keyset cursors, all with every value bound.
//!
//! Labels are read with JSON functions (see `docs/architecture.md` for the measurements that
//! chose them over a label side table). Rows are wide (the object, spec and status), so a list
//! with a label selector reads the list index `(namespace, name, deleted_at, labels_short)`:
//! `labels_short` is `labels` when it is at most 256 characters, else `NULL`, and the selector is
//! evaluated on it inside the index. Only rows whose labels are long, or that the page returns,
//! are read from the table; a count reads no rows at all unless some labels are long.

use serde_json::Value;
use stowage_emulator::selectors::{LabelOp, LabelSelector};

use super::encode::SELECT_BASE;
use super::schema::LIST_INDEX;
use super::sql::{LIKE_ESCAPE, Param, Statement, contains_pattern, ident};
use crate::mirror::kind::{ColumnSpec, ColumnType, KindSpec};
use crate::store::{Cursor, ListQuery, SortField, StoreError};

/// The select list for a kind: the base columns, then its typed columns in spec order.
pub(super) fn select_list(spec: &KindSpec) -> String {
    let mut list = SELECT_BASE.to_owned();
    for column in &spec.columns {
        list.push_str(", ");
        list.push_str(&ident(&column.name));
    }
    list
}

pub(super) fn column<'s>(spec: &'s KindSpec, name: &str) -> Result<&'s ColumnSpec, StoreError> {
    spec.column(name).ok_or_else(|| StoreError::UnknownColumn {
        kind: spec.id(),
        column: name.to_owned(),
    })
}

/// The page and count statements of a list.
#[derive(Debug)]
pub(super) struct ListStatements {
    /// `None` when the page is empty by construction (`limit` 0).
    pub page: Option<Statement>,
    pub count: Statement,
}

/// Builds a list: `WHERE` shared by page and count (the count ignores the cursor), the page
/// ordered by `(sort value, namespace, name)` and cut by the cursor or the offset.
pub(super) fn list(spec: &KindSpec, query: &ListQuery) -> Result<ListStatements, StoreError> {
    list_of(spec, query, &select_list(spec))
}

/// The select list of a page of stored JSON: `namespace`, `name`, `object`, then the sort value
/// (for the cursor) when the order is not by name.
pub(super) fn json_select_list(spec: &KindSpec, field: &SortField) -> Result<String, StoreError> {
    let mut list = "`namespace`, `name`, `object`".to_owned();
    if let Some((sort, _)) = sort_column(spec, field)? {
        list.push_str(", ");
        list.push_str(&sort);
    }
    Ok(list)
}

/// [`list`] with the page selecting `select`.
pub(super) fn list_of(
    spec: &KindSpec,
    query: &ListQuery,
    select: &str,
) -> Result<ListStatements, StoreError> {
    let table = ident(&spec.table_name());
    let mut filters = Statement::default();
    filters.push(" WHERE `deleted_at` IS NULL");
    if let Some(namespace) = &query.namespace {
        filters.push(" AND `namespace` = ");
        filters.bind(Param::Str(namespace.clone()));
        // In the column's collation (the driver binds `utf8mb4_unicode_ci`): otherwise the
        // namespace is no constant to the optimizer, and a page in `(namespace, name)` order is
        // sorted (every match read from the table) instead of read in index order.
        filters.push(" COLLATE utf8mb4_bin");
    }
    // The search and column filters; with a selector they follow its index part, which is
    // usually the cheaper test to fail (see `label_needle`).
    let mut rest = Statement::default();
    if let Some(search) = query.search.as_deref().filter(|s| !s.is_empty()) {
        rest.push(" AND LOWER(`name`) LIKE ");
        rest.bind(Param::Str(contains_pattern(&search.to_lowercase())));
        rest.push(&format!(" ESCAPE '{LIKE_ESCAPE}'"));
    }
    for (name, want) in &query.columns {
        column_filter(&mut rest, column(spec, name)?, want);
    }
    let (table, count) = match &query.labels {
        None => {
            filters.append(&rest);
            let count = Statement {
                sql: format!("SELECT COUNT(*) FROM {table}{}", filters.sql),
                params: filters.params.clone(),
            };
            (table, count)
        }
        Some(selector) => {
            // The list index narrows by namespace and keeps the name order; a column filter or
            // another sort order may be better served by an index of its own.
            let by_name = matches!(query.sort.field, SortField::Name);
            let table = if query.columns.is_empty() && (query.namespace.is_some() || by_name) {
                format!("{table} FORCE INDEX ({})", ident(LIST_INDEX))
            } else {
                table
            };
            let mut short = Statement::default();
            labels(&mut short, selector, "`labels_short`");
            let mut full = Statement::default();
            labels(&mut full, selector, "`labels`");
            // Short labels counted in the index alone, long ones from the rows.
            let mut count = Statement::default();
            count.push(&format!("SELECT CAST((SELECT COUNT(*) FROM {table}"));
            count.append(&filters);
            count.push(" AND `labels_short` IS NOT NULL");
            count.append(&short);
            count.append(&rest);
            count.push(&format!(") + (SELECT COUNT(*) FROM {table}"));
            count.append(&filters);
            count.push(" AND `labels_short` IS NULL");
            count.append(&rest);
            count.append(&full);
            count.push(") AS SIGNED)");
            // The page filters in the index first (rows with long labels pass), then checks
            // the rows it reads.
            filters.push(" AND (`labels_short` IS NULL OR (TRUE");
            filters.append(&short);
            filters.push("))");
            filters.append(&rest);
            filters.append(&full);
            (table, count)
        }
    };
    let sort = sort_column(spec, &query.sort.field)?;
    if query.limit == 0 {
        return Ok(ListStatements { page: None, count });
    }
    let mut page = Statement {
        sql: format!("SELECT {select} FROM {table}{}", filters.sql),
        params: filters.params,
    };
    if let Some(cursor) = &query.after {
        page.push(" AND ");
        after_cursor(&mut page, sort.as_ref(), cursor, query.sort.descending);
    }
    let direction = if query.sort.descending { " DESC" } else { "" };
    page.push(" ORDER BY ");
    if let Some((sort, _)) = &sort {
        page.push(&format!("{sort}{direction}, "));
    }
    page.push(&format!("`namespace`{direction}, `name`{direction} LIMIT "));
    // One more than the page, to know whether another follows.
    page.bind(Param::UInt(query.limit.saturating_add(1) as u64));
    if query.after.is_none() && query.offset > 0 {
        page.push(" OFFSET ");
        page.bind(Param::UInt(query.offset as u64));
    }
    Ok(ListStatements {
        page: Some(page),
        count,
    })
}

/// The quoted sort column and its type, `None` for the default `(namespace, name)` order.
fn sort_column(
    spec: &KindSpec,
    field: &SortField,
) -> Result<Option<(String, Option<ColumnType>)>, StoreError> {
    Ok(match field {
        SortField::Name => None,
        SortField::CreatedAt => Some(("`created_at`".to_owned(), None)),
        SortField::Column(name) => {
            let column = column(spec, name)?;
            Some((ident(&column.name), Some(column.column_type)))
        }
    })
}

/// Rows strictly after the cursor in `(value, namespace, name)` order. SQL `NULL`s sort first
/// ascending and last descending, so descending is the exact reverse.
fn after_cursor(
    statement: &mut Statement,
    sort: Option<&(String, Option<ColumnType>)>,
    cursor: &Cursor,
    descending: bool,
) {
    let op = if descending { "<" } else { ">" };
    let key_after = |statement: &mut Statement| {
        statement.push(&format!("(`namespace` {op} "));
        statement.bind(Param::Str(cursor.namespace.clone()));
        statement.push(" OR (`namespace` = ");
        statement.bind(Param::Str(cursor.namespace.clone()));
        statement.push(&format!(" AND `name` {op} "));
        statement.bind(Param::Str(cursor.name.clone()));
        statement.push("))");
    };
    let Some((column, column_type)) = sort else {
        key_after(statement);
        return;
    };
    let value = cursor_param(*column_type, &cursor.value);
    match (value, descending) {
        (Param::Null, false) => {
            statement.push(&format!("({column} IS NOT NULL OR ({column} IS NULL AND "));
            key_after(statement);
            statement.push("))");
        }
        (Param::Null, true) => {
            statement.push(&format!("({column} IS NULL AND "));
            key_after(statement);
            statement.push(")");
        }
        (value, descending) => {
            statement.push(&format!("({column} {op} "));
            statement.bind(value.clone());
            if descending {
                statement.push(&format!(" OR {column} IS NULL"));
            }
            statement.push(&format!(" OR ({column} = "));
            statement.bind(value);
            statement.push(" AND ");
            key_after(statement);
            statement.push("))");
        }
    }
}

/// A cursor's sort value as bound against its column (`None` type: `created_at` text).
fn cursor_param(column_type: Option<ColumnType>, value: &Value) -> Param {
    match (column_type, value) {
        (_, Value::Null) => Param::Null,
        (Some(ColumnType::Json), other) => Param::Str(other.to_string()),
        (_, Value::String(s)) => Param::Str(s.clone()),
        (_, Value::Bool(b)) => Param::Bool(*b),
        (_, Value::Number(n)) => n
            .as_i64()
            .map_or_else(|| Param::Str(n.to_string()), Param::Int),
        (_, other) => Param::Str(other.to_string()),
    }
}

/// A column equality on string forms: a value that no stored value of the column's type prints
/// as (`"03"` for an integer, `"yes"` for a boolean) matches nothing; `NULL` never matches.
fn column_filter(statement: &mut Statement, column: &ColumnSpec, want: &str) {
    let name = ident(&column.name);
    let param = match column.column_type {
        ColumnType::String => Some(Param::Str(want.to_owned())),
        ColumnType::Integer => want
            .parse::<i64>()
            .ok()
            .filter(|n| n.to_string() == want)
            .map(Param::Int),
        ColumnType::Boolean => match want {
            "true" => Some(Param::Bool(true)),
            "false" => Some(Param::Bool(false)),
            _ => None,
        },
        ColumnType::Json => {
            // A JSON string's string form is its text unquoted; anything else prints as stored.
            statement.push(&format!(" AND ({name} = "));
            statement.bind(Param::Str(want.to_owned()));
            statement.push(&format!(" OR {name} = "));
            statement.bind(Param::Str(Value::String(want.to_owned()).to_string()));
            statement.push(")");
            return;
        }
    };
    match param {
        Some(param) => {
            statement.push(&format!(" AND {name} = "));
            statement.bind(param);
        }
        None => statement.push(" AND FALSE"),
    }
}

/// The JSON path of a label: `$."key"` (label keys cannot hold quotes or backslashes; a key that
/// did would match nothing rather than change the path).
fn label_path(key: &str) -> Option<String> {
    (!key.contains(['"', '\\'])).then(|| format!("$.\"{key}\""))
}

/// What the JSON text of labels holding the value `want` must contain, when that can be said
/// without decoding it: an opening quote and the value, for values of printable ASCII without
/// `"` or `\\` (which JSON writes as they are; label values always are). Trailing spaces are
/// left out: `utf8mb4_bin` pads, so `JSON_VALUE(..) = 'web'` also holds for a stored `"web  "`.
/// Testing this on the bytes costs a quarter of the `JSON_VALUE` it precedes (which parses the
/// text), and in a namespace where no object carries the value every index entry fails on it.
fn label_needle(want: &str) -> Option<String> {
    let want = want.trim_end_matches(' ');
    let plain = want
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
    plain.then(|| format!("\"{want}"))
}

/// The two ways compact JSON text of labels holds the member `key`: `want` (first, or after
/// another member), for a plain key and value (see [`label_needle`]). Finding either is enough:
/// a quote after `{` or `,` always opens a key (inside a string it would be escaped), and the
/// plain value ends at the next quote; label keys are unique. The store writes labels compactly
/// (serde_json); text written otherwise (MySQL keeps JSON as `"key": "value"`) never holds
/// these, and the `JSON_VALUE` behind them decides.
fn member_needles(key: &str, want: &str) -> Option<[String; 2]> {
    let want = label_needle(want)?;
    let key = label_needle(key).filter(|k| k.len() == key.len() + 1)?;
    Some([format!("{{{key}\":{want}\""), format!(",{key}\":{want}\"")])
}

/// `LOCATE(..) > 0`: `needle` occurs in `column`, compared as bytes.
fn contains(statement: &mut Statement, column: &str, needle: String) {
    statement.push("LOCATE(CAST(");
    statement.bind(Param::Str(needle));
    statement.push(&format!(" AS BINARY), {column}) > 0"));
}

/// Each requirement of the selector as a condition on `column` (`labels` or `labels_short`, the
/// same JSON text); like Kubernetes, a missing label satisfies `!=` and `notin`.
fn labels(statement: &mut Statement, selector: &LabelSelector, column: &str) {
    for requirement in selector.requirements() {
        let Some(path) = label_path(&requirement.key) else {
            statement.push(" AND FALSE");
            continue;
        };
        let value = |statement: &mut Statement| {
            statement.push(&format!("JSON_VALUE({column}, "));
            statement.bind(Param::Str(path.clone()));
            statement.push(")");
        };
        let list = |statement: &mut Statement, values: &[String]| {
            statement.push(" IN (");
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    statement.push(", ");
                }
                statement.bind(Param::Str(v.clone()));
            }
            statement.push(")");
        };
        statement.push(" AND ");
        match &requirement.op {
            LabelOp::Equals(want) => {
                let members = member_needles(&requirement.key, want);
                if let Some(needle) = label_needle(want) {
                    contains(statement, column, needle);
                    statement.push(" AND ");
                }
                if let Some(members) = &members {
                    statement.push("(");
                    for member in members {
                        contains(statement, column, member.clone());
                        statement.push(" OR ");
                    }
                }
                value(statement);
                statement.push(" = ");
                statement.bind(Param::Str(want.clone()));
                if members.is_some() {
                    statement.push(")");
                }
            }
            LabelOp::NotEquals(want) => {
                statement.push("NOT (");
                value(statement);
                statement.push(" <=> ");
                statement.bind(Param::Str(want.clone()));
                statement.push(")");
            }
            LabelOp::In(values) if values.is_empty() => statement.push("FALSE"),
            LabelOp::NotIn(values) if values.is_empty() => statement.push("TRUE"),
            LabelOp::In(values) => {
                if let Some(needles) = values
                    .iter()
                    .map(|v| label_needle(v))
                    .collect::<Option<Vec<_>>>()
                {
                    statement.push("(");
                    for (i, needle) in needles.into_iter().enumerate() {
                        if i > 0 {
                            statement.push(" OR ");
                        }
                        contains(statement, column, needle);
                    }
                    statement.push(") AND ");
                }
                value(statement);
                list(statement, values);
            }
            LabelOp::NotIn(values) => {
                statement.push("COALESCE(");
                value(statement);
                statement.push(" NOT");
                list(statement, values);
                statement.push(", TRUE)");
            }
            LabelOp::Exists => {
                value(statement);
                statement.push(" IS NOT NULL");
            }
            LabelOp::DoesNotExist => {
                value(statement);
                statement.push(" IS NULL");
            }
            LabelOp::GreaterThan(n) | LabelOp::LessThan(n) => {
                let op = if matches!(requirement.op, LabelOp::GreaterThan(_)) {
                    ">"
                } else {
                    "<"
                };
                statement.push("(");
                value(statement);
                statement.push(" REGEXP '^[-+]?[0-9]+$' AND CAST(");
                value(statement);
                statement.push(&format!(" AS SIGNED) {op} "));
                statement.bind(Param::Int(*n));
                statement.push(")");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::Sort;
    use crate::store::conformance::sample_kind;

    fn query() -> ListQuery {
        ListQuery {
            limit: 10,
            ..ListQuery::default()
        }
    }

    #[test]
    fn filters_are_bound_never_spliced() {
        let spec = sample_kind("Widget");
        let selector = LabelSelector::parse("app=web,tier notin (db),!canary").expect("parses");
        let hostile = "x' OR 1=1 -- %_";
        let query = ListQuery {
            namespace: Some(hostile.to_owned()),
            search: Some(hostile.to_owned()),
            labels: Some(selector),
            columns: vec![
                ("phase".into(), hostile.into()),
                ("replicas".into(), "03".into()),
            ],
            ..query()
        };
        let statements = list(&spec, &query).expect("builds");
        let count = statements.count;
        let table = "`k8s_conformance_stowage_dev_v1_widget` WHERE `deleted_at` IS NULL \
             AND `namespace` = ? COLLATE utf8mb4_bin";
        let rest = " AND LOWER(`name`) LIKE ? ESCAPE '!' AND `phase` = ? AND FALSE";
        let selector = |column: &str| {
            format!(
                " AND LOCATE(CAST(? AS BINARY), {column}) > 0 AND (LOCATE(CAST(? AS BINARY), \
                 {column}) > 0 OR LOCATE(CAST(? AS BINARY), {column}) > 0 OR \
                 JSON_VALUE({column}, ?) = ?) AND COALESCE(JSON_VALUE({column}, ?) NOT IN (?), TRUE) \
                 AND JSON_VALUE({column}, ?) IS NULL"
            )
        };
        assert_eq!(
            count.sql,
            format!(
                "SELECT CAST((SELECT COUNT(*) FROM {table} AND `labels_short` IS NOT NULL{}{rest}) \
                 + (SELECT COUNT(*) FROM {table} AND `labels_short` IS NULL{rest}{}) AS SIGNED)",
                selector("`labels_short`"),
                selector("`labels`")
            )
        );
        assert_eq!(count.params.len(), 2 * (3 + 8));
        assert!(!count.sql.contains("OR 1=1"));
        assert_eq!(count.params[1], Param::Str("\"web".into()));
        assert_eq!(count.params[2], Param::Str("{\"app\":\"web\"".into()));
        assert_eq!(count.params[3], Param::Str(",\"app\":\"web\"".into()));
        assert_eq!(count.params[4], Param::Str("$.\"app\"".into()));
        assert_eq!(count.params[9], Param::Str("%x' or 1=1 -- !%!_%".into()));
        let page = statements.page.expect("a page");
        assert!(page.sql.ends_with(" ORDER BY `namespace`, `name` LIMIT ?"));
        assert_eq!(page.params.last(), Some(&Param::UInt(11)));
        assert!(
            !page.sql.contains("FORCE INDEX"),
            "a column filter may have a better index"
        );
    }

    #[test]
    fn label_selectors_are_evaluated_in_the_list_index() {
        let spec = sample_kind("Widget");
        let query = ListQuery {
            namespace: Some("ns".into()),
            labels: Some(LabelSelector::parse("app=web").expect("parses")),
            ..query()
        };
        let statements = list(&spec, &query).expect("builds");
        let table = "`k8s_conformance_stowage_dev_v1_widget` FORCE INDEX (`ix_list`)";
        let where_ns = "WHERE `deleted_at` IS NULL AND `namespace` = ? COLLATE utf8mb4_bin";
        // The value's bytes, then the member's (either is enough), else `JSON_VALUE` decides.
        let app_web = |column: &str| {
            format!(
                " AND LOCATE(CAST(? AS BINARY), {column}) > 0 AND (LOCATE(CAST(? AS BINARY), \
                 {column}) > 0 OR LOCATE(CAST(? AS BINARY), {column}) > 0 OR \
                 JSON_VALUE({column}, ?) = ?)"
            )
        };
        assert_eq!(
            statements.count.sql,
            format!(
                "SELECT CAST((SELECT COUNT(*) FROM {table} {where_ns} AND `labels_short` IS NOT \
                 NULL{}) + (SELECT COUNT(*) FROM {table} {where_ns} AND `labels_short` IS \
                 NULL{}) AS SIGNED)",
                app_web("`labels_short`"),
                app_web("`labels`")
            )
        );
        let page = statements.page.expect("a page");
        assert_eq!(
            page.sql,
            format!(
                "SELECT {} FROM {table} {where_ns} AND (`labels_short` IS NULL OR (TRUE{})){} \
                 ORDER BY `namespace`, `name` LIMIT ?",
                select_list(&spec),
                app_web("`labels_short`"),
                app_web("`labels`")
            )
        );
        let ns = Param::Str("ns".into());
        let path = Param::Str("$.\"app\"".into());
        let web = Param::Str("web".into());
        let app_web = [
            Param::Str("\"web".into()),
            Param::Str("{\"app\":\"web\"".into()),
            Param::Str(",\"app\":\"web\"".into()),
            path,
            web,
        ];
        let mut params = vec![ns];
        params.extend(app_web.clone());
        params.extend(app_web);
        params.push(Param::UInt(11));
        assert_eq!(page.params, params);
    }

    #[test]
    fn label_needles_are_what_the_json_text_must_contain() {
        assert_eq!(label_needle("web").as_deref(), Some("\"web"));
        assert_eq!(
            label_needle("web  ").as_deref(),
            Some("\"web"),
            "the comparison pads, so `web` and `web  ` are equal"
        );
        assert_eq!(label_needle("").as_deref(), Some("\""));
        assert_eq!(label_needle("a\"b"), None, "JSON escapes the quote");
        assert_eq!(label_needle("a\\b"), None, "JSON escapes the backslash");
        assert_eq!(label_needle("tab\there"), None);
        assert_eq!(
            label_needle("ünï"),
            None,
            "only ASCII is known to be written as is"
        );
        assert_eq!(
            member_needles("app.kubernetes.io/name", "web "),
            Some([
                "{\"app.kubernetes.io/name\":\"web\"".to_owned(),
                ",\"app.kubernetes.io/name\":\"web\"".to_owned()
            ])
        );
        assert_eq!(member_needles("app ", "web"), None, "keys do not pad");
        assert_eq!(member_needles("app", "a\"b"), None);
        // `In` tests one needle per value, and none when a value has no needle.
        let mut statement = Statement::default();
        let selector = LabelSelector::parse("app in (a,b)").expect("parses");
        labels(&mut statement, &selector, "`labels`");
        assert_eq!(
            statement.sql,
            " AND (LOCATE(CAST(? AS BINARY), `labels`) > 0 OR LOCATE(CAST(? AS BINARY), \
             `labels`) > 0) AND JSON_VALUE(`labels`, ?) IN (?, ?)"
        );
        assert_eq!(
            statement.params[..2],
            [Param::Str("\"a".into()), Param::Str("\"b".into())]
        );
    }

    #[test]
    fn column_filters_compare_string_forms() {
        let spec = sample_kind("Widget");
        let sql = |name: &str, want: &str| {
            let mut statement = Statement::default();
            column_filter(&mut statement, column(&spec, name).expect("column"), want);
            (statement.sql, statement.params)
        };
        assert_eq!(
            sql("replicas", "3"),
            (" AND `replicas` = ?".into(), vec![Param::Int(3)])
        );
        assert_eq!(sql("replicas", "+3").0, " AND FALSE");
        assert_eq!(sql("ready", "false").1, [Param::Bool(false)]);
        assert_eq!(sql("ready", "1").0, " AND FALSE");
        let (json_sql, json_params) = sql("spec", "x");
        assert_eq!(json_sql, " AND (`spec` = ? OR `spec` = ?)");
        assert_eq!(
            json_params,
            [Param::Str("x".into()), Param::Str("\"x\"".into())]
        );
        let unknown = list(
            &spec,
            &ListQuery {
                columns: vec![("nope".into(), "x".into())],
                ..query()
            },
        );
        assert!(matches!(unknown, Err(StoreError::UnknownColumn { .. })));
    }

    #[test]
    fn keyset_cursors_handle_nulls_in_both_directions() {
        let spec = sample_kind("Widget");
        let page = |value: Value, descending: bool| {
            let query = ListQuery {
                sort: Sort {
                    field: SortField::Column("replicas".into()),
                    descending,
                },
                after: Some(Cursor {
                    value,
                    namespace: "ns".into(),
                    name: "a".into(),
                }),
                offset: 5,
                ..query()
            };
            list(&spec, &query).expect("builds").page.expect("page").sql
        };
        let key_gt = "(`namespace` > ? OR (`namespace` = ? AND `name` > ?))";
        let key_lt = "(`namespace` < ? OR (`namespace` = ? AND `name` < ?))";
        let null_asc = page(Value::Null, false);
        assert!(null_asc.contains(&format!(
            "(`replicas` IS NOT NULL OR (`replicas` IS NULL AND {key_gt}))"
        )));
        assert!(
            !null_asc.contains("OFFSET"),
            "the offset is ignored with a cursor"
        );
        assert!(page(Value::Null, true).contains(&format!("(`replicas` IS NULL AND {key_lt})")));
        assert!(page(json!(2), false).contains(&format!(
            "(`replicas` > ? OR (`replicas` = ? AND {key_gt}))"
        )));
        assert!(page(json!(2), true).contains(&format!(
            "(`replicas` < ? OR `replicas` IS NULL OR (`replicas` = ? AND {key_lt}))"
        )));
        assert!(
            page(json!(2), true)
                .contains("ORDER BY `replicas` DESC, `namespace` DESC, `name` DESC LIMIT ?")
        );
    }

    #[test]
    fn limit_zero_only_counts() {
        let spec = sample_kind("Widget");
        let statements = list(&spec, &ListQuery::default()).expect("builds");
        assert!(statements.page.is_none());
        let selector = LabelSelector::parse("n>3").expect("parses");
        let mut statement = Statement::default();
        labels(&mut statement, &selector, "`labels`");
        assert_eq!(
            statement.sql,
            " AND (JSON_VALUE(`labels`, ?) REGEXP '^[-+]?[0-9]+$' AND CAST(JSON_VALUE(`labels`, ?) AS SIGNED) > ?)"
        );
        assert_eq!(label_path("a\"b"), None);
    }
}
