//! The domain's repository conformance suite, under both quota policies.

use std::sync::Arc;

use tokm_domain::testkit::{self, Repository, RepositoryFactory};
use tokm_domain::{ManualClock, Quota, QuotaPolicy, SESSIONS_PER_USER_DEFAULT};
use tokm_memory_store::{MemoryStore, StoreOptions};

struct Factory {
    quota: Quota,
}

impl RepositoryFactory for Factory {
    fn fresh(&self, clock: Arc<ManualClock>) -> Box<dyn Repository> {
        let options = StoreOptions {
            quota: self.quota,
            capacity: 0,
        };
        Box::new(MemoryStore::new(clock, options).expect("valid options"))
    }

    fn quota(&self) -> Quota {
        self.quota
    }
}

#[test]
fn memory_store_passes_the_suite_when_rejecting_over_quota() {
    testkit::run_all(&Factory {
        quota: Quota::default(),
    });
}

#[test]
fn memory_store_passes_the_suite_when_evicting_the_oldest() {
    testkit::run_all(&Factory {
        quota: Quota {
            sessions_per_user_max: SESSIONS_PER_USER_DEFAULT,
            policy: QuotaPolicy::EvictOldest,
        },
    });
}

#[test]
fn memory_store_passes_the_suite_at_the_smallest_quota() {
    testkit::run_all(&Factory {
        quota: Quota {
            sessions_per_user_max: testkit::SUITE_QUOTA_MIN,
            policy: QuotaPolicy::EvictOldest,
        },
    });
}
