//! Invariant 1 of `docs/ARCHITECTURE.md`, log order is apply order: writers race on the same
//! users and sessions (creates against the quota, versioned updates, touches, deletes, bulk
//! deletes, cleanup), then the power is cut and the engine recovers from its log alone.
//! Replaying the log must rebuild exactly the state the writers left in memory: if two
//! conflicting writes were logged in one order and applied in the other, replay would diverge.

mod common;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use proptest::prelude::*;
use tokm_domain::testkit::SessionFactory;
use tokm_domain::{Clock, NewSession, Quota, SessionId, SessionRepository, TokenRepository};
use tokm_engine::Engine;
use tokm_storage::testkit::{CrashCut, SimStorage};

const THREADS: u64 = 4;
const OPS_PER_THREAD: u64 = 120;
const USERS: u32 = 3;

fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn run_writer(
    engine: &Engine,
    clock: &tokm_domain::ManualClock,
    ids: &Mutex<Vec<SessionId>>,
    seed: u64,
    thread: u64,
) {
    let mut random = seed ^ (thread << 32);
    let mut factory = SessionFactory::new(seed.wrapping_mul(16).wrapping_add(thread), clock.now());
    factory.set_lifetime(Duration::from_secs(3600));
    for _ in 0..OPS_PER_THREAD {
        let roll = next(&mut random) % 100;
        let pick = {
            let ids = ids.lock();
            (!ids.is_empty()).then(|| ids[(next(&mut random) as usize) % ids.len()])
        };
        // Outcomes (conflicts, not found, expired, quota) are part of the race; only the final
        // state is checked.
        match (roll, pick) {
            (0..40, _) | (_, None) => {
                let user = SessionFactory::user((next(&mut random) % u64::from(USERS)) as u32);
                if let Ok(outcome) = engine.create(factory.next_for(&user)) {
                    ids.lock().push(outcome.session.id());
                }
            }
            (40..65, Some(id)) => {
                if let Ok(session) = engine.get(id) {
                    let mut fields = session.fields().clone();
                    let _ = fields.metadata.insert("w", &thread.to_string());
                    if let Ok(body) = NewSession::new(fields) {
                        let _ = engine.update(body, session.version());
                    }
                }
            }
            (65..80, Some(id)) => {
                let _ = engine.touch(id, clock.now(), None);
            }
            (80..92, Some(id)) => {
                let _ = engine.delete(id);
            }
            (92..95, _) => {
                let user = SessionFactory::user((next(&mut random) % u64::from(USERS)) as u32);
                let _ = engine.delete_by_user(&user);
            }
            (95..98, _) => clock.advance(Duration::from_secs(next(&mut random) % 20)),
            _ => {
                let _ = engine.cleanup_expired();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn replay_after_concurrent_writes_rebuilds_the_same_state(seed in any::<u64>()) {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = common::clock();
        let sim = SimStorage::new();
        let mut config = common::config(dir.path(), &clock);
        config.storage = Arc::new(sim.clone());
        config.touch_log_window = Duration::ZERO;
        // A small quota, so concurrent creates for one user really compete for the last slots.
        config.quota = Quota { sessions_per_user_max: 16, ..Quota::default() };
        let (engine, _) = Engine::open(config.clone()).expect("open");
        let ids = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let (engine, clock, ids) = (&engine, &clock, &ids);
                scope.spawn(move || run_writer(engine, clock, ids, seed, thread));
            }
        });
        let now = clock.now();
        let mut before = common::state(&engine);
        // Recovery drops what has expired by now; so does the expectation.
        before.retain(|session| !session.is_expired_at(now));
        for user in 0..USERS {
            let live = before
                .iter()
                .filter(|session| session.fields().user_id == SessionFactory::user(user))
                .count();
            prop_assert!(live <= 16, "quota held under the race: user {user} has {live}");
        }

        // Power cut: only synced bytes survive. Every write above was acknowledged in Sync mode.
        sim.crash(CrashCut::DropUnsynced);
        drop(engine);
        let (engine, _) = Engine::open(config).expect("recover");
        prop_assert_eq!(common::state(&engine), before);
    }
}
