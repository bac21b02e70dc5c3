//! When the commit hook refuses, every mutating operation returns its error and leaves the
//! store exactly as it was.

use std::sync::Arc;
use std::time::Duration;

use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{
    Clock, ManualClock, Mutation, Quota, QuotaPolicy, Session, SessionError, SessionRepository,
    TokenRepository,
};
use tokm_memory_store::{MemoryStore, StoreOptions};

fn refuse(_: &[Mutation]) -> Result<(), SessionError> {
    Err(SessionError::ReadOnly)
}

fn state(store: &MemoryStore) -> Vec<Session> {
    let mut all: Vec<Session> = store.records().iter().map(|r| r.to_session()).collect();
    all.sort_by_key(Session::id);
    all
}

#[test]
fn refused_hook_leaves_the_store_unchanged() {
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let options = StoreOptions {
        quota: Quota {
            sessions_per_user_max: 2,
            policy: QuotaPolicy::EvictOldest,
        },
        capacity: 0,
    };
    let store = MemoryStore::new(clock.clone(), options).unwrap();
    let mut sessions = SessionFactory::new(9, SUITE_START);
    sessions.set_lifetime(Duration::from_secs(60));
    let user = SessionFactory::user(1);
    let first = store.create(sessions.next_for(&user)).unwrap().session;
    let second = store.create(sessions.next_for(&user)).unwrap().session;
    let before = state(&store);

    let refused = [
        // At the quota: would evict `first` and create.
        store
            .create_with(sessions.next_for(&user), &mut refuse)
            .map(drop),
        store
            .create_with(sessions.next_for(&SessionFactory::user(2)), &mut refuse)
            .map(drop),
        store
            .update_with(second.to_new(), second.version(), &mut refuse)
            .map(drop),
        store
            .touch_with(first.id(), clock.now(), None, &mut refuse)
            .map(drop),
        store.delete_with(first.id(), &mut refuse).map(drop),
        store.delete_by_user_with(&user, &mut refuse).map(drop),
    ];
    for (index, result) in refused.into_iter().enumerate() {
        let err = result.expect_err("refused by the hook");
        assert_eq!(err.code(), "TM-SESS-5031", "operation {index}");
    }
    assert_eq!(state(&store), before);

    clock.advance(Duration::from_secs(3600));
    let err = store.cleanup_expired_with(&mut refuse).unwrap_err();
    assert_eq!(err.code(), "TM-SESS-5031");
    assert_eq!(state(&store), before, "cleanup refused too");
    assert_eq!(
        store
            .get_by_token_hash(&first.fields().token_hash)
            .unwrap_err()
            .code(),
        "TM-SESS-4101",
        "still stored (expired), still indexed"
    );
    assert_eq!(store.cleanup_expired().unwrap(), 2);
}
