//! The MySQL store's tables as the database sees them (`information_schema`), kinds and columns
//! added at run time, restarts, purges, rejected objects and hostile label queries, on the
//! MariaDB at 127.0.0.1:3306 with a fresh database per test.

mod mysql_support;

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_support::{TIMEOUT, TestDb, bounded};
use serde_json::json;
use stowage::mirror::builtin;
use stowage::mirror::kind::{ColumnSpec, ColumnType, KindSpec};
use stowage::store::conformance::{sample_kind, sample_object};
use stowage::store::mysql::MysqlStore;
use stowage::store::{
    ListQuery, MirrorObject, Store, StoreError, WriteBatch, WriteOp, WriteOutcome,
};
use stowage_emulator::selectors::LabelSelector;

async fn upsert(
    store: &MysqlStore,
    kind: &KindSpec,
    objects: Vec<MirrorObject>,
    epoch: u64,
) -> WriteOutcome {
    let ops = objects.into_iter().map(WriteOp::Upsert).collect();
    bounded("write", store.write(kind, WriteBatch { ops, epoch })).await
}

/// `(column, data type)` of a table, in order.
fn columns(db: &TestDb, table: &str) -> Vec<(String, String)> {
    db.sql(&format!(
        "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
    ))
    .lines()
    .map(|line| {
        let (name, data_type) = line.split_once('\t').expect("two fields");
        (name.to_owned(), data_type.to_owned())
    })
    .collect()
}

/// Index name → (unique, columns in order).
fn indexes(db: &TestDb, table: &str) -> BTreeMap<String, (bool, Vec<String>)> {
    let mut indexes: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
    let rows = db.sql(&format!(
        "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' ORDER BY INDEX_NAME, SEQ_IN_INDEX"
    ));
    for line in rows.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let entry = indexes
            .entry(fields[0].to_owned())
            .or_insert((fields[1] == "0", Vec::new()));
        entry.1.push(fields[2].to_owned());
    }
    indexes
}

fn has_index_on(indexes: &BTreeMap<String, (bool, Vec<String>)>, column: &str) -> bool {
    indexes
        .values()
        .any(|(_, columns)| columns.first().map(String::as_str) == Some(column))
}

