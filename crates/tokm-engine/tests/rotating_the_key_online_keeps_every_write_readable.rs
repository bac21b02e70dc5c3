//! `Engine::rotate_key` while the engine runs: records and snapshots written after it are
//! sealed under the new key, older files stay readable with a keyring holding both keys, a
//! crash loses nothing acknowledged, a keyring without the old key is refused (naming key 1,
//! changing nothing) until a snapshot, retention and compaction leave no file under it, and
//! `EngineStatus::keys` says when that is. Concurrent writers lose nothing to a rotation.

mod common;

use std::sync::Arc;
use std::sync::Barrier;
use std::thread;

use common::recorded::{disk_image, sim_config};
use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};
use tokm_domain::testkit::SessionFactory;
use tokm_domain::{Clock, ManualClock, SessionRepository};
use tokm_engine::{Engine, EngineConfig, EngineError};
use tokm_storage::testkit::{CrashCut, SimStorage};

fn key(byte: u8) -> Key {
    Key::from_bytes(&[byte; 32]).expect("32 bytes")
}

/// Key `n` has every byte `0x11 * n`.
fn key_n(n: u32) -> Key {
    key(u8::try_from(n * 0x11).expect("small key number"))
}

/// A keyring holding keys `ids`, the last one active.
fn keyring(ids: &[u32]) -> Arc<Keyring> {
    let (active, rest) = ids.split_last().expect("a key");
    let mut keyring = Keyring::new(KeyId::new(*active), key_n(*active), Algorithm::Aes256Gcm);
    for id in rest {
        keyring
            .insert(KeyId::new(*id), key_n(*id))
            .expect("distinct");
    }
    Arc::new(keyring)
}

fn ids(raw: &[u32]) -> Vec<KeyId> {
    raw.iter().copied().map(KeyId::new).collect()
}

/// A simulated data directory and the clock its engines share.
struct Dir {
    sim: SimStorage,
    lock_dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            sim: SimStorage::new(),
            lock_dir: tempfile::tempdir().expect("temp dir"),
            clock: common::clock(),
        }
    }

    /// Retention keeps one snapshot and compaction one segment, so a snapshot under the new
    /// key is all it takes to leave no file under the old one.
    fn config(&self, keys: Option<Arc<Keyring>>) -> EngineConfig {
        let mut config = sim_config(self.lock_dir.path(), &self.sim, &self.clock);
        config.keyring = keys;
        config.snapshots.retention_count = 1;
        config.snapshots.retention_age = std::time::Duration::ZERO;
        config.snapshots.wal_segments_kept = 1;
        config
    }

    fn open(&self, keys: Option<Arc<Keyring>>) -> Result<Engine, EngineError> {
        Engine::open(self.config(keys)).map(|(engine, _)| engine)
    }

    fn image(&self) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
        let root = self.lock_dir.path();
        disk_image(&self.sim, &[root.join("wal"), root.join("snapshots")])
    }
}

fn create(engine: &Engine, factory: &mut SessionFactory, count: u32) {
    for index in 0..count {
        let body = factory.next_for(&SessionFactory::user(index % 5));
        engine.create(body).expect("create");
    }
}

/// The key id a refused open names, if the error is a key error at all.
fn needed_key_id(error: &EngineError) -> Option<u32> {
    match error {
        EngineError::Wal {
            source: tokm_wal::WalError::Open(tokm_wal::OpenError::WrongKey { key_id, .. }),
        } => Some(*key_id),
        EngineError::Snapshot {
            source:
                tokm_snapshot::SnapshotError::Load(tokm_snapshot::LoadError::WrongKey {
                    key_id, ..
                }),
        } => Some(*key_id),
        _ => None,
    }
}

