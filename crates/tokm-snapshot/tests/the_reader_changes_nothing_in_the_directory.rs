//! `SnapshotReader` never creates, renames or removes a file and never changes a byte: after
//! `list`, then `verify` and `load` of every snapshot in a directory holding a valid snapshot, a
//! damaged one, a temp file left by a crash, a `*.broken` file and a foreign file, every name
//! and byte is as it was, on the simulated disk and on a real one.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use tokm_domain::ManualClock;
use tokm_snapshot::{SnapshotOptions, SnapshotReader, SnapshotStore};
use tokm_storage::FsStorage;
use tokm_storage::testkit::SimStorage;

use common::{START, dir_contents, sessions, sim_dir, sim_store};

const TEMP: &str = "00000000000000000030-00000001700000120000.snap.tmp";
const BROKEN: &str = "00000000000000000005-00000001699999999999.snap.broken";

/// Writes the valid (LSN 10) and damaged (LSN 20) snapshots with `store`; returns their names.
fn write_two(store: &SnapshotStore, clock: &ManualClock) -> (String, String) {
    let valid = common::write_at(store, clock, 10, &sessions(1_100, 1));
    let damaged = common::write_at(store, clock, 20, &sessions(5, 2));
    (valid, damaged)
}

/// Flips one byte in the middle of `bytes`: inside a block, so only a full read notices.
fn damage(bytes: &mut [u8]) {
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
}

/// Every read the reader offers, on every name in the directory; checks the answers.
fn read_everything(reader: &SnapshotReader, valid: &str, damaged: &str) {
    let listed = reader.list().expect("list");
    let names: Vec<&str> = listed.iter().map(|info| info.file_name.as_str()).collect();
    assert_eq!(
        names,
        vec![damaged, valid],
        "temp, broken and foreign files are not listed"
    );

    let loaded = reader.load(valid).expect("the valid snapshot loads");
    assert_eq!(
        common::loaded_sessions(&loaded),
        common::by_id(&sessions(1_100, 1))
    );
    assert_eq!(reader.verify(valid).expect("intact"), loaded.meta);

    for error in [
        reader.verify(damaged).expect_err("damaged"),
        reader.load(damaged).map(|_| ()).expect_err("damaged"),
    ] {
        assert!(error.is_damage(), "{error}");
    }
    for other in [TEMP, BROKEN, "notes.txt"] {
        let error = reader
            .load(other)
            .map(|_| ())
            .expect_err("not a snapshot name");
        assert_eq!(error.code(), "TM-SNAP-4003", "{other}: {error}");
    }
}

#[test]
fn reading_a_simulated_directory_changes_nothing() {
    let sim = SimStorage::new();
    let (store, clock) = sim_store(&sim);
    let (valid, damaged) = write_two(&store, &clock);
    let damaged_path = sim_dir().join(&damaged);
    let mut bytes = sim.file_bytes(&damaged_path).expect("written");
    damage(&mut bytes);
    sim.put_file(&damaged_path, &bytes);
    sim.put_file(&sim_dir().join(TEMP), b"half a snapshot");
    sim.put_file(&sim_dir().join(BROKEN), b"set aside earlier");
    sim.put_file(&sim_dir().join("notes.txt"), b"not ours");
    let before = dir_contents(&sim, &sim_dir());
    let (writes, syncs) = (sim.write_calls(), sim.sync_calls());

    let reader = SnapshotReader::new(&sim_dir(), Arc::new(sim.clone()), None);
    read_everything(&reader, &valid, &damaged);

    assert_eq!(dir_contents(&sim, &sim_dir()), before);
    assert_eq!((sim.write_calls(), sim.sync_calls()), (writes, syncs));
}

/// Name, bytes and modification time of every entry in `dir`, and the directory's own
/// modification time, which any creation, rename or removal would change.
fn real_dir_contents(dir: &Path) -> (SystemTime, Vec<(String, Vec<u8>, SystemTime)>) {
    let modified = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .expect("mtime")
    };
    let mut entries: Vec<(String, Vec<u8>, SystemTime)> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&path).expect("read"), modified(&path))
        })
        .collect();
    entries.sort();
    (modified(dir), entries)
}

#[test]
fn reading_a_real_directory_changes_nothing() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("snapshots");
    let clock = Arc::new(ManualClock::new(START));
    let options = SnapshotOptions {
        storage: Arc::new(FsStorage),
        clock: clock.clone(),
        ..SnapshotOptions::default()
    };
    let store = SnapshotStore::open(&dir, options).expect("open");
    let (valid, damaged) = write_two(&store, &clock);
    let mut bytes = std::fs::read(dir.join(&damaged)).expect("written");
    damage(&mut bytes);
    std::fs::write(dir.join(&damaged), &bytes).expect("damage");
    std::fs::write(dir.join(TEMP), b"half a snapshot").expect("temp");
    std::fs::write(dir.join(BROKEN), b"set aside earlier").expect("broken");
    std::fs::write(dir.join("notes.txt"), b"not ours").expect("foreign");
    let before = real_dir_contents(&dir);

    let reader = SnapshotReader::new(&dir, Arc::new(FsStorage), None);
    read_everything(&reader, &valid, &damaged);

    assert_eq!(real_dir_contents(&dir), before);
}
