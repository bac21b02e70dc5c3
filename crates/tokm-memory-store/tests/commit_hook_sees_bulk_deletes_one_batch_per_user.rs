//! `delete_by_user` reaches the hook as one batch of Deletes; `cleanup_expired` as one batch per
//! user with expired sessions, each in id order, and only the sessions it removes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{ManualClock, Mutation, SessionId, SessionRepository};
use tokm_memory_store::{MemoryStore, StoreOptions};

fn deleted_ids(batch: &[Mutation]) -> Vec<SessionId> {
    batch
        .iter()
        .map(|mutation| match mutation {
            Mutation::Delete { id, .. } => *id,
            other => panic!("bulk operations only delete, got {other:?}"),
        })
        .collect()
}

#[test]
fn bulk_deletes_are_batched_per_user_in_id_order() {
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let store = MemoryStore::new(clock.clone(), StoreOptions::default()).unwrap();
    let mut factory = SessionFactory::new(8, SUITE_START);
    let mut short_lived = BTreeSet::new();
    for round in 0..12_u32 {
        let short = round % 2 == 0;
        factory.set_lifetime(Duration::from_secs(if short { 60 } else { 7_200 }));
        let created = store
            .create(factory.next_for(&SessionFactory::user(round % 3)))
            .unwrap()
            .session;
        if short && round % 3 != 2 {
            short_lived.insert(created.id());
        }
    }
    let mut batches: Vec<Vec<Mutation>> = Vec::new();
    let deleted = store
        .delete_by_user_with(&SessionFactory::user(2), &mut |mutations: &[Mutation]| {
            batches.push(mutations.to_vec());
            Ok(())
        })
        .unwrap();
    assert_eq!(deleted, 4);
    assert_eq!(batches.len(), 1, "one batch for the user");
    let ids = deleted_ids(&batches[0]);
    assert!(ids.is_sorted() && ids.len() == 4);

    batches.clear();
    clock.advance(Duration::from_secs(3_600));
    let removed = store
        .cleanup_expired_with(&mut |mutations: &[Mutation]| {
            batches.push(mutations.to_vec());
            Ok(())
        })
        .unwrap();
    assert_eq!(removed as usize, short_lived.len());
    assert_eq!(batches.len(), 2, "users 0 and 1 each had expired sessions");
    let mut seen = BTreeSet::new();
    for batch in &batches {
        let ids = deleted_ids(batch);
        assert!(ids.is_sorted(), "id order within a batch");
        seen.extend(ids);
    }
    assert_eq!(seen, short_lived, "exactly the expired sessions");
}
