//! The maintenance sweep removes expired sessions through the log, in bounded ticks driven by
//! the engine's clock: afterwards memory, the next snapshot and a restart all lack them, and
//! sessions still live are untouched. No sleeps: the manual clock and `run_maintenance`.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokm_domain::testkit::SessionFactory;
use tokm_domain::{Clock, ManualClock, SessionId, SessionRepository};
use tokm_engine::{Engine, EngineConfig, SweepPolicy};
use tokm_storage::testkit::{CrashCut, SimStorage};

const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

fn sweeping_config(dir: &std::path::Path, clock: &Arc<ManualClock>) -> EngineConfig {
    let mut config = common::config(dir, clock);
    config.sweep = SweepPolicy {
        interval: Some(SWEEP_INTERVAL),
        batch_max: 64,
        per_tick_max: 256,
        ..SweepPolicy::default()
    };
    config
}

/// Creates `short` sessions living one minute, then `long` living a day, over 50 users;
/// returns the ids of each kind.
fn fill(
    engine: &Engine,
    clock: &ManualClock,
    short: u32,
    long: u32,
) -> (BTreeSet<SessionId>, BTreeSet<SessionId>) {
    let mut factory = SessionFactory::new(21, clock.now());
    let (mut short_ids, mut long_ids) = (BTreeSet::new(), BTreeSet::new());
    for index in 0..short + long {
        let is_short = index < short;
        factory.set_lifetime(Duration::from_secs(if is_short { 60 } else { 86_400 }));
        let created = engine
            .create(factory.next_for(&SessionFactory::user(index % 50)))
            .expect("create")
            .session;
        if is_short {
            short_ids.insert(created.id());
        } else {
            long_ids.insert(created.id());
        }
    }
    (short_ids, long_ids)
}

fn stored_ids(engine: &Engine) -> BTreeSet<SessionId> {
    common::state(engine)
        .iter()
        .map(|session| session.id())
        .collect()
}

#[test]
fn ticks_sweep_in_bounded_batches_until_memory_snapshot_and_restart_lack_the_expired() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let config = sweeping_config(dir.path(), &clock);
    let (engine, _) = Engine::open(config.clone()).expect("open");
    let (short, long) = fill(&engine, &clock, 600, 400);

    // Nothing is due before the interval, and nothing has expired before a minute.
    assert!(
        engine
            .run_maintenance()
            .expect("maintenance")
            .sweep
            .is_none()
    );
    clock.advance(SWEEP_INTERVAL);
    let tick = engine.run_maintenance().expect("maintenance").sweep;
    assert_eq!(
        tick.map(|tick| tick.removed_count),
        Some(0),
        "due, but nothing expired"
    );

    clock.advance(Duration::from_secs(120));
    let mut ticks = Vec::new();
    loop {
        let tick = engine
            .run_maintenance()
            .expect("maintenance")
            .sweep
            .expect("due: the interval passed, then a backlog");
        ticks.push(tick);
        if !tick.backlog {
            break;
        }
    }
    let removed: Vec<u64> = ticks.iter().map(|tick| tick.removed_count).collect();
    assert_eq!(removed, [256, 256, 88], "per_tick_max bounds each tick");
    assert!(
        ticks.iter().all(|tick| tick.batch_count <= 4),
        "batches of at most batch_max: {ticks:?}"
    );
    assert!(
        engine
            .run_maintenance()
            .expect("maintenance")
            .sweep
            .is_none(),
        "no backlog: the next tick waits for the interval"
    );
    let status = engine.status();
    assert_eq!(status.sweep.total_removed_count, 600);
    assert_eq!(status.session_count, 400);
    assert_eq!(
        stored_ids(&engine),
        long,
        "memory holds only the live sessions"
    );

    // The next snapshot lacks them too, and so does a restart from the log alone.
    let meta = engine.snapshot_now().expect("snapshot");
    assert_eq!(meta.session_count, 400);
    engine.close().expect("close");
    let (engine, report) = Engine::open(config).expect("reopen");
    assert_eq!(report.expired_count, 0, "already swept, not dropped again");
    assert_eq!(stored_ids(&engine), long);
    assert!(short.iter().all(|id| engine.get(*id).is_err()));
}

#[test]
fn the_sweeps_deletes_are_logged_so_a_restart_without_a_snapshot_lacks_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let config = sweeping_config(dir.path(), &clock);
    let (engine, _) = Engine::open(config.clone()).expect("open");
    let (_, long) = fill(&engine, &clock, 100, 30);
    clock.advance(Duration::from_secs(120));
    let tick = engine.run_maintenance().expect("maintenance").sweep;
    assert_eq!(tick.map(|tick| tick.removed_count), Some(100));
    // A crash, not a close: what the sweep logged is all a restart has.
    drop(engine);

    // Turn the clock back so the restart cannot tell the sessions expired: only the logged
    // deletes can keep them out.
    clock.set(tokm_domain::testkit::SUITE_START);
    let (engine, report) = Engine::open(config).expect("reopen");
    assert_eq!(report.expired_count, 0);
    assert_eq!(stored_ids(&engine), long);
}

#[test]
fn a_power_cut_that_loses_the_sweeps_unsynced_deletes_loses_nothing_live() {
    // The sweep appends without waiting for an fsync, even in `Sync` mode: cut the power
    // before anything syncs it, and the restart must drop those sessions again by the clock.
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let sim = SimStorage::new();
    let mut config = sweeping_config(dir.path(), &clock);
    config.storage = Arc::new(sim.clone());
    // The flusher's timer must not come due while the clock moves past the expiries.
    config.log.sync_interval = Duration::from_secs(86_400);
    let (engine, _) = Engine::open(config.clone()).expect("open");
    let (_, long) = fill(&engine, &clock, 50, 20);
    clock.advance(Duration::from_secs(120));
    let tick = engine.run_maintenance().expect("maintenance").sweep;
    assert_eq!(tick.map(|tick| tick.removed_count), Some(50));
    sim.crash(CrashCut::DropUnsynced);
    drop(engine);

    let (engine, report) = Engine::open(config).expect("reopen");
    assert_eq!(
        stored_ids(&engine),
        long,
        "every live session, no expired one"
    );
    assert_eq!(
        report.expired_count, 50,
        "the lost deletes were made again at open"
    );
}

#[test]
fn a_sweep_turned_off_leaves_expired_sessions_to_cleanup_expired() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let (engine, _) = Engine::open(common::config(dir.path(), &clock)).expect("open");
    fill(&engine, &clock, 10, 5);
    clock.advance(Duration::from_secs(3_600));
    assert!(
        engine
            .run_maintenance()
            .expect("maintenance")
            .sweep
            .is_none()
    );
    assert_eq!(engine.status().session_count, 15);
    assert_eq!(engine.cleanup_expired().expect("cleanup"), 10);
}

#[test]
fn a_sweep_policy_that_cannot_work_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    for sweep in [
        SweepPolicy {
            batch_max: 0,
            ..SweepPolicy::default()
        },
        SweepPolicy {
            batch_max: 100,
            per_tick_max: 10,
            ..SweepPolicy::default()
        },
        SweepPolicy {
            interval: Some(Duration::ZERO),
            ..SweepPolicy::default()
        },
        SweepPolicy {
            sessions_per_second_max: Some(0),
            ..SweepPolicy::default()
        },
    ] {
        let mut config = common::config(dir.path(), &clock);
        config.sweep = sweep;
        let error = Engine::open(config).expect_err("refused");
        assert_eq!(error.code(), "TM-ENG-4001", "{error}");
    }
}
