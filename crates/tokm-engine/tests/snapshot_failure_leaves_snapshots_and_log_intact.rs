//! A snapshot that fails (ENOSPC or EIO at any write or sync) is reported, leaves the earlier
//! snapshots and the log as they were, and the engine keeps serving writes.

mod common;

use std::sync::Arc;

use tokm_engine::Engine;
use tokm_storage::testkit::{Fault, SimStorage};

#[test]
fn enospc_during_a_snapshot_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let sim = SimStorage::new();
    let mut config = common::config(dir.path(), &clock);
    config.storage = Arc::new(sim.clone());
    let (engine, _) = Engine::open(config.clone()).expect("open");
    common::mixed_workload(&engine, &clock, 31, 30, 4);
    let first = engine.snapshot_now().expect("first snapshot");
    common::mixed_workload(&engine, &clock, 32, 30, 4);

    sim.fail_nth_write(2, Fault::Enospc);
    let err = engine.snapshot_now().expect_err("disk full");
    assert_eq!(err.code(), "TM-ENG-5003", "{err}");
    let status = engine.status();
    assert!(!status.read_only, "a failed snapshot does not stop writes");
    assert_eq!(
        status.last_snapshot.map(|meta| meta.covered_lsn),
        Some(first.covered_lsn)
    );

    common::mixed_workload(&engine, &clock, 33, 10, 4);
    let expected = common::state(&engine);
    engine.close().expect("close");
    let (engine, report) = Engine::open(config).expect("reopen");
    assert_eq!(
        report.snapshot.map(|meta| meta.covered_lsn),
        Some(first.covered_lsn)
    );
    assert_eq!(common::state(&engine), expected);
}