#[test]
fn writes_under_two_keys_survive_a_crash_and_reopen_only_with_both_keys() {
    let dir = Dir::new();
    let mut factory = SessionFactory::new(14, dir.clock.now());
    let engine = dir.open(Some(keyring(&[1]))).expect("open under key 1");
    create(&engine, &mut factory, 20);
    engine.snapshot_now().expect("snapshot under key 1");
    create(&engine, &mut factory, 10);
    let keys = engine.status().keys;
    assert_eq!((keys.active, keys.in_use), (Some(KeyId::new(1)), ids(&[1])));

    engine.rotate_key(KeyId::new(2), key_n(2)).expect("rotate");
    let rotated_after = engine.status().last_lsn;
    let keys = engine.status().keys;
    assert_eq!(keys.active, Some(KeyId::new(2)));
    assert_eq!(keys.held, ids(&[1, 2]));
    assert_eq!(
        keys.in_use,
        ids(&[1, 2]),
        "the new segment is on disk at once"
    );
    assert!(!keys.can_retire(KeyId::new(1)));
    create(&engine, &mut factory, 15);
    let expected = common::state(&engine);
    assert_eq!(expected.len(), 45);

    // Every write was acknowledged in `Sync` mode; the crash drops only unsynced bytes.
    dir.sim.crash(CrashCut::DropUnsynced);
    drop(engine);

    let image = dir.image();
    for (case, keys) in [("key 2 only", keyring(&[2])), ("key 1 only", keyring(&[1]))] {
        let error = dir.open(Some(keys)).expect_err(case);
        let needed = if case == "key 2 only" { 1 } else { 2 };
        assert_eq!(needed_key_id(&error), Some(needed), "{case}: {error}");
        assert!(
            dir.image() == image,
            "{case}: the refused open changed files"
        );
    }

    let (engine, report) = Engine::open(dir.config(Some(keyring(&[1, 2])))).expect("both keys");
    assert_eq!(common::state(&engine), expected);
    // Segments before the rotation are sealed under key 1, the ones after under key 2.
    let segments = &report.wal.segments;
    assert!(segments.len() >= 2, "{segments:?}");
    for segment in segments {
        let key_id = segment.key_id.map(KeyId::get);
        if segment.first_lsn > rotated_after {
            assert_eq!(key_id, Some(2), "{segment:?}");
        } else if segment.last_lsn.is_some() {
            assert_eq!(key_id, Some(1), "{segment:?}");
        }
    }
    engine.close().expect("close");
}

#[test]
fn after_a_snapshot_and_compaction_key_1_is_unused_and_can_be_retired() {
    let dir = Dir::new();
    let mut factory = SessionFactory::new(15, dir.clock.now());
    let engine = dir.open(Some(keyring(&[1]))).expect("open under key 1");
    create(&engine, &mut factory, 12);
    engine.snapshot_now().expect("snapshot under key 1");
    create(&engine, &mut factory, 8);
    engine.rotate_key(KeyId::new(2), key_n(2)).expect("rotate");
    create(&engine, &mut factory, 8);
    assert!(engine.status().keys.retirable().is_empty());

    let snapshot = engine.snapshot_now().expect("snapshot under key 2");
    assert_eq!(
        snapshot.encryption,
        tokm_snapshot::Encryption::Sealed {
            algorithm: Algorithm::Aes256Gcm,
            key_id: KeyId::new(2)
        }
    );
    let keys = engine.status().keys;
    assert_eq!(keys.in_use, ids(&[2]), "{keys:?}");
    assert!(keys.unchecked.is_empty());
    assert!(keys.can_retire(KeyId::new(1)));
    assert_eq!(keys.retirable(), ids(&[1]));
    let expected = common::state(&engine);
    engine.close().expect("close");

    // Key 1 is retired: a keyring of key 2 alone opens everything.
    let engine = dir.open(Some(keyring(&[2]))).expect("key 2 alone");
    assert_eq!(common::state(&engine), expected);
    assert_eq!(engine.status().keys.held, ids(&[2]));
    engine.close().expect("close");
}