#[tokio::test]
async fn tables_columns_and_indexes_follow_the_registry() {
    let db = TestDb::create();
    let store = db.store(1000);
    for kind in builtin::kinds() {
        bounded("register", store.register(&kind)).await;
    }
    let tables = db.sql(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1",
    );
    for table in [
        "k8s_core_v1_pod",
        "k8s_apps_v1_deployment",
        "k8s_networking_k8s_io_v1_ingress",
        "k8s_core_v1_service",
        "k8s_core_v1_secret",
        "k8s_storage_k8s_io_v1_storageclass",
        "stowage_changes",
        "stowage_meta",
    ] {
        assert!(
            tables.lines().any(|t| t == table),
            "{table} missing from {tables}"
        );
    }
    let base = [
        ("id", "bigint"),
        ("namespace", "varchar"),
        ("name", "varchar"),
        ("uid", "varchar"),
        ("resource_version", "varchar"),
        ("labels", "longtext"),
        ("annotations", "longtext"),
        ("created_at", "varchar"),
        ("updated_at", "datetime"),
        ("deleted_at", "datetime"),
        ("seen_epoch", "bigint"),
        ("object", "longtext"),
        ("feed_revision", "bigint"),
        ("labels_short", "varchar"),
    ];
    let expected = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        base.iter()
            .chain(extra)
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    };
    let pod = [
        ("phase", "varchar"),
        ("node_name", "varchar"),
        ("spec", "longtext"),
        ("status", "longtext"),
    ];
    assert_eq!(columns(&db, "k8s_core_v1_pod"), expected(&pod));
    let deployment = [
        ("replicas", "bigint"),
        ("replicas_available", "bigint"),
        ("replicas_ready", "bigint"),
        ("replicas_updated", "bigint"),
        ("strategy", "varchar"),
        ("spec", "longtext"),
        ("status", "longtext"),
    ];
    assert_eq!(
        columns(&db, "k8s_apps_v1_deployment"),
        expected(&deployment)
    );
    let service = [
        ("type", "varchar"),
        ("cluster_ip", "varchar"),
        ("ports", "longtext"),
        ("spec", "longtext"),
        ("status", "longtext"),
    ];
    assert_eq!(columns(&db, "k8s_core_v1_service"), expected(&service));
    let secret = [
        ("type", "varchar"),
        ("data", "longtext"),
        ("string_data", "longtext"),
    ];
    assert_eq!(columns(&db, "k8s_core_v1_secret"), expected(&secret));
    let configmap = [("data", "longtext"), ("binary_data", "longtext")];
    assert_eq!(columns(&db, "k8s_core_v1_configmap"), expected(&configmap));
    assert_eq!(
        columns(&db, "k8s_networking_k8s_io_v1_ingress"),
        expected(&[]),
        "a kind without columns keeps its object in `object` only"
    );

    for table in [
        "k8s_core_v1_pod",
        "k8s_core_v1_service",
        "k8s_core_v1_secret",
    ] {
        let indexes = indexes(&db, table);
        assert_eq!(indexes["PRIMARY"], (true, vec!["id".to_owned()]), "{table}");
        assert_eq!(indexes["ux_uid"], (true, vec!["uid".to_owned()]), "{table}");
        for column in [
            "name",
            "namespace",
            "resource_version",
            "created_at",
            "deleted_at",
        ] {
            assert!(
                has_index_on(&indexes, column),
                "{table} has no index on {column}: {indexes:?}"
            );
        }
        let list: Vec<String> = ["namespace", "name", "deleted_at", "labels_short"]
            .map(str::to_owned)
            .into();
        assert_eq!(indexes["ix_list"], (false, list), "{table}");
    }
    assert!(
        has_index_on(&indexes(&db, "k8s_core_v1_service"), "type"),
        "Service type is indexed"
    );
    assert!(
        has_index_on(&indexes(&db, "k8s_core_v1_secret"), "type"),
        "Secret type is indexed"
    );
    assert!(
        !has_index_on(&indexes(&db, "k8s_core_v1_pod"), "phase"),
        "Pod phase is not indexed"
    );
}

#[tokio::test]
async fn a_kind_added_at_run_time_gets_its_table() {
    let db = TestDb::create();
    let store = db.store(1000);
    let first = sample_kind("First");
    bounded("register", store.register(&first)).await;
    upsert(&store, &first, vec![sample_object("ns", "a", "1")], 1).await;
    let later = sample_kind("AddedLater");
    let missing = store.count(&later).await;
    assert!(
        matches!(missing, Err(StoreError::UnknownKind(_))),
        "{missing:?}"
    );
    bounded("register later", store.register(&later)).await;
    assert!(!columns(&db, "k8s_conformance_stowage_dev_v1_addedlater").is_empty());
    upsert(&store, &later, vec![sample_object("ns", "b", "1")], 1).await;
    assert_eq!(bounded("count", store.count(&later)).await, 1);
    assert_eq!(
        bounded("count", store.count(&first)).await,
        1,
        "the first kind is untouched"
    );
}

#[tokio::test]
async fn a_column_added_to_a_live_table_keeps_rows_and_is_filled() {
    let db = TestDb::create();
    let store = db.store(1000);
    let kind = sample_kind("Growing");
    bounded("register", store.register(&kind)).await;
    let objects: Vec<MirrorObject> = ["x", "y", "x"]
        .iter()
        .enumerate()
        .map(|(i, extra)| {
            let mut object = sample_object("ns", &format!("o{i}"), "1");
            object.object["spec"]["extra"] = json!(extra);
            object
        })
        .collect();
    upsert(&store, &kind, objects, 1).await;
    let before = bounded("revision", store.revision()).await;
    let mut wider = kind.clone();
    wider.columns.push(ColumnSpec {
        name: "extra".into(),
        path: ".spec.extra".into(),
        column_type: ColumnType::String,
        index: true,
    });
    bounded("register wider", store.register(&wider)).await;
    assert!(
        columns(&db, "k8s_conformance_stowage_dev_v1_growing")
            .contains(&("extra".into(), "varchar".into()))
    );
    assert!(has_index_on(
        &indexes(&db, "k8s_conformance_stowage_dev_v1_growing"),
        "extra"
    ));
    assert_eq!(
        bounded("count", store.count(&wider)).await,
        3,
        "no row lost"
    );
    let query = ListQuery {
        columns: vec![("extra".into(), "x".into())],
        limit: 10,
        ..ListQuery::default()
    };
    let page = bounded("list", store.list(&wider, &query)).await;
    let names: Vec<&str> = page.items.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        ["o0", "o2"],
        "existing rows were filled from their objects"
    );
    assert_eq!(page.items[0].columns["extra"], json!("x"));
    assert_eq!(
        bounded("revision", store.revision()).await,
        before,
        "a migration is not a change"
    );
    // Dropping the column again keeps the rows too.
    bounded("register narrower", store.register(&kind)).await;
    assert_eq!(bounded("count", store.count(&kind)).await, 3);
    assert!(
        !columns(&db, "k8s_conformance_stowage_dev_v1_growing")
            .iter()
            .any(|(c, _)| c == "extra")
    );
}

