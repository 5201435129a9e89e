//! SQL plumbing shared by the MySQL store's modules: bound parameters, identifier quoting, `LIKE`
//! escaping and the mapping of driver errors onto [`StoreError`] categories. No SQL text here is
//! ever built from request strings: those travel as [`Param`]s.

use sqlx::mysql::{MySql, MySqlArguments, MySqlDatabaseError, MySqlRow};
use sqlx::query::Query;
use sqlx::{Arguments, Row};

use crate::store::StoreError;

/// One bound value of a statement.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Param {
    Str(String),
    Int(i64),
    UInt(u64),
    Bool(bool),
    Null,
}

/// A statement and its parameters, in placeholder order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Statement {
    pub sql: String,
    pub params: Vec<Param>,
}

impl Statement {
    pub fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    /// Appends `?` bound to `param`.
    pub fn bind(&mut self, param: Param) {
        self.sql.push('?');
        self.params.push(param);
    }

    /// Appends `other`'s text and parameters.
    pub fn append(&mut self, other: &Statement) {
        self.sql.push_str(&other.sql);
        self.params.extend(other.params.iter().cloned());
    }

    pub fn query(&self) -> Query<'_, MySql, MySqlArguments> {
        self.params.iter().fold(sqlx::query(&self.sql), bind)
    }
}

/// `query` with `param` bound to its next placeholder.
pub(super) fn bind<'q>(
    query: Query<'q, MySql, MySqlArguments>,
    param: &'q Param,
) -> Query<'q, MySql, MySqlArguments> {
    match param {
        Param::Str(s) => query.bind(s.as_str()),
        Param::Int(i) => query.bind(*i),
        Param::UInt(u) => query.bind(*u),
        Param::Bool(b) => query.bind(*b),
        Param::Null => query.bind(None::<String>),
    }
}

/// Appends `param` to `args` (what [`bind`] does, for arguments built apart from their query).
pub(super) fn add(args: &mut MySqlArguments, param: &Param) -> Result<(), sqlx::Error> {
    match param {
        Param::Str(s) => args.add(s.as_str()),
        Param::Int(i) => args.add(*i),
        Param::UInt(u) => args.add(*u),
        Param::Bool(b) => args.add(*b),
        Param::Null => args.add(None::<String>),
    }
    .map_err(sqlx::Error::Encode)
}

/// The arguments of `params`, in order.
pub(super) fn arguments(params: &[Param]) -> Result<MySqlArguments, sqlx::Error> {
    let mut args = MySqlArguments::default();
    for param in params {
        add(&mut args, param)?;
    }
    Ok(args)
}

/// A text column of a row. Columns with a binary collation (`utf8mb4_bin`, which every table
/// uses) reach the driver flagged as binary, so they are read as bytes and checked as UTF-8.
pub(super) fn text(row: &MySqlRow, index: usize) -> Result<Option<String>, sqlx::Error> {
    let bytes: Option<Vec<u8>> = row.try_get(index)?;
    bytes
        .map(|bytes| String::from_utf8(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}

/// A text column that is never `NULL`.
pub(super) fn required_text(row: &MySqlRow, index: usize) -> Result<String, sqlx::Error> {
    text(row, index)?.ok_or_else(|| sqlx::Error::ColumnDecode {
        index: index.to_string(),
        source: "unexpected NULL".into(),
    })
}

/// `name` as a quoted identifier: backticks around, inner backticks doubled.
pub(super) fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The escape character of every `LIKE` the store issues (`ESCAPE '!'`); not a backslash, so
/// the pattern means the same whatever `NO_BACKSLASH_ESCAPES` says.
pub(super) const LIKE_ESCAPE: char = '!';

/// A `LIKE` pattern matching `needle` anywhere, with `%`, `_` and the escape taken literally.
pub(super) fn contains_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | LIKE_ESCAPE) {
            pattern.push(LIKE_ESCAPE);
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Server error numbers the store tells apart.
pub(super) mod code {
    pub const NO_SUCH_TABLE: u16 = 1146;
    pub const BAD_DB: u16 = 1049;
    pub const ACCESS_DENIED: u16 = 1045;
    pub const DUP_ENTRY: u16 = 1062;
}

/// The server's error number, when the failure is a server error.
pub(super) fn error_number(error: &sqlx::Error) -> Option<u16> {
    error
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<MySqlDatabaseError>())
        .map(MySqlDatabaseError::number)
}

/// Maps a driver error: a missing table means the store lost the kind; everything else is
/// reported as unavailable (retried, counted by the breaker) with a message saying what failed.
pub(super) fn store_error(
    kind: Option<&str>,
    what: &str,
    database: &str,
    error: sqlx::Error,
) -> StoreError {
    let message = match error_number(&error) {
        Some(code::NO_SUCH_TABLE) if kind.is_some() => {
            return StoreError::UnknownKind(kind.unwrap_or_default().to_owned());
        }
        Some(code::BAD_DB) => format!(
            "{what}: database `{database}` does not exist; create it (CREATE DATABASE `{database}`), \
             Stowage creates only the tables"
        ),
        Some(code::ACCESS_DENIED) => format!("{what}: access denied: {error}"),
        _ => format!("{what}: {error}"),
    };
    StoreError::Unavailable {
        message,
        source: Some(Box::new(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("k8s_core_v1_pod"), "`k8s_core_v1_pod`");
        assert_eq!(ident("a`b"), "`a``b`");
    }

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(contains_pattern("web"), "%web%");
        assert_eq!(contains_pattern("100%"), "%100!%%");
        assert_eq!(contains_pattern("a_b!"), "%a!_b!!%");
        assert_eq!(contains_pattern("back\\slash"), "%back\\slash%");
        assert_eq!(contains_pattern(""), "%%");
    }

    #[test]
    fn statements_keep_params_in_placeholder_order() {
        let mut statement = Statement::default();
        statement.push("SELECT 1 WHERE a = ");
        statement.bind(Param::Int(1));
        statement.push(" AND b = ");
        statement.bind(Param::Str("x".into()));
        assert_eq!(statement.sql, "SELECT 1 WHERE a = ? AND b = ?");
        assert_eq!(statement.params, [Param::Int(1), Param::Str("x".into())]);
    }
}
