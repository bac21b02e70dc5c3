//! A snapshot cut short at any length is refused as damage; loading falls back.

mod common;

use common::{file_names, reopen, sessions, sim_dir, sim_store, sim_with};
use tokm_storage::Lsn;
use tokm_storage::testkit::SimStorage;

#[test]
fn truncated_snapshot_falls_back_to_the_older_one() {
    let sim = SimStorage::new();
    let (store, clock) = sim_store(&sim);
    let older = common::write_at(&store, &clock, 1, &sessions(3, 1));
    let newer = common::write_at(&store, &clock, 2, &sessions(1_500, 2));
    let older_bytes = sim.file_bytes(&sim_dir().join(&older)).expect("older");
    let newer_bytes = sim.file_bytes(&sim_dir().join(&newer)).expect("newer");
    let len = newer_bytes.len();
    for cut in [
        0,
        1,
        7,
        8,
        15,
        16,
        40,
        100,
        4096,
        len / 2,
        len - 28,
        len - 1,
    ] {
        let sim = sim_with(&[(&older, &older_bytes), (&newer, &newer_bytes[..cut])]);
        let outcome = reopen(&sim, None)
            .load_newest()
            .unwrap_or_else(|error| panic!("cut at {cut}: {error}"));
        assert_eq!(
            outcome.snapshot.map(|s| s.meta.covered_lsn),
            Some(Lsn::new(1)),
            "cut at {cut}"
        );
        let [fallback] = outcome.report.fallbacks.as_slice() else {
            panic!("cut at {cut}: expected one fallback");
        };
        assert!(
            ["TM-SNAP-5203", "TM-SNAP-5202", "TM-SNAP-5201"].contains(&fallback.error.code()),
            "cut at {cut}: {}",
            fallback.error
        );
        assert_eq!(
            file_names(&sim, &sim_dir()),
            vec![older.clone(), format!("{newer}.broken")]
        );
    }
}

#[test]
fn when_every_snapshot_is_damaged_loading_fails_and_renames_them_all() {
    let sim = SimStorage::new();
    let (store, clock) = sim_store(&sim);
    let first = common::write_at(&store, &clock, 1, &sessions(3, 1));
    let second = common::write_at(&store, &clock, 2, &sessions(3, 2));
    for name in [&first, &second] {
        let bytes = sim.file_bytes(&sim_dir().join(name)).expect("exists");
        sim.put_file(&sim_dir().join(name), &bytes[..bytes.len() - 1]);
    }
    let error = reopen(&sim, None).load_newest().expect_err("nothing valid");
    assert_eq!(error.code(), "TM-SNAP-5206");
    let tokm_snapshot::LoadError::NoValidSnapshot { fallbacks } = &error else {
        panic!("{error}");
    };
    let tried: Vec<&str> = fallbacks.iter().map(|f| f.file_name.as_str()).collect();
    assert_eq!(tried, vec![second.as_str(), first.as_str()], "newest first");
    assert_eq!(
        file_names(&sim, &sim_dir()),
        vec![format!("{first}.broken"), format!("{second}.broken")]
    );
}

#[test]
fn an_empty_directory_loads_nothing_without_error() {
    let sim = SimStorage::new();
    let (store, _clock) = sim_store(&sim);
    let outcome = store.load_newest().expect("empty is fine");
    assert!(outcome.snapshot.is_none());
    assert!(outcome.report.fallbacks.is_empty());
    assert_eq!(store.oldest_retained_lsn().expect("list"), None);
}
