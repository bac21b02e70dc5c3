//! Property: random operations with simulated power cuts in between; after every recovery the
//! engine holds exactly the state of a plain `MemoryStore` that saw the same acknowledged
//! operations (in `Sync` mode every acknowledged write is durable, so nothing may be missing,
//! and nothing unacknowledged may appear).

mod common;

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tokm_domain::testkit::SessionFactory;
use tokm_domain::{
    Clock, ManualClock, NewSession, SessionRecord, SessionRepository, TokenRepository,
};
use tokm_engine::{Engine, EngineConfig};
use tokm_memory_store::{MemoryStore, StoreOptions};
use tokm_storage::testkit::{CrashCut, SimStorage};

#[derive(Clone, Debug)]
enum Op {
    Create { user: u32 },
    Update { pick: usize },
    Touch { pick: usize },
    Delete { pick: usize },
    DeleteByUser { user: u32 },
    Cleanup,
    Advance { secs: u64 },
    Snapshot,
    Crash { torn_seed: Option<u64> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u32..4).prop_map(|user| Op::Create { user }),
        3 => any::<usize>().prop_map(|pick| Op::Update { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Touch { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Delete { pick }),
        1 => (0u32..4).prop_map(|user| Op::DeleteByUser { user }),
        1 => Just(Op::Cleanup),
        2 => (1u64..900).prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::Snapshot),
        1 => proptest::option::of(any::<u64>()).prop_map(|torn_seed| Op::Crash { torn_seed }),
    ]
}

/// Errors compared by code: the engine and the model must fail the same way.
fn codes<T>(result: Result<T, tokm_domain::SessionError>) -> Result<T, &'static str> {
    result.map_err(|error| error.code())
}

struct Harness {
    clock: Arc<ManualClock>,
    sim: SimStorage,
    config: EngineConfig,
    engine: Option<Engine>,
    model: MemoryStore,
    factory: SessionFactory,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = common::clock();
        let sim = SimStorage::new();
        let mut config = common::config(dir.path(), &clock);
        config.storage = Arc::new(sim.clone());
        // Log every touch, so the model (which keeps every touch) is exact after a crash.
        config.touch_log_window = Duration::ZERO;
        let (engine, _) = Engine::open(config.clone()).expect("open");
        let model = MemoryStore::new(
            Arc::clone(&clock) as Arc<dyn tokm_domain::Clock>,
            StoreOptions::default(),
        )
        .expect("model");
        let factory = SessionFactory::new(77, clock.now());
        Harness {
            clock,
            sim,
            config,
            engine: Some(engine),
            model,
            factory,
            _dir: dir,
        }
    }

    fn engine(&self) -> &Engine {
        self.engine.as_ref().expect("open")
    }

    fn pick(&self, pick: usize) -> Option<tokm_domain::Session> {
        let mut all = self.model.records();
        all.sort_by_key(SessionRecord::id);
        all.get(pick % all.len().max(1))
            .map(SessionRecord::to_session)
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Create { user } => {
                let body: NewSession = self.factory.next_for(&SessionFactory::user(*user));
                let engine = codes(self.engine().create(body.clone()).map(|o| o.session));
                let model = codes(self.model.create(body).map(|o| o.session));
                prop_assert_eq!(engine, model);
            }
            Op::Update { pick } => {
                let Some(session) = self.pick(*pick) else {
                    return Ok(());
                };
                let mut fields = session.fields().clone();
                fields
                    .metadata
                    .insert("n", &pick.to_string())
                    .expect("metadata");
                let body = NewSession::new(fields).expect("valid");
                let engine = codes(self.engine().update(body.clone(), session.version()));
                let model = codes(self.model.update(body, session.version()));
                prop_assert_eq!(engine, model);
            }
            Op::Touch { pick } => {
                let Some(session) = self.pick(*pick) else {
                    return Ok(());
                };
                let now = self.clock.now();
                let engine = codes(self.engine().touch(session.id(), now, None));
                let model = codes(self.model.touch(session.id(), now, None));
                prop_assert_eq!(engine, model);
            }
            Op::Delete { pick } => {
                let Some(session) = self.pick(*pick) else {
                    return Ok(());
                };
                let engine = codes(self.engine().delete(session.id()));
                prop_assert_eq!(engine, codes(self.model.delete(session.id())));
            }
            Op::DeleteByUser { user } => {
                let user = SessionFactory::user(*user);
                let engine = codes(self.engine().delete_by_user(&user));
                prop_assert_eq!(engine, codes(self.model.delete_by_user(&user)));
            }
            Op::Cleanup => {
                let engine = codes(self.engine().cleanup_expired());
                prop_assert_eq!(engine, codes(self.model.cleanup_expired()));
            }
            Op::Advance { secs } => self.clock.advance(Duration::from_secs(*secs)),
            Op::Snapshot => {
                self.engine().snapshot_now().expect("snapshot");
            }
            Op::Crash { torn_seed } => {
                let cut = torn_seed.map_or(CrashCut::DropUnsynced, |seed| CrashCut::Torn { seed });
                self.sim.crash(cut);
                // The old engine's handles now fail; dropping it releases the directory lock.
                drop(self.engine.take());
                let (engine, _) = Engine::open(self.config.clone()).expect("recover");
                self.engine = Some(engine);
                // Recovery drops what expired while down; the model does the same.
                self.model.cleanup_expired().expect("model cleanup");
                self.check()?;
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let mut model: Vec<_> = self
            .model
            .records()
            .iter()
            .map(SessionRecord::to_session)
            .collect();
        model.sort_by_key(|session| session.id());
        prop_assert_eq!(common::state(self.engine()), model);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn recovered_state_equals_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut harness = Harness::new();
        for op in &ops {
            harness.apply(op)?;
        }
        harness.apply(&Op::Crash { torn_seed: None })?;
        harness.check()?;
    }
}
