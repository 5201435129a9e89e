//! The MySQL store's lean change records (the object read from the row while the row still holds
//! it): every retained change keeps its own version of the object across overwrites, re-adds,
//! purges, migrations, a restart before the kind is registered again, and unregistering.

mod mysql_support;

use std::time::Duration;

use mysql_support::{TestDb, bounded};
use stowage::mirror::kind::{ColumnSpec, ColumnType, KindSpec};
use stowage::store::conformance::{sample_kind, sample_object};
use stowage::store::mysql::MysqlStore;
use stowage::store::{ChangeType, MirrorObject, Store, StoreError, WriteBatch, WriteOp};

async fn write(store: &MysqlStore, kind: &KindSpec, ops: Vec<WriteOp>) {
    bounded("write", store.write(kind, WriteBatch { ops, epoch: 1 })).await;
}

fn version(name: &str, rv: &str) -> MirrorObject {
    let mut object = sample_object("ns", name, rv);
    object.labels.insert("version".into(), rv.into());
    object
}

fn delete(name: &str) -> WriteOp {
    WriteOp::Delete {
        namespace: "ns".into(),
        name: name.into(),
    }
}

async fn feed(store: &MysqlStore) -> Vec<(ChangeType, MirrorObject)> {
    bounded("changes", store.changes(None, 0, usize::MAX))
        .await
        .into_iter()
        .map(|c| (c.change, c.object))
        .collect()
}

fn lean_records(db: &TestDb) -> usize {
    let count = db.sql("SELECT COUNT(*) FROM stowage_changes WHERE object IS NULL");
    count.trim().parse().expect("a count")
}

#[tokio::test]
async fn every_change_keeps_its_version_of_the_object() {
    use ChangeType::{Added, Deleted, Modified};
    let db = TestDb::create();
    let store = db.store(1000);
    let kind = sample_kind("Lean");
    bounded("register", store.register(&kind)).await;
    let (a1, a2, b1, b3) = (
        version("a", "1"),
        version("a", "2"),
        version("b", "1"),
        version("b", "3"),
    );
    write(
        &store,
        &kind,
        vec![WriteOp::Upsert(a1.clone()), WriteOp::Upsert(b1.clone())],
    )
    .await;
    assert_eq!(lean_records(&db), 2, "new rows hold their objects");
    write(
        &store,
        &kind,
        vec![WriteOp::Upsert(a2.clone()), delete("b")],
    )
    .await;
    write(&store, &kind, vec![WriteOp::Upsert(b3.clone())]).await;
    let expected = vec![
        (Added, a1.clone()),
        (Added, b1.clone()),
        (Modified, a2.clone()),
        (Deleted, b1.clone()),
        (Added, b3.clone()),
    ];
    assert_eq!(feed(&store).await, expected, "overwrites and re-adds");
    assert_eq!(lean_records(&db), 2, "a2 and b3 still read from their rows");

    // A new process reads lean records before it registers the kind again.
    drop(store);
    let restarted = db.store(1000);
    assert_eq!(feed(&restarted).await, expected, "after a restart");

    // A migration fills lean records first: they were written with the old columns.
    let mut wider = kind.clone();
    wider.columns.push(ColumnSpec {
        name: "extra".into(),
        path: ".spec.extra".into(),
        column_type: ColumnType::String,
        index: false,
    });
    bounded("register wider", restarted.register(&wider)).await;
    assert_eq!(lean_records(&db), 0, "filled before the migration");
    assert_eq!(feed(&restarted).await, expected, "after a migration");
    let a4 = version("a", "4");
    write(&restarted, &wider, vec![WriteOp::Upsert(a4.clone())]).await;
    bounded("unregister", restarted.unregister(&wider)).await;
    assert_eq!(lean_records(&db), 0, "filled before the table is dropped");
    let mut last = feed(&restarted).await;
    let (change, object) = last.pop().expect("the last change");
    assert_eq!((change, object.resource_version.as_str()), (Modified, "4"));
    assert_eq!(last, expected, "after unregistering");
}

