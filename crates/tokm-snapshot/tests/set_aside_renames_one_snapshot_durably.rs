//! `SnapshotStore::set_aside` renames one snapshot to `<name>.broken`, durably, changing no
//! byte and no other file; after it, listing and loading skip that snapshot. Anything but a
//! snapshot file name is refused, and a missing snapshot is an I/O error.

mod common;

use tokm_snapshot::LoadError;
use tokm_storage::testkit::{CrashCut, SimStorage};

use common::{dir_contents, file_names, reopen, sessions, sim_dir, sim_store};

#[test]
fn set_aside_renames_the_snapshot_and_survives_a_power_cut() {
    let sim = SimStorage::new();
    let (store, clock) = sim_store(&sim);
    let older = common::write_at(&store, &clock, 10, &sessions(3, 1));
    let newer = common::write_at(&store, &clock, 20, &sessions(3, 2));
    sim.put_file(&sim_dir().join("notes.txt"), b"not ours");
    let newer_bytes = sim.file_bytes(&sim_dir().join(&newer)).expect("written");

    let renamed_to = store.set_aside(&newer).expect("set aside");
    assert_eq!(renamed_to, format!("{newer}.broken"));
    // The directory was synced: the rename is durable.
    sim.crash(CrashCut::DropUnsynced);
    assert_eq!(
        file_names(&sim, &sim_dir()),
        vec![older.clone(), renamed_to.clone(), "notes.txt".to_owned()]
    );
    assert_eq!(
        sim.file_bytes(&sim_dir().join(&renamed_to)),
        Some(newer_bytes)
    );

    let store = reopen(&sim, None);
    let listed: Vec<String> = store
        .reader()
        .list()
        .expect("list")
        .into_iter()
        .map(|info| info.file_name)
        .collect();
    assert_eq!(listed, vec![older.clone()]);
    let outcome = store.load_newest().expect("load");
    assert!(outcome.report.fallbacks.is_empty());
    assert_eq!(outcome.snapshot.map(|s| s.meta.file_name), Some(older));
}

#[test]
fn set_aside_refuses_other_names_and_reports_a_missing_snapshot() {
    let sim = SimStorage::new();
    let (store, clock) = sim_store(&sim);
    let name = common::write_at(&store, &clock, 10, &sessions(3, 1));
    sim.put_file(&sim_dir().join("notes.txt"), b"not ours");
    let before = dir_contents(&sim, &sim_dir());

    for other in ["notes.txt", "../notes.txt", &format!("{name}.broken")] {
        let error = store.set_aside(other).expect_err("not a snapshot name");
        assert_eq!(error.code(), "TM-SNAP-4003", "{other}: {error}");
    }
    let missing = "00000000000000000099-00000000000000000001.snap";
    match store.set_aside(missing) {
        Err(LoadError::Io { source, file, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            assert_eq!(file, missing);
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert_eq!(dir_contents(&sim, &sim_dir()), before);
}
