//! On the real file system the log directory is created 0700 and every file 0600.
use std::fs;
use std::os::unix::fs::PermissionsExt;

use tokm_wal::{Durability, Wal, WalOptions};

#[test]
fn files_are_private_to_the_owner() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("nested").join("wal");
    let (wal, _) = Wal::open(
        &dir,
        WalOptions {
            segment_records_max: 1,
            ..WalOptions::default()
        },
    )
    .expect("open");
    wal.append(b"one", Durability::Sync).expect("append");
    wal.append(b"two", Durability::Sync).expect("append");
    wal.close().expect("close");
    assert_eq!(
        fs::metadata(&dir).expect("dir").permissions().mode() & 0o777,
        0o700
    );
    let mut files = 0;
    for entry in fs::read_dir(&dir).expect("read dir") {
        let entry = entry.expect("entry");
        assert_eq!(
            entry.metadata().expect("meta").permissions().mode() & 0o777,
            0o600,
            "{entry:?}"
        );
        files += 1;
    }
    assert_eq!(files, 2);
}
