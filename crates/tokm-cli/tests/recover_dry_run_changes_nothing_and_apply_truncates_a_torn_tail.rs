//! `tokm recover --dry-run` reports a torn tail without touching it; without `--dry-run` the
//! engine truncates it and recovers every intact session.
mod common;

use std::fs::OpenOptions;
use std::io::Write;

#[test]
fn recover_dry_run_changes_nothing_and_apply_truncates_a_torn_tail() {
    let data = common::build(&[3], &[]);
    let dir = data.path().to_str().unwrap();
    let newest = data.wal_dir().join(data.segments().last().unwrap());
    // A half-written frame at the end of the newest segment, as a crash leaves it.
    OpenOptions::new()
        .append(true)
        .open(&newest)
        .unwrap()
        .write_all(&[7; 11])
        .unwrap();
    let before = common::tree(data.path());

    let dry = common::tokm(&[
        "recover",
        dir,
        "--policy",
        "point-in-time",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(dry.status.code(), Some(0), "{}", common::stderr(&dry));
    let report = common::stdout_json(&dry);
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["wal"]["truncated_bytes"], 11);
    assert_eq!(report["wal"]["records_count"], 3);
    assert_eq!(
        common::tree(data.path()),
        before,
        "dry run changed the directory"
    );

    let applied = common::tokm(&["recover", dir, "--policy", "point-in-time", "--json"]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}",
        common::stderr(&applied)
    );
    let report = common::stdout_json(&applied);
    assert_eq!(report["sessions"], 3);
    assert_eq!(report["wal"]["truncated_bytes"], 11);

    let again = common::tokm(&[
        "recover",
        dir,
        "--policy",
        "absolute",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(common::stdout_json(&again)["wal"]["truncated_bytes"], 0);
}
