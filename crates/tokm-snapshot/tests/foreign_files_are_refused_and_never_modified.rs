//! A `*.snap` file that is not a tokm snapshot, or is of a newer version, stops loading with a
//! typed error and is left exactly as it was; files with other names are ignored by every
//! operation.

mod common;

use common::{file_names, reopen, sessions, sim_dir, sim_store, sim_with};
use tokm_storage::testkit::SimStorage;

const FOREIGN_NAME: &str = "00000000000000000050-00000000000000000001.snap";

#[test]
fn a_file_with_wrong_magic_is_refused_and_untouched() {
    let sim = SimStorage::new();
    let (store, clock) = sim_store(&sim);
    common::write_at(&store, &clock, 10, &sessions(3, 1));
    let foreign = b"PK\x03\x04 this is a zip archive, not a snapshot".repeat(20);
    sim.put_file(&sim_dir().join(FOREIGN_NAME), &foreign);
    let before = file_names(&sim, &sim_dir());

    let error = reopen(&sim, None).load_newest().expect_err("refused");
    assert_eq!(error.code(), "TM-SNAP-4001");
    assert!(error.to_string().contains(FOREIGN_NAME));
    assert_eq!(file_names(&sim, &sim_dir()), before);
    assert_eq!(sim.file_bytes(&sim_dir().join(FOREIGN_NAME)), Some(foreign));
}

#[test]
fn a_newer_format_version_is_refused_and_untouched() {
    let sim = SimStorage::new();
    let (store, clock) = sim_store(&sim);
    let name = common::write_at(&store, &clock, 10, &sessions(3, 1));
    let mut bytes = sim.file_bytes(&sim_dir().join(&name)).expect("written");
    // A newer writer's file: its own version, and a header checksum that matches it.
    bytes[8] = 3;
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let checked = 16 + header_len;
    let checksum = blake3::hash(&bytes[..checked]);
    bytes[checked..checked + 16].copy_from_slice(&checksum.as_bytes()[..16]);
    let sim = sim_with(&[(&name, &bytes)]);
    let error = reopen(&sim, None).load_newest().expect_err("refused");
    assert_eq!(error.code(), "TM-SNAP-4002");
    assert_eq!(sim.file_bytes(&sim_dir().join(&name)), Some(bytes));
    assert_eq!(file_names(&sim, &sim_dir()), vec![name]);
}

#[test]
fn a_flipped_version_byte_is_damage_not_a_newer_format() {
    let sim = SimStorage::new();
    let (store, clock) = sim_store(&sim);
    let name = common::write_at(&store, &clock, 10, &sessions(3, 1));
    let mut bytes = sim.file_bytes(&sim_dir().join(&name)).expect("written");
    bytes[8] ^= 0x04;
    let sim = sim_with(&[(&name, &bytes)]);
    let reader = reopen(&sim, None);
    let error = reader.reader().load(&name).expect_err("damaged");
    assert_eq!(error.code(), "TM-SNAP-5201", "{error}");
    assert!(error.is_damage());
}

#[test]
fn other_names_are_ignored_by_load_list_and_retention() {
    let sim = SimStorage::new();
    let (store, clock) = sim_store(&sim);
    let name = common::write_at(&store, &clock, 10, &sessions(3, 1));
    for other in ["notes.txt", "10-20.snap", "00000000000000000001.wal"] {
        sim.put_file(&sim_dir().join(other), b"not ours");
    }
    let store = reopen(&sim, None);
    assert_eq!(
        store
            .load_newest()
            .expect("load")
            .snapshot
            .map(|s| s.meta.file_name),
        Some(name.clone())
    );
    assert_eq!(store.list().expect("list").len(), 1);
    let report = store.apply_retention().expect("retention");
    assert!(report.removed.is_empty());
    assert_eq!(
        file_names(&sim, &sim_dir()),
        vec![
            "00000000000000000001.wal".to_owned(),
            name,
            "10-20.snap".to_owned(),
            "notes.txt".to_owned()
        ]
    );
}
