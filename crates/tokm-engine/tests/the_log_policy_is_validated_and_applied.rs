//! `EngineConfig::log` reaches the write-ahead log: limits the log refuses are refused at open
//! with the log's own code (and nothing is created), segment limits rotate, and a write
//! larger than `record_bytes_max` is refused alone without turning the engine read-only.

mod common;

use std::time::Duration;

use tokm_domain::testkit::SessionFactory;
use tokm_domain::{Clock, NewSession, SessionRepository};
use tokm_engine::{Engine, LogPolicy};

#[test]
fn limits_the_log_refuses_are_refused_at_open_and_create_nothing() {
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("data");
    let clock = common::clock();
    let refused = [
        LogPolicy {
            segment_bytes_max: 0,
            ..LogPolicy::default()
        },
        LogPolicy {
            segment_bytes_max: 2 << 30,
            ..LogPolicy::default()
        },
        LogPolicy {
            record_bytes_max: 64 << 20,
            ..LogPolicy::default()
        },
        LogPolicy {
            sync_interval: Duration::ZERO,
            ..LogPolicy::default()
        },
        LogPolicy {
            group_commit_records_max: 0,
            ..LogPolicy::default()
        },
    ];
    for log in refused {
        let mut config = common::config(&dir, &clock);
        config.log = log;
        let error = Engine::open(config).expect_err("refused");
        assert_eq!(error.code(), "TM-ENG-4002", "{log:?}");
        assert_eq!(error.cause_code(), Some("TM-WAL-4001"), "{log:?}");
        assert!(!dir.exists(), "a refused open created the data directory");
    }
}

fn segment_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("wal"))
        .expect("wal dir")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "wal"))
        })
        .count()
}

#[test]
fn segment_limits_rotate_the_log_and_a_restart_reads_every_segment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let mut config = common::config(dir.path(), &clock);
    config.log = LogPolicy {
        segment_records_max: 10,
        ..LogPolicy::default()
    };
    let (engine, _) = Engine::open(config.clone()).expect("open");
    let mut factory = SessionFactory::new(3, clock.now());
    for index in 0..35 {
        engine
            .create(factory.next_for(&SessionFactory::user(index)))
            .expect("create");
    }
    let before = common::state(&engine);
    engine.close().expect("close");
    assert!(
        segment_count(dir.path()) >= 4,
        "35 records in segments of 10"
    );

    let (engine, report) = Engine::open(config).expect("reopen");
    assert_eq!(report.replayed_count, 35);
    assert_eq!(common::state(&engine), before);
}

#[test]
fn a_write_above_record_bytes_max_is_refused_alone_and_the_engine_stays_writable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let mut config = common::config(dir.path(), &clock);
    config.log = LogPolicy {
        record_bytes_max: 512,
        ..LogPolicy::default()
    };
    let (engine, _) = Engine::open(config).expect("open");
    let mut factory = SessionFactory::new(4, clock.now());
    let user = SessionFactory::user(1);
    let small = engine
        .create(factory.next_for(&user))
        .expect("small create");

    let mut fields = factory.next_for(&user).fields().clone();
    for key in ["a", "b", "c", "d"] {
        fields
            .metadata
            .insert(key, &"x".repeat(200))
            .expect("metadata");
    }
    let large = NewSession::new(fields).expect("valid session");
    let large_id = large.id();
    let error = engine.create(large).expect_err("above record_bytes_max");
    assert_eq!(error.code(), "TM-SESS-5001");
    assert!(error.to_string().contains("TM-WAL-4131"), "{error}");
    assert!(engine.get(large_id).is_err(), "not applied");
    assert!(!engine.status().read_only, "the log itself did not fail");
    engine
        .create(factory.next_for(&user))
        .expect("later writes go on");
    assert_eq!(engine.get(small.session.id()).expect("kept"), small.session);
}
