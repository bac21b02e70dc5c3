//! Directories made by the engine on a simulated disk, with a model of every acknowledged
//! operation by LSN, for recovery tests that damage them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokm_domain::testkit::SessionFactory;
use tokm_domain::{
    Clock, ManualClock, NewSession, Session, SessionId, SessionRepository, TokenHash,
    TokenRepository,
};
use tokm_engine::{Engine, EngineConfig};
use tokm_storage::Storage;
use tokm_storage::testkit::SimStorage;

/// One acknowledged operation and the LSN of its log record.
#[derive(Clone, Debug)]
pub struct Acked {
    pub lsn: u64,
    pub op: Op,
}

/// What an operation did, as replay applies it.
#[derive(Clone, Debug)]
pub enum Op {
    /// A create or update: the session as stored after it.
    Put(Box<Session>),
    /// A delete of the session at this version.
    Delete { id: SessionId, version: u64 },
}

/// Every session the operations with an LSN accepted by `keep` leave, sorted by id. Applies
/// the same rule as replay: a body replaces an older version, a delete removes a version at or
/// below its own.
pub fn model_state(acked: &[Acked], keep: impl Fn(u64) -> bool) -> Vec<Session> {
    let mut sessions: BTreeMap<SessionId, Session> = BTreeMap::new();
    for entry in acked.iter().filter(|entry| keep(entry.lsn)) {
        match &entry.op {
            Op::Put(session) => {
                let newer = sessions
                    .get(&session.id())
                    .is_none_or(|stored| stored.version() < session.version());
                if newer {
                    sessions.insert(session.id(), Session::clone(session));
                }
            }
            Op::Delete { id, version } => {
                if sessions
                    .get(id)
                    .is_some_and(|stored| stored.version() <= *version)
                {
                    sessions.remove(id);
                }
            }
        }
    }
    sessions.into_values().collect()
}

/// Tokens of the sessions deleted by an acknowledged operation and never created again.
pub fn revoked_tokens(acked: &[Acked], tokens: &BTreeMap<SessionId, TokenHash>) -> Vec<TokenHash> {
    let mut live = BTreeMap::new();
    for entry in acked {
        match &entry.op {
            Op::Put(session) => {
                live.insert(session.id(), true);
            }
            Op::Delete { id, .. } => {
                live.insert(*id, false);
            }
        }
    }
    live.into_iter()
        .filter(|(_, alive)| !alive)
        .filter_map(|(id, _)| tokens.get(&id).copied())
        .collect()
}

/// A data directory the engine wrote on a simulated disk, closed, with its history.
pub struct Recorded {
    pub sim: SimStorage,
    /// The real directory holding only the `LOCK` file (the lock is always on the real file
    /// system).
    pub lock_dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub acked: Vec<Acked>,
    /// Every session's token hash, to check revoked sessions by token.
    pub tokens: BTreeMap<SessionId, TokenHash>,
    /// Covered LSNs of the snapshots taken, oldest first.
    pub snapshot_lsns: Vec<u64>,
}

/// A config for the simulated disk `sim` (triggers off: tests snapshot explicitly).
pub fn sim_config(lock_dir: &Path, sim: &SimStorage, clock: &Arc<ManualClock>) -> EngineConfig {
    let mut config = super::config(lock_dir, clock);
    config.storage = Arc::new(sim.clone());
    config
}

/// Drives an engine while recording what each acknowledged operation logged.
pub struct Recorder<'a> {
    pub engine: &'a Engine,
    pub clock: &'a ManualClock,
    pub factory: &'a mut SessionFactory,
    pub acked: &'a mut Vec<Acked>,
    pub tokens: &'a mut BTreeMap<SessionId, TokenHash>,
}

impl Recorder<'_> {
    fn lsn(&self) -> u64 {
        self.engine.status().last_lsn.get()
    }

    pub fn create(&mut self, user: u32) -> Session {
        let body = self.factory.next_for(&SessionFactory::user(user));
        let session = self.engine.create(body).expect("create").session;
        self.tokens
            .insert(session.id(), session.fields().token_hash);
        self.push(Op::Put(Box::new(session.clone())));
        session
    }

    pub fn update(&mut self, session: &Session, step: usize) -> Session {
        let mut fields = session.fields().clone();
        fields
            .metadata
            .insert("step", &step.to_string())
            .expect("metadata");
        let body = NewSession::new(fields).expect("valid");
        let updated = self.engine.update(body, session.version()).expect("update");
        self.push(Op::Put(Box::new(updated.clone())));
        updated
    }

    pub fn delete(&mut self, session: &Session) {
        assert!(self.engine.delete(session.id()).expect("delete"));
        self.push(Op::Delete {
            id: session.id(),
            version: session.version(),
        });
    }

    fn push(&mut self, op: Op) {
        let lsn = self.lsn();
        assert!(
            self.acked.last().is_none_or(|last| last.lsn < lsn),
            "every operation logs one record"
        );
        self.acked.push(Acked { lsn, op });
        self.clock.advance(std::time::Duration::from_millis(7));
    }
}

