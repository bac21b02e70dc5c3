//! `tokm dump snapshot` prints the sessions of the newest valid snapshot, one per line, or of
//! the one named by `--file`.
mod common;

#[test]
fn dump_snapshot_prints_the_newest_snapshots_sessions() {
    let data = common::build(&[2, 3], &[0, 1]);
    let dir = data.path().to_str().unwrap();

    let newest = common::tokm(&["dump", "snapshot", dir]);
    assert_eq!(newest.status.code(), Some(0), "{}", common::stderr(&newest));
    let lines = common::stdout_json_lines(&newest);
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().all(|line| line["covered_lsn"] == 5));
    let mut ids: Vec<String> = lines
        .iter()
        .map(|line| line["session"]["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = data.sessions.iter().map(|s| s.id().to_string()).collect();
    expected.sort();
    assert_eq!(ids, expected);

    let oldest = data.snapshots()[0].clone();
    let older = common::tokm(&["dump", "snapshot", dir, "--file", &oldest]);
    let lines = common::stdout_json_lines(&older);
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|line| line["snapshot"] == oldest.as_str()));

    let lsn_filter = common::tokm(&["dump", "snapshot", dir, "--to-lsn", "3"]);
    assert_eq!(lsn_filter.status.code(), Some(2));
}
