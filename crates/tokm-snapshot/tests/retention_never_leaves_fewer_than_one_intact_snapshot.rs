//! With a policy that would keep nothing, or only damaged snapshots, retention still keeps the
//! newest intact snapshot; with no intact snapshot at all it removes nothing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tokm_domain::ManualClock;
use tokm_snapshot::SnapshotStore;
use tokm_storage::testkit::SimStorage;

use common::{START, file_names, sessions, sim_dir, sim_options};
use tokm_storage::Lsn;

fn store_with_three(count: usize) -> (SimStorage, SnapshotStore, Vec<String>) {
    let sim = SimStorage::new();
    let clock = Arc::new(ManualClock::new(START));
    let mut options = sim_options(&sim, &clock, None);
    options.retention_count = count;
    options.retention_age = Duration::ZERO;
    let store = SnapshotStore::open(&sim_dir(), options).expect("open");
    let names = (1..=3)
        .map(|lsn| common::write_at(&store, &clock, lsn, &sessions(4, lsn)))
        .collect();
    clock.advance(Duration::from_secs(30 * 86_400));
    (sim, store, names)
}

fn damage(sim: &SimStorage, name: &str) {
    let path = sim_dir().join(name);
    let mut bytes = sim.file_bytes(&path).expect("exists");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    sim.put_file(&path, &bytes);
}

#[test]
fn a_zero_count_still_keeps_the_newest() {
    let (sim, store, names) = store_with_three(0);
    let report = store.apply_retention().expect("retention");
    assert_eq!(report.kept, vec![names[2].clone()]);
    assert_eq!(file_names(&sim, &sim_dir()), vec![names[2].clone()]);
}

#[test]
fn a_damaged_newest_keeps_the_next_intact_one_too() {
    let (sim, store, names) = store_with_three(1);
    damage(&sim, &names[2]);
    let report = store.apply_retention().expect("retention");
    assert_eq!(report.kept, vec![names[2].clone(), names[1].clone()]);
    assert_eq!(report.removed, vec![names[0].clone()]);
    // Loading then falls back to the intact one that retention kept.
    let outcome = store.load_newest().expect("load");
    assert_eq!(
        outcome.snapshot.map(|s| s.meta.covered_lsn),
        Some(Lsn::new(2))
    );
}

#[test]
fn nothing_is_removed_when_nothing_is_intact() {
    let (sim, store, names) = store_with_three(1);
    for name in &names {
        damage(&sim, name);
    }
    let report = store.apply_retention().expect("retention");
    assert!(report.removed.is_empty());
    assert_eq!(file_names(&sim, &sim_dir()), names);
}
