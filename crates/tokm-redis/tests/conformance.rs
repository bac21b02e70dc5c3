//! The domain's repository conformance suite, unchanged, against `RedisClusterStore` on a real
//! Redis Cluster, under both quota policies, and with `WAIT` after every write.

mod common;

use std::sync::Arc;

use tokm_domain::testkit::{self, Repository, RepositoryFactory};
use tokm_domain::{ManualClock, Quota, QuotaPolicy};
use tokm_redis::{RedisClusterStore, WaitPolicy};

struct Factory {
    nodes: Vec<String>,
    quota: Quota,
    wait: WaitPolicy,
}

impl RepositoryFactory for Factory {
    fn fresh(&self, clock: Arc<ManualClock>) -> Box<dyn Repository> {
        // A fresh namespace is an empty store on the shared cluster.
        let mut options = common::options(&self.nodes, "suite");
        options.quota = self.quota;
        options.wait = self.wait;
        Box::new(RedisClusterStore::connect(options, clock).expect("the test cluster answers"))
    }

    fn quota(&self) -> Quota {
        self.quota
    }
}

#[test]
fn redis_cluster_store_passes_the_suite_when_rejecting_over_quota() {
    let Some(nodes) = common::cluster("conformance, reject") else {
        return;
    };
    testkit::run_all(&Factory {
        nodes,
        quota: Quota::default(),
        wait: WaitPolicy::Revocations,
    });
}

#[test]
fn redis_cluster_store_passes_the_suite_when_evicting_the_oldest() {
    let Some(nodes) = common::cluster("conformance, evict") else {
        return;
    };
    testkit::run_all(&Factory {
        nodes,
        quota: Quota {
            sessions_per_user_max: testkit::SUITE_QUOTA_MIN,
            policy: QuotaPolicy::EvictOldest,
        },
        wait: WaitPolicy::Revocations,
    });
}

#[test]
fn redis_cluster_store_passes_the_suite_waiting_for_a_replica_after_every_write() {
    let Some(nodes) = common::cluster("conformance, WAIT after every write") else {
        return;
    };
    testkit::run_all(&Factory {
        nodes,
        quota: Quota::default(),
        wait: WaitPolicy::AllWrites,
    });
}
