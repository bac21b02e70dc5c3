//! `bulk_load` builds the same store as replaying one `Create` per record: every read agrees,
//! and the bulk-loaded store keeps working like the other under writes.

mod common;

use std::sync::Arc;

use proptest::prelude::*;
use tokm_domain::testkit::SUITE_START;
use tokm_domain::{
    Cursor, ManualClock, Mutation, Page, PageSize, SessionFilter, SessionRecord, SessionRepository,
    SessionStatus, Sort, SortBy, SortOrder, TokenRepository,
};
use tokm_memory_store::{MemoryStore, StoreOptions};

use crate::common::{Spec, any_spec, api_key, at_s, device, ip, record, session, user};

fn filters() -> Vec<SessionFilter> {
    let mut filters = vec![SessionFilter::default()];
    for n in 0..4 {
        filters.push(SessionFilter {
            user_id: Some(user(n)),
            ..SessionFilter::default()
        });
        filters.push(SessionFilter {
            device_id: Some(device(n)),
            ..SessionFilter::default()
        });
        filters.push(SessionFilter {
            ip_address: Some(ip(n)),
            ..SessionFilter::default()
        });
    }
    filters.push(SessionFilter {
        created_by: Some(api_key(1)),
        ..SessionFilter::default()
    });
    for status in [SessionStatus::Active, SessionStatus::Expired] {
        filters.push(SessionFilter {
            status: Some(status),
            ..SessionFilter::default()
        });
    }
    filters.push(SessionFilter {
        created_after: Some(at_s(50)),
        created_before: Some(at_s(150)),
        ..SessionFilter::default()
    });
    filters.push(SessionFilter {
        active_after: Some(at_s(120)),
        user_id: Some(user(1)),
        ..SessionFilter::default()
    });
    filters
}

fn sorts() -> [Sort; 4] {
    [
        Sort::new(SortBy::CreatedAt, SortOrder::Asc),
        Sort::new(SortBy::CreatedAt, SortOrder::Desc),
        Sort::new(SortBy::LastActive, SortOrder::Asc),
        Sort::new(SortBy::LastActive, SortOrder::Desc),
    ]
}

/// Every read of `a` and `b` agrees, for every session of `specs`.
fn assert_same_reads(
    a: &MemoryStore,
    b: &MemoryStore,
    specs: &[Spec],
) -> Result<(), TestCaseError> {
    for (number, spec) in specs.iter().enumerate() {
        let stored = session(number as u64, spec);
        prop_assert_eq!(
            a.get(stored.id()).map_err(|e| e.code()),
            b.get(stored.id()).map_err(|e| e.code())
        );
        let token = stored.fields().token_hash;
        prop_assert_eq!(
            a.get_by_token_hash(&token).map_err(|e| e.code()),
            b.get_by_token_hash(&token).map_err(|e| e.code())
        );
    }
    for n in 0..4 {
        prop_assert_eq!(
            a.count_by_user(&user(n)).unwrap(),
            b.count_by_user(&user(n)).unwrap()
        );
        prop_assert_eq!(
            a.list_by_user(&user(n)).unwrap(),
            b.list_by_user(&user(n)).unwrap()
        );
    }
    for filter in filters() {
        for sort in sorts() {
            for page in [Page::new(1, 7).unwrap(), Page::new(3, 3).unwrap()] {
                prop_assert_eq!(
                    a.list(&filter, sort, page).unwrap(),
                    b.list(&filter, sort, page).unwrap(),
                    "{:?} {:?}",
                    filter,
                    sort
                );
            }
            let mut cursor: Option<Cursor> = None;
            // Bounded: each slice moves the cursor past at least one session.
            for _ in 0..=specs.len() {
                let limit = PageSize::new(4).unwrap();
                let slice_a = a.list_after(&filter, sort, cursor.as_ref(), limit).unwrap();
                let slice_b = b.list_after(&filter, sort, cursor.as_ref(), limit).unwrap();
                prop_assert_eq!(&slice_a.items, &slice_b.items);
                prop_assert_eq!(&slice_a.next, &slice_b.next);
                cursor = slice_a.next;
                if cursor.is_none() {
                    break;
                }
            }
        }
    }
    let sorted = |store: &MemoryStore| {
        let mut records = store.records();
        records.sort_by_key(SessionRecord::id);
        records
    };
    prop_assert_eq!(sorted(a), sorted(b));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_bulk_loaded_store_reads_like_one_built_by_replay(
        specs in proptest::collection::vec(any_spec(), 0..80),
        now_s in 0_u64..500,
        capacity in prop_oneof![Just(0_usize), 0_usize..10_000],
    ) {
        let clock = Arc::new(ManualClock::new(SUITE_START));
        clock.set(at_s(now_s));
        let options = StoreOptions { capacity, ..StoreOptions::default() };
        let replayed = MemoryStore::new(clock.clone(), options.clone()).unwrap();
        for (number, spec) in specs.iter().enumerate() {
            replayed
                .apply_replayed(&Mutation::Create(Arc::new(session(number as u64, spec))))
                .unwrap();
        }
        let records = specs
            .iter()
            .enumerate()
            .map(|(number, spec)| record(number as u64, spec))
            .collect();
        let loaded = MemoryStore::bulk_load(clock.clone(), options, records).unwrap();
        prop_assert_eq!(loaded.len(), specs.len());
        assert_same_reads(&replayed, &loaded, &specs)?;

        // Both keep working alike: touch and delete some, then clean up.
        for (number, spec) in specs.iter().enumerate().step_by(3) {
            let id = session(number as u64, spec).id();
            let later = at_s(now_s + 1);
            prop_assert_eq!(
                replayed.touch(id, later, Some(ip(3))).map_err(|e| e.code()),
                loaded.touch(id, later, Some(ip(3))).map_err(|e| e.code())
            );
        }
        for (number, spec) in specs.iter().enumerate().step_by(5) {
            let id = session(number as u64, spec).id();
            prop_assert_eq!(replayed.delete(id).unwrap(), loaded.delete(id).unwrap());
        }
        assert_same_reads(&replayed, &loaded, &specs)?;
        prop_assert_eq!(replayed.cleanup_expired().unwrap(), loaded.cleanup_expired().unwrap());
        assert_same_reads(&replayed, &loaded, &specs)?;
    }
}
