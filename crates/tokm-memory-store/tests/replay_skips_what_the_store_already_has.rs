//! `apply_replayed` is idempotent by version: it skips mutations the store already reflects and
//! ignores the quota, because the log already decided.

use std::sync::Arc;

use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{
    ManualClock, Mutation, Quota, QuotaPolicy, Session, SessionRepository, TokenRepository,
};
use tokm_memory_store::{MemoryStore, Replayed, StoreOptions};

#[test]
fn replay_skips_older_versions_and_missing_ids_and_ignores_the_quota() {
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let options = StoreOptions {
        quota: Quota {
            sessions_per_user_max: 1,
            policy: QuotaPolicy::Reject,
        },
        capacity: 0,
    };
    let store = MemoryStore::new(clock, options).unwrap();
    let mut sessions = SessionFactory::new(3, SUITE_START);
    let user = SessionFactory::user(1);
    let v1 = Arc::new(Session::new(sessions.next_for(&user), 1).unwrap());
    let v2 = Arc::new(Session::new(v1.to_new(), 2).unwrap());
    let other = Arc::new(Session::new(sessions.next_for(&user), 1).unwrap());

    assert_eq!(
        store
            .apply_replayed(&Mutation::Update(Arc::clone(&v2)))
            .unwrap(),
        Replayed::Applied,
        "an update of a missing id stores the body"
    );
    assert_eq!(
        store
            .apply_replayed(&Mutation::Create(Arc::clone(&v1)))
            .unwrap(),
        Replayed::Skipped,
        "the store already has a later version"
    );
    assert_eq!(
        store
            .apply_replayed(&Mutation::Update(Arc::clone(&v2)))
            .unwrap(),
        Replayed::Skipped
    );
    assert_eq!(store.get(v1.id()).unwrap(), *v2);
    assert_eq!(
        store
            .apply_replayed(&Mutation::Create(Arc::clone(&other)))
            .unwrap(),
        Replayed::Applied,
        "over the quota of 1: replay does not check it"
    );
    assert_eq!(store.count_by_user(&user).unwrap(), 2);
    assert_eq!(
        store
            .apply_replayed(&Mutation::Delete {
                id: v1.id(),
                version: 1
            })
            .unwrap(),
        Replayed::Skipped,
        "a delete of an older version than stored"
    );
    let touch = Mutation::Touch {
        id: other.id(),
        last_active: other.fields().last_active,
        last_access_ip: None,
    };
    assert_eq!(
        store.apply_replayed(&touch).unwrap(),
        Replayed::Skipped,
        "no change"
    );
    for _ in 0..2 {
        store
            .apply_replayed(&Mutation::Delete {
                id: v1.id(),
                version: 2,
            })
            .unwrap();
    }
    assert_eq!(
        store.len(),
        1,
        "the second delete of the same id is a no-op"
    );
    assert_eq!(
        store
            .get_by_token_hash(&v1.fields().token_hash)
            .unwrap_err()
            .code(),
        "TM-SESS-4042"
    );
    assert_eq!(
        store
            .apply_replayed(&Mutation::Touch {
                id: v1.id(),
                last_active: v1.fields().last_active,
                last_access_ip: None,
            })
            .unwrap(),
        Replayed::Skipped,
        "a touch of a missing id"
    );
}
