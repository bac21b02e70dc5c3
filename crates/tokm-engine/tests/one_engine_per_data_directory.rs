//! A second engine on an open data directory is refused with `TM-ENG-4231`; after the first
//! closes, it opens.

mod common;

use tokm_engine::Engine;

#[test]
fn a_second_engine_is_locked_out_until_the_first_closes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let (first, _) = Engine::open(common::config(dir.path(), &clock)).expect("open");
    let err = Engine::open(common::config(dir.path(), &clock)).expect_err("locked");
    assert_eq!(err.code(), "TM-ENG-4231");
    first.close().expect("close");
    let (second, _) = Engine::open(common::config(dir.path(), &clock)).expect("reopen");
    second.close().expect("close");
}

#[test]
fn a_contradictory_config_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let mut config = common::config(dir.path(), &clock);
    config.snapshots.retention_count = 0;
    let err = Engine::open(config).expect_err("invalid");
    assert_eq!(err.code(), "TM-ENG-4001");
}
