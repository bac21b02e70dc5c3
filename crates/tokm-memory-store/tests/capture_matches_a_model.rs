//! A capture equals the store at the instant it began, whatever writes run between its start
//! and the copying of each shard: checked against a model on random operation sequences.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use tokm_domain::testkit::SUITE_START;
use tokm_domain::{
    ManualClock, NewSession, SessionId, SessionRecord, SessionRepository, TokenRepository,
};
use tokm_memory_store::{Capture, MemoryStore, StoreOptions};

use crate::common::{Spec, any_spec, at_s, ip, new_session, token};

#[derive(Clone, Debug)]
enum Op {
    Create(Spec),
    Update { pick: usize, new_token: bool },
    Touch { pick: usize, ip: Option<u8> },
    Delete { pick: usize },
    StartCapture,
    PullShard,
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any_spec().prop_map(Op::Create),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, new_token)| Op::Update { pick, new_token }),
        2 => (any::<usize>(), proptest::option::of(0_u8..4)).prop_map(|(pick, ip)| Op::Touch { pick, ip }),
        2 => any::<usize>().prop_map(|pick| Op::Delete { pick }),
        1 => Just(Op::StartCapture),
        4 => Just(Op::PullShard),
    ]
}

/// A capture in progress and what it must yield.
struct Running<'a> {
    capture: Capture<'a>,
    expected: BTreeMap<SessionId, SessionRecord>,
    pulled: Vec<SessionRecord>,
}

impl Running<'_> {
    /// Pulls every remaining shard and compares the whole capture with the expected state.
    fn finish(mut self) -> Result<(), TestCaseError> {
        while let Some(shard) = self.capture.next_shard() {
            self.pulled.extend(shard);
        }
        prop_assert_eq!(self.capture.session_count(), self.expected.len() as u64);
        let mut pulled = self.pulled;
        pulled.sort_by_key(SessionRecord::id);
        let expected: Vec<SessionRecord> = self.expected.into_values().collect();
        prop_assert_eq!(pulled, expected);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_capture_equals_the_model_at_its_start(ops in proptest::collection::vec(any_op(), 1..120)) {
        let clock = Arc::new(ManualClock::new(at_s(0)));
        let store = MemoryStore::new(clock.clone(), StoreOptions::default()).unwrap();
        let mut model: BTreeMap<SessionId, SessionRecord> = BTreeMap::new();
        let mut running: Option<Running<'_>> = None;
        let mut created = 0_u64;
        let mut tokens = 1_000_000_u64;
        for op in ops {
            let ids: Vec<SessionId> = model.keys().copied().collect();
            let pick = |pick: usize| (!ids.is_empty()).then(|| ids[pick % ids.len()]);
            match op {
                Op::Create(spec) => {
                    created += 1;
                    let spec = Spec { created_s: 0, active_s: 0, lifetime_s: 10_000, idle_s: None, ..spec };
                    if let Ok(outcome) = store.create(new_session(created, &spec)) {
                        if let Some(evicted) = outcome.evicted {
                            model.remove(&evicted.id());
                        }
                        model.insert(outcome.session.id(), SessionRecord::from_session(&outcome.session));
                    }
                }
                Op::Update { pick: choice, new_token } => {
                    let Some(id) = pick(choice) else { continue };
                    let current = model[&id].to_session();
                    let mut fields = current.fields().clone();
                    if new_token {
                        tokens += 1;
                        fields.token_hash = token(tokens);
                    }
                    fields.expires_at = at_s(20_000);
                    let updated = store
                        .update(NewSession::new(fields).unwrap(), current.version())
                        .unwrap();
                    model.insert(id, SessionRecord::from_session(&updated));
                }
                Op::Touch { pick: choice, ip: address } => {
                    let Some(id) = pick(choice) else { continue };
                    let touched = store.touch(id, at_s(1), address.map(ip)).unwrap();
                    model.insert(id, SessionRecord::from_session(&touched));
                }
                Op::Delete { pick: choice } => {
                    let Some(id) = pick(choice) else { continue };
                    prop_assert!(store.delete(id).unwrap());
                    model.remove(&id);
                }
                Op::StartCapture => {
                    if running.is_none() {
                        running = Some(Running {
                            capture: store.capture(),
                            expected: model.clone(),
                            pulled: Vec::new(),
                        });
                    }
                }
                Op::PullShard => {
                    if let Some(current) = running.as_mut() {
                        // Several shards per pull, so captures finish within a sequence.
                        for _ in 0..8 {
                            if let Some(shard) = current.capture.next_shard() {
                                current.pulled.extend(shard);
                            }
                        }
                    }
                }
            }
        }
        if let Some(current) = running.take() {
            current.finish()?;
        }
        // After the capture the store still matches the model, and a new capture sees it all.
        let after = Running { capture: store.capture(), expected: model.clone(), pulled: Vec::new() };
        after.finish()?;
        for (id, record) in &model {
            prop_assert_eq!(store.get_by_token_hash(&record.token_hash()).unwrap().id(), *id);
        }
    }
}

#[test]
fn a_second_capture_waits_for_the_first_to_drop() {
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let store = MemoryStore::new(clock, StoreOptions::default()).unwrap();
    let first = store.capture();
    let (started, ready) = crossbeam::channel::bounded(1);
    let (dropped, heard) = crossbeam::channel::bounded::<()>(1);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            started.send(()).unwrap();
            let second = store.capture();
            // The first capture must be gone by now.
            assert!(
                heard.try_recv().is_ok(),
                "the second capture began while the first was alive"
            );
            assert_eq!(second.session_count(), 0);
        });
        ready.recv().unwrap();
        dropped.send(()).unwrap();
        drop(first);
    });
}
