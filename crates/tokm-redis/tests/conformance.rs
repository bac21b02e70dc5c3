//! The domain's repository conformance suite, unchanged, against `RedisClusterStore` on a real
//! Redis Cluster, under both quota policies.

mod common;

use std::sync::Arc;

use tokm_domain::testkit::{self, Repository, RepositoryFactory};
use tokm_domain::{ManualClock, Quota, QuotaPolicy};
use tokm_redis::RedisClusterStore;

struct Factory {
    nodes: Vec<String>,
    quota: Quota,
}

impl RepositoryFactory for Factory {
    fn fresh(&self, clock: Arc<ManualClock>) -> Box<dyn Repository> {
        // A fresh namespace is an empty store on the shared cluster.
        let mut options = common::options(&self.nodes, "suite");
        options.quota = self.quota;
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
    });
}
