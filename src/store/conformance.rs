//! The shared conformance suite every store backend must pass. Each scenario is a public async
//! function that takes a store, works on its own kind (so one store can run them all) and panics
//! with a message naming the step that failed. Every store call and wait is bounded by a timeout.
//!
//! Backends call the scenarios one test each (or [`run_all`]) on a store created with at least
//! [`SUITE_HISTORY`] retained changes, and [`expired_feed`] on a store created with a small history.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use stowage_emulator::selectors::LabelSelector;

use super::{
    ChangeType, Cursor, GroupBy, ListPage, ListQuery, MirrorObject, Revision, RevisionModel, Sort,
    SortField, Store, StoreError, WriteBatch, WriteOp, WriteOutcome,
};
use crate::mirror::kind::{ColumnSpec, ColumnType, KindSpec};

/// Bound on every store call and every wait of the suite.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Changes the store given to [`run_all`] (and to the single scenarios) must retain at least.
pub const SUITE_HISTORY: usize = 10_000;

/// A namespaced test kind with the suite's typed columns: `phase` (string, indexed), `replicas`
/// (integer), `ready` (boolean) and `spec` (JSON).
pub fn sample_kind(kind: &str) -> KindSpec {
    let column = |name: &str, path: &str, column_type: ColumnType, index: bool| ColumnSpec {
        name: name.to_owned(),
        path: path.to_owned(),
        column_type,
        index,
    };
    KindSpec {
        group: "conformance.stowage.dev".to_owned(),
        version: "v1".to_owned(),
        kind: kind.to_owned(),
        plural: format!("{}s", kind.to_lowercase()),
        namespaced: true,
        prune: vec![],
        keep_secret_data: false,
        columns: vec![
            column("phase", ".status.phase", ColumnType::String, true),
            column("replicas", ".spec.replicas", ColumnType::Integer, false),
            column("ready", ".status.ready", ColumnType::Boolean, false),
            column("spec", ".spec", ColumnType::Json, false),
        ],
    }
}

/// An object of a [`sample_kind`] with uid `uid:{namespace}/{name}`, no labels, created
/// `2024-01-01T00:00:00Z` and every column `null`; `object` is rendered from the fields.
pub fn sample_object(namespace: &str, name: &str, resource_version: &str) -> MirrorObject {
    let columns = ["phase", "replicas", "ready", "spec"]
        .into_iter()
        .map(|c| (c.to_owned(), Value::Null))
        .collect();
    render(MirrorObject {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: format!("uid:{namespace}/{name}"),
        resource_version: resource_version.to_owned(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        created_at: Some("2024-01-01T00:00:00Z".to_owned()),
        columns,
        object: Value::Null.into(),
    })
}

/// Calls `$then!(scenario, ...)` with every scenario that takes only a store (all but
/// [`expired_feed`]): the one list a new scenario is added to.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_conformance_scenario {
    ($then:ident ! ($($args:tt)*)) => {
        $crate::$then!(
            ($($args)*)
            register_and_unknown_kinds,
            upsert_get_and_count,
            same_resource_version_is_a_no_op,
            delete_and_delete_unknown,
            batch_revisions_are_consecutive,
            sweep_removes_only_stale_objects,
            list_namespace_filter,
            list_search_is_case_insensitive,
            list_label_selector,
            list_column_filters,
            list_sorting,
            list_offset_paging,
            list_keyset_paging,
            list_json_matches_list,
            hostile_values_are_literal,
            group_count_and_column_sums,
            change_feed,
            feed_keeps_revisions_whole,
            subscribe_wakes_after_write
        );
    };
}

