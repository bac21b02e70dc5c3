//! A data directory whose `wal` or `snapshots` is a regular file is refused (exit 3,
//! `TM-CLI-4043`) by every command, rather than reported as an empty, intact log.
mod common;

use std::fs;

#[test]
fn a_regular_file_in_place_of_wal_or_snapshots_is_refused() {
    for part in ["wal", "snapshots"] {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_str().unwrap();
        fs::write(temp.path().join(part), b"not a directory").unwrap();
        for args in [
            vec!["verify", dir],
            vec!["inspect", dir],
            vec!["dump", "wal", dir],
            vec!["dump", "snapshot", dir],
            vec!["recover", dir, "--policy", "skip", "--dry-run"],
            vec!["snapshot", dir],
        ] {
            let output = common::tokm(&args);
            let stderr = common::stderr(&output);
            assert_eq!(output.status.code(), Some(3), "{part}: {args:?}: {stderr}");
            assert!(
                stderr.contains("TM-CLI-4043") || stderr.contains("TM-CLI-4042"),
                "{part}: {args:?}: {stderr}"
            );
        }
    }
}
