//! Every session written comes back equal, in order, with the header facts written: for an
//! empty snapshot, one session and several blocks, plain and under both algorithms.

mod common;

use std::sync::Arc;

use tokm_crypto_adaptive::{Algorithm, KeyId};
use tokm_domain::ManualClock;
use tokm_snapshot::{Encryption, SnapshotStore};
use tokm_storage::testkit::SimStorage;

use common::{START, keyring, sessions, sim_dir, sim_options};
use tokm_storage::Lsn;

#[test]
fn sessions_round_trip_plain_and_encrypted() {
    let encryptions = [
        None,
        Some(Algorithm::Aes256Gcm),
        Some(Algorithm::ChaCha20Poly1305),
    ];
    // 2_500 sessions take three blocks (at most 1024 per block) and are decoded on the
    // calling thread; 4_500 take five, enough to be decoded on worker threads.
    for count in [0, 1, 2_500, 4_500] {
        for algorithm in encryptions {
            let sim = SimStorage::new();
            let clock = Arc::new(ManualClock::new(START));
            let ring = algorithm.map(|algorithm| keyring(3, 0x42, algorithm));
            let store = SnapshotStore::open(&sim_dir(), sim_options(&sim, &clock, ring.clone()))
                .expect("open");
            let written = sessions(count, 7);
            let meta = store
                .write(Lsn::new(99), written.iter().map(Arc::as_ref))
                .expect("write");
            assert_eq!(meta.session_count, count as u64);
            assert_eq!(meta.covered_lsn, Lsn::new(99));
            assert_eq!(meta.created_at, START);
            assert_eq!(meta.node_id, "node-a");
            let expected_encryption = match algorithm {
                None => Encryption::None,
                Some(algorithm) => Encryption::Sealed {
                    algorithm,
                    key_id: KeyId::new(3),
                },
            };
            assert_eq!(meta.encryption, expected_encryption);

            // A fresh store, as after a restart.
            let reopened =
                SnapshotStore::open(&sim_dir(), sim_options(&sim, &clock, ring)).expect("reopen");
            let outcome = reopened.load_newest().expect("load");
            assert!(outcome.report.fallbacks.is_empty());
            let loaded = outcome.snapshot.expect("a snapshot exists");
            assert_eq!(loaded.meta, meta, "count {count}, {algorithm:?}");
            assert_eq!(
                common::loaded_sessions(&loaded),
                common::by_id(&written),
                "count {count}, {algorithm:?}"
            );
        }
    }
}

#[test]
fn sealed_blocks_do_not_contain_the_plain_encoding() {
    let sim = SimStorage::new();
    let clock = Arc::new(ManualClock::new(START));
    let ring = Some(keyring(1, 7, Algorithm::ChaCha20Poly1305));
    let store = SnapshotStore::open(&sim_dir(), sim_options(&sim, &clock, ring)).expect("open");
    let written = sessions(10, 1);
    let meta = store
        .write(Lsn::new(5), written.iter().map(Arc::as_ref))
        .expect("write");
    let bytes = sim
        .file_bytes(&sim_dir().join(&meta.file_name))
        .expect("file exists");
    // User ids are plain text in the encoding; sealed, they must not appear.
    let needle = b"user-1";
    assert!(!bytes.windows(needle.len()).any(|window| window == needle));
}
