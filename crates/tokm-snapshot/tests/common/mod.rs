//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod craft;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};
use tokm_domain::testkit::SessionFactory;
use tokm_domain::{ManualClock, Session, Timestamp};
use tokm_snapshot::{SnapshotOptions, SnapshotStore};
use tokm_storage::Lsn;
use tokm_storage::Storage;
use tokm_storage::testkit::SimStorage;

/// Where every simulated test keeps its snapshots.
pub fn sim_dir() -> PathBuf {
    PathBuf::from("/snapshots")
}

/// When every test clock starts: 2023-11-14T22:13:20Z.
pub const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// `count` valid, distinct sessions, the same for the same `seed`.
pub fn sessions(count: usize, seed: u64) -> Vec<Arc<Session>> {
    let mut factory = SessionFactory::new(seed, START);
    (0..count)
        .map(|index| {
            let user = SessionFactory::user((index % 97) as u32);
            let body = factory.next_for(&user);
            Arc::new(Session::new(body, 1 + (index as u64 % 3)).expect("valid version"))
        })
        .collect()
}

/// A keyring of one key, id `key_id`, all bytes `key_byte`.
pub fn keyring(key_id: u32, key_byte: u8, algorithm: Algorithm) -> Arc<Keyring> {
    let key = Key::from_bytes(&[key_byte; 32]).expect("32 bytes make a key");
    Arc::new(Keyring::new(KeyId::new(key_id), key, algorithm))
}

/// Options over `sim` with `clock` and `keyring`.
pub fn sim_options(
    sim: &SimStorage,
    clock: &Arc<ManualClock>,
    keyring: Option<Arc<Keyring>>,
) -> SnapshotOptions {
    SnapshotOptions {
        storage: Arc::new(sim.clone()),
        keyring,
        clock: clock.clone(),
        node_id: "node-a".to_owned(),
        ..SnapshotOptions::default()
    }
}

/// A store on `sim` at [`sim_dir`], clock at [`START`], no keyring.
pub fn sim_store(sim: &SimStorage) -> (SnapshotStore, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(START));
    let store =
        SnapshotStore::open(&sim_dir(), sim_options(sim, &clock, None)).expect("open store");
    (store, clock)
}

/// Writes `sessions` at `lsn`, then moves the clock on a minute so names never collide.
pub fn write_at(
    store: &SnapshotStore,
    clock: &ManualClock,
    lsn: u64,
    sessions: &[Arc<Session>],
) -> String {
    let meta = store
        .write(Lsn::new(lsn), sessions.iter().map(Arc::as_ref))
        .expect("write snapshot");
    clock.advance(Duration::from_secs(60));
    meta.file_name
}

/// Names of the files in `dir`, sorted.
pub fn file_names(sim: &SimStorage, dir: &Path) -> Vec<String> {
    let mut names = sim.list(dir).expect("list");
    names.sort();
    names
}

/// Every file in `dir` with its bytes, sorted by name: compare two of these to prove that
/// nothing was created, renamed, removed or changed.
pub fn dir_contents(sim: &SimStorage, dir: &Path) -> Vec<(String, Vec<u8>)> {
    file_names(sim, dir)
        .into_iter()
        .map(|name| {
            let bytes = sim
                .file_bytes(&dir.join(&name))
                .expect("listed file exists");
            (name, bytes)
        })
        .collect()
}

/// A fresh simulated disk holding exactly `files` (name, bytes) in [`sim_dir`].
pub fn sim_with(files: &[(&str, &[u8])]) -> SimStorage {
    let sim = SimStorage::new();
    sim.put_dir(&sim_dir());
    for (name, bytes) in files {
        sim.put_file(&sim_dir().join(name), bytes);
    }
    sim
}

/// Opens a store over an existing simulated disk (clock at [`START`] plus a day).
pub fn reopen(sim: &SimStorage, keyring: Option<Arc<Keyring>>) -> SnapshotStore {
    let clock = Arc::new(ManualClock::new(
        START
            .checked_add(Duration::from_secs(86_400))
            .expect("in range"),
    ));
    SnapshotStore::open(&sim_dir(), sim_options(sim, &clock, keyring)).expect("open store")
}

/// The sessions a loaded snapshot holds, by id: a snapshot keeps no order (blocks are encoded
/// on several threads).
pub fn loaded_sessions(snapshot: &tokm_snapshot::LoadedSnapshot) -> Vec<Arc<Session>> {
    let sessions: Vec<Arc<Session>> = snapshot
        .records
        .iter()
        .map(|record| Arc::new(record.to_session()))
        .collect();
    by_id(&sessions)
}

/// `sessions` sorted by id, to compare with [`loaded_sessions`].
pub fn by_id(sessions: &[Arc<Session>]) -> Vec<Arc<Session>> {
    let mut sorted = sessions.to_vec();
    sorted.sort_by_key(|session| session.id());
    sorted
}
