//! Shared helpers of the engine's integration tests.
#![allow(dead_code, unreachable_pub)] // Each test file uses its own subset.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{
    Clock, CreateOutcome, Cursor, CursorPage, ListResult, ManualClock, NewSession, Page, PageSize,
    Session, SessionError, SessionFilter, SessionId, SessionRepository, Sort, Timestamp, TokenHash,
    TokenRepository, UserId,
};
use tokm_engine::{Engine, EngineConfig, SnapshotPolicy, SweepPolicy};

/// A config for tests: the given clock, snapshot triggers and the expiry sweep off (tests
/// snapshot and sweep explicitly).
pub fn config(dir: &Path, clock: &Arc<ManualClock>) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.clock = Arc::clone(clock) as Arc<dyn tokm_domain::Clock>;
    config.snapshots = SnapshotPolicy {
        interval: None,
        wal_bytes: None,
        after_replay_records: None,
        ..SnapshotPolicy::default()
    };
    config.sweep = SweepPolicy {
        interval: None,
        ..SweepPolicy::default()
    };
    config
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(SUITE_START))
}

/// Every stored session, sorted by id: the state to compare across restarts.
pub fn state(engine: &Engine) -> Vec<Session> {
    let mut sessions = Vec::new();
    engine.for_each_session(|record| sessions.push(record.to_session()));
    sessions.sort_by_key(Session::id);
    sessions
}

/// Creates `count` sessions spread over `users` users, then updates and touches some and
/// deletes a few, so the log holds every kind of record.
pub fn mixed_workload(engine: &Engine, clock: &ManualClock, seed: u64, count: u32, users: u32) {
    let mut factory = SessionFactory::new(seed, clock.now());
    let mut created = Vec::new();
    for index in 0..count {
        let user = SessionFactory::user(index % users);
        let outcome = engine.create(factory.next_for(&user)).expect("create");
        created.push(outcome.session);
        clock.advance(Duration::from_millis(3));
    }
    for (index, session) in created.iter().enumerate() {
        match index % 4 {
            0 => {
                let mut fields = session.fields().clone();
                fields
                    .metadata
                    .insert("step", &index.to_string())
                    .expect("metadata");
                let body = NewSession::new(fields).expect("valid");
                engine.update(body, session.version()).expect("update");
            }
            1 => {
                engine
                    .touch(session.id(), clock.now(), None)
                    .expect("touch");
            }
            2 if index % 8 == 2 => {
                engine.delete(session.id()).expect("delete");
            }
            _ => {}
        }
        clock.advance(Duration::from_millis(1100));
    }
}

/// An engine that owns its temporary directory, for the conformance suite.
pub struct TempEngine {
    pub engine: Engine,
    pub dir: tempfile::TempDir,
}

impl TempEngine {
    pub fn open(clock: &Arc<ManualClock>, adjust: impl FnOnce(&mut EngineConfig)) -> TempEngine {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = config(dir.path(), clock);
        adjust(&mut config);
        let (engine, _report) = Engine::open(config).expect("open");
        TempEngine { engine, dir }
    }
}

impl SessionRepository for TempEngine {
    fn create(&self, session: NewSession) -> Result<CreateOutcome, SessionError> {
        self.engine.create(session)
    }
    fn get(&self, id: SessionId) -> Result<Session, SessionError> {
        self.engine.get(id)
    }
    fn update(&self, session: NewSession, expected_version: u64) -> Result<Session, SessionError> {
        self.engine.update(session, expected_version)
    }
    fn delete(&self, id: SessionId) -> Result<bool, SessionError> {
        self.engine.delete(id)
    }
    fn list(
        &self,
        filter: &SessionFilter,
        sort: Sort,
        page: Page,
    ) -> Result<ListResult<Session>, SessionError> {
        self.engine.list(filter, sort, page)
    }
    fn list_after(
        &self,
        filter: &SessionFilter,
        sort: Sort,
        after: Option<&Cursor>,
        limit: PageSize,
    ) -> Result<CursorPage<Session>, SessionError> {
        self.engine.list_after(filter, sort, after, limit)
    }
    fn count_by_user(&self, user_id: &UserId) -> Result<u64, SessionError> {
        self.engine.count_by_user(user_id)
    }
    fn list_by_user(&self, user_id: &UserId) -> Result<Vec<Session>, SessionError> {
        self.engine.list_by_user(user_id)
    }
    fn delete_by_user(&self, user_id: &UserId) -> Result<u64, SessionError> {
        self.engine.delete_by_user(user_id)
    }
    fn cleanup_expired(&self) -> Result<u64, SessionError> {
        self.engine.cleanup_expired()
    }
}

impl TokenRepository for TempEngine {
    fn get_by_token_hash(&self, token_hash: &TokenHash) -> Result<Session, SessionError> {
        self.engine.get_by_token_hash(token_hash)
    }
    fn touch(
        &self,
        id: SessionId,
        now: Timestamp,
        last_access_ip: Option<IpAddr>,
    ) -> Result<Session, SessionError> {
        self.engine.touch(id, now, last_access_ip)
    }
}

pub mod recorded;

/// Every file under `dir` (recursively) with its bytes, to prove an open changed nothing.
pub fn tree(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}
