//! An encrypted log replays with the right keyring, is refused (untouched) with a wrong or
//! missing key, stores no plaintext, and detects records moved between positions.
mod common;

use std::sync::Arc;

use common::{open_and_replay, payload, segment_names, sim_dir, sim_options, with_mode};
use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};
use tokm_storage::Lsn;
use tokm_storage::testkit::SimStorage;
use tokm_wal::{DamageKind, Durability, RecoveryMode, Wal, WalOptions};

fn keyring(key_byte: u8, algorithm: Algorithm) -> Arc<Keyring> {
    let key = Key::from_bytes(&[key_byte; 32]).expect("32-byte key");
    Arc::new(Keyring::new(KeyId::new(7), key, algorithm))
}

fn written(sim: &SimStorage, keys: &Arc<Keyring>) {
    let options = WalOptions {
        keyring: Some(Arc::clone(keys)),
        segment_records_max: 3,
        ..sim_options(sim)
    };
    let (wal, _) = Wal::open(&sim_dir(), options).expect("open");
    for index in 0..5 {
        wal.append(&payload(index), Durability::Sync)
            .expect("append");
    }
    wal.close().expect("close");
}

#[test]
fn encrypted_log_round_trips_with_either_algorithm() {
    for algorithm in [Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305] {
        let sim = SimStorage::new();
        let keys = keyring(1, algorithm);
        written(&sim, &keys);
        let options = WalOptions {
            keyring: Some(keys),
            ..sim_options(&sim)
        };
        let (_wal, report, records) = open_and_replay(&sim_dir(), options).expect("reopen");
        assert!(report.damaged.is_empty());
        let expected: Vec<_> = (0..5)
            .map(|i| (Lsn::new(i as u64 + 1), payload(i)))
            .collect();
        assert_eq!(records, expected, "{algorithm:?}");
        for name in segment_names(&sim, &sim_dir()) {
            let bytes = sim.file_bytes(&sim_dir().join(&name)).expect("bytes");
            assert!(
                !bytes.windows(11).any(|window| window == b"record-0000"),
                "plaintext on disk in {name}"
            );
        }
    }
}

#[test]
fn wrong_or_missing_key_is_refused_and_nothing_changes() {
    let sim = SimStorage::new();
    written(&sim, &keyring(1, Algorithm::ChaCha20Poly1305));
    let before: Vec<_> = segment_names(&sim, &sim_dir())
        .into_iter()
        .map(|name| sim.file_bytes(&sim_dir().join(&name)))
        .collect();
    for options in [
        WalOptions {
            keyring: Some(keyring(2, Algorithm::ChaCha20Poly1305)),
            ..sim_options(&sim)
        },
        sim_options(&sim),
    ] {
        for mode in [RecoveryMode::PointInTime, RecoveryMode::SkipDamaged] {
            let error = Wal::open(
                &sim_dir(),
                WalOptions {
                    recovery_mode: mode,
                    ..options.clone()
                },
            )
            .expect_err("wrong key");
            assert_eq!(error.code(), "TM-WAL-4031", "{error}");
        }
    }
    let after: Vec<_> = segment_names(&sim, &sim_dir())
        .into_iter()
        .map(|name| sim.file_bytes(&sim_dir().join(&name)))
        .collect();
    assert_eq!(before, after);
}

/// A frame as FORMAT.md describes it, with a valid checksum: what an attacker who knows the
/// format but not the key can produce.
fn frame(lsn: u64, stored: &[u8]) -> Vec<u8> {
    let mut bytes = (stored.len() as u32).to_le_bytes().to_vec();
    bytes.extend_from_slice(&lsn.to_le_bytes());
    let mut hasher = blake3::Hasher::new();
    hasher.update(&bytes);
    hasher.update(stored);
    bytes.extend_from_slice(&hasher.finalize().as_bytes()[..8]);
    bytes.extend_from_slice(stored);
    bytes
}

#[test]
fn a_sealed_payload_moved_to_another_lsn_fails_authentication() {
    let sim = SimStorage::new();
    let keys = keyring(3, Algorithm::Aes256Gcm);
    written(&sim, &keys);
    let dir = sim_dir();
    let names = segment_names(&sim, &dir);
    let sealed = sim.file_bytes(&dir.join(&names[0])).expect("bytes");
    // Segment 1 holds LSNs 1-3 after a 120-byte header; sealed payloads are 16 bytes longer.
    let header_len = 120;
    let frame_len = |index: usize| 20 + payload(index).len() + 16;
    let second_start = header_len + frame_len(0);
    let third_start = second_start + frame_len(1);
    let second_stored = &sealed[second_start + 20..third_start];
    let mut forged = sealed[..third_start].to_vec();
    forged.extend_from_slice(&frame(3, second_stored));
    sim.put_file(&dir.join(&names[0]), &forged);

    let options = WalOptions {
        keyring: Some(keys),
        ..sim_options(&sim)
    };
    let refused = open_and_replay(&dir, options.clone()).expect_err("a lost record refuses");
    assert_eq!(refused.code(), "TM-WAL-5203");
    assert!(
        refused
            .to_string()
            .contains(&format!("offset {third_start}")),
        "{refused}"
    );
    let point_in_time = with_mode(options, RecoveryMode::PointInTime);
    let (_wal, report, records) = open_and_replay(&dir, point_in_time).expect("open");
    let lsns: Vec<u64> = records.iter().map(|(lsn, _)| lsn.get()).collect();
    assert_eq!(
        lsns,
        vec![1, 2],
        "point-in-time stops before the forged record"
    );
    assert_eq!(report.damaged[0].kind, DamageKind::AuthenticationFailed);
    assert_eq!(report.damaged[0].offset, third_start as u64);
    assert_eq!(report.damaged[0].file, names[0]);
}
