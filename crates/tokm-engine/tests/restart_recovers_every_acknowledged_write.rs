//! A closed and reopened engine holds exactly the state it acknowledged, whether recovery reads
//! only the log, a snapshot plus the log, or an encrypted log and snapshot.

mod common;

use std::sync::Arc;

use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};
use tokm_engine::{Durability, Engine};

#[test]
fn log_only_restart_rebuilds_the_same_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let (engine, report) = Engine::open(common::config(dir.path(), &clock)).expect("open");
    assert_eq!(report.session_count, 0);
    common::mixed_workload(&engine, &clock, 1, 60, 7);
    let before = common::state(&engine);
    engine.close().expect("close");

    let (engine, report) = Engine::open(common::config(dir.path(), &clock)).expect("reopen");
    assert!(report.snapshot.is_none());
    assert!(report.replayed_count > 60, "{report:?}");
    assert_eq!(common::state(&engine), before);
}

#[test]
fn snapshot_plus_log_restart_rebuilds_the_same_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let (engine, _) = Engine::open(common::config(dir.path(), &clock)).expect("open");
    common::mixed_workload(&engine, &clock, 2, 40, 5);
    let meta = engine.snapshot_now().expect("snapshot");
    assert_eq!(meta.session_count, engine.status().session_count as u64);
    let status = engine.status();
    assert_eq!(status.last_snapshot, Some(meta.clone()));
    assert!(
        status.last_snapshot_pause.is_some(),
        "the pause is reported"
    );
    common::mixed_workload(&engine, &clock, 3, 40, 5);
    let before = common::state(&engine);
    engine.close().expect("close");

    let (engine, report) = Engine::open(common::config(dir.path(), &clock)).expect("reopen");
    assert_eq!(
        report.snapshot.as_ref().map(|m| m.covered_lsn),
        Some(meta.covered_lsn)
    );
    assert!(report.snapshot_fallbacks.is_empty());
    assert_eq!(common::state(&engine), before);
}

#[test]
fn batch_mode_close_makes_every_write_durable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let mut config = common::config(dir.path(), &clock);
    config.durability = Durability::Batch;
    let (engine, _) = Engine::open(config.clone()).expect("open");
    common::mixed_workload(&engine, &clock, 4, 50, 9);
    let before = common::state(&engine);
    engine.close().expect("close");

    let (engine, _) = Engine::open(config).expect("reopen");
    assert_eq!(common::state(&engine), before);
}

#[test]
fn encrypted_engine_restarts_and_refuses_a_missing_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let key = [7u8; 32];
    let keyring = |algorithm| {
        Arc::new(Keyring::new(
            KeyId::new(3),
            Key::from_bytes(&key).expect("key"),
            algorithm,
        ))
    };
    for algorithm in [Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305] {
        let dir = dir.path().join(algorithm.name());
        let mut config = common::config(&dir, &clock);
        config.keyring = Some(keyring(algorithm));
        let (engine, _) = Engine::open(config.clone()).expect("open");
        common::mixed_workload(&engine, &clock, 5, 20, 3);
        engine.snapshot_now().expect("snapshot");
        common::mixed_workload(&engine, &clock, 6, 20, 3);
        let before = common::state(&engine);
        engine.close().expect("close");

        let (engine, _) = Engine::open(config).expect("reopen with the key");
        assert_eq!(common::state(&engine), before);
        engine.close().expect("close");

        let without_key = common::config(&dir, &clock);
        let err = Engine::open(without_key).expect_err("no key, no data");
        assert!(err.code().starts_with("TM-ENG-"), "{err}");
    }
}
