//! Lease leader election against the emulator over HTTP: one of two electors leads, the other
//! takes over when the first stops, and a Lease left by a vanished holder is taken once it expires.

#[allow(
    dead_code,
    reason = "each storage test binary uses a different part of the support"
)]
mod storage_support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, PostParams};
use kube::core::ObjectMeta;
use storage_support::{Cluster, TEST_TIMEOUT, eventually};
use stowage::leader::{Election, ElectionSettings, LeaderMetrics};
use stowage::metrics::Metrics;
use stowage::shutdown::Shutdown;

const LEASE: &str = "stowage-storage";

fn settings(identity: &str) -> ElectionSettings {
    ElectionSettings {
        namespace: "stowage".into(),
        lease_name: LEASE.into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_secs(1),
        retry_period: Duration::from_millis(200),
    }
}

fn start(cluster: &Cluster, identity: &str, metrics: &Metrics) -> (Election, Shutdown) {
    let shutdown = Shutdown::new();
    let election = Election::start(
        cluster.client.clone(),
        settings(identity),
        LeaderMetrics::register(metrics).expect("register stowage_leader"),
        shutdown.clone(),
    );
    (election, shutdown)
}

async fn holder(cluster: &Cluster) -> Option<String> {
    Api::<Lease>::namespaced(cluster.client.clone(), "stowage")
        .get_opt(LEASE)
        .await
        .expect("read the Lease")
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
}

#[tokio::test]
async fn one_of_two_leads_and_the_other_takes_over_when_it_stops() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = Cluster::plain().await;
        let (metrics_a, metrics_b) = (Metrics::new().unwrap(), Metrics::new().unwrap());
        let (a, stop_a) = start(&cluster, "replica-a", &metrics_a);
        let (b, stop_b) = start(&cluster, "replica-b", &metrics_b);

        let first = eventually(Duration::from_secs(10), "someone leads", || async {
            match (a.is_leader(), b.is_leader()) {
                (true, true) => panic!("both replicas lead"),
                (true, false) => Ok("replica-a"),
                (false, true) => Ok("replica-b"),
                (false, false) => Err("nobody leads".to_owned()),
            }
        })
        .await;
        assert_eq!(holder(&cluster).await.as_deref(), Some(first));
        let (leader_metrics, leader, stop_leader, follower, stop_follower) = if first == "replica-a"
        {
            (&metrics_a, a, stop_a, b, stop_b)
        } else {
            (&metrics_b, b, stop_b, a, stop_a)
        };
        let text = leader_metrics.encode().unwrap();
        assert!(
            text.contains("stowage_leader{lease=\"stowage-storage\"} 1"),
            "{text}"
        );

        // Several renewals later the leader still leads alone.
        let renewed_until = Instant::now() + Duration::from_secs(3);
        eventually(Duration::from_secs(5), "a stable leader", || async {
            assert!(
                leader.is_leader(),
                "the leader lost its Lease while renewing"
            );
            assert!(!follower.is_leader(), "two leaders");
            if Instant::now() >= renewed_until {
                Ok(())
            } else {
                Err("renewing".into())
            }
        })
        .await;

        stop_leader.trigger();
        leader.stopped().await;
        let text = leader_metrics.encode().unwrap();
        assert!(
            text.contains("stowage_leader{lease=\"stowage-storage\"} 0"),
            "{text}"
        );
        eventually(
            Duration::from_secs(10),
            "the follower takes over",
            || async {
                if follower.is_leader() {
                    Ok(())
                } else {
                    Err(format!("holder {:?}", holder(&cluster).await))
                }
            },
        )
        .await;
        assert_ne!(holder(&cluster).await.as_deref(), Some(first));

        stop_follower.trigger();
        follower.stopped().await;
        assert_eq!(holder(&cluster).await, None, "released on shutdown");
        cluster.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_lease_left_by_a_vanished_holder_is_taken_after_it_expires() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = Cluster::plain().await;
        let renewed = Instant::now();
        let now = k8s_openapi::jiff::Timestamp::now();
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("crashed-replica".into()),
                lease_duration_seconds: Some(2),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                ..LeaseSpec::default()
            }),
        };
        Api::<Lease>::namespaced(cluster.client.clone(), "stowage")
            .create(&PostParams::default(), &lease)
            .await
            .expect("create the stale Lease");

        let metrics = Metrics::new().unwrap();
        let (election, stop) = start(&cluster, "replica-a", &metrics);
        let mut leading = election.leading();
        tokio::time::timeout(Duration::from_secs(10), leading.wait_for(|leads| *leads))
            .await
            .expect("the stale Lease is taken within 10s")
            .expect("the election runs");
        assert!(
            renewed.elapsed() >= Duration::from_millis(1500),
            "took the Lease {:?} after the last renewal, before it expired",
            renewed.elapsed()
        );
        assert_eq!(holder(&cluster).await.as_deref(), Some("replica-a"));
        stop.trigger();
        election.stopped().await;
        cluster.stop().await;
    })
    .await
    .expect("test timed out");
}