impl Recorded {
    /// Opens the engine on the recorded disk with `adjust` applied to the config.
    pub fn open(
        &self,
        sim: &SimStorage,
        adjust: impl FnOnce(&mut EngineConfig),
    ) -> Result<(Engine, tokm_engine::RecoveryReport), tokm_engine::EngineError> {
        let mut config = sim_config(self.lock_dir.path(), sim, &self.clock);
        adjust(&mut config);
        Engine::open(config)
    }

    pub fn wal_dir(&self) -> PathBuf {
        self.lock_dir.path().join("wal")
    }

    pub fn snapshot_dir(&self) -> PathBuf {
        self.lock_dir.path().join("snapshots")
    }

    /// The expected state after every acknowledged operation.
    pub fn full_state(&self) -> Vec<Session> {
        model_state(&self.acked, |_| true)
    }
}

/// Every file on the simulated disk below `root`, by path, with its bytes.
pub fn disk_image(sim: &SimStorage, dirs: &[PathBuf]) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut image = BTreeMap::new();
    for dir in dirs {
        let Ok(names) = sim.list(dir) else {
            continue;
        };
        for name in names {
            let path = dir.join(name);
            let bytes = sim.file_bytes(&path).expect("listed file");
            image.insert(path, bytes);
        }
    }
    image
}

/// A fresh simulated disk holding exactly `image`.
pub fn disk_from(image: &BTreeMap<PathBuf, Vec<u8>>, dirs: &[PathBuf]) -> SimStorage {
    let sim = SimStorage::new();
    for dir in dirs {
        sim.put_dir(dir);
    }
    for (path, bytes) in image {
        sim.put_file(path, bytes);
    }
    sim
}

/// Current time of `clock` (for building sessions).
pub fn now(clock: &ManualClock) -> tokm_domain::Timestamp {
    clock.now()
}

/// Checks that no revoked session answers to its token.
pub fn assert_revoked_stay_revoked(engine: &Engine, revoked: &[TokenHash], context: &str) {
    for token in revoked {
        assert!(
            engine.get_by_token_hash(token).is_err(),
            "{context}: a revoked session authenticates again"
        );
    }
}

/// The directory the damage tests start from, on a simulated disk, built by the engine in four
/// runs (each run starts a new log segment):
/// 1. 40 creates, updates and deletes: segment 1, wholly before both snapshots;
/// 2. 30 more, the older snapshot, then more updates and deletes: segment 2;
/// 3. 30 more, the newer snapshot, then deletes (revocations after it) and updates: segment 3,
///    which straddles the newer snapshot;
/// 4. creates, deletes and updates, ending with a create: segment 4, the newest, after both.
pub fn four_runs_two_snapshots() -> Recorded {
    let sim = SimStorage::new();
    let lock_dir = tempfile::tempdir().expect("temp dir");
    let clock = super::clock();
    let mut factory = SessionFactory::new(7, clock.now());
    let mut acked = Vec::new();
    let mut tokens = BTreeMap::new();
    let mut snapshot_lsns = Vec::new();
    let mut live: Vec<Session> = Vec::new();
    let config = || sim_config(lock_dir.path(), &sim, &clock);
    for run in 0..4 {
        let (engine, _) = Engine::open(config()).expect("open");
        let mut recorder = Recorder {
            engine: &engine,
            clock: &clock,
            factory: &mut factory,
            acked: &mut acked,
            tokens: &mut tokens,
        };
        let creates = [40, 30, 30, 10][run];
        for index in 0..creates {
            live.push(recorder.create((index % 8) as u32));
        }
        if run == 1 || run == 2 {
            snapshot_lsns.push(engine.snapshot_now().expect("snapshot").covered_lsn.get());
        }
        // Updates and deletes spread over older and newer sessions.
        for step in 0..12 {
            let index = (step * 7 + run * 3) % live.len();
            if step % 3 == 0 {
                let gone = live.remove(index);
                recorder.delete(&gone);
            } else {
                live[index] = recorder.update(&live[index], step);
            }
        }
        if run == 3 {
            live.push(recorder.create(3));
        }
        engine.close().expect("close");
    }
    Recorded {
        sim,
        lock_dir,
        clock,
        acked,
        tokens,
        snapshot_lsns,
    }
}
