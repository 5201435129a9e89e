//! Runs the store conformance suite against [`MysqlStore`] on the MariaDB at 127.0.0.1:3306, one
//! fresh database per test.

mod mysql_support;

use std::sync::Arc;

use mysql_support::TestDb;
use stowage::store::Store;
use stowage::store::conformance::{self, SUITE_HISTORY};

// One test per scenario, each on a fresh database.
stowage::conformance_tests!(scenario => {
    let db = TestDb::create();
    scenario(&db.store(SUITE_HISTORY)).await;
});

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
