//! Runs the store conformance suite against the embedded [`MemoryStore`], one test per scenario.

use std::sync::Arc;
use std::time::Duration;

use stowage::store::conformance::{self, SUITE_HISTORY};
use stowage::store::memory::MemoryStore;
use stowage::store::{Store, WriteBatch, WriteOp};

fn store() -> MemoryStore {
    MemoryStore::new(SUITE_HISTORY)
}

// One `#[tokio::test]` per scenario, each on a fresh store.
stowage::conformance_tests!(scenario => {
    scenario(&store()).await;
});

#[tokio::test]
async fn expired_feed() {
    conformance::expired_feed(&MemoryStore::new(8), 8).await;
}

#[tokio::test]
async fn expired_feed_with_a_single_retained_change() {
    conformance::expired_feed(&MemoryStore::new(1), 1).await;
}

#[tokio::test]
async fn all_scenarios_share_one_store() {
    let store: Arc<dyn Store> = Arc::new(store());
    conformance::run_all(Arc::clone(&store)).await;
    // A second run on the same store starts each scenario from a fresh kind.
    conformance::run_all(store).await;
}

#[tokio::test]
async fn reports_its_backend_name() {
    assert_eq!(store().backend(), "memory");
}

/// Concurrent writers on two kinds: every batch gets consecutive revisions and the feed has no
/// gaps, whatever the interleaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_get_consecutive_revisions() {
    let store = Arc::new(store());
    let kinds = [
        conformance::sample_kind("ConcurrentA"),
        conformance::sample_kind("ConcurrentB"),
    ];
    for kind in &kinds {
        store.register(kind).await.expect("register");
    }
    let writers = (0..4).map(|writer| {
        let store = Arc::clone(&store);
        let kind = kinds[writer % 2].clone();
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for batch in 0..50 {
                let ops = (0..5)
                    .map(|i| {
                        WriteOp::Upsert(conformance::sample_object(
                            "ns",
                            &format!("w{writer}-b{batch}-{i}"),
                            "1",
                        ))
                    })
                    .collect();
                let outcome = store
                    .write(&kind, WriteBatch { ops, epoch: 1 })
                    .await
                    .expect("write");
                outcomes.push((kind.id(), outcome));
            }
            outcomes
        })
    });
    let mut outcomes = Vec::new();
    for writer in writers {
        let done = tokio::time::timeout(Duration::from_secs(30), writer).await;
        outcomes.extend(done.expect("writers finish").expect("writer task"));
    }
    let feed = store.changes(None, 0, usize::MAX).await.expect("changes");
    let revisions: Vec<u64> = feed.iter().map(|c| c.revision).collect();
    assert_eq!(
        revisions,
        (1..=1000).collect::<Vec<u64>>(),
        "no gaps, no duplicates"
    );
    for (kind, outcome) in outcomes {
        assert_eq!(outcome.changed, 5);
        let batch = &feed[(outcome.revision - 5) as usize..outcome.revision as usize];
        assert!(
            batch.iter().all(|c| c.kind == kind),
            "a batch's revisions are consecutive"
        );
    }
}
