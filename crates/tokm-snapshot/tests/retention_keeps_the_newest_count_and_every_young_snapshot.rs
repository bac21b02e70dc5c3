//! Retention keeps the newest `retention_count` snapshots and every one younger than
//! `retention_age` by the injected clock, removes the rest, and never touches `*.broken`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tokm_domain::ManualClock;
use tokm_snapshot::SnapshotStore;
use tokm_storage::testkit::SimStorage;

use common::{START, file_names, sessions, sim_dir, sim_options};
use tokm_storage::Lsn;

const DAY: Duration = Duration::from_secs(86_400);

/// Eight snapshots, LSN 10..=80, one a day; the clock ends an hour after the last.
fn eight_daily(count: usize, days: u32) -> (SimStorage, SnapshotStore, Vec<String>) {
    let sim = SimStorage::new();
    let clock = Arc::new(ManualClock::new(START));
    let mut options = sim_options(&sim, &clock, None);
    options.retention_count = count;
    options.retention_age = DAY * days;
    let store = SnapshotStore::open(&sim_dir(), options).expect("open");
    let body = sessions(2, 1);
    let mut names = Vec::new();
    for day in 1..=8_u64 {
        let meta = store
            .write(Lsn::new(day * 10), body.iter().map(Arc::as_ref))
            .expect("write");
        names.push(meta.file_name);
        clock.advance(DAY);
    }
    // The last snapshot is now a day old; move to an hour after it instead.
    clock.set(
        START
            .checked_add(DAY * 7 + Duration::from_secs(3_600))
            .expect("in range"),
    );
    (sim, store, names)
}

#[test]
fn count_keeps_the_newest_when_all_are_old() {
    let (sim, store, names) = eight_daily(3, 0);
    let report = store.apply_retention().expect("retention");
    let newest_first: Vec<String> = names.iter().rev().cloned().collect();
    assert_eq!(report.kept, newest_first[..3]);
    assert_eq!(report.removed, newest_first[3..]);
    assert_eq!(file_names(&sim, &sim_dir()), names[5..]);
    assert_eq!(
        store.oldest_retained_lsn().expect("list"),
        Some(Lsn::new(60))
    );
}

#[test]
fn age_keeps_everything_younger_than_the_limit() {
    // Ages are 0, 1, ..., 7 days plus an hour: younger than 5 days keeps the newest five.
    let (sim, store, names) = eight_daily(1, 5);
    let report = store.apply_retention().expect("retention");
    assert_eq!(report.kept.len(), 5);
    assert_eq!(report.removed.len(), 3);
    assert_eq!(file_names(&sim, &sim_dir()), names[3..]);
    assert_eq!(
        store.oldest_retained_lsn().expect("list"),
        Some(Lsn::new(40))
    );
    // Applying it again changes nothing.
    let again = store.apply_retention().expect("retention");
    assert!(again.removed.is_empty());
}

#[test]
fn defaults_are_five_snapshots_and_seven_days() {
    let options = tokm_snapshot::SnapshotOptions::default();
    assert_eq!(options.retention_count, 5);
    assert_eq!(options.retention_age, DAY * 7);
}

#[test]
fn broken_files_are_never_removed() {
    let (sim, store, names) = eight_daily(1, 0);
    let broken = format!("{}.broken", names[0]);
    sim.put_file(
        &sim_dir().join(&broken),
        b"damaged bytes kept for inspection",
    );
    let report = store.apply_retention().expect("retention");
    assert_eq!(report.removed.len(), 7);
    assert_eq!(file_names(&sim, &sim_dir()), vec![broken, names[7].clone()]);
}
