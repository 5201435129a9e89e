//! The MySQL store's schema, as pure functions of a [`KindSpec`]: one table per kind
//! (`k8s_{group}_{version}_{kind}`) with the base columns every kind shares plus one typed column
//! per registry column, and the migration that brings a live table to a changed spec.

use crate::mirror::kind::{ColumnSpec, ColumnType, KindSpec};

use super::sql::ident;

/// Longest identifier MySQL accepts.
const MAX_IDENTIFIER: usize = 64;

/// Limits of the base columns (characters); an object over them is rejected, not truncated.
pub(super) const MAX_NAME: usize = 253;
pub(super) const MAX_UID: usize = 512;
pub(super) const MAX_RESOURCE_VERSION: usize = 64;
pub(super) const MAX_CREATED_AT: usize = 64;
/// String columns are `VARCHAR(768)`: the widest a utf8mb4 column can be and stay fully indexable.
pub(super) const MAX_STRING_COLUMN: usize = 768;

/// Columns every kind table has; registry columns may not reuse these names.
pub(super) const BASE_COLUMNS: [&str; 14] = [
    "id",
    "namespace",
    "name",
    "uid",
    "resource_version",
    "labels",
    "annotations",
    "created_at",
    "updated_at",
    "deleted_at",
    "seen_epoch",
    "object",
    "feed_revision",
    "labels_short",
];

/// The store's own tables: the revision counter (one row), the change feed (`object` is `NULL`
/// while the kind's row holds the change's object, see `feed`) and each kind's spec as its
/// table was last migrated to (the feed decodes rows of kinds not registered yet with it).
pub(super) const META_TABLES: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS `stowage_meta` (\
       `id` TINYINT UNSIGNED NOT NULL PRIMARY KEY, \
       `revision` BIGINT UNSIGNED NOT NULL\
     ) ENGINE=InnoDB",
    "INSERT IGNORE INTO `stowage_meta` (`id`, `revision`) VALUES (1, 0)",
    "CREATE TABLE IF NOT EXISTS `stowage_changes` (\
       `revision` BIGINT UNSIGNED NOT NULL PRIMARY KEY, \
       `kind` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
       `change_type` TINYINT UNSIGNED NOT NULL, \
       `object` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL\
     ) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS `stowage_kinds` (\
       `kind` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, \
       `spec` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL\
     ) ENGINE=InnoDB",
];

/// Change tables of earlier versions required the object.
pub(super) const NULLABLE_CHANGE_OBJECT: &str = "ALTER TABLE `stowage_changes` MODIFY `object` \
     LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL";

/// The row's last change whose record reads its object from the row (0: none).
const FEED_REVISION: &str = "`feed_revision` BIGINT UNSIGNED NOT NULL DEFAULT 0";
const FEED_REVISION_KEY: &str = "KEY `ix_feed_revision` (`feed_revision`)";

/// Soft deletes for the purge, and the live rows a relist did not see for the sweep, found
/// without reading the table. Tables of earlier versions had `ix_deleted_at` (`deleted_at`) alone.
const DELETED_KEY: &str = "KEY `ix_deleted_at_seen_epoch` (`deleted_at`, `seen_epoch`)";
const OLD_DELETED_KEY: &str = "ix_deleted_at";

/// Longest `labels` JSON (characters) copied into `labels_short`: the list index's key holds
/// namespace and name (253 utf8mb4 characters each) too, within InnoDB's 3 072 bytes.
pub(super) const MAX_SHORT_LABELS: usize = 256;
/// The list index: label selectors on rows whose labels are short are evaluated in the index,
/// without reading the (wide) rows; see `query`.
pub(super) const LIST_INDEX: &str = "ix_list";
/// `labels` again when it is short enough to be indexed, else `NULL`.
fn labels_short() -> String {
    format!(
        "`labels_short` VARCHAR({MAX_SHORT_LABELS}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin \
         AS (IF(CHAR_LENGTH(`labels`) <= {MAX_SHORT_LABELS}, `labels`, NULL)) STORED"
    )
}
fn list_key() -> String {
    format!("KEY `{LIST_INDEX}` (`namespace`, `name`, `deleted_at`, `labels_short`)")
}

