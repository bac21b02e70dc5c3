//! A prepared write that is dropped instead of applied (as when the log append between
//! prepare and apply fails) leaves the store exactly as it was and releases its stripes; one
//! that is alive but not applied yet is invisible to readers, who do not wait for it.

use std::sync::Arc;
use std::time::Duration;

use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{
    Clock, ManualClock, Mutation, Quota, QuotaPolicy, Session, SessionError, SessionRepository,
    TokenRepository,
};
use tokm_memory_store::{MemoryStore, PreparedWrite, StoreOptions};

/// The engine's order: log the write's mutations, then apply it. A failed append returns
/// before `apply`, dropping the write.
fn commit<T>(
    write: PreparedWrite<'_, T>,
    log: impl FnOnce(&[Mutation]) -> Result<(), SessionError>,
) -> Result<T, SessionError> {
    log(write.mutations())?;
    Ok(write.apply())
}

fn refuse(_: &[Mutation]) -> Result<(), SessionError> {
    Err(SessionError::ReadOnly)
}

fn state(store: &MemoryStore) -> Vec<Session> {
    let mut all: Vec<Session> = store.records().iter().map(|r| r.to_session()).collect();
    all.sort_by_key(Session::id);
    all
}

fn store_at_quota_two(clock: &Arc<ManualClock>) -> MemoryStore {
    let options = StoreOptions {
        quota: Quota {
            sessions_per_user_max: 2,
            policy: QuotaPolicy::EvictOldest,
        },
        capacity: 0,
    };
    MemoryStore::new(clock.clone(), options).unwrap()
}

#[test]
fn a_write_whose_log_append_fails_changes_nothing() {
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let store = store_at_quota_two(&clock);
    let mut sessions = SessionFactory::new(9, SUITE_START);
    sessions.set_lifetime(Duration::from_secs(60));
    let user = SessionFactory::user(1);
    let first = store.create(sessions.next_for(&user)).unwrap().session;
    let second = store.create(sessions.next_for(&user)).unwrap().session;
    let before = state(&store);

    // Each prepared in turn (a write's stripes are released when it is dropped, so the next
    // one of the same user can be prepared).
    let refused = [
        // At the quota: would evict `first` and create.
        commit(
            store.prepare_create(sessions.next_for(&user)).unwrap(),
            refuse,
        )
        .map(drop),
        commit(
            store
                .prepare_create(sessions.next_for(&SessionFactory::user(2)))
                .unwrap(),
            refuse,
        )
        .map(drop),
        commit(
            store
                .prepare_update(second.to_new(), second.version())
                .unwrap(),
            refuse,
        )
        .map(drop),
        commit(
            store.prepare_touch(first.id(), clock.now(), None).unwrap(),
            refuse,
        )
        .map(drop),
        commit(store.prepare_delete(first.id()), refuse).map(drop),
        commit(store.prepare_delete_by_user(&user), refuse).map(drop),
    ];
    for (index, result) in refused.into_iter().enumerate() {
        let err = result.expect_err("refused by the log");
        assert_eq!(err.code(), "TM-SESS-5031", "operation {index}");
    }
    assert_eq!(state(&store), before);

    clock.advance(Duration::from_secs(3600));
    let swept = store.prepare_sweep_expired(100);
    assert_eq!(swept.mutations().len(), 2, "both expired, in one write");
    drop(swept);
    let mut cleanup = store.prepare_cleanup_expired();
    let batch = cleanup.next_batch().expect("user 1 has expired sessions");
    assert_eq!(commit(batch, refuse).unwrap_err().code(), "TM-SESS-5031");
    drop(cleanup);
    assert_eq!(state(&store), before, "sweep and cleanup dropped too");
    assert_eq!(
        store
            .get_by_token_hash(&first.fields().token_hash)
            .unwrap_err()
            .code(),
        "TM-SESS-4101",
        "still stored (expired), still indexed"
    );
    // Every stripe was released: the same user's writes go through.
    assert_eq!(store.cleanup_expired().unwrap(), 2);
    sessions.set_lifetime(Duration::from_secs(86_400));
    let created = store.create(sessions.next_for(&user)).unwrap().session;
    assert_eq!(store.list_by_user(&user).unwrap(), [created]);
}

#[test]
fn a_prepared_write_is_invisible_to_readers_until_applied() {
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let store = store_at_quota_two(&clock);
    let mut sessions = SessionFactory::new(10, SUITE_START);
    let user = SessionFactory::user(3);
    let oldest = store.create(sessions.next_for(&user)).unwrap().session;
    store.create(sessions.next_for(&user)).unwrap();
    let before = state(&store);

    let new = sessions.next_for(&user);
    let write = store.prepare_create(new.clone()).unwrap();
    // Readers take no stripe: they answer at once, from the state before the write.
    assert_eq!(
        store.get(new.id()).unwrap_err().code(),
        "TM-SESS-4041",
        "not created yet"
    );
    assert_eq!(
        store
            .get_by_token_hash(&new.fields().token_hash)
            .unwrap_err()
            .code(),
        "TM-SESS-4042"
    );
    assert_eq!(store.get(oldest.id()).unwrap(), oldest, "not evicted yet");
    assert_eq!(state(&store), before);

    let outcome = write.apply();
    assert_eq!(outcome.evicted.as_ref(), Some(&oldest));
    assert_eq!(store.get(new.id()).unwrap(), outcome.session);
    assert_eq!(store.get(oldest.id()).unwrap_err().code(), "TM-SESS-4041");
    assert_eq!(store.count_by_user(&user).unwrap(), 2);
}
