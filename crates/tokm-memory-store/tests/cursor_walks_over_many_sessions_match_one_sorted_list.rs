//! Cursor walks that stop each index shard early still return exactly the sorted list, for
//! every sort, with enough sessions that every shard holds several.

use std::sync::Arc;
use std::time::Duration;

use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{
    Clock, Cursor, ManualClock, PageSize, Quota, Session, SessionFilter, SessionRepository,
    SessionStatus, Sort, SortBy, SortOrder, TokenRepository,
};
use tokm_memory_store::{MemoryStore, StoreOptions};

#[test]
fn small_slices_over_many_sessions_concatenate_to_the_sorted_list() {
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let options = StoreOptions {
        quota: Quota {
            sessions_per_user_max: 1_000,
            ..Quota::default()
        },
        capacity: 0,
    };
    let store = MemoryStore::new(clock.clone(), options).unwrap();
    let mut factory = SessionFactory::new(21, SUITE_START);
    let mut all: Vec<Session> = (0..300)
        .map(|i| {
            store
                .create(factory.next_for(&SessionFactory::user(i % 7)))
                .unwrap()
                .session
        })
        .collect();
    clock.advance(Duration::from_secs(10));
    // Touch every third session so last_active order differs from created_at order.
    for session in all.iter_mut().step_by(3) {
        clock.advance(Duration::from_millis(1));
        *session = store.touch(session.id(), clock.now(), None).unwrap();
    }
    let active_only = SessionFilter {
        status: Some(SessionStatus::Active),
        ..SessionFilter::default()
    };
    for filter in [SessionFilter::default(), active_only] {
        for by in [SortBy::CreatedAt, SortBy::LastActive] {
            for order in [SortOrder::Asc, SortOrder::Desc] {
                let sort = Sort::new(by, order);
                let mut expected = all.clone();
                expected.sort_by(|a, b| sort.compare(a, b));
                for limit in [1, 2, 7] {
                    let limit = PageSize::new(limit).unwrap();
                    let mut walked = Vec::new();
                    let mut cursor: Option<Cursor> = None;
                    for _ in 0..=all.len() {
                        let slice = store
                            .list_after(&filter, sort, cursor.as_ref(), limit)
                            .unwrap();
                        walked.extend(slice.items);
                        match slice.next {
                            Some(next) => cursor = Some(next),
                            None => break,
                        }
                    }
                    assert_eq!(walked, expected, "{sort:?}, limit {limit:?}");
                }
            }
        }
    }
}