#[test]
fn rotating_right_after_open_replaces_the_empty_segment_under_the_old_key() {
    let dir = Dir::new();
    let mut factory = SessionFactory::new(16, dir.clock.now());
    let engine = dir.open(Some(keyring(&[1]))).expect("open under key 1");
    assert_eq!(engine.status().keys.in_use, ids(&[1]));
    engine.rotate_key(KeyId::new(2), key_n(2)).expect("rotate");
    // The segment opened under key 1 held nothing and was replaced.
    assert_eq!(engine.status().keys.in_use, ids(&[2]));
    create(&engine, &mut factory, 6);
    let expected = common::state(&engine);
    dir.sim.crash(CrashCut::DropUnsynced);
    drop(engine);

    let engine = dir.open(Some(keyring(&[2]))).expect("no file needs key 1");
    assert_eq!(common::state(&engine), expected);
    engine.close().expect("close");
}

#[test]
fn concurrent_writers_lose_nothing_while_the_key_rotates_five_times() {
    const WRITERS: u64 = 4;
    const PER_WRITER: u32 = 150;
    let dir = Dir::new();
    let engine = dir.open(Some(keyring(&[1]))).expect("open under key 1");
    // All start together; writer 0 rotates the key every 30 of its writes, so each rotation
    // runs while the other writers append (and a rotation's segment switch races theirs).
    let start = Barrier::new(WRITERS as usize);
    thread::scope(|scope| {
        for writer in 0..WRITERS {
            let (engine, clock, start) = (&engine, &dir.clock, &start);
            scope.spawn(move || {
                let mut factory = SessionFactory::new(100 + writer, clock.now());
                let first_user = u32::try_from(writer).expect("few writers") * 1000;
                start.wait();
                for index in 0..PER_WRITER {
                    let body = factory.next_for(&SessionFactory::user(first_user + index % 40));
                    engine
                        .create(body)
                        .expect("no write fails during a rotation");
                    if writer == 0 && index % 30 == 29 {
                        let id = 2 + index / 30;
                        engine
                            .rotate_key(KeyId::new(id), key_n(id))
                            .expect("rotate");
                    }
                }
            });
        }
    });
    let expected = common::state(&engine);
    assert_eq!(expected.len(), (WRITERS as usize) * (PER_WRITER as usize));
    let keys = engine.status().keys;
    assert_eq!(keys.active, Some(KeyId::new(6)));
    assert!(keys.in_use.contains(&KeyId::new(6)), "{keys:?}");
    dir.sim.crash(CrashCut::DropUnsynced);
    drop(engine);

    let engine = dir
        .open(Some(keyring(&[1, 2, 3, 4, 5, 6])))
        .expect("every key");
    assert_eq!(common::state(&engine), expected);
    engine.close().expect("close");
}

#[test]
fn a_taken_key_id_is_refused_and_the_active_key_stays() {
    let dir = Dir::new();
    let engine = dir.open(Some(keyring(&[1]))).expect("open");
    let error = engine
        .rotate_key(KeyId::new(1), key(0x99))
        .expect_err("id 1 is taken");
    assert_eq!(error.code(), "TM-ENG-4092");
    assert_eq!(error.cause_code(), Some("TM-CRYP-4091"));
    assert!(
        !format!("{error:?}").contains("153"),
        "no key byte in {error:?}"
    );
    let keys = engine.status().keys;
    assert_eq!((keys.active, keys.held), (Some(KeyId::new(1)), ids(&[1])));
    engine.close().expect("close");
}

#[test]
fn an_engine_without_a_keyring_refuses_to_rotate_and_stays_plain() {
    let dir = Dir::new();
    let mut factory = SessionFactory::new(17, dir.clock.now());
    let engine = dir.open(None).expect("open plain");
    let error = engine
        .rotate_key(KeyId::new(1), key(0x11))
        .expect_err("no keyring");
    assert!(matches!(error, EngineError::NoKeyring), "{error}");
    assert_eq!(error.code(), "TM-ENG-4091");
    create(&engine, &mut factory, 3);
    assert_eq!(engine.status().keys, tokm_engine::KeyUsage::default());
    engine.close().expect("close");
    // Still plain: it opens without any key.
    dir.open(None).expect("plain").close().expect("close");
}
