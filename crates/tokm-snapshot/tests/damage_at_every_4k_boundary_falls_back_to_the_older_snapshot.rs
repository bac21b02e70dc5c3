//! A byte flipped anywhere in the newest snapshot (at every 4 KiB boundary, in the header, the
//! index, the footer and the trailer) makes loading fall back to the older one, report why,
//! and rename the damaged file to `*.broken`.

mod common;

use std::sync::Arc;

use tokm_crypto_adaptive::Algorithm;
use tokm_domain::ManualClock;
use tokm_snapshot::SnapshotStore;
use tokm_storage::testkit::SimStorage;

use common::{START, file_names, keyring, reopen, sessions, sim_dir, sim_options, sim_with};
use tokm_storage::Lsn;

/// Codes a damaged (not foreign) snapshot may be refused with.
const DAMAGE_CODES: [&str; 5] = [
    "TM-SNAP-5201",
    "TM-SNAP-5202",
    "TM-SNAP-5203",
    "TM-SNAP-5204",
    "TM-SNAP-5205",
];

fn two_snapshots(algorithm: Option<Algorithm>) -> ((String, Vec<u8>), (String, Vec<u8>)) {
    let sim = SimStorage::new();
    let clock = Arc::new(ManualClock::new(START));
    let ring = algorithm.map(|algorithm| keyring(1, 9, algorithm));
    let store = SnapshotStore::open(&sim_dir(), sim_options(&sim, &clock, ring)).expect("open");
    let older = common::write_at(&store, &clock, 10, &sessions(50, 1));
    let newer = common::write_at(&store, &clock, 20, &sessions(3_000, 2));
    let bytes = |name: &str| sim.file_bytes(&sim_dir().join(name)).expect("file exists");
    (
        (older.clone(), bytes(&older)),
        (newer.clone(), bytes(&newer)),
    )
}

#[test]
fn damage_at_every_4k_boundary_falls_back_to_the_older_snapshot() {
    for algorithm in [None, Some(Algorithm::Aes256Gcm)] {
        let ((older, older_bytes), (newer, newer_bytes)) = two_snapshots(algorithm);
        let len = newer_bytes.len();
        assert!(len > 3 * 4096, "the newer snapshot spans several pages");
        let mut offsets: Vec<usize> = (0..len).step_by(4096).collect();
        // The prelude's length field, the header checksum, and the file's tail end (index,
        // footer, trailer), which 4 KiB steps would mostly miss.
        offsets.extend([12, 40, len - 200, len - 60, len - 40, len - 20, len - 1]);
        for offset in offsets {
            let mut damaged = newer_bytes.clone();
            damaged[offset] ^= 0x5A;
            let sim = sim_with(&[(&older, &older_bytes), (&newer, &damaged)]);
            let store = reopen(&sim, algorithm.map(|algorithm| keyring(1, 9, algorithm)));
            let outcome = store
                .load_newest()
                .unwrap_or_else(|error| panic!("offset {offset}: {error}"));
            let loaded = outcome.snapshot.expect("the older snapshot loads");
            assert_eq!(loaded.meta.covered_lsn, Lsn::new(10), "offset {offset}");
            assert_eq!(
                common::loaded_sessions(&loaded),
                common::by_id(&sessions(50, 1))
            );
            let [fallback] = outcome.report.fallbacks.as_slice() else {
                panic!("offset {offset}: expected one fallback");
            };
            assert_eq!(fallback.file_name, newer);
            assert!(
                DAMAGE_CODES.contains(&fallback.error.code()),
                "offset {offset}: {}",
                fallback.error
            );
            let broken = format!("{newer}.broken");
            assert_eq!(fallback.renamed_to, broken);
            assert_eq!(
                file_names(&sim, &sim_dir()),
                vec![older.clone(), broken.clone()]
            );
            assert_eq!(
                sim.file_bytes(&sim_dir().join(&broken)),
                Some(damaged),
                "renamed, never modified"
            );
        }
    }
}
