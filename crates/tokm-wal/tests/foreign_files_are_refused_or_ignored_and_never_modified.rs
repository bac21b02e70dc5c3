//! A `.wal` file this crate did not write makes open refuse the directory without touching
//! anything; unrelated files are ignored and left alone.
mod common;

use common::{sim_dir, sim_options};
use tokm_storage::Storage;
use tokm_storage::testkit::SimStorage;
use tokm_wal::{Durability, Wal, WalReader};

#[test]
fn foreign_segment_is_refused_and_untouched() {
    for (name, bytes, code) in [
        (
            "00000000000000000001.wal",
            &b"PK\x03\x04 definitely a zip file, not a log"[..],
            "TM-WAL-4151",
        ),
        ("notes.wal", &b"TOKMWAL\x01"[..], "TM-WAL-4151"),
        (
            "00000000000000000001.wal",
            &b"TOKMWAL\x01\x09 from the future"[..],
            "TM-WAL-4152",
        ),
    ] {
        let sim = SimStorage::new();
        let dir = sim_dir();
        sim.put_file(&dir.join(name), bytes);
        let error = Wal::open(&dir, sim_options(&sim)).expect_err("refused");
        assert_eq!(error.code(), code, "{name}");
        assert!(
            error.to_string().contains(name),
            "the error names the file: {error}"
        );
        let error = WalReader::open(&dir, &sim_options(&sim)).expect_err("refused");
        assert_eq!(error.code(), code);
        assert_eq!(sim.file_bytes(&dir.join(name)).as_deref(), Some(bytes));
        assert_eq!(
            sim.list(&dir).expect("list"),
            vec![name.to_owned()],
            "nothing created"
        );
    }
}

#[test]
fn unrelated_files_are_ignored_and_untouched() {
    let sim = SimStorage::new();
    let dir = sim_dir();
    sim.put_file(&dir.join("README"), b"operator notes");
    sim.put_file(&dir.join("upload.tmp"), b"someone else's temp file");
    let (wal, _) = Wal::open(&dir, sim_options(&sim)).expect("open");
    wal.append(b"x", Durability::Sync).expect("append");
    drop(wal);
    let (_wal, report) = Wal::open(&dir, sim_options(&sim)).expect("reopen");
    assert_eq!(report.records_count, 1);
    assert_eq!(
        sim.file_bytes(&dir.join("README")).as_deref(),
        Some(&b"operator notes"[..])
    );
    assert!(sim.file_bytes(&dir.join("upload.tmp")).is_some());
}
