//! A key problem is not damage. Opening an encrypted directory with a wrong key id, the right
//! id with wrong bytes, no key at all, or a keyring that lost the old key after a rotation is
//! a typed error naming the key id a file needs; the directory stays byte-identical (no
//! snapshot renamed `*.broken`, nothing skipped or quarantined); the right keyring still
//! opens everything.

mod common;

use std::sync::Arc;

use common::recorded::{disk_image, sim_config};
use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};
use tokm_domain::testkit::SessionFactory;
use tokm_domain::{Clock, SessionRepository};
use tokm_engine::{Engine, EngineError};
use tokm_storage::testkit::SimStorage;

fn key(byte: u8) -> Key {
    Key::from_bytes(&[byte; 32]).expect("32 bytes")
}

fn keyring(entries: &[(u32, u8)]) -> Arc<Keyring> {
    let (active, rest) = entries.split_last().expect("a key");
    let mut keyring = Keyring::new(KeyId::new(active.0), key(active.1), Algorithm::Aes256Gcm);
    for (id, byte) in rest {
        keyring
            .insert(KeyId::new(*id), key(*byte))
            .expect("distinct ids");
    }
    keyring.set_active(KeyId::new(active.0)).expect("held");
    Arc::new(keyring)
}

/// The key id the error says the file needs, and whether it is a key error at all.
fn needed_key_id(error: &EngineError) -> Option<u32> {
    match error {
        EngineError::Wal {
            source: tokm_wal::WalError::Open(tokm_wal::OpenError::WrongKey { key_id, .. }),
        } => Some(*key_id),
        EngineError::Snapshot {
            source:
                tokm_snapshot::SnapshotError::Load(
                    tokm_snapshot::LoadError::WrongKey { key_id, .. }
                    | tokm_snapshot::LoadError::KeyringMissing { key_id, .. },
                ),
        } => Some(*key_id),
        _ => None,
    }
}

#[test]
fn wrong_missing_and_retired_keys_refuse_naming_the_key_id_and_change_nothing() {
    let sim = SimStorage::new();
    let lock_dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let mut factory = SessionFactory::new(3, clock.now());
    let open = |keys: Option<Arc<Keyring>>| {
        let mut config = sim_config(lock_dir.path(), &sim, &clock);
        config.keyring = keys;
        Engine::open(config)
    };
    // Run 1 under key 1, with a snapshot and revocations after it; run 2 after rotating to
    // key 2 (the keyring keeps key 1 to read the older files).
    let (engine, _) = open(Some(keyring(&[(1, 0x11)]))).expect("open");
    let mut sessions = Vec::new();
    for index in 0..30 {
        let body = factory.next_for(&SessionFactory::user(index % 4));
        sessions.push(engine.create(body).expect("create").session);
    }
    engine.snapshot_now().expect("snapshot under key 1");
    for session in &sessions[..5] {
        engine.delete(session.id()).expect("delete");
    }
    engine.close().expect("close");
    let rotated = keyring(&[(1, 0x11), (2, 0x22)]);
    let (engine, _) = open(Some(Arc::clone(&rotated))).expect("open after rotation");
    for index in 0..10 {
        let body = factory.next_for(&SessionFactory::user(index % 4));
        engine.create(body).expect("create");
    }
    let expected = common::state(&engine);
    engine.close().expect("close");

    let dirs = [
        lock_dir.path().join("wal"),
        lock_dir.path().join("snapshots"),
    ];
    let image = disk_image(&sim, &dirs);
    let cases: [(&str, Option<Arc<Keyring>>); 4] = [
        ("a wrong key id", Some(keyring(&[(7, 0x11)]))),
        (
            "the right ids with wrong bytes",
            Some(keyring(&[(1, 0x99), (2, 0x98)])),
        ),
        ("no key", None),
        ("a keyring without the old key", Some(keyring(&[(2, 0x22)]))),
    ];
    for (case, keys) in cases {
        let error = open(keys).expect_err(case);
        let key_id = needed_key_id(&error).unwrap_or_else(|| panic!("{case}: {error}"));
        assert_eq!(key_id, 1, "{case}: the oldest file needs key 1: {error}");
        assert!(error.to_string().contains("key id 1"), "{case}: {error}");
        assert!(
            disk_image(&sim, &dirs) == image,
            "{case}: the refused open changed the directory"
        );
    }
    // The right keys still open everything, with every acknowledged write.
    let (engine, report) = open(Some(rotated)).expect("the right keys open");
    assert!(report.snapshot_fallbacks.is_empty());
    assert_eq!(common::state(&engine), expected);
    engine.close().expect("close");
}
