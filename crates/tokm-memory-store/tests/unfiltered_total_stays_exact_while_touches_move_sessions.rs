//! Stress: while a writer touches sessions (each touch moves the session's `last_active` index
//! entry), an unfiltered list sorted by `last_active` (whose total is counted from that index)
//! still reports every session exactly once: a moving entry is never counted twice nor missed,
//! and a page never repeats a session.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{
    ManualClock, Page, Quota, SessionFilter, SessionId, SessionRepository, Sort, SortBy, SortOrder,
    TokenRepository,
};
use tokm_memory_store::{MemoryStore, StoreOptions};

const SESSION_COUNT: usize = 300;
const TOUCH_COUNT: u64 = 50_000;

#[test]
fn unfiltered_totals_count_each_session_once_during_touches() {
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let options = StoreOptions {
        quota: Quota {
            sessions_per_user_max: 1_000,
            ..Quota::default()
        },
        capacity: 0,
    };
    let store = MemoryStore::new(clock, options).unwrap();
    let mut factory = SessionFactory::new(9, SUITE_START);
    let ids: Vec<SessionId> = (0..SESSION_COUNT)
        .map(|i| {
            let user = SessionFactory::user((i % 4) as u32);
            store.create(factory.next_for(&user)).unwrap().session.id()
        })
        .collect();
    let writing = AtomicBool::new(true);
    let reads = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut reads = 0_u64;
            // At least one read even if the writer finishes first; Acquire pairs with the
            // writer's Release only to end the loop, the store synchronizes itself.
            while reads == 0 || writing.load(Ordering::Acquire) {
                for order in [SortOrder::Desc, SortOrder::Asc] {
                    let sort = Sort::new(SortBy::LastActive, order);
                    let page = Page::new(1, 50).unwrap();
                    let listed = store.list(&SessionFilter::default(), sort, page).unwrap();
                    assert_eq!(listed.total, SESSION_COUNT as u64, "{sort:?}");
                    assert_eq!(listed.items.len(), 50);
                    let unique: HashSet<SessionId> =
                        listed.items.iter().map(|session| session.id()).collect();
                    assert_eq!(unique.len(), listed.items.len(), "no session twice");
                }
                reads += 1;
            }
            reads
        });
        for round in 0..TOUCH_COUNT {
            // Later `at` each round, so every touch moves its entry to the newest end.
            let at = SUITE_START
                .checked_add(Duration::from_secs(1) + Duration::from_millis(round))
                .unwrap();
            let id = ids[(round as usize * 7919) % SESSION_COUNT];
            store.touch(id, at, None).unwrap();
        }
        writing.store(false, Ordering::Release);
        reader.join().unwrap()
    });
    assert!(reads > 0);
}
