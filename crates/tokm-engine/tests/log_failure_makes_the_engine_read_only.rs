//! A failed log write or fsync returns a typed error, changes nothing in memory, and turns the
//! engine read-only until it is reopened; reads keep working.

mod common;

use std::sync::Arc;

use tokm_domain::Clock;
use tokm_domain::SessionRepository;
use tokm_domain::testkit::SessionFactory;
use tokm_engine::Engine;
use tokm_storage::testkit::{Fault, SimStorage};

fn failing_write(fault_at: impl Fn(&SimStorage)) {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let sim = SimStorage::new();
    let mut config = common::config(dir.path(), &clock);
    config.storage = Arc::new(sim.clone());
    let (engine, _) = Engine::open(config.clone()).expect("open");
    let mut factory = SessionFactory::new(9, clock.now());
    let user = SessionFactory::user(1);
    let kept = engine
        .create(factory.next_for(&user))
        .expect("create")
        .session;

    fault_at(&sim);
    let doomed = factory.next_for(&user);
    let doomed_id = doomed.id();
    let err = engine.create(doomed).expect_err("log failure");
    assert_eq!(err.code(), "TM-SESS-5001", "{err}");
    assert_eq!(
        engine.get(doomed_id).expect_err("not applied").code(),
        "TM-SESS-4041"
    );

    let status = engine.status();
    assert!(status.read_only);
    assert!(
        status
            .last_error
            .expect("recorded")
            .code
            .starts_with("TM-WAL-")
    );
    let refused = engine
        .create(factory.next_for(&user))
        .expect_err("read-only");
    assert_eq!(refused.code(), "TM-SESS-5031");
    assert_eq!(engine.get(kept.id()).expect("reads still work"), kept);
    assert_eq!(
        engine.delete(kept.id()).expect_err("read-only").code(),
        "TM-SESS-5031"
    );
    drop(engine);

    // A reopen recovers the acknowledged write.
    let (engine, _) = Engine::open(config).expect("reopen");
    assert_eq!(engine.get(kept.id()).expect("durable"), kept);
}

#[test]
fn an_fsync_error_is_a_storage_error_then_read_only() {
    failing_write(|sim| sim.fail_nth_sync(1, Fault::Eio));
}

#[test]
fn a_full_disk_is_a_storage_error_then_read_only() {
    failing_write(|sim| sim.fail_nth_write(1, Fault::Enospc));
}
