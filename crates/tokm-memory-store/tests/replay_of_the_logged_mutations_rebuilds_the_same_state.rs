//! Replaying the mutations of every prepared write, logged in the order the writes were applied,
//! into an empty store rebuilds exactly the state the writers left, and replaying it again (or
//! from any earlier point) changes nothing.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{
    Clock, ManualClock, Mutation, NewSession, Quota, QuotaPolicy, Session, SessionRepository,
    TokenHash, TokenRepository,
};
use tokm_memory_store::{MemoryStore, PreparedWrite, Replayed, StoreOptions};

fn state(store: &MemoryStore) -> Vec<Session> {
    let mut all: Vec<Session> = store.records().iter().map(|r| r.to_session()).collect();
    all.sort_by_key(Session::id);
    all
}

/// The engine's order: append the write's mutations to `log`, then apply it.
fn commit<T>(log: &Mutex<Vec<Mutation>>, write: PreparedWrite<'_, T>) -> T {
    log.lock().extend_from_slice(write.mutations());
    write.apply()
}

#[test]
fn replayed_log_equals_the_live_store_and_replay_is_idempotent() {
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let options = StoreOptions {
        quota: Quota {
            sessions_per_user_max: 3,
            policy: QuotaPolicy::EvictOldest,
        },
        capacity: 0,
    };
    let store = MemoryStore::new(clock.clone(), options.clone()).unwrap();
    let log = Mutex::new(Vec::<Mutation>::new());
    let mut sessions = SessionFactory::new(11, SUITE_START);
    let mut live = Vec::new();
    for round in 0..40_u32 {
        let user = SessionFactory::user(round % 4);
        if round % 7 == 3 {
            sessions.set_lifetime(Duration::from_secs(30));
        } else {
            sessions.set_lifetime(Duration::from_secs(3600));
        }
        let created = commit(
            &log,
            store.prepare_create(sessions.next_for(&user)).unwrap(),
        )
        .session;
        live.push(created.clone());
        clock.advance(Duration::from_secs(5));
        if round % 3 == 0 && round % 7 != 3 {
            let touched = commit(
                &log,
                store
                    .prepare_touch(created.id(), clock.now(), Some("10.9.9.9".parse().unwrap()))
                    .unwrap(),
            );
            let mut fields = touched.fields().clone();
            fields.token_hash = TokenHash::of_token(&format!("rotated-{round}")).unwrap();
            fields.metadata.insert("round", &round.to_string()).unwrap();
            commit(
                &log,
                store
                    .prepare_update(NewSession::new(fields).unwrap(), touched.version())
                    .unwrap(),
            );
        }
        if round % 5 == 4 {
            commit(&log, store.prepare_delete(live[live.len() / 2].id()));
        }
        if round == 20 {
            commit(&log, store.prepare_delete_by_user(&SessionFactory::user(2)));
        }
        if round % 10 == 9 {
            clock.advance(Duration::from_secs(60));
            let mut cleanup = store.prepare_cleanup_expired();
            while let Some(write) = cleanup.next_batch() {
                commit(&log, write);
            }
        }
    }
    let log = log.into_inner();
    assert!(log.iter().any(|m| matches!(m, Mutation::Touch { .. })));
    assert!(log.iter().any(|m| matches!(m, Mutation::Delete { .. })));

    let replica = MemoryStore::new(clock.clone(), options).unwrap();
    for mutation in &log {
        assert_eq!(
            replica.apply_replayed(mutation).unwrap(),
            Replayed::Applied,
            "{mutation:?}"
        );
    }
    assert_eq!(state(&replica), state(&store));

    // Replaying the second half again (as after a snapshot taken mid-log) changes nothing
    // observable except by skipping.
    for mutation in &log[log.len() / 2..] {
        replica.apply_replayed(mutation).unwrap();
    }
    assert_eq!(state(&replica), state(&store));

    // The rebuilt indexes answer like the original's.
    for session in state(&store) {
        let token = session.fields().token_hash;
        assert_eq!(
            replica.get_by_token_hash(&token).map_err(|e| e.code()),
            store.get_by_token_hash(&token).map_err(|e| e.code())
        );
        let user = &session.fields().user_id;
        assert_eq!(
            replica.list_by_user(user).unwrap(),
            store.list_by_user(user).unwrap()
        );
    }
}