/// Why a kind cannot have a table.
pub(super) fn check(spec: &KindSpec) -> Result<(), String> {
    let table = spec.table_name();
    if table.len() > MAX_IDENTIFIER {
        return Err(format!(
            "table name {table} is longer than {MAX_IDENTIFIER} characters"
        ));
    }
    for column in &spec.columns {
        if column.name.is_empty() || column.name.len() > MAX_IDENTIFIER {
            return Err(format!(
                "column name {:?} must be 1 to {MAX_IDENTIFIER} characters",
                column.name
            ));
        }
        if BASE_COLUMNS.contains(&column.name.to_lowercase().as_str()) {
            return Err(format!(
                "column name {} is one of the store's own columns ({})",
                column.name,
                BASE_COLUMNS.join(", ")
            ));
        }
    }
    Ok(())
}

/// The SQL type of a registry column.
fn sql_type(column_type: ColumnType) -> String {
    match column_type {
        ColumnType::String => format!("VARCHAR({MAX_STRING_COLUMN})"),
        ColumnType::Integer => "BIGINT".to_owned(),
        ColumnType::Boolean => "BOOLEAN".to_owned(),
        ColumnType::Json => "JSON".to_owned(),
    }
}

/// `information_schema.COLUMNS.DATA_TYPE` of a registry column as MariaDB reports it (`JSON` is
/// `longtext` with a validity check).
pub(super) fn data_type(column_type: ColumnType) -> &'static str {
    match column_type {
        ColumnType::String => "varchar",
        ColumnType::Integer => "bigint",
        ColumnType::Boolean => "tinyint",
        ColumnType::Json => "longtext",
    }
}

/// Name of the index of a registry column.
pub(super) fn index_name(column: &str) -> String {
    let mut name = format!("ix_c_{column}");
    while name.len() > MAX_IDENTIFIER {
        name.pop();
    }
    name
}

fn column_definition(column: &ColumnSpec) -> String {
    format!(
        "{} {} NULL",
        ident(&column.name),
        sql_type(column.column_type)
    )
}

/// `CREATE TABLE IF NOT EXISTS` for a kind. Names and uids compare byte-wise (`utf8mb4_bin`), as
/// Kubernetes does; `created_at` keeps the RFC 3339 text, whose order is time order.
pub(super) fn create_table(spec: &KindSpec) -> String {
    let mut parts = vec![
        "`id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT".to_owned(),
        format!("`namespace` VARCHAR({MAX_NAME}) NOT NULL"),
        format!("`name` VARCHAR({MAX_NAME}) NOT NULL"),
        format!("`uid` VARCHAR({MAX_UID}) NOT NULL"),
        format!("`resource_version` VARCHAR({MAX_RESOURCE_VERSION}) NOT NULL"),
        "`labels` JSON NOT NULL".to_owned(),
        "`annotations` JSON NOT NULL".to_owned(),
        format!("`created_at` VARCHAR({MAX_CREATED_AT}) NULL"),
        "`updated_at` DATETIME(6) NOT NULL".to_owned(),
        "`deleted_at` DATETIME(6) NULL".to_owned(),
        "`seen_epoch` BIGINT UNSIGNED NOT NULL DEFAULT 0".to_owned(),
        "`object` JSON NOT NULL".to_owned(),
        FEED_REVISION.to_owned(),
        labels_short(),
    ];
    parts.extend(spec.columns.iter().map(column_definition));
    parts.extend([
        "PRIMARY KEY (`id`)".to_owned(),
        "UNIQUE KEY `ux_uid` (`uid`)".to_owned(),
        "UNIQUE KEY `ux_namespace_name` (`namespace`, `name`)".to_owned(),
        "KEY `ix_name` (`name`)".to_owned(),
        "KEY `ix_resource_version` (`resource_version`)".to_owned(),
        "KEY `ix_created_at` (`created_at`)".to_owned(),
        DELETED_KEY.to_owned(),
        FEED_REVISION_KEY.to_owned(),
        list_key(),
    ]);
    for column in spec.columns.iter().filter(|c| c.index) {
        parts.push(format!(
            "KEY {} ({})",
            ident(&index_name(&column.name)),
            ident(&column.name)
        ));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\n  {}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        ident(&spec.table_name()),
        parts.join(",\n  ")
    )
}

/// A column of the live table (`information_schema.COLUMNS`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LiveColumn {
    pub name: String,
    pub data_type: String,
}

/// What it takes to bring a live table to the spec.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Migration {
    /// One `ALTER TABLE` (empty when the table already fits).
    pub alter: Option<String>,
    /// Registry columns that were added or retyped and must be filled from the stored objects.
    pub backfill: Vec<ColumnSpec>,
}

