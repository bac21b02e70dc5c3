//! `list` with a filter that is only a time range on the sort's own index (the path that counts
//! the total from the index and confirms only a page's worth per shard) returns the same items
//! and total as a model that filters and sorts every session, across pages, with expired
//! sessions present and after touches and deletes have moved or removed index entries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{
    Clock, ManualClock, Page, Quota, Session, SessionFilter, SessionId, SessionRepository, Sort,
    SortBy, SortOrder, Timestamp, TokenRepository,
};
use tokm_memory_store::{MemoryStore, StoreOptions};

const SESSION_COUNT: u64 = 400;

fn at(offset_ms: u64) -> Timestamp {
    SUITE_START
        .checked_add(Duration::from_millis(offset_ms))
        .unwrap()
}

#[test]
fn range_only_lists_match_the_model_on_every_page() {
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let options = StoreOptions {
        quota: Quota {
            sessions_per_user_max: 1_000,
            ..Quota::default()
        },
        capacity: 0,
    };
    let store = MemoryStore::new(clock.clone(), options).unwrap();
    let mut factory = SessionFactory::new(5, SUITE_START);
    let mut model: BTreeMap<SessionId, Session> = BTreeMap::new();
    for index in 0..SESSION_COUNT {
        // The first half expires long before the lists below run.
        let lifetime_s = if index < SESSION_COUNT / 2 { 2 } else { 3_600 };
        factory.set_lifetime(Duration::from_secs(lifetime_s));
        let user = SessionFactory::user((index % 5) as u32);
        let session = store.create(factory.next_for(&user)).unwrap().session;
        model.insert(session.id(), session);
    }
    clock.advance(Duration::from_secs(10));
    let ids: Vec<SessionId> = model.keys().copied().collect();
    // Touch every fourth live session, in an order unlike creation, so `last_active` moves.
    for id in ids.iter().rev().step_by(4) {
        if let Ok(touched) = store.touch(*id, clock.now(), None) {
            clock.advance(Duration::from_millis(1));
            model.insert(*id, touched);
        }
    }
    for id in ids.iter().step_by(7) {
        assert!(store.delete(*id).unwrap());
        model.remove(id);
    }
    let now = clock.now();
    let expired = model.values().filter(|s| s.expiry() <= now).count();
    assert!(expired > 50, "expired sessions take part: {expired}");

    let every_created = SessionFilter {
        created_after: Some(at(0).checked_sub(Duration::from_millis(1)).unwrap()),
        created_before: Some(at(SESSION_COUNT)),
        ..SessionFilter::default()
    };
    let middle_created = SessionFilter {
        created_after: Some(at(120)),
        created_before: Some(at(290)),
        ..SessionFilter::default()
    };
    let recently_active = SessionFilter {
        active_after: Some(at(10_000)),
        ..SessionFilter::default()
    };
    let cases = [
        (SessionFilter::default(), SortBy::CreatedAt),
        (SessionFilter::default(), SortBy::LastActive),
        (every_created, SortBy::CreatedAt),
        (middle_created, SortBy::CreatedAt),
        (recently_active, SortBy::LastActive),
    ];
    for (filter, by) in &cases {
        let mut expected: Vec<&Session> = model
            .values()
            .filter(|session| filter.matches(session, now))
            .collect();
        assert!(!expected.is_empty(), "{filter:?}");
        for order in [SortOrder::Asc, SortOrder::Desc] {
            let sort = Sort::new(*by, order);
            expected.sort_by(|a, b| sort.compare(a, b));
            for size in [1_u32, 7, 100] {
                let page_count = expected.len().div_ceil(size as usize) as u32;
                // One page past the end: no items, same total.
                for number in 1..=page_count + 1 {
                    let page = Page::new(number, size).unwrap();
                    let listed = store.list(filter, sort, page).unwrap();
                    let want: Vec<Session> = expected
                        .iter()
                        .skip(page.offset() as usize)
                        .take(size as usize)
                        .map(|session| Session::clone(session))
                        .collect();
                    assert_eq!(
                        listed.total,
                        expected.len() as u64,
                        "{filter:?} {sort:?} {page:?}"
                    );
                    assert_eq!(listed.items, want, "{filter:?} {sort:?} {page:?}");
                }
            }
        }
    }
}
