//! 64 threads creating sessions for one user at once never push it over its quota, under
//! either policy.

use std::sync::{Arc, Barrier};

use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{ManualClock, NewSession, Quota, QuotaPolicy, SessionRepository};
use tokm_memory_store::{MemoryStore, StoreOptions};

const THREAD_COUNT: usize = 64;
const CREATES_PER_THREAD: usize = 4;
const QUOTA: u32 = 50;

fn race(policy: QuotaPolicy) -> (MemoryStore, usize, usize) {
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let options = StoreOptions {
        quota: Quota {
            sessions_per_user_max: QUOTA,
            policy,
        },
        capacity: 0,
    };
    let store = MemoryStore::new(clock, options).unwrap();
    let user = SessionFactory::user(7);
    let mut factory = SessionFactory::new(64, SUITE_START);
    let batches: Vec<Vec<NewSession>> = (0..THREAD_COUNT)
        .map(|_| {
            (0..CREATES_PER_THREAD)
                .map(|_| factory.next_for(&user))
                .collect()
        })
        .collect();
    let barrier = Barrier::new(THREAD_COUNT);
    let (created, evicted) = std::thread::scope(|scope| {
        let handles: Vec<_> = batches
            .into_iter()
            .map(|batch| {
                let (store, barrier) = (&store, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    let (mut created, mut evicted) = (0, 0);
                    for new in batch {
                        match store.create(new) {
                            Ok(outcome) => {
                                created += 1;
                                evicted += usize::from(outcome.evicted.is_some());
                            }
                            Err(err) => assert_eq!(err.code(), "TM-SESS-4291"),
                        }
                        let count = store.count_by_user(&SessionFactory::user(7)).unwrap();
                        assert!(count <= u64::from(QUOTA), "{count} live sessions");
                    }
                    (created, evicted)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("creator thread"))
            .fold((0, 0), |(c, e), (tc, te)| (c + tc, e + te))
    });
    (store, created, evicted)
}

#[test]
fn concurrent_creates_for_one_user_stop_exactly_at_the_quota() {
    let (store, created, evicted) = race(QuotaPolicy::Reject);
    assert_eq!(created, QUOTA as usize);
    assert_eq!(evicted, 0);
    assert_eq!(
        store.count_by_user(&SessionFactory::user(7)).unwrap(),
        u64::from(QUOTA)
    );
    assert_eq!(store.len(), QUOTA as usize, "no refused session was stored");
}

#[test]
fn concurrent_creates_for_one_user_evict_one_for_one_beyond_the_quota() {
    let (store, created, evicted) = race(QuotaPolicy::EvictOldest);
    assert_eq!(created, THREAD_COUNT * CREATES_PER_THREAD);
    assert_eq!(evicted, created - QUOTA as usize);
    assert_eq!(
        store.count_by_user(&SessionFactory::user(7)).unwrap(),
        u64::from(QUOTA)
    );
    assert_eq!(store.len(), QUOTA as usize);
}