/// One `#[tokio::test]` per scenario of the suite (all but [`expired_feed`], which needs a
/// retention setting). The block gets the scenario as `$scenario` (an
/// `async fn(&dyn Store)`) and runs it on a store it sets up:
///
/// ```ignore
/// stowage::conformance_tests!(scenario => {
///     scenario(&MemoryStore::new(conformance::SUITE_HISTORY)).await;
/// });
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($scenario:ident => $body:block) => {
        $crate::__for_each_conformance_scenario!(__conformance_test!($scenario => $body));
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test {
    (($scenario:ident => $body:block) $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let $scenario = $crate::store::conformance::$name;
                $body
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_run_all {
    (($store:expr) $($name:ident),* $(,)?) => {
        $( $crate::store::conformance::$name($store).await; )*
    };
}

/// Runs every scenario except [`expired_feed`] on one store, one after another.
pub async fn run_all(store: Arc<dyn Store>) {
    let store = &*store;
    crate::__for_each_conformance_scenario!(__conformance_run_all!(store));
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// `register` is idempotent and keeps objects; unknown kinds fail with `UnknownKind`;
/// `unregister` drops the kind's objects.
pub async fn register_and_unknown_kinds(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfRegister").await;
    step("second register", store.register(&kind)).await;
    upsert(store, &kind, vec![sample_object("ns", "a", "1")]).await;
    step("register again", store.register(&kind)).await;
    assert_eq!(
        count(store, &kind).await,
        1,
        "register must not lose objects"
    );

    let mut wider = kind.clone();
    wider.columns.push(ColumnSpec {
        name: "extra".to_owned(),
        path: ".spec.extra".to_owned(),
        column_type: ColumnType::String,
        index: false,
    });
    step("register with a new column", store.register(&wider)).await;
    assert_eq!(
        count(store, &wider).await,
        1,
        "a changed spec must keep objects"
    );
    let query = ListQuery {
        columns: vec![("extra".to_owned(), "x".to_owned())],
        limit: 10,
        ..ListQuery::default()
    };
    assert_eq!(
        list(store, &wider, &query).await.total,
        0,
        "filter on the new column"
    );

    let unknown = sample_kind("ConfNeverRegistered");
    let unknown_kind = |e: StoreError| matches!(e, StoreError::UnknownKind(_));
    let batch = WriteBatch {
        ops: vec![WriteOp::Upsert(sample_object("ns", "a", "1"))],
        epoch: 1,
    };
    assert!(unknown_kind(
        step_err("write to unknown kind", store.write(&unknown, batch)).await
    ));
    assert!(unknown_kind(
        step_err("sweep unknown kind", store.sweep(&unknown, 1)).await
    ));
    assert!(unknown_kind(
        step_err("get from unknown kind", store.get(&unknown, "ns", "a")).await
    ));
    assert!(unknown_kind(
        step_err(
            "get_by_uid from unknown kind",
            store.get_by_uid(&unknown, "u")
        )
        .await
    ));
    assert!(unknown_kind(
        step_err(
            "list unknown kind",
            store.list(&unknown, &ListQuery::default())
        )
        .await
    ));
    assert!(unknown_kind(
        step_err("count unknown kind", store.count(&unknown)).await
    ));
    let by = GroupBy::Namespace;
    assert!(unknown_kind(
        step_err("group_count unknown kind", store.group_count(&unknown, &by)).await
    ));
    let sums = ["replicas".to_owned()];
    assert!(unknown_kind(
        step_err(
            "column_sums unknown kind",
            store.column_sums(&unknown, &sums)
        )
        .await
    ));

    step("unregister", store.unregister(&kind)).await;
    assert!(unknown_kind(
        step_err("count after unregister", store.count(&kind)).await
    ));
    step("register after unregister", store.register(&kind)).await;
    assert_eq!(
        count(store, &kind).await,
        0,
        "unregister must drop the kind's objects"
    );
}

/// Upserts are readable by name and uid and counted; a new resourceVersion replaces the object;
/// a recreated object (new uid) is found by its new uid only.
pub async fn upsert_get_and_count(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfUpsert").await;
    let start = revision(store).await;
    let a = labelled(sample_object("ns1", "a", "1"), &[("app", "web")]);
    let b = with_columns(
        sample_object("ns1", "b", "1"),
        Some("Running"),
        Some(2),
        Some(true),
    );
    let outcome = upsert(store, &kind, vec![a.clone(), b.clone()]).await;
    assert_eq!(outcome.changed, 2, "two new objects");
    assert_eq!(
        get(store, &kind, "ns1", "a").await.as_ref(),
        Some(&a),
        "get returns the object as written"
    );
    let by_uid = step("get_by_uid", store.get_by_uid(&kind, &b.uid)).await;
    assert_eq!(
        by_uid.as_ref(),
        Some(&b),
        "get_by_uid returns the object as written"
    );
    assert_eq!(
        get(store, &kind, "ns1", "missing").await,
        None,
        "unknown name"
    );
    assert_eq!(
        get(store, &kind, "ns2", "a").await,
        None,
        "same name, other namespace"
    );
    assert_eq!(
        step("get_by_uid unknown", store.get_by_uid(&kind, "no-such-uid")).await,
        None
    );
    assert_eq!(count(store, &kind).await, 2);

    let a2 = with_columns(resource_version(a.clone(), "2"), Some("Failed"), None, None);
    assert_eq!(
        upsert(store, &kind, vec![a2.clone()]).await.changed,
        1,
        "new resourceVersion"
    );
    assert_eq!(
        get(store, &kind, "ns1", "a").await.as_ref(),
        Some(&a2),
        "replaced object"
    );

    let mut recreated = resource_version(a2.clone(), "3");
    recreated.uid = "uid:recreated".to_owned();
    let recreated = render(recreated);
    upsert(store, &kind, vec![recreated.clone()]).await;
    assert_eq!(
        step("old uid", store.get_by_uid(&kind, &a.uid)).await,
        None,
        "old uid after recreation"
    );
    let found = step("new uid", store.get_by_uid(&kind, "uid:recreated")).await;
    assert_eq!(found.as_ref(), Some(&recreated), "new uid after recreation");

    upsert(store, &kind, vec![sample_object("ns2", "a", "1")]).await;
    assert_eq!(
        count(store, &kind).await,
        3,
        "same name in another namespace is another object"
    );

    let feed = kind_changes(store, &kind, start).await;
    let types: Vec<ChangeType> = feed.iter().map(|c| c.1).collect();
    use ChangeType::{Added, Modified};
    assert_eq!(
        types,
        [Added, Added, Modified, Modified, Added],
        "change types of the upserts"
    );
}

/// Upserting the stored resourceVersion again changes nothing: no revision, no change, old content.
pub async fn same_resource_version_is_a_no_op(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfSameRv").await;
    let original = with_columns(sample_object("ns", "a", "7"), Some("Running"), None, None);
    upsert(store, &kind, vec![original.clone()]).await;
    let before = revision(store).await;
    let same_rv = with_columns(original.clone(), Some("Pending"), None, None);
    let outcome = upsert(store, &kind, vec![same_rv]).await;
    assert_unchanged(
        store,
        outcome,
        before,
        "same resourceVersion must be a no-op",
    )
    .await;
    assert_eq!(
        get(store, &kind, "ns", "a").await.as_ref(),
        Some(&original),
        "stored content unchanged"
    );
    assert!(
        kind_changes(store, &kind, before).await.is_empty(),
        "no change recorded"
    );
}

/// Deleting an object removes it and records its last state; deleting unknown objects is ignored.
pub async fn delete_and_delete_unknown(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfDelete").await;
    let a = with_columns(
        sample_object("ns", "a", "4"),
        Some("Running"),
        Some(1),
        None,
    );
    upsert(store, &kind, vec![a.clone(), sample_object("ns", "b", "1")]).await;
    let before = revision(store).await;
    assert_eq!(
        write(store, &kind, vec![delete("ns", "a")], 1)
            .await
            .changed,
        1,
        "delete existing"
    );
    assert_eq!(
        get(store, &kind, "ns", "a").await,
        None,
        "deleted object is gone"
    );
    assert_eq!(
        step("get_by_uid deleted", store.get_by_uid(&kind, &a.uid)).await,
        None
    );
    assert_eq!(count(store, &kind).await, 1);
    let feed = kind_changes(store, &kind, before).await;
    assert_eq!(feed.len(), 1, "one change for the delete");
    assert_eq!(feed[0].1, ChangeType::Deleted);
    assert_eq!(feed[0].2, a, "a deletion carries the last stored state");

    let after_delete = revision(store).await;
    let outcome = write(
        store,
        &kind,
        vec![
            delete("ns", "a"),
            delete("ns", "never"),
            delete("other", "b"),
        ],
        1,
    )
    .await;
    assert_unchanged(store, outcome, after_delete, "unknown deletes are ignored").await;
    assert_eq!(count(store, &kind).await, 1);
    assert!(
        kind_changes(store, &kind, after_delete).await.is_empty(),
        "no change for unknown deletes"
    );
}

/// A batch gets one revision per change, consecutive and strictly increasing, and revisions keep
/// increasing across kinds. Under [`RevisionModel::Shared`]: revisions in operation order, the
/// last one the outcome's, increasing across kinds (changes of one transaction share one).
pub async fn batch_revisions_are_consecutive(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfBatch").await;
    let other = fresh_kind(store, "ConfBatchOther").await;
    let start = revision(store).await;
    let empty = write(store, &kind, vec![], 1).await;
    assert_unchanged(store, empty, start, "an empty batch changes nothing").await;
    let shared = store.revision_model() == RevisionModel::Shared;

    let ops = vec![
        WriteOp::Upsert(sample_object("ns", "x", "1")),
        WriteOp::Upsert(sample_object("ns", "y", "1")),
        WriteOp::Upsert(with_columns(
            sample_object("ns", "x", "2"),
            Some("Running"),
            None,
            None,
        )),
        delete("ns", "y"),
        delete("ns", "unknown"),
        WriteOp::Upsert(sample_object("ns", "z", "1")),
    ];
    let outcome = write(store, &kind, ops, 1).await;
    assert_eq!(
        outcome.changed, 5,
        "five of six operations change something"
    );
    let feed = kind_changes(store, &kind, start).await;
    let revisions: Vec<Revision> = feed.iter().map(|c| c.0).collect();
    if shared {
        // Changes of one transaction share its revision; other writers may skip numbers.
        assert!(outcome.revision > start, "the batch moves the revision");
        assert!(
            revision(store).await >= outcome.revision,
            "store revision after the batch"
        );
        assert_eq!(revisions.len(), 5, "one change per changing operation");
        assert!(
            revisions.windows(2).all(|w| w[0] <= w[1]),
            "revisions in batch order: {revisions:?}"
        );
        assert_eq!(
            revisions.last(),
            Some(&outcome.revision),
            "the batch's last change has the outcome's revision"
        );
    } else {
        assert_eq!(outcome.revision, start + 5, "one revision per change");
        assert_eq!(
            revision(store).await,
            outcome.revision,
            "store revision after the batch"
        );
        assert_eq!(
            revisions,
            (start + 1..=start + 5).collect::<Vec<_>>(),
            "consecutive revisions in batch order"
        );
    }
    let types: Vec<ChangeType> = feed.iter().map(|c| c.1).collect();
    use ChangeType::{Added, Deleted, Modified};
    assert_eq!(
        types,
        [Added, Added, Modified, Deleted, Added],
        "changes in operation order"
    );
    assert_eq!(
        names(&list(store, &kind, &all()).await),
        ["ns/x", "ns/z"],
        "final state"
    );
    let x = get(store, &kind, "ns", "x").await;
    assert_eq!(
        x.map(|x| x.resource_version),
        Some("2".to_owned()),
        "last upsert wins"
    );

    let next = write(
        store,
        &other,
        vec![WriteOp::Upsert(sample_object("ns", "x", "1"))],
        1,
    )
    .await;
    if shared {
        assert!(
            next.revision > outcome.revision,
            "revisions increase across kinds"
        );
    } else {
        assert_eq!(
            next.revision,
            outcome.revision + 1,
            "revisions continue across kinds"
        );
    }
}

/// `sweep(epoch)` removes exactly the objects not upserted in that epoch (unchanged upserts count
/// as seen) and records a `Deleted` change for each.
pub async fn sweep_removes_only_stale_objects(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfSweep").await;
    let objects = ["a", "b", "c"].map(|n| sample_object("ns", n, "1"));
    write(
        store,
        &kind,
        objects.iter().cloned().map(WriteOp::Upsert).collect(),
        1,
    )
    .await;
    let relist = vec![
        WriteOp::Upsert(sample_object("ns", "a", "2")),
        WriteOp::Upsert(objects[1].clone()),
    ];
    assert_eq!(
        write(store, &kind, relist, 2).await.changed,
        1,
        "only a changed during the relist"
    );
    let before = revision(store).await;
    assert_eq!(
        step("sweep epoch 2", store.sweep(&kind, 2)).await,
        1,
        "only c is stale"
    );
    assert_eq!(
        names(&list(store, &kind, &all()).await),
        ["ns/a", "ns/b"],
        "stale object removed"
    );
    let feed = kind_changes(store, &kind, before).await;
    assert_eq!(feed.len(), 1, "one change per swept object");
    assert_eq!(
        (feed[0].1, &feed[0].2),
        (ChangeType::Deleted, &objects[2]),
        "swept object's last state"
    );
    assert_eq!(
        step("sweep again", store.sweep(&kind, 2)).await,
        0,
        "nothing left to sweep"
    );
    assert_eq!(step("sweep an older epoch", store.sweep(&kind, 1)).await, 0);
    assert_eq!(
        kind_changes(store, &kind, before).await.len(),
        1,
        "empty sweeps record nothing"
    );
    if store.revision_model() == RevisionModel::PerChange {
        assert_eq!(
            revision(store).await,
            before + 1,
            "empty sweeps record nothing"
        );
    }
}

/// The namespace filter returns exactly one namespace (not namespaces sharing its prefix).
pub async fn list_namespace_filter(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfListNs").await;
    let keys = [
        ("alpha", "c"),
        ("alpha", "a"),
        ("alpha", "b"),
        ("beta", "a"),
        ("beta", "z"),
        ("alphabet", "a"),
    ];
    upsert(
        store,
        &kind,
        keys.iter()
            .map(|(ns, n)| sample_object(ns, n, "1"))
            .collect(),
    )
    .await;
    let page = list(store, &kind, &in_namespace("alpha")).await;
    assert_eq!(
        (names(&page), page.total),
        (strings(&["alpha/a", "alpha/b", "alpha/c"]), 3),
        "namespace alpha"
    );
    let page = list(store, &kind, &in_namespace("beta")).await;
    assert_eq!(names(&page), ["beta/a", "beta/z"], "namespace beta");
    let page = list(store, &kind, &in_namespace("gamma")).await;
    assert_eq!(
        (page.items.len(), page.total, page.next),
        (0, 0, None),
        "empty namespace"
    );
    let page = list(store, &kind, &all()).await;
    let expected = [
        "alpha/a",
        "alpha/b",
        "alpha/c",
        "alphabet/a",
        "beta/a",
        "beta/z",
    ];
    assert_eq!(
        (names(&page), page.total),
        (strings(&expected), 6),
        "all namespaces by namespace, name"
    );
}

/// `search` is a case-insensitive substring of the name.
pub async fn list_search_is_case_insensitive(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfListSearch").await;
    let list_names = ["web-1", "web-2", "Webhook-x", "WEB-3", "api-1", "my-web"];
    upsert(
        store,
        &kind,
        list_names
            .iter()
            .map(|n| sample_object("ns", n, "1"))
            .collect(),
    )
    .await;
    let search = |s: &str| ListQuery {
        search: Some(s.to_owned()),
        limit: 100,
        ..ListQuery::default()
    };
    let page = list(store, &kind, &search("Web")).await;
    assert_eq!(
        names(&page),
        [
            "ns/WEB-3",
            "ns/Webhook-x",
            "ns/my-web",
            "ns/web-1",
            "ns/web-2"
        ],
        "search Web"
    );
    assert_eq!(page.total, 5);
    assert_eq!(
        names(&list(store, &kind, &search("B-")).await),
        ["ns/WEB-3", "ns/web-1", "ns/web-2"],
        "search B-"
    );
    assert_eq!(
        list(store, &kind, &search("")).await.total,
        6,
        "empty search matches everything"
    );
    assert_eq!(list(store, &kind, &search("nothing")).await.total, 0);
    let scoped = ListQuery {
        namespace: Some("other".to_owned()),
        ..search("web")
    };
    assert_eq!(
        list(store, &kind, &scoped).await.total,
        0,
        "search within another namespace"
    );
}

/// Label selectors, including `!=` matching objects without the label.
pub async fn list_label_selector(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfListLabels").await;
    let objects = vec![
        labelled(
            sample_object("ns", "a", "1"),
            &[("app", "web"), ("tier", "frontend")],
        ),
        labelled(
            sample_object("ns", "b", "1"),
            &[("app", "web"), ("tier", "db")],
        ),
        labelled(sample_object("ns", "c", "1"), &[("app", "web")]),
        labelled(sample_object("ns", "d", "1"), &[("app", "api")]),
        sample_object("other", "e", "1"),
    ];
    upsert(store, &kind, objects).await;
    let check = |selector: &str, expected: &[&str]| {
        let query = ListQuery {
            labels: Some(parse_selector(selector)),
            limit: 100,
            ..ListQuery::default()
        };
        let expected = strings(expected);
        let selector = selector.to_owned();
        let kind = &kind;
        async move {
            let page = list(store, kind, &query).await;
            assert_eq!(names(&page), expected, "selector {selector}");
            assert_eq!(page.total, expected.len(), "total for selector {selector}");
        }
    };
    check("app=web,tier!=db", &["ns/a", "ns/c"]).await;
    check("app in (web,api)", &["ns/a", "ns/b", "ns/c", "ns/d"]).await;
    check("!tier", &["ns/c", "ns/d", "other/e"]).await;
    check("tier", &["ns/a", "ns/b"]).await;
    check("app notin (web)", &["ns/d", "other/e"]).await;
    check("", &["ns/a", "ns/b", "ns/c", "ns/d", "other/e"]).await;
    let query = ListQuery {
        labels: Some(parse_selector("app=web")),
        search: Some("C".to_owned()),
        namespace: Some("ns".to_owned()),
        limit: 100,
        ..ListQuery::default()
    };
    assert_eq!(
        names(&list(store, &kind, &query).await),
        ["ns/c"],
        "labels with search and namespace"
    );
}

/// Column filters of a case: `(column, value)` pairs.
type Filters<'a> = &'a [(&'a str, &'a str)];

/// Column equality filters compare string forms; `null` never matches; unknown columns fail.
pub async fn list_column_filters(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfListColumns").await;
    upsert(
        store,
        &kind,
        vec![
            with_columns(
                sample_object("ns", "a", "1"),
                Some("Running"),
                Some(3),
                Some(true),
            ),
            with_columns(
                sample_object("ns", "b", "1"),
                Some("Running"),
                Some(1),
                Some(false),
            ),
            with_columns(
                sample_object("ns", "c", "1"),
                Some("Pending"),
                Some(3),
                Some(false),
            ),
            with_columns(sample_object("ns", "d", "1"), None, None, None),
        ],
    )
    .await;
    let cases: [(Filters, &[&str]); 8] = [
        (&[("phase", "Running")], &["ns/a", "ns/b"]),
        (&[("phase", "running")], &[]),
        (&[("replicas", "3")], &["ns/a", "ns/c"]),
        (&[("ready", "true")], &["ns/a"]),
        (&[("ready", "false")], &["ns/b", "ns/c"]),
        (&[("phase", "Running"), ("ready", "false")], &["ns/b"]),
        (&[("phase", "")], &[]),
        (&[("phase", "null")], &[]),
    ];
    for (filters, expected) in cases {
        let columns = filters
            .iter()
            .map(|(c, v)| (c.to_string(), v.to_string()))
            .collect();
        let page = list(
            store,
            &kind,
            &ListQuery {
                columns,
                limit: 100,
                ..ListQuery::default()
            },
        )
        .await;
        assert_eq!(
            names(&page),
            strings(expected),
            "column filters {filters:?}"
        );
        assert_eq!(
            page.total,
            expected.len(),
            "total for column filters {filters:?}"
        );
    }
    let query = ListQuery {
        columns: vec![("nope".to_owned(), "x".to_owned())],
        ..ListQuery::default()
    };
    let error = step_err("filter on an unknown column", store.list(&kind, &query)).await;
    assert!(
        matches!(error, StoreError::UnknownColumn { .. }),
        "unknown column filter: {error}"
    );
}

/// Sorting by name, creation time and columns; ties broken by namespace/name; descending is the
/// exact reverse of ascending; JSON values order null < bool < number < string.
pub async fn list_sorting(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfListSort").await;
    let object = |ns: &str,
                  name: &str,
                  created: Option<&str>,
                  phase: Option<&str>,
                  replicas: Option<i64>| {
        let mut object = with_columns(
            sample_object(ns, name, "1"),
            phase,
            replicas,
            Some(replicas.is_some()),
        );
        object.created_at = created.map(str::to_owned);
        render(object)
    };
    upsert(
        store,
        &kind,
        vec![
            object(
                "b",
                "one",
                Some("2024-03-01T00:00:00Z"),
                Some("Running"),
                Some(10),
            ),
            object(
                "a",
                "two",
                Some("2024-01-01T00:00:00Z"),
                Some("Pending"),
                Some(9),
            ),
            object("a", "three", Some("2024-02-01T00:00:00Z"), None, None),
            object(
                "c",
                "four",
                Some("2024-01-01T00:00:00Z"),
                Some("Running"),
                Some(2),
            ),
            object("a", "five", None, Some("Failed"), Some(10)),
        ],
    )
    .await;
    let cases: [(SortField, &[&str]); 5] = [
        (
            SortField::Name,
            &["a/five", "a/three", "a/two", "b/one", "c/four"],
        ),
        (
            SortField::CreatedAt,
            &["a/five", "a/two", "c/four", "a/three", "b/one"],
        ),
        (
            column("replicas"),
            &["a/three", "c/four", "a/two", "a/five", "b/one"],
        ),
        (
            column("phase"),
            &["a/three", "a/five", "a/two", "b/one", "c/four"],
        ),
        (
            column("ready"),
            &["a/three", "a/five", "a/two", "b/one", "c/four"],
        ),
    ];
    for (field, ascending) in cases {
        for descending in [false, true] {
            let sort = Sort {
                field: field.clone(),
                descending,
            };
            let page = list(
                store,
                &kind,
                &ListQuery {
                    sort,
                    limit: 100,
                    ..ListQuery::default()
                },
            )
            .await;
            let mut expected = strings(ascending);
            if descending {
                expected.reverse();
            }
            assert_eq!(
                names(&page),
                expected,
                "sort by {field:?}, descending {descending}"
            );
        }
    }
    let sort = Sort {
        field: column("nope"),
        descending: false,
    };
    let error = step_err(
        "sort by an unknown column",
        store.list(
            &kind,
            &ListQuery {
                sort,
                ..ListQuery::default()
            },
        ),
    )
    .await;
    assert!(
        matches!(error, StoreError::UnknownColumn { .. }),
        "unknown sort column: {error}"
    );
}

/// Offset paging with totals under several sort orders; `next` only while more follow;
/// `limit == 0` returns only the total.
pub async fn list_offset_paging(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfListOffset").await;
    let objects: Vec<MirrorObject> = (0..25).map(|i| keyset_object("ns", i)).collect();
    upsert(store, &kind, objects).await;
    let sorts = [
        Sort {
            field: SortField::Name,
            descending: false,
        },
        Sort {
            field: SortField::CreatedAt,
            descending: true,
        },
        Sort {
            field: column("replicas"),
            descending: false,
        },
    ];
    for sort in sorts {
        let expected = names(
            &list(
                store,
                &kind,
                &ListQuery {
                    sort: sort.clone(),
                    ..all()
                },
            )
            .await,
        );
        assert_eq!(expected.len(), 25, "unpaged list ({sort:?})");
        for limit in [10, 5] {
            let mut seen = Vec::new();
            for offset in (0..25).step_by(limit) {
                let query = ListQuery {
                    sort: sort.clone(),
                    limit,
                    offset,
                    ..ListQuery::default()
                };
                let page = list(store, &kind, &query).await;
                let len = limit.min(25 - offset);
                let what = format!("page at offset {offset}, limit {limit} ({sort:?})");
                assert_eq!((page.items.len(), page.total), (len, 25), "{what}");
                assert_eq!(
                    page.next.is_some(),
                    offset + len < 25,
                    "next cursor only while more follow: {what}"
                );
                if let Some(next) = &page.next {
                    let last = &page.items[len - 1];
                    assert_eq!(
                        (&next.namespace, &next.name),
                        (&last.namespace, &last.name),
                        "cursor of the last item: {what}"
                    );
                }
                seen.extend(names(&page));
            }
            assert_eq!(
                seen, expected,
                "pages of {limit} concatenate to the whole list ({sort:?})"
            );
        }
        let query = ListQuery {
            sort: sort.clone(),
            limit: 0,
            ..ListQuery::default()
        };
        let page = list(store, &kind, &query).await;
        assert_eq!(
            (page.items.len(), page.total, page.next),
            (0, 25, None),
            "limit 0 counts only ({sort:?})"
        );
        let query = ListQuery {
            sort: sort.clone(),
            limit: 10,
            offset: 40,
            ..ListQuery::default()
        };
        let page = list(store, &kind, &query).await;
        assert_eq!(
            (page.items.len(), page.total, page.next),
            (0, 25, None),
            "offset past the end ({sort:?})"
        );
    }
    let query = ListQuery {
        limit: 0,
        search: Some("item-01".to_owned()),
        ..ListQuery::default()
    };
    assert_eq!(
        list(store, &kind, &query).await.total,
        10,
        "filtered total with limit 0"
    );
}

/// Keyset paging visits every match exactly once across pages, in order, for several sort orders,
/// even when objects are added between pages.
pub async fn list_keyset_paging(store: &dyn Store) {
    let cases = [
        (sort(SortField::Name, false), Some("app=web"), None),
        (sort(SortField::Name, true), Some("app=web"), None),
        (sort(SortField::Name, false), None, None),
        (sort(SortField::Name, true), None, Some("ns1")),
        (sort(SortField::Name, false), None, Some("ns1")),
        (sort(SortField::CreatedAt, false), Some("app=web"), None),
        (sort(column("replicas"), true), Some("app=web"), None),
        (sort(column("phase"), false), None, Some("ns1")),
    ];
    for (index, (sort, selector, namespace)) in cases.into_iter().enumerate() {
        let what = format!("{sort:?}, selector {selector:?}, namespace {namespace:?}");
        let kind = fresh_kind(store, &format!("ConfListKeyset{index}")).await;
        let objects = (0..40)
            .map(|i| keyset_object(&format!("ns{}", i % 3), i))
            .collect();
        upsert(store, &kind, objects).await;
        let base = ListQuery {
            namespace: namespace.map(str::to_owned),
            labels: selector.map(parse_selector),
            sort: sort.clone(),
            limit: 5,
            ..ListQuery::default()
        };
        let everything = ListQuery {
            limit: 1000,
            ..base.clone()
        };
        let initial = names(&list(store, &kind, &everything).await);
        assert!(
            initial.len() > 2 * base.limit,
            "enough matches for several pages ({what})"
        );

        let mut visited: Vec<String> = Vec::new();
        let mut after: Option<Cursor> = None;
        for page_number in 0.. {
            assert!(
                page_number < 20,
                "keyset paging does not terminate ({what})"
            );
            let counting = ListQuery {
                limit: 0,
                ..base.clone()
            };
            let total = list(store, &kind, &counting).await.total;
            // The offset is ignored when a cursor is given.
            let offset = if after.is_some() { 3 } else { 0 };
            let query = ListQuery {
                after: after.clone(),
                offset,
                ..base.clone()
            };
            let page = list(store, &kind, &query).await;
            assert_eq!(
                page.total, total,
                "a keyset page's total counts every match ({what})"
            );
            visited.extend(names(&page));
            // New objects between pages, some before and some after the cursor.
            let new = (0..2)
                .map(|j| keyset_object("ns1", 100 + page_number * 2 + j))
                .collect();
            upsert(store, &kind, new).await;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let unique: BTreeSet<&String> = visited.iter().collect();
        assert_eq!(
            unique.len(),
            visited.len(),
            "keyset pages repeat items ({what}): {visited:?}"
        );
        let missed: Vec<&String> = initial.iter().filter(|n| !unique.contains(n)).collect();
        assert!(missed.is_empty(), "keyset pages missed {missed:?} ({what})");
        let final_order = names(&list(store, &kind, &everything).await);
        let in_final_order: Vec<&String> =
            final_order.iter().filter(|n| unique.contains(n)).collect();
        let visited_refs: Vec<&String> = visited.iter().collect();
        assert_eq!(
            visited_refs, in_final_order,
            "keyset pages are in sort order ({what})"
        );
    }
}

/// `list_json` answers every query like `list`: the same objects, serialised, with the same total
/// and cursor.
pub async fn list_json_matches_list(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfListJson").await;
    let objects = (0..30)
        .map(|i| keyset_object(&format!("ns{}", i % 3), i))
        .collect();
    upsert(store, &kind, objects).await;
    let queries = [
        all(),
        ListQuery { limit: 4, ..all() },
        ListQuery {
            namespace: Some("ns1".to_owned()),
            labels: Some(parse_selector("app=web")),
            limit: 3,
            offset: 1,
            ..all()
        },
        ListQuery {
            sort: sort(column("replicas"), true),
            limit: 5,
            ..all()
        },
        ListQuery {
            search: Some("no-such-name".to_owned()),
            ..all()
        },
    ];
    for query in queries {
        let page = list(store, &kind, &query).await;
        let json = step("list_json", store.list_json(&kind, &query)).await;
        let decoded: Vec<Value> = json
            .items
            .iter()
            .map(|item| serde_json::from_slice(item).expect("list_json items are JSON documents"))
            .collect();
        let expected: Vec<Value> = page.items.iter().map(|o| o.object.tree().clone()).collect();
        assert_eq!(decoded, expected, "list_json objects for {query:?}");
        assert_eq!(json.total, page.total, "list_json total for {query:?}");
        assert_eq!(json.next, page.next, "list_json cursor for {query:?}");
        // The same page written into a buffer that already holds the start of a document.
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"[");
        let (_, written) = step(
            "revision_and_write_list_json",
            store.revision_and_write_list_json(&kind, &query, &mut out),
        )
        .await;
        assert!(
            out.capacity() - out.len() >= 63,
            "the room to spare is kept after the items ({query:?})"
        );
        out.extend_from_slice(b"]");
        let array: Vec<Value> =
            serde_json::from_slice(&out).expect("written items are a JSON array's members");
        assert_eq!(array, expected, "written objects for {query:?}");
        assert_eq!(written.count, expected.len(), "written count for {query:?}");
        assert_eq!(written.total, page.total, "written total for {query:?}");
        assert_eq!(written.next, page.next, "written cursor for {query:?}");
    }
    let unknown = sample_kind("ConfListJsonNeverRegistered");
    let err = step_err(
        "list_json of an unknown kind",
        store.list_json(&unknown, &all()),
    )
    .await;
    assert!(
        matches!(err, StoreError::UnknownKind(_)),
        "list_json of an unknown kind: {err:?}"
    );
    let mut out = b"[".to_vec();
    let err = step_err(
        "revision_and_write_list_json of an unknown kind",
        store.revision_and_write_list_json(&unknown, &all(), &mut out),
    )
    .await;
    assert!(
        matches!(err, StoreError::UnknownKind(_)),
        "revision_and_write_list_json of an unknown kind: {err:?}"
    );
    assert_eq!(out, b"[", "nothing is written for an unknown kind");
}

/// Quotes, wildcards, backslashes, unicode and 250-character names are stored and found literally.
pub async fn hostile_values_are_literal(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfHostile").await;
    let long = format!("long-{}", "x".repeat(245));
    let hostile = [
        "o'brien",
        "say \"hi\"",
        "100%",
        "%",
        "under_score",
        "_",
        "back\\slash",
        "semi;colon -- drop",
        "ünïcødé-名前-🚀",
        long.as_str(),
        "plain",
    ];
    let objects: Vec<MirrorObject> = hostile
        .iter()
        .map(|name| {
            let mut object =
                with_columns(sample_object("hostile", name, "1"), Some(name), None, None);
            object
                .annotations
                .insert("note".to_owned(), format!("{name} ' \" % _ \\"));
            render(object)
        })
        .collect();
    upsert(store, &kind, objects.clone()).await;
    assert_eq!(count(store, &kind).await, hostile.len());
    for object in &objects {
        let found = get(store, &kind, "hostile", &object.name).await;
        assert_eq!(found.as_ref(), Some(object), "get {:?}", object.name);
        let found = step("get_by_uid hostile", store.get_by_uid(&kind, &object.uid)).await;
        assert_eq!(found.as_ref(), Some(object), "get_by_uid {:?}", object.uid);
    }
    let search = |s: &str| ListQuery {
        search: Some(s.to_owned()),
        limit: 100,
        ..ListQuery::default()
    };
    let long_key = format!("hostile/{long}");
    let cases: [(&str, &[&str]); 9] = [
        ("%", &["hostile/%", "hostile/100%"]),
        ("_", &["hostile/_", "hostile/under_score"]),
        ("'", &["hostile/o'brien"]),
        ("\"", &["hostile/say \"hi\""]),
        ("\\", &["hostile/back\\slash"]),
        ("名前", &["hostile/ünïcødé-名前-🚀"]),
        ("-- drop", &["hostile/semi;colon -- drop"]),
        ("*", &[]),
        (&long[200..], &[long_key.as_str()]),
    ];
    for (needle, expected) in cases {
        let page = list(store, &kind, &search(needle)).await;
        assert_eq!(names(&page), strings(expected), "search {needle:?}");
    }
    for value in ["%", "_", "100%", "o'brien", "ünïcødé-名前-🚀"] {
        let query = ListQuery {
            columns: vec![("phase".to_owned(), value.to_owned())],
            limit: 100,
            ..ListQuery::default()
        };
        let page = list(store, &kind, &query).await;
        assert_eq!(
            names(&page),
            [format!("hostile/{value}")],
            "column filter {value:?}"
        );
    }
}

/// Counts by namespace and by column string form (`null` under `""`); sums of integer columns.
pub async fn group_count_and_column_sums(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfAggregates").await;
    let sums = ["replicas".to_owned()];
    let empty = step(
        "column_sums of an empty kind",
        store.column_sums(&kind, &sums),
    )
    .await;
    assert_eq!(
        empty,
        BTreeMap::from([("replicas".to_owned(), 0)]),
        "sums of an empty kind"
    );
    upsert(
        store,
        &kind,
        vec![
            with_columns(
                sample_object("a", "1", "1"),
                Some("Running"),
                Some(3),
                Some(true),
            ),
            with_columns(
                sample_object("a", "2", "1"),
                Some("Running"),
                Some(4),
                Some(false),
            ),
            with_columns(sample_object("b", "3", "1"), None, None, Some(true)),
            with_columns(
                sample_object("c", "4", "1"),
                Some("Pending"),
                Some(-2),
                None,
            ),
        ],
    )
    .await;
    let counts = |pairs: &[(&str, usize)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<BTreeMap<_, _>>()
    };
    let by = |by: GroupBy| {
        let kind = &kind;
        async move { step("group_count", store.group_count(kind, &by)).await }
    };
    assert_eq!(
        by(GroupBy::Namespace).await,
        counts(&[("a", 2), ("b", 1), ("c", 1)]),
        "by namespace"
    );
    let phases = counts(&[("", 1), ("Pending", 1), ("Running", 2)]);
    assert_eq!(
        by(GroupBy::Column("phase".to_owned())).await,
        phases,
        "by phase"
    );
    let ready = counts(&[("", 1), ("false", 1), ("true", 2)]);
    assert_eq!(
        by(GroupBy::Column("ready".to_owned())).await,
        ready,
        "by ready"
    );
    let error = step_err(
        "group by an unknown column",
        store.group_count(&kind, &GroupBy::Column("nope".to_owned())),
    )
    .await;
    assert!(
        matches!(error, StoreError::UnknownColumn { .. }),
        "group by unknown column: {error}"
    );

    let sums = step("column_sums", store.column_sums(&kind, &sums)).await;
    assert_eq!(
        sums,
        BTreeMap::from([("replicas".to_owned(), 5)]),
        "sum of replicas (null counts 0)"
    );
    let error = step_err(
        "sum of an unknown column",
        store.column_sums(&kind, &["nope".to_owned()]),
    )
    .await;
    assert!(
        matches!(error, StoreError::UnknownColumn { .. }),
        "sum of unknown column: {error}"
    );
}

/// The change feed: everything in order from any point, resumable without gaps or duplicates,
/// filtered by kind and limited.
pub async fn change_feed(store: &dyn Store) {
    let apps = fresh_kind(store, "ConfFeedA").await;
    let other = fresh_kind(store, "ConfFeedB").await;
    let start = revision(store).await;
    let a1 = sample_object("ns", "a1", "1");
    let a1_v2 = with_columns(sample_object("ns", "a1", "2"), Some("Running"), None, None);
    let a2 = sample_object("ns", "a2", "1");
    let b1 = sample_object("ns", "b1", "1");
    upsert(store, &apps, vec![a1.clone()]).await;
    upsert(store, &other, vec![b1.clone()]).await;
    upsert(store, &apps, vec![a2.clone()]).await;
    upsert(store, &apps, vec![a1_v2.clone()]).await;
    write(store, &other, vec![delete("ns", "b1")], 1).await;
    write(store, &apps, vec![delete("ns", "a2")], 1).await;
    let end = revision(store).await;

    let feed = step("changes since start", store.changes(None, start, 1000)).await;
    use ChangeType::{Added, Deleted, Modified};
    let expected = [
        (apps.id(), Added, &a1),
        (other.id(), Added, &b1),
        (apps.id(), Added, &a2),
        (apps.id(), Modified, &a1_v2),
        (other.id(), Deleted, &b1),
        (apps.id(), Deleted, &a2),
    ];
    let actual: Vec<(String, ChangeType, &MirrorObject)> = feed
        .iter()
        .map(|c| (c.kind.clone(), c.change, &c.object))
        .collect();
    assert_eq!(actual, expected, "changes since the start, oldest first");
    let revisions: Vec<Revision> = feed.iter().map(|c| c.revision).collect();
    if store.revision_model() == RevisionModel::Shared {
        // Each write above is one transaction: strictly increasing, maybe with gaps.
        assert!(
            revisions.windows(2).all(|w| w[0] < w[1])
                && revisions.first().is_some_and(|r| *r > start)
                && revisions.last().is_some_and(|r| *r <= end),
            "one revision per single-object write, in order: {revisions:?} in ({start}, {end}]"
        );
    } else {
        assert_eq!(
            revisions,
            (start + 1..=end).collect::<Vec<_>>(),
            "one revision per change, in order"
        );
    }

    let from_zero = step("changes since 0", store.changes(None, 0, usize::MAX)).await;
    assert!(
        from_zero.windows(2).all(|w| w[0].revision <= w[1].revision),
        "since=0 is in revision order"
    );
    let tail: Vec<_> = from_zero
        .into_iter()
        .filter(|c| c.revision > start)
        .collect();
    assert_eq!(tail, feed, "since=0 contains the same changes");

    let head = step("first three", store.changes(None, start, 3)).await;
    assert_eq!(head, feed[..3], "limit 3");
    let rest = step("resume", store.changes(None, head[2].revision, 1000)).await;
    assert_eq!(
        rest,
        feed[3..],
        "resuming after the third change: no gap, no duplicate"
    );
    let one = step("limit 1", store.changes(None, start, 1)).await;
    assert_eq!(one, feed[..1], "limit 1");

    let only_other = step("kind filter", store.changes(Some(&other), start, 1000)).await;
    let expected_other: Vec<_> = feed
        .iter()
        .filter(|c| c.kind == other.id())
        .cloned()
        .collect();
    assert_eq!(only_other, expected_other, "kind filter");
    let first_app = step(
        "kind filter with limit",
        store.changes(Some(&apps), feed[0].revision, 1),
    )
    .await;
    assert_eq!(
        first_app,
        feed[2..3],
        "kind filter with limit, after a revision of another kind"
    );
    let none = step("changes since now", store.changes(None, end, 1000)).await;
    assert!(none.is_empty(), "nothing newer than the current revision");
}

/// A limited feed ends with a whole revision (several changes share one under
/// [`RevisionModel::Shared`]), so resuming from its last revision has no gap and no duplicate.
pub async fn feed_keeps_revisions_whole(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfFeedWhole").await;
    let start = revision(store).await;
    let objects = ["a", "b", "c"].map(|n| sample_object("ns", n, "1"));
    upsert(store, &kind, objects.to_vec()).await;
    upsert(store, &kind, vec![sample_object("ns", "d", "1")]).await;
    let all = step("whole feed", store.changes(Some(&kind), start, usize::MAX)).await;
    assert_eq!(all.len(), 4, "four changes");
    let mut resumed = Vec::new();
    let mut since = start;
    while resumed.len() < all.len() {
        let page = step("feed with limit 1", store.changes(Some(&kind), since, 1)).await;
        let Some(last) = page.last() else {
            panic!("feed since {since} ended early: {resumed:?}");
        };
        let revision = last.revision;
        assert!(
            page.iter().all(|c| c.revision == revision),
            "limit 1 returns one revision"
        );
        assert_eq!(
            page.len(),
            all.iter().filter(|c| c.revision == revision).count(),
            "revision {revision} returned whole"
        );
        resumed.extend(page);
        since = revision;
    }
    assert_eq!(resumed, all, "resumed pages: no gap, no duplicate");
}

/// A store created with a history of `retained` changes reports `Expired` for older revisions and
/// resumes from the oldest retained one without gaps. Call it with a store created that way.
pub async fn expired_feed(store: &dyn Store, retained: usize) {
    assert!(
        retained > 0,
        "expired_feed needs a store that retains at least one change"
    );
    let kind = fresh_kind(store, "ConfExpired").await;
    let start = revision(store).await;
    for i in 0..retained * 2 + 3 {
        upsert(
            store,
            &kind,
            vec![sample_object("ns", &format!("o{i}"), "1")],
        )
        .await;
    }
    let end = revision(store).await;
    let error = step_err(
        "changes since the start",
        store.changes(None, start, usize::MAX),
    )
    .await;
    let StoreError::Expired { requested, oldest } = error else {
        panic!("changes from before the retained history: expected Expired, got {error}");
    };
    assert_eq!(requested, start, "Expired names the requested revision");
    assert!(
        oldest > start + 1 && oldest <= end,
        "oldest retained revision {oldest} within ({start}, {end}]"
    );
    assert!(
        (end - oldest + 1) as usize <= retained,
        "at most {retained} changes retained"
    );

    let resumed = step(
        "resume from the oldest retained",
        store.changes(None, oldest - 1, usize::MAX),
    )
    .await;
    let revisions: Vec<Revision> = resumed.iter().map(|c| c.revision).collect();
    assert_eq!(
        revisions,
        (oldest..=end).collect::<Vec<_>>(),
        "everything retained, without gaps"
    );
    let error = step_err(
        "one before the oldest",
        store.changes(None, oldest - 2, usize::MAX),
    )
    .await;
    assert!(
        matches!(error, StoreError::Expired { .. }),
        "since two before the oldest: {error}"
    );
    let empty = step("changes since now", store.changes(Some(&kind), end, 10)).await;
    assert!(empty.is_empty(), "nothing newer than the current revision");
}

/// Checks a write that changed nothing, given the revision read just before it: under
/// [`RevisionModel::PerChange`] the outcome names exactly that revision and the store stays
/// there; under [`RevisionModel::Shared`] (where other writers may move the revision) the outcome
/// names a revision between it and the current one.
async fn assert_unchanged(store: &dyn Store, outcome: WriteOutcome, before: Revision, what: &str) {
    assert_eq!(outcome.changed, 0, "{what}: nothing changed");
    match store.revision_model() {
        RevisionModel::PerChange => {
            assert_eq!(outcome.revision, before, "{what}: outcome revision");
            assert_eq!(revision(store).await, before, "{what}: no new revision");
        }
        RevisionModel::Shared => {
            let now = revision(store).await;
            assert!(
                before <= outcome.revision && outcome.revision <= now,
                "{what}: outcome revision {} within [{before}, {now}]",
                outcome.revision
            );
        }
    }
}

/// `subscribe` wakes after a write that moves the revision.
pub async fn subscribe_wakes_after_write(store: &dyn Store) {
    let kind = fresh_kind(store, "ConfSubscribe").await;
    let mut receiver = store.subscribe();
    receiver.borrow_and_update();
    assert!(
        !receiver.has_changed().unwrap_or(true),
        "no change before the write"
    );
    let outcome = upsert(store, &kind, vec![sample_object("ns", "a", "1")]).await;
    match tokio::time::timeout(STEP_TIMEOUT, receiver.changed()).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("subscribe: the store dropped the revision channel"),
        Err(_) => panic!("subscribe: no wake-up within {STEP_TIMEOUT:?} after a write"),
    }
    let seen = *receiver.borrow_and_update();
    assert!(
        seen >= outcome.revision,
        "woken with revision {seen}, expected at least {}",
        outcome.revision
    );
}

// ---------------------------------------------------------------------------------------------
// Builders and helpers
// ---------------------------------------------------------------------------------------------

/// Rebuilds `object` from the other fields, the way the pipeline would have extracted them.
fn render(mut object: MirrorObject) -> MirrorObject {
    let column = |name: &str| object.columns.get(name).cloned().unwrap_or(Value::Null);
    let mut metadata = json!({
        "namespace": object.namespace,
        "name": object.name,
        "uid": object.uid,
        "resourceVersion": object.resource_version,
        "labels": object.labels,
        "annotations": object.annotations,
    });
    if let (Some(created), Some(map)) = (&object.created_at, metadata.as_object_mut()) {
        map.insert(
            "creationTimestamp".to_owned(),
            Value::String(created.clone()),
        );
    }
    *object.object = json!({
        "apiVersion": "conformance.stowage.dev/v1",
        "metadata": metadata,
        "spec": { "replicas": column("replicas") },
        "status": { "phase": column("phase"), "ready": column("ready") },
    });
    object
}

fn labelled(mut object: MirrorObject, labels: &[(&str, &str)]) -> MirrorObject {
    object.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    render(object)
}

fn with_columns(
    mut object: MirrorObject,
    phase: Option<&str>,
    replicas: Option<i64>,
    ready: Option<bool>,
) -> MirrorObject {
    object
        .columns
        .insert("phase".to_owned(), phase.map_or(Value::Null, |p| json!(p)));
    object.columns.insert(
        "replicas".to_owned(),
        replicas.map_or(Value::Null, |r| json!(r)),
    );
    object
        .columns
        .insert("ready".to_owned(), ready.map_or(Value::Null, |r| json!(r)));
    let spec = replicas.map_or(Value::Null, |r| json!({ "replicas": r }));
    object.columns.insert("spec".to_owned(), spec);
    render(object)
}

fn resource_version(mut object: MirrorObject, resource_version: &str) -> MirrorObject {
    object.resource_version = resource_version.to_owned();
    render(object)
}

/// Object `i` of the keyset scenario: two of three labelled `app=web`, creation times and
/// replicas with many ties, some `null`s.
fn keyset_object(namespace: &str, i: usize) -> MirrorObject {
    let app = if i % 3 == 2 { "api" } else { "web" };
    let replicas = if i.is_multiple_of(5) {
        None
    } else {
        Some((i % 4) as i64)
    };
    let phase = ["Running", "Pending", "Failed"][i % 3];
    let mut object = with_columns(
        sample_object(namespace, &format!("item-{i:03}"), "1"),
        Some(phase),
        replicas,
        None,
    );
    object.created_at = Some(format!("2024-01-0{}T00:00:00Z", 1 + i % 4));
    labelled(object, &[("app", app)])
}

fn delete(namespace: &str, name: &str) -> WriteOp {
    WriteOp::Delete {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

fn sort(field: SortField, descending: bool) -> Sort {
    Sort { field, descending }
}

fn column(name: &str) -> SortField {
    SortField::Column(name.to_owned())
}

fn all() -> ListQuery {
    ListQuery {
        limit: 10_000,
        ..ListQuery::default()
    }
}

fn in_namespace(namespace: &str) -> ListQuery {
    ListQuery {
        namespace: Some(namespace.to_owned()),
        ..all()
    }
}

fn parse_selector(selector: &str) -> LabelSelector {
    LabelSelector::parse(selector)
        .unwrap_or_else(|e| panic!("test selector {selector:?} does not parse: {e}"))
}

fn key(object: &MirrorObject) -> String {
    format!("{}/{}", object.namespace, object.name)
}

fn names(page: &ListPage) -> Vec<String> {
    page.items.iter().map(key).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Awaits one store call within [`STEP_TIMEOUT`], panicking with `what` on error or timeout.
async fn step<T>(what: &str, call: impl Future<Output = Result<T, StoreError>>) -> T {
    match tokio::time::timeout(STEP_TIMEOUT, call).await {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => panic!("{what}: unexpected store error: {error}"),
        Err(_) => panic!("{what}: no answer within {STEP_TIMEOUT:?}"),
    }
}

/// Awaits one store call that must fail, within [`STEP_TIMEOUT`].
async fn step_err<T: Debug>(
    what: &str,
    call: impl Future<Output = Result<T, StoreError>>,
) -> StoreError {
    match tokio::time::timeout(STEP_TIMEOUT, call).await {
        Ok(Ok(value)) => panic!("{what}: expected an error, got {value:?}"),
        Ok(Err(error)) => error,
        Err(_) => panic!("{what}: no answer within {STEP_TIMEOUT:?}"),
    }
}

/// Registers `name` from scratch (dropping what an earlier run on the same store left).
async fn fresh_kind(store: &dyn Store, name: &str) -> KindSpec {
    let kind = sample_kind(name);
    match tokio::time::timeout(STEP_TIMEOUT, store.unregister(&kind)).await {
        Ok(Ok(())) | Ok(Err(StoreError::UnknownKind(_))) => {}
        Ok(Err(error)) => panic!("unregister {name} before the scenario: {error}"),
        Err(_) => {
            panic!("unregister {name} before the scenario: no answer within {STEP_TIMEOUT:?}")
        }
    }
    step(&format!("register {name}"), store.register(&kind)).await;
    kind
}

async fn write(store: &dyn Store, kind: &KindSpec, ops: Vec<WriteOp>, epoch: u64) -> WriteOutcome {
    step(
        &format!("write to {}", kind.kind),
        store.write(kind, WriteBatch { ops, epoch }),
    )
    .await
}

async fn upsert(store: &dyn Store, kind: &KindSpec, objects: Vec<MirrorObject>) -> WriteOutcome {
    write(
        store,
        kind,
        objects.into_iter().map(WriteOp::Upsert).collect(),
        1,
    )
    .await
}

async fn get(
    store: &dyn Store,
    kind: &KindSpec,
    namespace: &str,
    name: &str,
) -> Option<MirrorObject> {
    step(
        &format!("get {namespace}/{name}"),
        store.get(kind, namespace, name),
    )
    .await
}

async fn count(store: &dyn Store, kind: &KindSpec) -> usize {
    step(&format!("count {}", kind.kind), store.count(kind)).await
}

async fn list(store: &dyn Store, kind: &KindSpec, query: &ListQuery) -> ListPage {
    step(
        &format!("list {} with {query:?}", kind.kind),
        store.list(kind, query),
    )
    .await
}

async fn revision(store: &dyn Store) -> Revision {
    step("revision", store.revision()).await
}

/// The kind's changes after `since` as `(revision, type, object)`.
async fn kind_changes(
    store: &dyn Store,
    kind: &KindSpec,
    since: Revision,
) -> Vec<(Revision, ChangeType, MirrorObject)> {
    let changes = step(
        &format!("changes of {}", kind.kind),
        store.changes(Some(kind), since, usize::MAX),
    )
    .await;
    changes
        .into_iter()
        .map(|c| (c.revision, c.change, c.object))
        .collect()
}
