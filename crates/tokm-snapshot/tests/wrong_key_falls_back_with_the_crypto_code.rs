//! A snapshot sealed under a key the keyring lacks, or under other bytes for the same key id,
//! is refused with the crypto layer's code and loading falls back; with no keyring at all,
//! loading stops and renames nothing.

mod common;

use std::sync::Arc;

use tokm_crypto_adaptive::Algorithm;
use tokm_domain::ManualClock;
use tokm_snapshot::SnapshotStore;
use tokm_wal::testkit::SimStorage;

use common::{START, file_names, keyring, reopen, sessions, sim_dir, sim_options};

/// Writes an older snapshot (LSN 10) under key id 1 with bytes 0x11, then a newer one (LSN
/// 20, enough blocks to be decoded on worker threads) under `newer_key_id` and `newer_byte`.
fn setup(newer_key_id: u32, newer_byte: u8) -> (SimStorage, String, String) {
    let sim = SimStorage::new();
    let clock = Arc::new(ManualClock::new(START));
    let ring = Some(keyring(1, 0x11, Algorithm::Aes256Gcm));
    let older_store =
        SnapshotStore::open(&sim_dir(), sim_options(&sim, &clock, ring)).expect("open");
    let older = common::write_at(&older_store, &clock, 10, &sessions(5, 1));
    let ring = Some(keyring(newer_key_id, newer_byte, Algorithm::Aes256Gcm));
    let newer_store =
        SnapshotStore::open(&sim_dir(), sim_options(&sim, &clock, ring)).expect("open");
    let newer = common::write_at(&newer_store, &clock, 20, &sessions(5_000, 2));
    (sim, older, newer)
}

#[test]
fn other_key_bytes_under_the_same_id_fail_authentication_and_fall_back() {
    let (sim, older, newer) = setup(1, 0x22);
    let store = reopen(&sim, Some(keyring(1, 0x11, Algorithm::Aes256Gcm)));
    let outcome = store.load_newest().expect("falls back");
    assert_eq!(outcome.snapshot.map(|s| s.meta.covered_lsn), Some(10));
    let [fallback] = outcome.report.fallbacks.as_slice() else {
        panic!("expected one fallback");
    };
    assert_eq!(fallback.file_name, newer);
    assert_eq!(fallback.error.code(), "TM-SNAP-5204");
    assert_eq!(fallback.error.cause_code(), Some("TM-CRYP-5201"));
    assert_eq!(
        file_names(&sim, &sim_dir()),
        vec![older, format!("{newer}.broken")]
    );
}

#[test]
fn a_key_id_missing_from_the_keyring_falls_back_with_its_code() {
    let (sim, _older, newer) = setup(2, 0x22);
    let store = reopen(&sim, Some(keyring(1, 0x11, Algorithm::ChaCha20Poly1305)));
    let outcome = store.load_newest().expect("falls back");
    // Data sealed with AES-GCM opens with a ChaCha20 keyring: the file names its algorithm.
    assert_eq!(outcome.snapshot.map(|s| s.meta.covered_lsn), Some(10));
    let [fallback] = outcome.report.fallbacks.as_slice() else {
        panic!("expected one fallback");
    };
    assert_eq!(fallback.file_name, newer);
    assert_eq!(fallback.error.cause_code(), Some("TM-CRYP-4041"));
}

#[test]
fn without_a_keyring_loading_stops_and_renames_nothing() {
    let (sim, older, newer) = setup(1, 0x11);
    let before = file_names(&sim, &sim_dir());
    let error = reopen(&sim, None).load_newest().expect_err("no keyring");
    assert_eq!(error.code(), "TM-SNAP-4031");
    assert!(error.to_string().contains(&newer));
    assert_eq!(file_names(&sim, &sim_dir()), before);
    assert_eq!(before, vec![older, newer]);
}