#[tokio::test]
async fn purged_rows_leave_their_objects_in_the_feed() {
    use ChangeType::{Added, Deleted};
    let db = TestDb::create();
    let mut options = db.options(1000);
    options.purge_after = Duration::ZERO;
    let store = MysqlStore::new(options);
    let kind = sample_kind("LeanPurged");
    bounded("register", store.register(&kind)).await;
    let x = version("x", "1");
    write(&store, &kind, vec![WriteOp::Upsert(x.clone())]).await;
    write(&store, &kind, vec![delete("x")]).await;
    bounded("purge", store.purge(&kind)).await;
    let rows = db.sql("SELECT COUNT(*) FROM k8s_conformance_stowage_dev_v1_leanpurged");
    assert_eq!(rows.trim(), "0", "the row is purged");
    assert_eq!(feed(&store).await, vec![(Added, x.clone()), (Deleted, x)]);
}

fn numbered(from: usize, to: usize, rv: &str) -> Vec<WriteOp> {
    (from..to)
        .map(|i| WriteOp::Upsert(version(&format!("n{i:03}"), rv)))
        .collect()
}

fn live_rows(db: &TestDb) -> String {
    db.sql("SELECT COUNT(*), COUNT(DISTINCT name) FROM k8s_conformance_stowage_dev_v1_bulk")
}

/// Large batches of new objects skip the key lookup once a batch found none of its keys; a stored
/// key in such a batch rolls it back and writes it the usual way, with the same changes.
#[tokio::test]
async fn insert_only_batches_fall_back_when_a_key_is_stored() {
    use ChangeType::{Added, Modified};
    let db = TestDb::create();
    let store = db.store(10_000);
    let kind = sample_kind("Bulk");
    bounded("register", store.register(&kind)).await;
    let outcome = |ops| {
        let store = &store;
        let kind = &kind;
        async move { bounded("write", store.write(kind, WriteBatch { ops, epoch: 1 })).await }
    };
    let first = outcome(numbered(0, 100, "1")).await;
    assert_eq!((first.revision, first.changed), (100, 100));
    // Looked up, none found: the next batch is written insert-only.
    let second = outcome(numbered(100, 200, "1")).await;
    assert_eq!((second.revision, second.changed), (200, 100));
    // Half of these are stored (modified): the insert fails and the batch is planned again.
    let third = outcome(numbered(150, 250, "2")).await;
    assert_eq!((third.revision, third.changed), (300, 100));
    assert_eq!(live_rows(&db).trim(), "250\t250", "no duplicate rows");
    // Unchanged objects change nothing.
    let fourth = outcome(numbered(150, 250, "2")).await;
    assert_eq!((fourth.revision, fourth.changed), (300, 0));
    // New keys again, then an insert-only batch with one unchanged stored object.
    outcome(numbered(300, 400, "1")).await;
    let mut mixed = numbered(400, 464, "1");
    mixed.push(WriteOp::Upsert(version("n300", "1")));
    let sixth = outcome(mixed).await;
    assert_eq!((sixth.revision, sixth.changed), (464, 64));
    assert_eq!(live_rows(&db).trim(), "414\t414");
    assert_eq!(bounded("revision", store.revision()).await, 464);

    let changes = bounded("changes", store.changes(None, 0, usize::MAX)).await;
    let revisions: Vec<u64> = changes.iter().map(|c| c.revision).collect();
    assert_eq!(revisions, (1..=464).collect::<Vec<_>>(), "consecutive");
    let summary: Vec<(ChangeType, String, String)> = changes
        .into_iter()
        .map(|c| (c.change, c.object.name, c.object.resource_version))
        .collect();
    let mut expected: Vec<(ChangeType, String, String)> = Vec::new();
    let mut push = |change, from: usize, to: usize, rv: &str| {
        for i in from..to {
            expected.push((change, format!("n{i:03}"), rv.to_owned()));
        }
    };
    push(Added, 0, 200, "1");
    push(Modified, 150, 200, "2");
    push(Added, 200, 250, "2");
    push(Added, 300, 464, "1");
    assert_eq!(summary, expected);
    assert_eq!(
        lean_records(&db),
        414,
        "every change reads its object from its row"
    );

    // A restarted store looks its keys up: nothing is written twice.
    drop(store);
    let restarted = db.store(10_000);
    bounded("register", restarted.register(&kind)).await;
    let again = bounded(
        "write",
        restarted.write(
            &kind,
            WriteBatch {
                ops: numbered(0, 100, "1"),
                epoch: 2,
            },
        ),
    )
    .await;
    assert_eq!((again.revision, again.changed), (464, 0));
    assert_eq!(live_rows(&db).trim(), "414\t414");
}

