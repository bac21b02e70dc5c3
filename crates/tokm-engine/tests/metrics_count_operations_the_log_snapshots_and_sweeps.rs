//! With a recorder installed before `Engine::open`, the engine and its log publish every
//! metric in `tokm_engine::metrics::NAMES` and `tokm_wal::METRIC_NAMES`, with counts that
//! match what was done, and no label carries a user, session or token.
//!
//! One test in this file: the recorder is process-global.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokm_domain::testkit::SessionFactory;
use tokm_domain::{Clock, SessionId, SessionRepository, TokenHash, TokenRepository};
use tokm_engine::{Engine, SweepPolicy, metrics};

/// A metric as the test reads it: name and sorted labels.
type Series = (String, Vec<(String, String)>);

fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    labels.sort();
    (name.to_owned(), labels)
}

fn counter(values: &BTreeMap<Series, DebugValue>, name: &str, labels: &[(&str, &str)]) -> u64 {
    match values.get(&series(name, labels)) {
        Some(DebugValue::Counter(count)) => *count,
        other => panic!("{name} {labels:?} is not a counter: {other:?}"),
    }
}

fn gauge(values: &BTreeMap<Series, DebugValue>, name: &str) -> f64 {
    match values.get(&series(name, &[])) {
        Some(DebugValue::Gauge(value)) => value.0,
        other => panic!("{name} is not a gauge: {other:?}"),
    }
}

fn samples(values: &BTreeMap<Series, DebugValue>, name: &str, labels: &[(&str, &str)]) -> usize {
    match values.get(&series(name, labels)) {
        Some(DebugValue::Histogram(samples)) => samples.len(),
        other => panic!("{name} {labels:?} is not a histogram: {other:?}"),
    }
}

#[test]
fn metrics_count_operations_the_log_snapshots_and_sweeps() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder in this test process");

    let dir = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let mut config = common::config(dir.path(), &clock);
    config.sweep = SweepPolicy {
        interval: Some(Duration::from_secs(10)),
        ..SweepPolicy::default()
    };
    let (engine, _) = Engine::open(config).expect("open");
    let mut factory = SessionFactory::new(5, clock.now());
    let mut users = Vec::new();
    let mut first = None;
    for index in 0..20_u32 {
        factory.set_lifetime(Duration::from_secs(if index < 10 { 60 } else { 86_400 }));
        let user = SessionFactory::user(index);
        let created = engine.create(factory.next_for(&user)).expect("create");
        first.get_or_insert(created.session);
        users.push(user);
    }
    let first = first.expect("created");
    engine.get(first.id()).expect("found");
    let missing = SessionId::generate(clock.now()).expect("id");
    let not_found = engine.get(missing).expect_err("missing");
    let unknown = TokenHash::of_token("a token nobody holds").expect("hash");
    let token_not_found = engine.get_by_token_hash(&unknown).expect_err("unknown");
    clock.advance(Duration::from_secs(120));
    let tick = engine.run_maintenance().expect("maintenance").sweep;
    assert_eq!(tick.map(|tick| tick.removed_count), Some(10));
    let meta = engine.snapshot_now().expect("snapshot");

    let values: BTreeMap<Series, DebugValue> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<(&str, &str)> = key
                .labels()
                .map(|label| (label.key(), label.value()))
                .collect();
            (series(key.name(), &labels), value)
        })
        .collect();

    let ok = |operation| {
        counter(
            &values,
            metrics::OPERATIONS,
            &[("operation", operation), ("outcome", "ok")],
        )
    };
    assert_eq!(ok("create"), 20);
    assert_eq!(ok("get"), 1);
    assert_eq!(ok("touch"), 0, "registered at open, never called");
    let error = |operation, code| {
        counter(
            &values,
            metrics::OPERATIONS,
            &[
                ("operation", operation),
                ("outcome", "error"),
                ("code", code),
            ],
        )
    };
    assert_eq!(error("get", not_found.code()), 1);
    assert_eq!(error("get_by_token_hash", token_not_found.code()), 1);
    assert_eq!(
        samples(
            &values,
            metrics::OPERATION_SECONDS,
            &[("operation", "create")]
        ),
        20
    );
    assert_eq!(
        samples(&values, metrics::OPERATION_SECONDS, &[("operation", "get")]),
        2
    );

    assert_eq!(counter(&values, metrics::EXPIRED_SWEPT, &[]), 10);
    assert!(samples(&values, metrics::SWEEP_SECONDS, &[]) >= 1);
    assert_eq!(gauge(&values, metrics::SESSIONS), 10.0);
    assert_eq!(gauge(&values, metrics::READ_ONLY), 0.0);
    assert_eq!(
        counter(&values, metrics::SNAPSHOTS, &[("outcome", "ok")]),
        1
    );
    assert_eq!(
        counter(&values, metrics::SNAPSHOTS, &[("outcome", "error")]),
        0
    );
    assert_eq!(samples(&values, metrics::SNAPSHOT_SECONDS, &[]), 1);
    assert_eq!(gauge(&values, metrics::SNAPSHOT_SESSIONS), 10.0);
    assert_eq!(
        gauge(&values, metrics::SNAPSHOT_BYTES),
        meta.size_bytes as f64
    );
    assert_eq!(gauge(&values, metrics::RECOVERY_SESSIONS), 0.0);

    // The log: 20 creates and one sweep batch of 10 deletes, each delete a record.
    assert_eq!(counter(&values, "tokm_wal_appends_total", &[]), 30);
    assert!(counter(&values, "tokm_wal_appended_bytes_total", &[]) > 0);
    assert!(
        samples(&values, "tokm_wal_fsync_duration_seconds", &[]) >= 21,
        "Sync mode"
    );
    assert!(samples(&values, "tokm_wal_group_commit_records", &[]) >= 1);
    assert!(counter(&values, "tokm_wal_segments_created_total", &[]) >= 1);

    // Every documented name is published, and nothing else.
    let published: BTreeSet<&str> = values.keys().map(|(name, _)| name.as_str()).collect();
    let documented: BTreeSet<&str> = metrics::NAMES
        .iter()
        .chain(tokm_wal::METRIC_NAMES.iter())
        .copied()
        .collect();
    assert_eq!(published, documented);

    // Labels are fixed names and codes only.
    for (name, labels) in values.keys() {
        for (key, value) in labels {
            assert!(
                matches!(key.as_str(), "operation" | "outcome" | "code"),
                "{name} has label {key}"
            );
            assert!(
                users.iter().all(|user| !value.contains(user.as_str()))
                    && !value.contains(&first.id().to_string()),
                "{name} label {key}={value} carries data"
            );
        }
    }
}
