//! `tokm inspect` reports segments, snapshots and the dry-run recovery without changing anything.
mod common;

#[test]
fn inspect_lists_segments_snapshots_and_recovery() {
    let data = common::build(&[3, 2], &[0]);
    let dir = data.path().to_str().unwrap();
    let before = common::tree(data.path());

    let output = common::tokm(&["inspect", dir, "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let report = common::stdout_json(&output);

    let segments = report["segments"].as_array().unwrap();
    assert_eq!(segments.len(), data.segments().len());
    assert_eq!(segments[0]["first_lsn"], 1);
    assert!(segments[0]["size_bytes"].as_u64().unwrap() > 120);

    let snapshots = report["snapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0]["valid"], true);
    assert_eq!(snapshots[0]["session_count"], 3);
    assert_eq!(snapshots[0]["covered_lsn"], 3);

    assert_eq!(report["recovery"]["records_count"], 5);
    assert_eq!(report["recovery"]["last_lsn"], 5);
    assert_eq!(report["recovery"]["damaged"].as_array().unwrap().len(), 0);
    assert_eq!(
        common::tree(data.path()),
        before,
        "inspect changed the directory"
    );
}