#[tokio::test]
async fn a_restart_resumes_without_duplicates() {
    let db = TestDb::create();
    let kind = sample_kind("Restarted");
    let objects: Vec<MirrorObject> = (0..50)
        .map(|i| sample_object("ns", &format!("o{i:02}"), "1"))
        .collect();
    let first = db.store(1000);
    bounded("register", first.register(&kind)).await;
    upsert(&first, &kind, objects.clone(), 1).await;
    bounded("sweep", first.sweep(&kind, 1)).await;
    let revision = bounded("revision", first.revision()).await;
    assert_eq!(revision, 50);
    drop(first);

    // A new process: registers again and relists everything in a new epoch.
    let second = db.store(1000);
    bounded("register again", second.register(&kind)).await;
    assert_eq!(
        bounded("revision", second.revision()).await,
        revision,
        "the revision survives"
    );
    let mut relist = objects.clone();
    relist[7].resource_version = "2".into();
    relist.remove(3);
    let outcome = upsert(&second, &kind, relist, 2).await;
    assert_eq!(outcome.changed, 1, "only the changed object is a change");
    assert_eq!(
        bounded("sweep", second.sweep(&kind, 2)).await,
        1,
        "the vanished object"
    );
    assert_eq!(bounded("count", second.count(&kind)).await, 49);
    let feed = bounded("changes", second.changes(None, 0, usize::MAX)).await;
    let revisions: Vec<u64> = feed.iter().map(|c| c.revision).collect();
    assert_eq!(
        revisions,
        (1..=52).collect::<Vec<_>>(),
        "no duplicate, no gap across the restart"
    );
}

#[tokio::test]
async fn soft_deleted_rows_are_purged_after_the_purge_age() {
    let db = TestDb::create();
    let mut options = db.options(1000);
    options.purge_after = Duration::ZERO;
    let store = MysqlStore::new(options);
    let kind = sample_kind("Purged");
    bounded("register", store.register(&kind)).await;
    upsert(
        &store,
        &kind,
        vec![sample_object("ns", "a", "1"), sample_object("ns", "b", "1")],
        1,
    )
    .await;
    let delete = WriteOp::Delete {
        namespace: "ns".into(),
        name: "a".into(),
    };
    bounded(
        "delete",
        store.write(
            &kind,
            WriteBatch {
                ops: vec![delete],
                epoch: 1,
            },
        ),
    )
    .await;
    let table = "k8s_conformance_stowage_dev_v1_purged";
    let deleted = db.sql(&format!(
        "SELECT name FROM {table} WHERE deleted_at IS NOT NULL"
    ));
    // The write itself may already have purged (the purge age is zero); either way the object
    // is not listed and, after a purge, no longer stored.
    assert!(
        deleted.trim().is_empty() || deleted.trim() == "a",
        "{deleted}"
    );
    bounded("purge", store.purge(&kind)).await;
    assert_eq!(db.sql(&format!("SELECT name FROM {table}")).trim(), "b");
    assert_eq!(bounded("count", store.count(&kind)).await, 1);
}

