//! Under `EvictOldest`, the Delete of the evicted session and the Create reach the hook in one
//! call, eviction first; below the quota the hook sees the Create alone.

use std::sync::Arc;

use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{ManualClock, Mutation, Quota, QuotaPolicy, SessionRepository};
use tokm_memory_store::{MemoryStore, StoreOptions};

#[test]
fn eviction_and_create_are_one_hook_call() {
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let options = StoreOptions {
        quota: Quota {
            sessions_per_user_max: 2,
            policy: QuotaPolicy::EvictOldest,
        },
        capacity: 0,
    };
    let store = MemoryStore::new(clock, options).unwrap();
    let mut sessions = SessionFactory::new(5, SUITE_START);
    let user = SessionFactory::user(1);
    let mut calls: Vec<Vec<Mutation>> = Vec::new();
    let mut record = |mutations: &[Mutation]| {
        calls.push(mutations.to_vec());
        Ok(())
    };
    let oldest = store
        .create_with(sessions.next_for(&user), &mut record)
        .unwrap()
        .session;
    store
        .create_with(sessions.next_for(&user), &mut record)
        .unwrap();
    let third = store
        .create_with(sessions.next_for(&user), &mut record)
        .unwrap();
    assert_eq!(third.evicted.as_ref(), Some(&oldest));
    assert_eq!(calls.len(), 3, "one hook call per create");
    assert!(matches!(calls[0].as_slice(), [Mutation::Create(_)]));
    match calls[2].as_slice() {
        [Mutation::Delete { id, version }, Mutation::Create(created)] => {
            assert_eq!((*id, *version), (oldest.id(), oldest.version()));
            assert_eq!(**created, third.session);
        }
        other => panic!("expected [Delete, Create], got {other:?}"),
    }
    assert_eq!(store.count_by_user(&user).unwrap(), 2);
}