/// The migration from the live `columns` and index names to `spec`: new columns are added, retyped
/// ones dropped and added again (their values are recomputed from the stored objects), removed
/// ones dropped, and indexes follow each column's `index` flag. Base columns are never touched.
pub(super) fn migrate(spec: &KindSpec, columns: &[LiveColumn], indexes: &[String]) -> Migration {
    let mut clauses = Vec::new();
    let mut backfill = Vec::new();
    let live = |name: &str| columns.iter().find(|c| c.name.eq_ignore_ascii_case(name));
    // Tables of earlier versions lack the base columns added since.
    if live("feed_revision").is_none() {
        clauses.push(format!("ADD COLUMN {FEED_REVISION}"));
        clauses.push(format!("ADD {FEED_REVISION_KEY}"));
    }
    if indexes
        .iter()
        .any(|i| i.eq_ignore_ascii_case(OLD_DELETED_KEY))
    {
        clauses.push(format!("DROP KEY {}", ident(OLD_DELETED_KEY)));
        clauses.push(format!("ADD {DELETED_KEY}"));
    }
    if live("labels_short").is_none() {
        clauses.push(format!("ADD COLUMN {}", labels_short()));
        clauses.push(format!("ADD {}", list_key()));
    }
    for column in &spec.columns {
        let index = index_name(&column.name);
        let has_index = indexes.iter().any(|i| i.eq_ignore_ascii_case(&index));
        match live(&column.name) {
            Some(existing)
                if existing
                    .data_type
                    .eq_ignore_ascii_case(data_type(column.column_type)) =>
            {
                if column.index && !has_index {
                    clauses.push(format!(
                        "ADD KEY {} ({})",
                        ident(&index),
                        ident(&column.name)
                    ));
                } else if !column.index && has_index {
                    clauses.push(format!("DROP KEY {}", ident(&index)));
                }
                continue;
            }
            Some(_) => clauses.push(format!("DROP COLUMN {}", ident(&column.name))),
            None => {}
        }
        // Dropping a column drops its index too.
        if has_index && live(&column.name).is_none() {
            clauses.push(format!("DROP KEY {}", ident(&index)));
        }
        clauses.push(format!("ADD COLUMN {}", column_definition(column)));
        if column.index {
            clauses.push(format!(
                "ADD KEY {} ({})",
                ident(&index),
                ident(&column.name)
            ));
        }
        backfill.push(column.clone());
    }
    for existing in columns {
        let base = BASE_COLUMNS.contains(&existing.name.to_lowercase().as_str());
        let wanted = spec
            .columns
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(&existing.name));
        if !base && !wanted {
            clauses.push(format!("DROP COLUMN {}", ident(&existing.name)));
        }
    }
    Migration {
        alter: (!clauses.is_empty()).then(|| {
            format!(
                "ALTER TABLE {} {}",
                ident(&spec.table_name()),
                clauses.join(", ")
            )
        }),
        backfill,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::sample_kind;

    fn live(spec: &KindSpec) -> Vec<LiveColumn> {
        BASE_COLUMNS
            .iter()
            .map(|name| LiveColumn {
                name: (*name).to_owned(),
                data_type: "whatever".to_owned(),
            })
            .chain(spec.columns.iter().map(|c| LiveColumn {
                name: c.name.clone(),
                data_type: data_type(c.column_type).to_owned(),
            }))
            .collect()
    }

    #[test]
    fn create_table_has_base_and_typed_columns_and_indexes() {
        let spec = sample_kind("Widget");
        let ddl = create_table(&spec);
        assert!(
            ddl.starts_with("CREATE TABLE IF NOT EXISTS `k8s_conformance_stowage_dev_v1_widget` (")
        );
        for part in [
            "`uid` VARCHAR(512) NOT NULL",
            "`labels` JSON NOT NULL",
            "`deleted_at` DATETIME(6) NULL",
            "`phase` VARCHAR(768) NULL",
            "`replicas` BIGINT NULL",
            "`ready` BOOLEAN NULL",
            "`spec` JSON NULL",
            "UNIQUE KEY `ux_uid` (`uid`)",
            "UNIQUE KEY `ux_namespace_name` (`namespace`, `name`)",
            "KEY `ix_deleted_at_seen_epoch` (`deleted_at`, `seen_epoch`)",
            "KEY `ix_c_phase` (`phase`)",
        ] {
            assert!(ddl.contains(part), "{part} missing from {ddl}");
        }
        assert!(!ddl.contains("ix_c_replicas"), "replicas is not indexed");
    }

    #[test]
    fn a_table_that_fits_needs_no_migration() {
        let spec = sample_kind("Widget");
        let indexes = vec!["ix_c_phase".to_owned()];
        assert_eq!(migrate(&spec, &live(&spec), &indexes), Migration::default());
    }

    #[test]
    fn new_columns_are_added_and_backfilled() {
        let old = sample_kind("Widget");
        let mut spec = old.clone();
        spec.columns.push(ColumnSpec {
            name: "extra".into(),
            path: ".spec.extra".into(),
            column_type: ColumnType::String,
            index: true,
        });
        let migration = migrate(&spec, &live(&old), &["ix_c_phase".to_owned()]);
        assert_eq!(
            migration.alter.as_deref(),
            Some(
                "ALTER TABLE `k8s_conformance_stowage_dev_v1_widget` ADD COLUMN `extra` \
                 VARCHAR(768) NULL, ADD KEY `ix_c_extra` (`extra`)"
            )
        );
        assert_eq!(migration.backfill, [spec.columns[4].clone()]);
    }

    #[test]
    fn retyped_removed_and_reindexed_columns() {
        let old = sample_kind("Widget");
        let mut spec = old.clone();
        spec.columns[0].index = false; // phase loses its index
        spec.columns[1].column_type = ColumnType::String; // replicas becomes a string
        spec.columns.remove(2); // ready goes
        let migration = migrate(&spec, &live(&old), &["ix_c_phase".to_owned()]);
        assert_eq!(
            migration.alter.as_deref(),
            Some(
                "ALTER TABLE `k8s_conformance_stowage_dev_v1_widget` DROP KEY `ix_c_phase`, \
                 DROP COLUMN `replicas`, ADD COLUMN `replicas` VARCHAR(768) NULL, \
                 DROP COLUMN `ready`"
            )
        );
        assert_eq!(migration.backfill, [spec.columns[1].clone()]);
    }

    #[test]
    fn tables_of_earlier_versions_get_the_feed_revision() {
        let spec = sample_kind("Widget");
        let old: Vec<LiveColumn> = live(&spec)
            .into_iter()
            .filter(|c| c.name != "feed_revision")
            .collect();
        let migration = migrate(&spec, &old, &["ix_c_phase".to_owned()]);
        assert_eq!(
            migration.alter.as_deref(),
            Some(
                "ALTER TABLE `k8s_conformance_stowage_dev_v1_widget` ADD COLUMN `feed_revision` \
                 BIGINT UNSIGNED NOT NULL DEFAULT 0, ADD KEY `ix_feed_revision` (`feed_revision`)"
            )
        );
        assert!(migration.backfill.is_empty());
    }

    #[test]
    fn tables_of_earlier_versions_get_the_list_and_sweep_indexes() {
        let spec = sample_kind("Widget");
        let old: Vec<LiveColumn> = live(&spec)
            .into_iter()
            .filter(|c| c.name != "labels_short")
            .collect();
        let migration = migrate(&spec, &old, &["ix_c_phase".to_owned()]);
        assert_eq!(
            migration.alter.as_deref(),
            Some(
                "ALTER TABLE `k8s_conformance_stowage_dev_v1_widget` ADD COLUMN `labels_short` \
                 VARCHAR(256) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin AS \
                 (IF(CHAR_LENGTH(`labels`) <= 256, `labels`, NULL)) STORED, ADD KEY `ix_list` \
                 (`namespace`, `name`, `deleted_at`, `labels_short`)"
            )
        );
        assert!(migration.backfill.is_empty());
        assert!(create_table(&spec).contains("KEY `ix_list` ("));
        let indexes = ["ix_c_phase".to_owned(), "ix_deleted_at".to_owned()];
        let migration = migrate(&spec, &live(&spec), &indexes);
        assert_eq!(
            migration.alter.as_deref(),
            Some(
                "ALTER TABLE `k8s_conformance_stowage_dev_v1_widget` DROP KEY `ix_deleted_at`, \
                 ADD KEY `ix_deleted_at_seen_epoch` (`deleted_at`, `seen_epoch`)"
            )
        );
    }

    #[test]
    fn bad_specs_are_refused_with_a_reason() {
        let mut spec = sample_kind("Widget");
        assert_eq!(check(&spec), Ok(()));
        spec.columns[0].name = "Deleted_At".into();
        assert!(check(&spec).is_err_and(|e| e.contains("store's own columns")));
        let mut long = sample_kind(&"K".repeat(40));
        assert!(check(&long).is_err_and(|e| e.contains("longer than 64")));
        long = sample_kind("Widget");
        long.columns[0].name = "c".repeat(65);
        assert!(check(&long).is_err());
        assert_eq!(index_name(&"c".repeat(64)).len(), 64);
    }
}
