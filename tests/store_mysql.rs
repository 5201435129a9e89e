//! Runs the store conformance suite against [`MysqlStore`] on the MariaDB at 127.0.0.1:3306, one
//! fresh database per test.

mod mysql_support;

use std::sync::Arc;

use mysql_support::TestDb;
use stowage::store::Store;
use stowage::store::conformance::{self, SUITE_HISTORY};

/// One `#[tokio::test]` per scenario, each on a fresh database.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let db = TestDb::create();
                conformance::$name(&db.store(SUITE_HISTORY)).await;
            }
        )*
    };
}

scenarios!(
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
    feed_keeps_revisions_whole,
    hostile_values_are_literal,
    group_count_and_column_sums,
    change_feed,
    subscribe_wakes_after_write,
);

#[tokio::test]
async fn expired_feed() {
    let db = TestDb::create();
    conformance::expired_feed(&db.store(8), 8).await;
}

#[tokio::test]
async fn expired_feed_with_a_single_retained_change() {
    let db = TestDb::create();
    conformance::expired_feed(&db.store(1), 1).await;
}

#[tokio::test]
async fn all_scenarios_share_one_store() {
    let db = TestDb::create();
    let store: Arc<dyn Store> = Arc::new(db.store(SUITE_HISTORY));
    conformance::run_all(Arc::clone(&store)).await;
    // A second run on the same store starts each scenario from a fresh kind.
    conformance::run_all(store).await;
}

#[tokio::test]
async fn reports_its_backend_name() {
    let db = TestDb::create();
    assert_eq!(db.store(1).backend(), "mysql");
}
