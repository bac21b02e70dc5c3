//! `tokm compact` takes a snapshot and removes the log segments it no longer needs;
//! `tokm snapshot` writes a snapshot covering the whole log. Both leave a verifiable directory.
mod common;

#[test]
fn snapshot_and_compact_run_through_the_engine() {
    let data = common::build(&[2, 2, 2, 2, 2], &[]);
    let dir = data.path().to_str().unwrap();
    let segments_before = data.segments();

    let compact = common::tokm(&["compact", dir, "--json"]);
    assert_eq!(
        compact.status.code(),
        Some(0),
        "{}",
        common::stderr(&compact)
    );
    let report = common::stdout_json(&compact);
    assert_eq!(report["covered_lsn"], 10);
    let removed = report["removed"].as_array().unwrap();
    assert!(!removed.is_empty(), "{report}");
    for name in removed {
        let name = name.as_str().unwrap().strip_prefix("wal/").unwrap();
        assert!(segments_before.iter().any(|segment| segment == name));
        assert!(!data.segments().iter().any(|segment| segment == name));
    }

    let snapshot = common::tokm(&["snapshot", dir, "--json"]);
    assert_eq!(
        snapshot.status.code(),
        Some(0),
        "{}",
        common::stderr(&snapshot)
    );
    let meta = common::stdout_json(&snapshot);
    assert_eq!(meta["covered_lsn"], 10);
    assert_eq!(meta["session_count"], 10);
    assert!(
        data.snapshots()
            .contains(&meta["file"].as_str().unwrap().to_owned())
    );

    let verify = common::tokm(&["verify", dir]);
    assert_eq!(verify.status.code(), Some(0), "{}", common::stderr(&verify));
}