#[tokio::test]
async fn an_object_larger_than_the_server_accepts_is_rejected_alone() {
    let db = TestDb::create();
    let store = db.store(1000);
    let kind = sample_kind("Large");
    bounded("register", store.register(&kind)).await;
    let packet: usize = db
        .sql("SELECT @@max_allowed_packet")
        .trim()
        .parse()
        .expect("a number");
    let mut huge = sample_object("ns", "huge", "1");
    huge.object["spec"]["blob"] = json!("x".repeat(packet));
    let ops = vec![
        WriteOp::Upsert(sample_object("ns", "a", "1")),
        WriteOp::Upsert(huge),
        WriteOp::Upsert(sample_object("ns", "b", "1")),
    ];
    let result = tokio::time::timeout(TIMEOUT, store.write(&kind, WriteBatch { ops, epoch: 1 }))
        .await
        .expect("answers");
    match result {
        Err(StoreError::Rejected {
            namespace,
            name,
            reason,
        }) => {
            assert_eq!((namespace.as_str(), name.as_str()), ("ns", "huge"));
            assert!(reason.contains("bytes"), "{reason}");
        }
        other => panic!("expected the huge object to be rejected, got {other:?}"),
    }
    assert_eq!(
        bounded("count", store.count(&kind)).await,
        2,
        "the rest of the batch is written"
    );
    assert_eq!(bounded("revision", store.revision()).await, 2);
}

#[tokio::test]
async fn a_missing_database_is_named() {
    let db = TestDb::create();
    let mut options = db.options(10);
    options.database = format!("{}_missing", db.name);
    let store = MysqlStore::new(options);
    let error = store
        .connect()
        .await
        .expect_err("the database does not exist");
    let message = error.to_string();
    assert!(
        error.is_transient(),
        "retried: the database may be created later"
    );
    assert!(
        message.contains(&format!("database `{}_missing` does not exist", db.name)),
        "{message}"
    );
    let status = store.revision().await.expect_err("nothing to read");
    assert!(
        status.to_string().contains("does not exist"),
        "status shows why: {status}"
    );
}

