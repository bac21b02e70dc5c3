//! Whatever bytes a snapshot file holds, loading returns a snapshot or a typed error, never a
//! panic; a file refused as damage is renamed aside, a foreign one is left as it was.

mod common;

use proptest::prelude::*;
use tokm_snapshot::LoadError;
use tokm_storage::testkit::SimStorage;

use common::{reopen, sessions, sim_dir, sim_store, sim_with};
use tokm_storage::Lsn;

const NAME: &str = "00000000000000000007-00000001700000000000.snap";

/// One valid snapshot of 1_200 sessions (two blocks), written once per process.
fn valid_snapshot() -> &'static Vec<u8> {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        let sim = SimStorage::new();
        let (store, _clock) = sim_store(&sim);
        let meta = store
            .write(Lsn::new(7), sessions(1_200, 3).iter().map(|s| s.as_ref()))
            .expect("write");
        assert_eq!(meta.file_name, NAME);
        sim.file_bytes(&sim_dir().join(NAME)).expect("written")
    })
}

fn check_load(bytes: &[u8]) {
    let sim = sim_with(&[(NAME, bytes)]);
    let store = reopen(&sim, None);
    match store.load_newest() {
        Ok(outcome) => {
            let snapshot = outcome.snapshot.expect("the only file loaded");
            assert_eq!(snapshot.records.len() as u64, snapshot.meta.session_count);
        }
        Err(LoadError::NoValidSnapshot { fallbacks }) => {
            assert_eq!(fallbacks.len(), 1);
            let broken = sim_dir().join(format!("{NAME}.broken"));
            assert_eq!(sim.file_bytes(&broken).as_deref(), Some(bytes));
        }
        Err(error) => {
            assert!(
                ["TM-SNAP-4001", "TM-SNAP-4002"].contains(&error.code()),
                "{error}"
            );
            assert_eq!(
                sim.file_bytes(&sim_dir().join(NAME)).as_deref(),
                Some(bytes)
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2_048)) {
        check_load(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_prelude_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..2_048),
    ) {
        let mut bytes = valid_snapshot()[..16].to_vec();
        bytes.extend_from_slice(&tail);
        check_load(&bytes);
    }

    #[test]
    fn damaged_valid_snapshots_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1_u8..), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = valid_snapshot().clone();
        for (index, mask) in flips {
            let position = index.index(bytes.len());
            bytes[position] ^= mask;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        check_load(&bytes);
    }
}
