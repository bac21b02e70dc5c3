//! A `*.snap.tmp` left by a crash mid-write is removed when the store opens; it was never a
//! snapshot, and nothing else in the directory is touched.

mod common;

use common::{file_names, reopen, sessions, sim_dir, sim_store};
use tokm_storage::Lsn;
use tokm_storage::testkit::{CrashCut, SimStorage};

#[test]
fn stale_temp_files_are_removed_on_open() {
    let sim = SimStorage::new();
    let (store, clock) = sim_store(&sim);
    let kept = common::write_at(&store, &clock, 10, &sessions(3, 1));
    let stale = "00000000000000000020-00000001700000060000.snap.tmp";
    sim.put_file(&sim_dir().join(stale), b"half a snapshot");
    sim.put_file(&sim_dir().join("unrelated.tmp"), b"not ours");

    let store = reopen(&sim, None);
    assert_eq!(
        file_names(&sim, &sim_dir()),
        vec![kept.clone(), "unrelated.tmp".to_owned()]
    );
    assert_eq!(
        store
            .load_newest()
            .expect("load")
            .snapshot
            .map(|s| s.meta.file_name),
        Some(kept)
    );
}

#[test]
fn a_power_cut_before_the_rename_leaves_only_the_older_snapshot() {
    let sim = SimStorage::new();
    let (store, clock) = sim_store(&sim);
    let kept = common::write_at(&store, &clock, 10, &sessions(3, 1));
    // Fail the newer snapshot's sync: its bytes were written but never made durable.
    sim.fail_nth_sync(1, tokm_storage::testkit::Fault::Eio);
    let error = store
        .write(Lsn::new(20), sessions(3, 2).iter().map(|s| s.as_ref()))
        .expect_err("sync fails");
    assert_eq!(error.code(), "TM-SNAP-5001");
    sim.crash(CrashCut::Torn { seed: 5 });
    let store = reopen(&sim, None);
    assert_eq!(file_names(&sim, &sim_dir()), vec![kept.clone()]);
    assert_eq!(
        store
            .load_newest()
            .expect("load")
            .snapshot
            .map(|s| s.meta.file_name),
        Some(kept)
    );
}

#[test]
fn a_written_snapshot_survives_a_power_cut() {
    let sim = SimStorage::new();
    let (store, clock) = sim_store(&sim);
    let name = common::write_at(&store, &clock, 10, &sessions(1_100, 1));
    sim.crash(CrashCut::DropUnsynced);
    let outcome = reopen(&sim, None).load_newest().expect("load");
    let snapshot = outcome.snapshot.expect("durable");
    assert_eq!(snapshot.meta.file_name, name);
    assert_eq!(
        common::loaded_sessions(&snapshot),
        common::by_id(&sessions(1_100, 1))
    );
}
