//! Stress: writers create, update, touch and delete sessions while readers check that a
//! session that exists throughout is found through every index at every moment: by token, by
//! id, in its user's list, in filtered and time-sorted lists, exactly once each.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{
    Clock, DeviceId, ManualClock, NewSession, Page, Session, SessionError, SessionFilter,
    SessionRepository, Sort, SortBy, SortOrder, TokenHash, TokenRepository, UserId,
};
use tokm_memory_store::{MemoryStore, StoreOptions};

const WRITER_COUNT: u32 = 3;
const READER_COUNT: usize = 3;
const USERS_PER_WRITER: u32 = 2;
const IMMORTALS_PER_USER: usize = 2;
const ROUNDS_PER_WRITER: u32 = 20_000;
/// Mortal sessions each writer keeps at most; with the immortals the store stays under one
/// page of 100, so a full list must show every immortal exactly once.
const MORTALS_PER_WRITER_MAX: usize = 6;

/// xorshift64*: deterministic per thread, no shared state.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn ip(last: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 1, 0, last as u8))
}

fn writer(
    store: &MemoryStore,
    clock: &ManualClock,
    writer_index: u32,
    immortals: &[Session],
) -> Result<(), SessionError> {
    let mut rng = Rng(0x9e37_79b9 + u64::from(writer_index));
    let mut factory = SessionFactory::new(1_000 + u64::from(writer_index), SUITE_START);
    let users: Vec<UserId> = (0..USERS_PER_WRITER)
        .map(|i| SessionFactory::user(writer_index * USERS_PER_WRITER + i))
        .collect();
    let mine: Vec<&Session> = immortals
        .iter()
        .filter(|s| users.contains(&s.fields().user_id))
        .collect();
    let mut mortals: Vec<Session> = Vec::new();
    for round in 0..ROUNDS_PER_WRITER {
        match rng.below(6) {
            0..=1 if mortals.len() < MORTALS_PER_WRITER_MAX => {
                let user = &users[rng.below(users.len() as u64) as usize];
                let mut fields = factory.next_for(user).into_fields();
                fields.ip_address = Some(ip(rng.below(4)));
                mortals.push(store.create(NewSession::new(fields)?)?.session);
            }
            0..=2 if !mortals.is_empty() => {
                let victim = mortals.swap_remove(rng.below(mortals.len() as u64) as usize);
                assert!(store.delete(victim.id())?);
            }
            3 if !mortals.is_empty() => {
                // Rotate a mortal's token and move it to another device and address.
                let index = rng.below(mortals.len() as u64) as usize;
                let current = store.get(mortals[index].id())?;
                let mut fields = current.fields().clone();
                fields.token_hash = TokenHash::of_token(&format!("w{writer_index}-r{round}"))?;
                fields.device_id = Some(DeviceId::new(&format!("device-{}", rng.below(3)))?);
                fields.ip_address = Some(ip(rng.below(4)));
                mortals[index] = store.update(NewSession::new(fields)?, current.version())?;
            }
            4 => {
                // Touch an immortal: moves its last_active entry and its last address.
                let immortal = mine[rng.below(mine.len() as u64) as usize];
                clock.advance(std::time::Duration::from_millis(1));
                store.touch(immortal.id(), clock.now(), Some(ip(rng.below(4))))?;
            }
            _ => {
                // Update an immortal's device and metadata, keeping its token.
                let immortal = mine[rng.below(mine.len() as u64) as usize];
                let current = store.get(immortal.id())?;
                let mut fields = current.fields().clone();
                fields.device_id = Some(DeviceId::new(&format!("device-{}", rng.below(3)))?);
                fields.metadata.insert("round", &round.to_string())?;
                store.update(NewSession::new(fields)?, current.version())?;
            }
        }
    }
    Ok(())
}

fn check_once(store: &MemoryStore, immortals: &[Session]) -> Result<(), SessionError> {
    let everything = store.list(
        &SessionFilter::default(),
        Sort::new(SortBy::LastActive, SortOrder::Desc),
        Page::new(1, 100)?,
    )?;
    let listed: Vec<_> = everything.items.iter().map(Session::id).collect();
    let unique: HashSet<_> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a full list repeats no session");
    for immortal in immortals {
        let id = immortal.id();
        assert!(unique.contains(&id), "full list by last_active has {id}");
        let fields = immortal.fields();
        let by_token = store.get_by_token_hash(&fields.token_hash)?;
        assert_eq!(by_token.id(), id, "token index");
        let by_id = store.get(id)?;
        assert!(by_id.version() >= by_token.version(), "versions only grow");
        let by_user = store.list_by_user(&fields.user_id)?;
        assert_eq!(
            by_user.iter().filter(|s| s.id() == id).count(),
            1,
            "user index"
        );
        let user_filter = SessionFilter {
            user_id: Some(fields.user_id.clone()),
            ..SessionFilter::default()
        };
        let sort = Sort::new(SortBy::LastActive, SortOrder::Asc);
        let page = store.list(&user_filter, sort, Page::new(1, 100)?)?;
        assert_eq!(page.total as usize, page.items.len());
        assert_eq!(page.items.iter().filter(|s| s.id() == id).count(), 1);
        let ip_filter = SessionFilter {
            ip_address: fields.ip_address,
            ..SessionFilter::default()
        };
        let page = store.list(&ip_filter, Sort::default(), Page::new(1, 100)?)?;
        assert!(page.items.iter().any(|s| s.id() == id), "address index");
        assert!(store.count_by_user(&fields.user_id)? >= IMMORTALS_PER_USER as u64);
    }
    Ok(())
}

#[test]
fn concurrent_readers_find_every_stable_session_through_every_index() {
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let store = MemoryStore::new(clock.clone(), StoreOptions::default()).unwrap();
    let mut factory = SessionFactory::new(77, SUITE_START);
    let mut immortals = Vec::new();
    for user_index in 0..WRITER_COUNT * USERS_PER_WRITER {
        for _ in 0..IMMORTALS_PER_USER {
            let mut fields = factory
                .next_for(&SessionFactory::user(user_index))
                .into_fields();
            // Far from the writers' addresses, so the address check is about this session.
            fields.ip_address = Some(IpAddr::V4(Ipv4Addr::new(10, 2, 0, user_index as u8)));
            let created = store.create(NewSession::new(fields).unwrap()).unwrap();
            immortals.push(created.session);
        }
    }
    let writers_done = AtomicBool::new(false);
    let reader_rounds = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..READER_COUNT)
            .map(|_| {
                scope.spawn(|| {
                    let mut rounds = 0_u64;
                    // Ordering: the flag only ends the loop; the checks synchronise through
                    // the store's own locks.
                    while !writers_done.load(Ordering::Relaxed) || rounds == 0 {
                        check_once(&store, &immortals).expect("reader check");
                        rounds += 1;
                    }
                    rounds
                })
            })
            .collect();
        let writers: Vec<_> = (0..WRITER_COUNT)
            .map(|index| {
                let (store, clock, immortals) = (&store, &*clock, &immortals);
                scope.spawn(move || writer(store, clock, index, immortals))
            })
            .collect();
        for handle in writers {
            handle.join().expect("writer thread").expect("writer ops");
        }
        writers_done.store(true, Ordering::Relaxed);
        readers
            .into_iter()
            .map(|handle| handle.join().expect("reader thread"))
            .sum::<u64>()
    });
    assert!(reader_rounds >= READER_COUNT as u64);
    check_once(&store, &immortals).unwrap();
}
