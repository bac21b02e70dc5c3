//! A capture taken while four threads create, update, touch and delete equals exactly the
//! state at its instant.
//!
//! The instant is made observable the way the engine does it with its write gate: every write
//! holds a shared lock while it runs and records its effect in its thread's model; the capture
//! starts while that lock is held exclusively, so the models at that moment are the expected
//! state. Writers resume at once, and the capture's shards are pulled slowly, each after more
//! writes, so writes race the copying of nearly every shard.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokm_domain::{
    ManualClock, NewSession, SessionId, SessionRecord, SessionRepository, TokenRepository,
};
use tokm_memory_store::{MemoryStore, StoreOptions};

use crate::common::{Spec, at_s, ip, new_session, token};

const WRITER_COUNT: u64 = 4;
const WRITES_PER_THREAD: u64 = 4_000;

type Model = Mutex<BTreeMap<SessionId, SessionRecord>>;

/// Writer `thread`'s `step`: mostly creates early, then a mix, all on its own sessions.
fn write(store: &MemoryStore, model: &Model, thread: u64, step: u64) {
    let mut own = model.lock().unwrap();
    let choice = tokm_domain_mix(thread << 32 | step);
    let pick = (!own.is_empty()).then(|| *own.keys().nth(choice as usize % own.len()).unwrap());
    match (choice % 10, pick) {
        (0..=3, _) | (_, None) => {
            let number = thread * 1_000_000 + step;
            let spec = Spec {
                user: (thread * 4 + step % 4) as u8,
                device: Some((step % 3) as u8),
                creator: None,
                ip: Some((step % 4) as u8),
                last_ip: None,
                created_s: 0,
                lifetime_s: 60_000,
                idle_s: None,
                active_s: 0,
                version: 1,
            };
            if let Ok(outcome) = store.create(new_session(number, &spec)) {
                if let Some(evicted) = outcome.evicted {
                    own.remove(&evicted.id());
                }
                own.insert(
                    outcome.session.id(),
                    SessionRecord::from_session(&outcome.session),
                );
            }
        }
        (4..=5, Some(id)) => {
            let current = own[&id].to_session();
            let mut fields = current.fields().clone();
            fields.token_hash = token(thread * 1_000_000 + 500_000 + step);
            let updated = store
                .update(NewSession::new(fields).unwrap(), current.version())
                .unwrap();
            own.insert(id, SessionRecord::from_session(&updated));
        }
        (6..=7, Some(id)) => {
            let touched = store
                .touch(id, at_s(1 + step), Some(ip((step % 4) as u8)))
                .unwrap();
            own.insert(id, SessionRecord::from_session(&touched));
        }
        (_, Some(id)) => {
            assert!(store.delete(id).unwrap());
            own.remove(&id);
        }
    }
}

/// SplitMix64, to draw each step's operation without a random number generator.
fn tokm_domain_mix(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn a_capture_under_four_writers_equals_the_state_at_its_instant() {
    let clock = Arc::new(ManualClock::new(at_s(0)));
    let store = MemoryStore::new(clock, StoreOptions::default()).unwrap();
    let gate = RwLock::new(());
    let models: Vec<Model> = (0..WRITER_COUNT).map(|_| Model::default()).collect();
    let writes_done = AtomicUsize::new(0);
    let writers_left = AtomicUsize::new(WRITER_COUNT as usize);
    let captured = AtomicBool::new(false);

    let (expected, pulled, session_count) = std::thread::scope(|scope| {
        for (thread, model) in models.iter().enumerate() {
            let (store, gate, writes_done, writers_left) =
                (&store, &gate, &writes_done, &writers_left);
            scope.spawn(move || {
                for step in 0..WRITES_PER_THREAD {
                    let _shared = gate.read().unwrap();
                    write(store, model, thread as u64, step);
                    writes_done.fetch_add(1, Ordering::SeqCst);
                }
                writers_left.fetch_sub(1, Ordering::SeqCst);
            });
        }
        // Start once the store holds something, with every writer still running.
        let mut spins = 0_u64;
        while writes_done.load(Ordering::SeqCst) < 2_000 && writers_left.load(Ordering::SeqCst) > 0
        {
            std::thread::yield_now();
            spins += 1;
            assert!(spins < 1 << 32, "writers stalled");
        }
        let exclusive = gate.write().unwrap();
        let capture = store.capture();
        let expected: BTreeMap<SessionId, SessionRecord> = models
            .iter()
            .flat_map(|model| model.lock().unwrap().clone())
            .collect();
        drop(exclusive);
        captured.store(true, Ordering::SeqCst);
        let mut pulled = Vec::new();
        loop {
            // Let some writes land between shards while any writer runs; bounded by the
            // writers' finite work.
            let target = writes_done.load(Ordering::SeqCst) + 20;
            while writes_done.load(Ordering::SeqCst) < target
                && writers_left.load(Ordering::SeqCst) > 0
            {
                std::thread::yield_now();
            }
            let Some(shard) = capture.next_shard() else {
                break;
            };
            pulled.extend(shard);
        }
        (expected, pulled, capture.session_count())
    });
    assert!(captured.load(Ordering::SeqCst));
    assert!(
        writes_done.load(Ordering::SeqCst) > 2_100,
        "writes ran during the capture"
    );

    assert_eq!(session_count, expected.len() as u64);
    let mut pulled = pulled;
    pulled.sort_by_key(SessionRecord::id);
    let before = pulled.len();
    pulled.dedup_by_key(|record| record.id());
    assert_eq!(pulled.len(), before, "each session handed out once");
    let expected: Vec<SessionRecord> = expected.into_values().collect();
    assert_eq!(pulled.len(), expected.len());
    for (got, want) in pulled.iter().zip(&expected) {
        assert_eq!(got, want, "{got:?} against {want:?}");
    }

    // And the store now equals the writers' final models.
    let mut now: Vec<SessionRecord> = store.records();
    now.sort_by_key(SessionRecord::id);
    let mut final_state: Vec<SessionRecord> = models
        .iter()
        .flat_map(|model| model.lock().unwrap().clone().into_values())
        .collect();
    final_state.sort_by_key(SessionRecord::id);
    assert_eq!(now, final_state);
    for record in &final_state {
        assert_eq!(
            store.get_by_token_hash(&record.token_hash()).unwrap().id(),
            record.id()
        );
    }
}