#[tokio::test]
async fn hostile_label_values_and_keys_are_literal() {
    let db = TestDb::create();
    let store = db.store(1000);
    let kind = sample_kind("HostileLabels");
    bounded("register", store.register(&kind)).await;
    let labelled = |name: &str, labels: &[(&str, &str)]| {
        let mut object = sample_object("ns", name, "1");
        object.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        object
    };
    upsert(
        &store,
        &kind,
        vec![
            labelled("underscore", &[("app.kubernetes.io/name", "a_b")]),
            labelled("wildcard-x", &[("app.kubernetes.io/name", "axb")]),
            labelled("dotted", &[("app", "a.b")]),
            labelled("quoted", &[("app", "o'brien \"%\" ünï")]),
            labelled("Upper", &[("app", "WEB")]),
            labelled("lower", &[("app", "web")]),
            labelled("padded", &[("tier", "db  ")]),
            // Its JSON text holds `"app":"web"` after an escaped quote, in a key and in a value.
            labelled(
                "posing",
                &[
                    ("app", "webx"),
                    ("x\"app", "web"),
                    ("y", "\",\"app\":\"web\""),
                ],
            ),
        ],
        1,
    )
    .await;
    let names = |selector: &str| {
        let query = ListQuery {
            labels: Some(LabelSelector::parse(selector).expect("parses")),
            limit: 100,
            ..ListQuery::default()
        };
        let store = &store;
        let kind = &kind;
        async move {
            let page = bounded("list", store.list(kind, &query)).await;
            page.items.into_iter().map(|o| o.name).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        names("app.kubernetes.io/name=a_b").await,
        ["underscore"],
        "_ is no wildcard"
    );
    assert_eq!(names("app=a.b").await, ["dotted"]);
    assert_eq!(
        names("app=web").await,
        ["lower"],
        "label values are case-sensitive"
    );
    assert_eq!(names("app in (WEB,a.b)").await, ["Upper", "dotted"]);
    // The byte test before `JSON_VALUE` keeps the collation's padding: as before it, a stored
    // value with trailing spaces equals the value without them.
    assert_eq!(names("tier=db").await, ["padded"]);
    assert_eq!(names("tier in (x,db)").await, ["padded"]);
    assert_eq!(
        names("app.kubernetes.io/name").await,
        ["underscore", "wildcard-x"],
        "keys with dots and slashes"
    );
    assert_eq!(
        names("app notin (web,WEB,a.b)").await,
        ["padded", "posing", "quoted", "underscore", "wildcard-x"]
    );
    // A stored value no selector can spell is kept and returned as written.
    let quoted = bounded("get", store.get(&kind, "ns", "quoted"))
        .await
        .expect("stored");
    assert_eq!(quoted.labels["app"], "o'brien \"%\" ünï");
    // Selector syntax itself refuses quotes and wildcards before any query is built.
    assert!(LabelSelector::parse("app=o'brien").is_err());
    assert!(LabelSelector::parse("app=100%").is_err());
}

#[tokio::test]
async fn label_selectors_match_long_and_short_labels_alike() {
    let db = TestDb::create();
    let store = db.store(1000);
    let kind = sample_kind("LongLabels");
    bounded("register", store.register(&kind)).await;
    // Labels over 256 characters of JSON are not in the list index and are read from the rows.
    let long_value = "v".repeat(63);
    let objects: Vec<MirrorObject> = (0..12)
        .map(|i| {
            let mut object = sample_object("ns", &format!("p{i:02}"), "1");
            object
                .labels
                .insert("app".into(), if i % 3 == 0 { "db" } else { "web" }.into());
            if i % 2 == 0 {
                for key in ["a", "b", "c", "d", "e"] {
                    object
                        .labels
                        .insert(format!("long-{key}"), long_value.clone());
                }
            }
            object
        })
        .collect();
    upsert(&store, &kind, objects, 1).await;
    let long = db.sql(
        "SELECT COUNT(*) FROM k8s_conformance_stowage_dev_v1_longlabels WHERE labels_short IS NULL",
    );
    assert_eq!(long.trim(), "6", "every other object has long labels");
    let list = |selector: &str, limit: usize| {
        let query = ListQuery {
            namespace: Some("ns".into()),
            labels: Some(LabelSelector::parse(selector).expect("parses")),
            limit,
            ..ListQuery::default()
        };
        let store = &store;
        let kind = &kind;
        let selector = selector.to_owned();
        async move {
            let page = bounded("list", store.list(kind, &query)).await;
            let json = bounded("list_json", store.list_json(kind, &query)).await;
            assert_eq!(
                page.total, json.total,
                "{selector}: list and list_json agree"
            );
            assert_eq!(page.items.len(), json.items.len(), "{selector}");
            let names: Vec<String> = page.items.into_iter().map(|o| o.name).collect();
            (names, page.total)
        }
    };
    let web = ["p01", "p02", "p04", "p05", "p07", "p08", "p10", "p11"];
    assert_eq!(
        list("app=web", 100).await,
        (web.map(str::to_owned).into(), 8)
    );
    assert_eq!(
        list("app=web", 3).await,
        (vec!["p01".into(), "p02".into(), "p04".into()], 8),
        "the count covers both kinds of rows"
    );
    assert_eq!(
        list("app!=web,long-c", 100).await,
        (vec!["p00".into(), "p06".into()], 2)
    );
    assert_eq!(
        list("!long-a", 2).await,
        (vec!["p01".into(), "p03".into()], 6)
    );
    assert_eq!(list("app notin (web,db)", 1).await, (vec![], 0));

    // The namespace is bound in the column's collation, so a namespace page is read in index
    // order instead of sorting every match (the statement a list with a selector runs).
    let pool = store.pool();
    let plan = sqlx::query(
        "EXPLAIN SELECT `name`, `object` FROM k8s_conformance_stowage_dev_v1_longlabels \
         FORCE INDEX (`ix_list`) WHERE `deleted_at` IS NULL AND `namespace` = ? COLLATE \
         utf8mb4_bin ORDER BY `namespace`, `name` LIMIT ?",
    )
    .bind("ns")
    .bind(3_u64)
    .fetch_all(pool)
    .await
    .expect("explain");
    let extra: Vec<String> = plan
        .iter()
        .map(|row| {
            use sqlx::Row;
            let extra: Option<Vec<u8>> = row.try_get("Extra").unwrap_or_default();
            String::from_utf8_lossy(&extra.unwrap_or_default()).into_owned()
        })
        .collect();
    assert!(
        extra.iter().all(|e| !e.contains("filesort")),
        "the page is read in index order: {extra:?}"
    );
}
