//! The engine passes the repository conformance suite every tokm store runs, in both
//! durability modes and with the evict-oldest quota policy.

mod common;

use std::sync::Arc;

use tokm_domain::testkit::{self, Repository, RepositoryFactory};
use tokm_domain::{ManualClock, Quota, QuotaPolicy};
use tokm_engine::{Durability, EngineConfig};

struct Factory {
    durability: Durability,
    quota: Quota,
}

impl RepositoryFactory for Factory {
    fn fresh(&self, clock: Arc<ManualClock>) -> Box<dyn Repository> {
        let (durability, quota) = (self.durability, self.quota);
        Box::new(common::TempEngine::open(
            &clock,
            |config: &mut EngineConfig| {
                config.durability = durability;
                config.quota = quota;
            },
        ))
    }

    fn quota(&self) -> Quota {
        self.quota
    }
}

#[test]
fn engine_in_sync_mode_passes_the_suite() {
    testkit::run_all(&Factory {
        durability: Durability::Sync,
        quota: Quota::default(),
    });
}

#[test]
fn engine_in_batch_mode_with_eviction_passes_the_suite() {
    testkit::run_all(&Factory {
        durability: Durability::Batch,
        quota: Quota {
            sessions_per_user_max: 20,
            policy: QuotaPolicy::EvictOldest,
        },
    });
}
