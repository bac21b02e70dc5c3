//! Sessions that expired while the engine was down are dropped at open; live ones are kept
//! however long replay takes, because time comes only from the injected clock.

mod common;

use std::time::Duration;

use tokm_domain::Clock;
use tokm_domain::SessionRepository;
use tokm_domain::testkit::SessionFactory;
use tokm_engine::Engine;

#[test]
fn sessions_that_expired_while_down_are_dropped_at_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let (engine, _) = Engine::open(common::config(dir.path(), &clock)).expect("open");
    let mut factory = SessionFactory::new(21, clock.now());
    factory.set_lifetime(Duration::from_secs(60));
    let short = engine
        .create(factory.next_for(&SessionFactory::user(1)))
        .expect("create")
        .session;
    factory.set_lifetime(Duration::from_secs(3600));
    let long = engine
        .create(factory.next_for(&SessionFactory::user(1)))
        .expect("create")
        .session;
    engine.snapshot_now().expect("snapshot");
    engine.close().expect("close");

    clock.advance(Duration::from_secs(600));
    let (engine, report) = Engine::open(common::config(dir.path(), &clock)).expect("reopen");
    assert_eq!(report.expired_count, 1);
    assert_eq!(
        engine.get(short.id()).expect_err("gone").code(),
        "TM-SESS-4041"
    );
    assert_eq!(engine.get(long.id()).expect("still live"), long);
    engine.close().expect("close");

    // Without advancing the clock, nothing else expires, however many restarts.
    let (engine, report) = Engine::open(common::config(dir.path(), &clock)).expect("reopen");
    assert_eq!(report.expired_count, 0);
    assert_eq!(engine.get(long.id()).expect("still live"), long);
}
