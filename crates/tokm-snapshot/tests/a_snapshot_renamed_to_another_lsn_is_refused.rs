//! The file name carries the LSN that ordering, fallback and WAL compaction rely on; a
//! snapshot whose header disagrees with its name (renamed by hand, or a damaged name) is
//! refused as damage and loading falls back.

mod common;

use common::{file_names, reopen, sessions, sim_dir, sim_store, sim_with};
use tokm_storage::Lsn;
use tokm_storage::testkit::SimStorage;

#[test]
fn a_snapshot_renamed_to_another_lsn_is_refused() {
    let sim = SimStorage::new();
    let (store, clock) = sim_store(&sim);
    let older = common::write_at(&store, &clock, 10, &sessions(2, 1));
    let newer = common::write_at(&store, &clock, 20, &sessions(2, 2));
    let older_bytes = sim.file_bytes(&sim_dir().join(&older)).expect("older");
    let newer_bytes = sim.file_bytes(&sim_dir().join(&newer)).expect("newer");
    // The LSN-20 snapshot under an LSN-30 name.
    let renamed = newer.replacen("00000000000000000020", "00000000000000000030", 1);
    assert_ne!(renamed, newer);

    let sim = sim_with(&[(&older, &older_bytes), (&renamed, &newer_bytes)]);
    let outcome = reopen(&sim, None).load_newest().expect("falls back");
    assert_eq!(
        outcome.snapshot.map(|s| s.meta.covered_lsn),
        Some(Lsn::new(10))
    );
    let [fallback] = outcome.report.fallbacks.as_slice() else {
        panic!("expected one fallback");
    };
    assert_eq!(fallback.file_name, renamed);
    assert_eq!(fallback.error.code(), "TM-SNAP-5202");
    assert_eq!(
        file_names(&sim, &sim_dir()),
        vec![older, format!("{renamed}.broken")]
    );
}
