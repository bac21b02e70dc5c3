//! A snapshot directory that does not exist holds no snapshots: the reader lists nothing and
//! creates nothing. A path that exists but is not a directory is an I/O error, never an empty
//! list.

mod common;

use std::io;
use std::path::Path;
use std::sync::Arc;

use tokm_snapshot::{LoadError, SnapshotReader};
use tokm_storage::FsStorage;
use tokm_storage::testkit::SimStorage;

fn io_kind(error: LoadError) -> io::ErrorKind {
    match error {
        LoadError::Io { source, .. } => source.kind(),
        other => panic!("expected an I/O error, got {other}"),
    }
}

#[test]
fn a_missing_directory_lists_nothing_and_is_not_created() {
    let sim = SimStorage::new();
    let dir = Path::new("/data/snapshots");
    let reader = SnapshotReader::new(dir, Arc::new(sim.clone()), None);
    assert!(
        reader
            .list()
            .expect("no directory, no snapshots")
            .is_empty()
    );
    assert!(!sim.dir_exists(dir));

    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("snapshots");
    let reader = SnapshotReader::new(&dir, Arc::new(FsStorage), None);
    assert!(
        reader
            .list()
            .expect("no directory, no snapshots")
            .is_empty()
    );
    assert!(!dir.exists());
}

#[test]
fn a_file_where_the_directory_should_be_is_an_io_error() {
    let sim = SimStorage::new();
    let dir = Path::new("/snapshots");
    sim.put_file(dir, b"a file, not a directory");
    let reader = SnapshotReader::new(dir, Arc::new(sim.clone()), None);
    let error = reader.list().expect_err("not a directory");
    assert_eq!(error.code(), "TM-SNAP-5001");
    assert_eq!(io_kind(error), io::ErrorKind::NotADirectory);

    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("snapshots");
    std::fs::write(&dir, b"a file, not a directory").expect("write");
    let reader = SnapshotReader::new(&dir, Arc::new(FsStorage), None);
    assert_eq!(
        io_kind(reader.list().expect_err("not a directory")),
        io::ErrorKind::NotADirectory
    );
}
