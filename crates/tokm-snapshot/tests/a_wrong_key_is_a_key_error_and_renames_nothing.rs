//! A snapshot sealed under a key id the keyring lacks, under other bytes for the same key id,
//! or opened with no keyring at all, is a key problem and never damage: `SnapshotReader::load`
//! and `SnapshotStore::load_newest` return the key error naming the file and the key id it
//! needs, nothing is renamed and no byte changes, `verify` (which needs no key) finds the file
//! intact, and the same snapshot loads as soon as the right key is supplied.

mod common;

use std::sync::Arc;

use tokm_crypto_adaptive::{Algorithm, Keyring};
use tokm_domain::ManualClock;
use tokm_snapshot::{LoadError, SnapshotReader, SnapshotStore};
use tokm_storage::testkit::SimStorage;

use common::{START, dir_contents, keyring, reopen, sessions, sim_dir, sim_options};
use tokm_storage::Lsn;

/// An older snapshot (LSN 10) and a newer one (LSN 20, enough blocks to be decoded on worker
/// threads), both sealed under key id 1 with every key byte 0x11; returns the newer's name.
fn two_sealed_snapshots() -> (SimStorage, String) {
    let sim = SimStorage::new();
    let clock = Arc::new(ManualClock::new(START));
    let ring = Some(keyring(1, 0x11, Algorithm::Aes256Gcm));
    let store = SnapshotStore::open(&sim_dir(), sim_options(&sim, &clock, ring)).expect("open");
    common::write_at(&store, &clock, 10, &sessions(5, 1));
    let newer = common::write_at(&store, &clock, 20, &sessions(5_000, 2));
    (sim, newer)
}

/// Loads the newest snapshot with `ring` through the reader and the store, expecting the
/// same key error from both; checks the directory is exactly as it was. Returns the error.
fn load_fails_untouched(sim: &SimStorage, ring: Option<Arc<Keyring>>, newer: &str) -> LoadError {
    let before = dir_contents(sim, &sim_dir());
    let reader = SnapshotReader::new(&sim_dir(), Arc::new(sim.clone()), ring.clone());
    let meta = reader
        .verify(newer)
        .expect("intact: verifying needs no key");
    assert_eq!(meta.covered_lsn, Lsn::new(20));
    let from_reader = reader.load(newer).map(|_| ()).expect_err("a key problem");

    let error = reopen(sim, ring).load_newest().expect_err("a key problem");
    assert!(!error.is_damage(), "{error}");
    assert_eq!(from_reader.to_string(), error.to_string());
    assert_eq!(
        dir_contents(sim, &sim_dir()),
        before,
        "nothing renamed or changed"
    );
    error
}

/// With the right key the newest snapshot loads, nothing skipped.
fn right_key_loads_the_newest(sim: &SimStorage) {
    let outcome = reopen(sim, Some(keyring(1, 0x11, Algorithm::Aes256Gcm)))
        .load_newest()
        .expect("the right key");
    assert!(outcome.report.fallbacks.is_empty());
    let snapshot = outcome.snapshot.expect("loaded");
    assert_eq!(snapshot.meta.covered_lsn, Lsn::new(20));
    assert_eq!(
        common::loaded_sessions(&snapshot),
        common::by_id(&sessions(5_000, 2))
    );
}

#[test]
fn a_key_id_missing_from_the_keyring_is_a_key_error() {
    let (sim, newer) = two_sealed_snapshots();
    let error = load_fails_untouched(&sim, Some(keyring(2, 0x11, Algorithm::Aes256Gcm)), &newer);
    assert!(
        matches!(&error, LoadError::WrongKey { file, key_id: 1 } if *file == newer),
        "{error}"
    );
    assert_eq!(error.code(), "TM-SNAP-4032");
    assert!(error.to_string().contains(&newer));
    assert!(error.to_string().contains("key id 1"));
    right_key_loads_the_newest(&sim);
}

#[test]
fn other_bytes_under_the_same_key_id_are_a_key_error() {
    let (sim, newer) = two_sealed_snapshots();
    let error = load_fails_untouched(&sim, Some(keyring(1, 0x22, Algorithm::Aes256Gcm)), &newer);
    assert!(
        matches!(&error, LoadError::WrongKey { file, key_id: 1 } if *file == newer),
        "{error}"
    );
    // The message names the key id, never key bytes.
    assert!(!error.to_string().contains("22"), "{error}");
    right_key_loads_the_newest(&sim);
}

#[test]
fn without_a_keyring_loading_stops_with_the_key_id_it_needs() {
    let (sim, newer) = two_sealed_snapshots();
    let error = load_fails_untouched(&sim, None, &newer);
    assert!(
        matches!(&error, LoadError::KeyringMissing { file, key_id: 1 } if *file == newer),
        "{error}"
    );
    assert_eq!(error.code(), "TM-SNAP-4031");
    right_key_loads_the_newest(&sim);
}
