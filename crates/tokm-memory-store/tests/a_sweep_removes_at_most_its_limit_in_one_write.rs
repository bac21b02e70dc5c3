//! `prepare_sweep_expired` removes at most its limit of expired sessions, across users, in one
//! write; repeated, it removes exactly what `cleanup_expired` would; a dropped sweep removes
//! nothing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{ManualClock, Mutation, SessionId, SessionRepository};
use tokm_memory_store::{MemoryStore, StoreOptions, Swept};

/// A store holding `short` sessions that expire after a minute and `long` ones that live two
/// hours, spread over seven users; returns the short-lived ids.
fn store_with(short: u32, long: u32) -> (Arc<ManualClock>, MemoryStore, BTreeSet<SessionId>) {
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let store = MemoryStore::new(clock.clone(), StoreOptions::default()).unwrap();
    let mut factory = SessionFactory::new(16, SUITE_START);
    let mut short_lived = BTreeSet::new();
    for round in 0..short + long {
        let is_short = round < short;
        factory.set_lifetime(Duration::from_secs(if is_short { 60 } else { 7_200 }));
        let created = store
            .create(factory.next_for(&SessionFactory::user(round % 7)))
            .unwrap()
            .session;
        if is_short {
            short_lived.insert(created.id());
        }
    }
    (clock, store, short_lived)
}

fn deleted_ids(batch: &[Mutation]) -> Vec<SessionId> {
    batch
        .iter()
        .map(|mutation| match mutation {
            Mutation::Delete { id, .. } => *id,
            other => panic!("a sweep only deletes, got {other:?}"),
        })
        .collect()
}

#[test]
fn sweeps_remove_every_expired_session_in_batches_of_at_most_the_limit() {
    let (clock, store, short_lived) = store_with(40, 9);
    clock.advance(Duration::from_secs(3_600));
    let mut batches: Vec<Vec<Mutation>> = Vec::new();
    let mut steps = Vec::new();
    loop {
        let write = store.prepare_sweep_expired(16);
        batches.push(write.mutations().to_vec());
        let swept = write.apply();
        steps.push(swept);
        if !swept.limit_reached {
            break;
        }
    }
    assert_eq!(
        steps
            .iter()
            .map(|swept| swept.removed_count)
            .collect::<Vec<_>>(),
        [16, 16, 8],
        "full batches while expired sessions remain, then the rest"
    );
    assert_eq!(batches.len(), 3, "one write per step, across users");
    let seen: BTreeSet<SessionId> = batches.iter().flat_map(|b| deleted_ids(b)).collect();
    assert_eq!(seen, short_lived, "exactly the expired sessions");
    assert_eq!(store.len(), 9);
    assert_eq!(store.cleanup_expired().unwrap(), 0, "nothing left to clean");
}

#[test]
fn a_sweep_with_nothing_expired_has_nothing_to_log() {
    let (_clock, store, _) = store_with(5, 5);
    let write = store.prepare_sweep_expired(100);
    assert!(write.mutations().is_empty(), "nothing to log");
    assert_eq!(write.apply(), Swept::default());
    assert_eq!(store.len(), 10);
}

#[test]
fn a_dropped_sweep_removes_nothing() {
    let (clock, store, short_lived) = store_with(10, 3);
    clock.advance(Duration::from_secs(3_600));
    let write = store.prepare_sweep_expired(100);
    assert_eq!(write.mutations().len(), short_lived.len());
    drop(write); // as when its log append fails
    assert_eq!(store.len(), 13, "the dropped sweep changed nothing");
    let swept = store.prepare_sweep_expired(100).apply();
    assert_eq!(swept.removed_count as usize, short_lived.len());
}

#[test]
fn a_sweep_says_when_it_stopped_at_its_limit() {
    let (clock, store, _) = store_with(3, 0);
    clock.advance(Duration::from_secs(61));
    let swept = store.prepare_sweep_expired(2).apply();
    assert_eq!(
        swept,
        Swept {
            removed_count: 2,
            limit_reached: true
        }
    );
    let swept = store.prepare_sweep_expired(2).apply();
    assert_eq!(
        swept,
        Swept {
            removed_count: 1,
            limit_reached: false
        }
    );
    assert!(store.is_empty());
}
