//! Unit tests of the memory store's bookkeeping: label interning, column layout changes and
//! records shared between the table and the change log.

use serde_json::json;
use stowage_emulator::selectors::LabelSelector;

use super::*;
use crate::store::SortField;
use crate::store::conformance::{sample_kind, sample_object};

fn label_sets(store: &MemoryStore, kind: &KindSpec) -> usize {
    store
        .table(kind)
        .expect("table")
        .data
        .read()
        .label_sets
        .len()
}

#[tokio::test]
async fn label_sets_are_shared_and_forgotten_with_their_last_object() {
    let store = MemoryStore::new(16);
    let kind = sample_kind("LabelSets");
    store.register(&kind).await.expect("register");
    let object = |name: &str, app: &str| {
        let mut object = sample_object("ns", name, "1");
        object.labels.insert("app".to_owned(), app.to_owned());
        WriteOp::Upsert(object)
    };
    let ops = vec![object("a", "web"), object("b", "web"), object("c", "api")];
    store
        .write(&kind, WriteBatch { ops, epoch: 1 })
        .await
        .expect("write");
    assert_eq!(label_sets(&store, &kind), 2);
    let delete = |name: &str| WriteOp::Delete {
        namespace: "ns".to_owned(),
        name: name.to_owned(),
    };
    let ops = vec![delete("a"), delete("c")];
    store
        .write(&kind, WriteBatch { ops, epoch: 1 })
        .await
        .expect("delete");
    assert_eq!(
        label_sets(&store, &kind),
        1,
        "api is unused, web still used by b"
    );
    let mut relabelled = sample_object("ns", "b", "2");
    relabelled.labels.insert("app".to_owned(), "db".to_owned());
    let ops = vec![WriteOp::Upsert(relabelled)];
    store
        .write(&kind, WriteBatch { ops, epoch: 2 })
        .await
        .expect("relabel");
    assert_eq!(label_sets(&store, &kind), 1, "web forgotten, db interned");
    assert_eq!(store.sweep(&kind, 3).await.expect("sweep"), 1);
    assert_eq!(label_sets(&store, &kind), 0);
    let feed = store.changes(Some(&kind), 0, 100).await.expect("changes");
    let app = |i: usize| feed[i].object.labels.get("app").cloned();
    assert_eq!(app(0).as_deref(), Some("web"), "the log keeps its labels");
    assert_eq!(app(5).as_deref(), Some("db"));
}

