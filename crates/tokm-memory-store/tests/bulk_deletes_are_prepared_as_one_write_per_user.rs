//! `delete_by_user` is prepared as one write of Deletes; `cleanup_expired` as one write per user
//! with expired sessions, each in id order, holding only the sessions it removes.

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
    let write = store.prepare_delete_by_user(&SessionFactory::user(2));
    let ids = deleted_ids(write.mutations());
    assert!(
        ids.is_sorted() && ids.len() == 4,
        "the user's sessions in id order"
    );
    assert_eq!(write.apply(), 4);
    assert_eq!(store.count_by_user(&SessionFactory::user(2)).unwrap(), 0);

    clock.advance(Duration::from_secs(3_600));
    let mut batches: Vec<Vec<Mutation>> = Vec::new();
    let mut removed = 0;
    let mut cleanup = store.prepare_cleanup_expired();
    while let Some(write) = cleanup.next_batch() {
        batches.push(write.mutations().to_vec());
        removed += write.apply();
    }
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
