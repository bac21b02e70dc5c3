//! On the real file system the snapshot directory is created 0700 and snapshots are 0600.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use tokm_domain::ManualClock;
use tokm_snapshot::{SnapshotOptions, SnapshotStore};

use common::{START, sessions};
use tokm_storage::Lsn;

#[test]
fn files_and_directory_are_private_to_the_owner() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("nested").join("snapshots");
    let options = SnapshotOptions {
        clock: Arc::new(ManualClock::new(START)),
        ..SnapshotOptions::default()
    };
    let store = SnapshotStore::open(&dir, options).expect("open");
    let meta = store
        .write(Lsn::new(1), sessions(5, 1).iter().map(|s| s.as_ref()))
        .expect("write");
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(&meta.file_name)), 0o600);
    let loaded = store
        .load_newest()
        .expect("load")
        .snapshot
        .expect("written");
    assert_eq!(
        common::loaded_sessions(&loaded),
        common::by_id(&sessions(5, 1))
    );
}