/// An insert-only batch (written pipelined) with an object the database would refuse writes the
/// rest of the batch and reports the one object, with the same changes as a sequential write.
#[tokio::test]
async fn an_insert_only_batch_rejects_a_refused_object_alone() {
    let db = TestDb::create();
    let store = db.store(10_000);
    let kind = sample_kind("Bulk");
    bounded("register", store.register(&kind)).await;
    write(&store, &kind, numbered(0, 100, "1")).await;
    let mut ops = numbered(100, 200, "1");
    ops[50] = WriteOp::Upsert(version(&"x".repeat(300), "1"));
    let error = tokio::time::timeout(
        Duration::from_secs(30),
        store.write(&kind, WriteBatch { ops, epoch: 1 }),
    )
    .await
    .expect("answers")
    .expect_err("the long name is refused");
    let StoreError::Rejected { name, .. } = &error else {
        panic!("expected Rejected, got {error}");
    };
    assert_eq!(name, &"x".repeat(300));
    assert_eq!(live_rows(&db).trim(), "199\t199", "the rest is written");
    // The next batch of new keys is pipelined again.
    write(&store, &kind, numbered(200, 300, "1")).await;
    assert_eq!(live_rows(&db).trim(), "299\t299");
    let changes = bounded("changes", store.changes(None, 0, usize::MAX)).await;
    let revisions: Vec<u64> = changes.iter().map(|c| c.revision).collect();
    assert_eq!(revisions, (1..=299).collect::<Vec<_>>(), "consecutive");
    let names: Vec<String> = changes.into_iter().map(|c| c.object.name).collect();
    let expected: Vec<String> = (0..300)
        .filter(|&i| i != 150)
        .map(|i| format!("n{i:03}"))
        .collect();
    assert_eq!(names, expected);
    assert_eq!(lean_records(&db), 299, "every change reads its row");
}

fn records(db: &TestDb) -> u64 {
    let count = db.sql("SELECT COUNT(*) FROM stowage_changes");
    count.trim().parse().expect("a count")
}

/// Records beyond the retention are deleted after the writes, in the background: until then they
/// may still be in the table, but the feed serves exactly the newest `history` changes, complete
/// even where a row that backed an expired lean record was overwritten without preserving it.
#[tokio::test]
async fn records_beyond_the_retention_are_expired_before_they_are_deleted() {
    const HISTORY: u64 = 20;
    let db = TestDb::create();
    let store = db.store(HISTORY as usize);
    let kind = sample_kind("Retained");
    bounded("register", store.register(&kind)).await;
    for rv in ["1", "2", "3"] {
        for i in 0..40 {
            write(
                &store,
                &kind,
                vec![WriteOp::Upsert(version(&format!("o{i:02}"), rv))],
            )
            .await;
        }
    }
    let end = bounded("revision", store.revision()).await;
    assert_eq!(end, 120);
    let floor = end - HISTORY;
    let error = store
        .changes(None, floor - 1, usize::MAX)
        .await
        .expect_err("one before the retained history");
    let StoreError::Expired { requested, oldest } = error else {
        panic!("expected Expired, got {error}");
    };
    assert_eq!((requested, oldest), (floor - 1, floor + 1));
    for since in floor..=end {
        let changes = bounded("changes", store.changes(None, since, usize::MAX)).await;
        let revisions: Vec<u64> = changes.iter().map(|c| c.revision).collect();
        assert_eq!(revisions, (since + 1..=end).collect::<Vec<_>>());
        for change in changes {
            let i = (change.revision - 81) as usize;
            assert_eq!(change.object.name, format!("o{i:02}"));
            assert_eq!(change.object.resource_version, "3");
        }
    }
    // The table is trimmed after a later write (the one in flight, if any, has finished by then)
    // to within the slack (a tenth of the history).
    tokio::time::sleep(Duration::from_millis(300)).await;
    write(&store, &kind, vec![WriteOp::Upsert(version("o00", "4"))]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while records(&db) > HISTORY + HISTORY / 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} records left, retention {HISTORY}",
            records(&db)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let changes = bounded("changes", store.changes(None, floor + 1, usize::MAX)).await;
    assert_eq!(changes.len() as u64, HISTORY);
}
