//! Under `EvictOldest`, a create at the quota is one prepared write whose mutations are the
//! evicted session's Delete and then the Create, applied together; below the quota the write
//! carries the Create alone.

use std::sync::Arc;

use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{ManualClock, Mutation, Quota, QuotaPolicy, SessionRepository};
use tokm_memory_store::{MemoryStore, StoreOptions};

#[test]
fn eviction_and_create_are_one_write() {
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
    let mut writes: Vec<Vec<Mutation>> = Vec::new();
    let mut create = |store: &MemoryStore| {
        let write = store.prepare_create(sessions.next_for(&user)).unwrap();
        writes.push(write.mutations().to_vec());
        write.apply()
    };
    let oldest = create(&store).session;
    create(&store);
    let third = create(&store);
    assert_eq!(third.evicted.as_ref(), Some(&oldest));
    assert_eq!(writes.len(), 3, "one write per create");
    assert!(matches!(writes[0].as_slice(), [Mutation::Create(_)]));
    match writes[2].as_slice() {
        [Mutation::Delete { id, version }, Mutation::Create(created)] => {
            assert_eq!((*id, *version), (oldest.id(), oldest.version()));
            assert_eq!(**created, third.session);
        }
        other => panic!("expected [Delete, Create], got {other:?}"),
    }
    assert_eq!(store.count_by_user(&user).unwrap(), 2);
    assert_eq!(store.get(oldest.id()).unwrap_err().code(), "TM-SESS-4041");
}