#[tokio::test]
async fn a_changed_column_list_keeps_filters_right() {
    let store = MemoryStore::new(16);
    let mut kind = sample_kind("Reordered");
    store.register(&kind).await.expect("register");
    let mut object = sample_object("ns", "a", "1");
    object.columns.insert("phase".to_owned(), json!("Running"));
    object.columns.insert("replicas".to_owned(), json!(2));
    object.object["spec"] = json!({ "replicas": 2 });
    object
        .columns
        .insert("spec".to_owned(), json!({ "replicas": 2 }));
    let ops = vec![WriteOp::Upsert(object.clone())];
    store
        .write(&kind, WriteBatch { ops, epoch: 1 })
        .await
        .expect("write");
    kind.columns.reverse();
    store.register(&kind).await.expect("register reordered");
    let filtered = |column: &str, value: &str| ListQuery {
        columns: vec![(column.to_owned(), value.to_owned())],
        limit: 10,
        ..ListQuery::default()
    };
    let page = store
        .list(&kind, &filtered("phase", "Running"))
        .await
        .expect("list");
    assert_eq!(page.total, 1, "phase after reordering");
    assert_eq!(page.items, [object.clone()], "the object as written");
    let page = store
        .list(&kind, &filtered("replicas", "2"))
        .await
        .expect("list");
    assert_eq!(page.total, 1, "replicas after reordering");
    let page = store
        .list(&kind, &filtered("spec", r#"{"replicas":2}"#))
        .await
        .expect("list");
    assert_eq!(page.total, 1, "derived spec after reordering");
    let sums = store
        .column_sums(&kind, &["replicas".to_owned()])
        .await
        .expect("sums");
    assert_eq!(sums.get("replicas"), Some(&2));
    let found = store.get_by_uid(&kind, &object.uid).await.expect("get");
    assert_eq!(found.as_ref(), Some(&object), "by uid after reordering");
}

#[tokio::test]
async fn the_log_shares_the_tables_records() {
    let store = MemoryStore::new(16);
    let kind = sample_kind("Shared");
    store.register(&kind).await.expect("register");
    let ops = vec![WriteOp::Upsert(sample_object("ns", "a", "1"))];
    store
        .write(&kind, WriteBatch { ops, epoch: 1 })
        .await
        .expect("write");
    let table = store.table(&kind).expect("table");
    let data = table.data.read();
    let entry = data.objects.values().next().expect("entry");
    let log = store.log.lock();
    let logged = log.entries.back().expect("logged");
    assert!(Arc::ptr_eq(&logged.record, &entry.record));
    let by_uid = data.uids.get("uid:ns/a").expect("indexed");
    assert!(Arc::ptr_eq(&by_uid.0, &entry.record));
}

#[tokio::test]
async fn json_column_sorts_and_groups_read_derived_values() {
    let store = MemoryStore::new(16);
    let kind = sample_kind("JsonSort");
    store.register(&kind).await.expect("register");
    let ops = [(3, "a"), (1, "b"), (2, "c")]
        .into_iter()
        .map(|(replicas, name)| {
            let mut object = sample_object("ns", name, "1");
            object.object["spec"] = json!({ "replicas": replicas });
            object
                .columns
                .insert("spec".to_owned(), object.object["spec"].clone());
            WriteOp::Upsert(object)
        })
        .collect();
    store
        .write(&kind, WriteBatch { ops, epoch: 1 })
        .await
        .expect("write");
    let query = ListQuery {
        sort: crate::store::Sort {
            field: crate::store::SortField::Column("spec".to_owned()),
            descending: false,
        },
        limit: 2,
        ..ListQuery::default()
    };
    let page = store.list(&kind, &query).await.expect("list");
    let names: Vec<&str> = page.items.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["b", "c"]);
    let next = ListQuery {
        after: page.next,
        ..query
    };
    let page = store.list(&kind, &next).await.expect("next page");
    let names: Vec<&str> = page.items.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["a"]);
    let groups = store
        .group_count(&kind, &GroupBy::Column("spec".to_owned()))
        .await
        .expect("groups");
    assert_eq!(groups.get(r#"{"replicas":2}"#), Some(&1));
}

/// The label-set walk answers every selector query exactly like the full walk: same items, total
/// and `more`, for namespaces, cursors in both directions, offsets and name searches.
#[tokio::test]
async fn label_set_walk_equals_the_full_walk() {
    let store = MemoryStore::new(16);
    let kind = sample_kind("LabelWalk");
    store.register(&kind).await.expect("register");
    let names = [
        "web-1",
        "Web-2",
        "API-x",
        "db-ÄÖ",
        "cache",
        "web-10",
        "x-web",
        "ÜNÏ-web",
    ];
    let ops = (0..240)
        .map(|i| {
            let name = format!("{}-{i:03}", names[i % names.len()]);
            let mut object = sample_object(&format!("ns{}", i % 3), &name, "1");
            object
                .labels
                .insert("app".into(), ["web", "api", "db"][i % 3].into());
            if i % 4 == 0 {
                object
                    .labels
                    .insert("tier".into(), ["front", "back"][i % 2].into());
            }
            WriteOp::Upsert(object)
        })
        .chain((0..9).map(|j| {
            // Names sharing their first 16 bytes, in three sets of one namespace: the merge's
            // number prefixes tie, and the names decide.
            let mut object = sample_object("ns1", &format!("deployment-abcdef-{j}"), "1");
            object
                .labels
                .insert("app".into(), ["web", "api", "db"][j % 3].into());
            WriteOp::Upsert(object)
        }))
        .collect();
    store
        .write(&kind, WriteBatch { ops, epoch: 1 })
        .await
        .expect("write");
    assert!(compare_walks(&store, &kind) > 360);
    // Changes after the sets' snapshots were built: a member moves to another set, one is
    // deleted, one is added, one is renamed by delete + add. Lists must see each at once.
    let mut moved = sample_object("ns1", "web-1-040", "2");
    moved.labels.insert("app".into(), "web".into());
    let mut added = sample_object("ns1", "web-1-999", "1");
    added.labels.insert("app".into(), "web".into());
    let mut renamed = sample_object("ns1", "x-web-renamed", "1");
    renamed.labels.insert("app".into(), "api".into());
    let ops = vec![
        WriteOp::Upsert(moved),
        WriteOp::Delete {
            namespace: "ns1".into(),
            name: "cache-004".into(),
        },
        WriteOp::Upsert(added),
        WriteOp::Delete {
            namespace: "ns2".into(),
            name: "x-web-014".into(),
        },
        WriteOp::Upsert(renamed),
    ];
    store
        .write(&kind, WriteBatch { ops, epoch: 2 })
        .await
        .expect("write");
    assert!(compare_walks(&store, &kind) > 360);
    let names = |app: &str| {
        let query = ListQuery {
            namespace: Some("ns1".into()),
            search: Some("WEB-1-".into()),
            labels: Some(LabelSelector::parse(&format!("app={app}")).expect("selector")),
            limit: 1000,
            ..ListQuery::default()
        };
        let table = store.table(&kind).expect("table");
        let data = table.data.read();
        let order = Order::new(&data.spec, &query).expect("order");
        let filter = Filter::new(&data.spec, &query).expect("filter");
        let window = by_labels::label_set_members_in_map_order(
            &data.label_sets,
            query.labels.as_ref().expect("selector"),
            page::scope(query.namespace.as_deref()),
            &filter,
            &order,
            &query,
        );
        window.summary().0
    };
    assert_eq!(names("web"), ["ns1/web-1-040", "ns1/web-1-999"]);
    let api = names("api");
    assert!(api.contains(&"ns1/web-1-016".to_owned()), "{api:?}");
    assert!(!api.contains(&"ns1/web-1-040".to_owned()), "{api:?}");
}

/// Compares the label-set walk with the full walk for many queries; returns how many.
fn compare_walks(store: &MemoryStore, kind: &KindSpec) -> usize {
    let table = store.table(kind).expect("table");
    let data = table.data.read();
    assert!(
        by_labels::label_sets_are_few(data.label_sets.len(), data.objects.len()),
        "the test data takes the label-set walk"
    );
    let selectors = [
        "app=web",
        "app!=web",
        "app in (web,db),tier",
        "!tier",
        "tier=front",
        "app=none",
    ];
    let searches = [None, Some("web"), Some("WEB-1"), Some("äö"), Some("-0")];
    let mut compared = 0;
    for selector in selectors {
        for search in searches {
            for namespace in [None, Some("ns1")] {
                for descending in [false, true] {
                    for (offset, limit) in [(0, 5), (3, 7), (0, 1000)] {
                        let mut query = ListQuery {
                            namespace: namespace.map(str::to_owned),
                            search: search.map(str::to_owned),
                            labels: Some(LabelSelector::parse(selector).expect("selector")),
                            limit,
                            offset,
                            ..ListQuery::default()
                        };
                        query.sort.descending = descending;
                        // A page, then the page after its cursor.
                        for _ in 0..2 {
                            let order = Order::new(&data.spec, &query).expect("order");
                            let scope = page::scope(query.namespace.as_deref());
                            let mut filter = Filter::new(&data.spec, &query).expect("filter");
                            let full = page::filtered_in_map_order(
                                &data.objects,
                                scope.clone(),
                                &mut filter,
                                &order,
                                &query,
                            );
                            let by_sets = by_labels::label_set_members_in_map_order(
                                &data.label_sets,
                                query.labels.as_ref().expect("selector"),
                                scope,
                                &filter,
                                &order,
                                &query,
                            );
                            let what = format!(
                                "{selector:?} {search:?} {namespace:?} desc={descending} offset={offset} after={:?}",
                                query.after
                            );
                            assert_eq!(by_sets.summary(), full.summary(), "{what}");
                            compared += 1;
                            let Some(next) = full.owned().into_page(&order).expect("page").next
                            else {
                                break;
                            };
                            query.after = Some(next);
                        }
                    }
                }
            }
        }
    }
    compared
}

#[tokio::test]
async fn cursors_read_from_records_equal_cursors_of_objects() {
    let store = MemoryStore::new(16);
    let kind = sample_kind("Cursors");
    store.register(&kind).await.expect("register");
    let mut with_date = sample_object("ns", "a", "1");
    with_date.columns.insert("phase".into(), json!("Running"));
    let mut without_date = sample_object("ns", "b", "1");
    without_date.created_at = None;
    let ops = vec![WriteOp::Upsert(with_date), WriteOp::Upsert(without_date)];
    store
        .write(&kind, WriteBatch { ops, epoch: 1 })
        .await
        .expect("write");
    let table = store.table(&kind).expect("table");
    let data = table.data.read();
    let fields = [
        SortField::Name,
        SortField::CreatedAt,
        SortField::Column("phase".into()),
    ];
    for field in fields {
        for descending in [false, true] {
            let mut query = ListQuery::default();
            query.sort.field = field.clone();
            query.sort.descending = descending;
            let order = Order::new(&data.spec, &query).expect("order");
            for entry in data.objects.values() {
                let object = entry.record.to_mirror_object().expect("materialise");
                let from_record = order.cursor_of_record(&entry.record).expect("cursor");
                assert_eq!(from_record, order.cursor_of(&object), "{field:?}");
            }
        }
    }
}
