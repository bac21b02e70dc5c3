//! Each snapshot trigger fires when, and only when, its condition holds, judged by the
//! engine's clock (no sleeps): the interval (and not for an idle engine), the bytes logged
//! since the last snapshot, and a cold start that replayed more records than the threshold.

mod common;

use std::time::Duration;

use tokm_domain::testkit::SessionFactory;
use tokm_domain::{Clock, SessionRepository};
use tokm_engine::{Engine, SnapshotPolicy};

fn create(engine: &Engine, factory: &mut SessionFactory, count: u32) {
    for index in 0..count {
        engine
            .create(factory.next_for(&SessionFactory::user(index)))
            .expect("create");
    }
}

#[test]
fn the_interval_trigger_fires_after_the_interval_and_not_for_an_idle_engine() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let mut config = common::config(dir.path(), &clock);
    config.snapshots = SnapshotPolicy {
        interval: Some(Duration::from_secs(60)),
        ..config.snapshots
    };
    let (engine, _) = Engine::open(config).expect("open");
    let mut factory = SessionFactory::new(1, clock.now());
    create(&engine, &mut factory, 3);

    clock.advance(Duration::from_secs(59));
    assert!(engine.run_maintenance().expect("check").snapshot.is_none());
    clock.advance(Duration::from_secs(1));
    let taken = engine.run_maintenance().expect("check").snapshot;
    assert_eq!(taken.map(|meta| meta.session_count), Some(3));

    clock.advance(Duration::from_secs(600));
    assert!(
        engine.run_maintenance().expect("check").snapshot.is_none(),
        "nothing was logged since: an identical snapshot would add nothing"
    );
    create(&engine, &mut factory, 1);
    assert!(engine.run_maintenance().expect("check").snapshot.is_some());
}

#[test]
fn the_logged_bytes_trigger_fires_once_the_log_grew_by_the_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let mut config = common::config(dir.path(), &clock);
    config.snapshots = SnapshotPolicy {
        wal_bytes: Some(4 * 1024),
        ..config.snapshots
    };
    let (engine, _) = Engine::open(config).expect("open");
    let mut factory = SessionFactory::new(2, clock.now());
    let mut created = 0;
    while engine.status().logged_bytes_since_snapshot < 4 * 1024 {
        assert!(engine.run_maintenance().expect("check").snapshot.is_none());
        create(&engine, &mut factory, 1);
        created += 1;
    }
    let taken = engine.run_maintenance().expect("check").snapshot;
    assert_eq!(taken.map(|meta| meta.session_count), Some(created));
    assert_eq!(engine.status().logged_bytes_since_snapshot, 0);
    assert!(engine.run_maintenance().expect("check").snapshot.is_none());
}

#[test]
fn a_cold_start_that_replayed_more_than_the_threshold_snapshots_at_once() {
    for (records, expect_snapshot) in [(40_u32, false), (60, true)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = common::clock();
        let mut config = common::config(dir.path(), &clock);
        config.snapshots = SnapshotPolicy {
            after_replay_records: Some(50),
            ..config.snapshots
        };
        let (engine, _) = Engine::open(config.clone()).expect("open");
        create(&engine, &mut SessionFactory::new(3, clock.now()), records);
        drop(engine);

        let (engine, report) = Engine::open(config.clone()).expect("reopen");
        assert_eq!(report.replayed_count, u64::from(records));
        assert_eq!(
            report.snapshot_after_recovery.is_some(),
            expect_snapshot,
            "{records}"
        );
        drop(engine);
        // After that snapshot, the next start replays nothing.
        let (_engine, report) = Engine::open(config).expect("third open");
        let expected_replay = if expect_snapshot {
            0
        } else {
            u64::from(records)
        };
        assert_eq!(report.replayed_count, expected_replay);
    }
}
