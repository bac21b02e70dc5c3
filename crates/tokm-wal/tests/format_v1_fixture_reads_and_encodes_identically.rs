//! The released format version 1 stays readable, and today's writer still produces it byte for
//! byte. Regenerate the fixture (only for a deliberate format change, with a new version) with
//! `TOKM_WAL_WRITE_FIXTURE=1 cargo test -p tokm-wal --test format_v1_fixture_reads_and_encodes_identically`.
mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{open_and_replay, sim_dir, sim_options};
use tokm_domain::{ManualClock, Timestamp};
use tokm_storage::Lsn;
use tokm_storage::testkit::SimStorage;
use tokm_wal::{Durability, Wal, WalOptions};

const SEGMENT: &str = "00000000000000000001.wal";
const RECORDS: [&[u8]; 3] = [b"create", b"", b"delete session 01J0000000000000000000000"];

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v1")
        .join(SEGMENT)
}

fn written_today() -> Vec<u8> {
    let sim = SimStorage::new();
    let options = WalOptions {
        clock: Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000))),
        node_id: 7,
        ..sim_options(&sim)
    };
    let (wal, _) = Wal::open(&sim_dir(), options).expect("open");
    wal.append_batch(&RECORDS, Durability::Sync)
        .expect("append");
    wal.close().expect("close");
    sim.file_bytes(&sim_dir().join(SEGMENT)).expect("segment")
}

#[test]
fn format_v1_fixture_reads_and_encodes_identically() {
    let today = written_today();
    if std::env::var_os("TOKM_WAL_WRITE_FIXTURE").is_some() {
        std::fs::write(fixture_path(), &today).expect("write fixture");
    }
    let fixture = std::fs::read(fixture_path()).expect("fixture present");
    assert_eq!(
        today, fixture,
        "the writer no longer produces format v1 byte for byte"
    );

    let sim = SimStorage::new();
    sim.put_file(&sim_dir().join(SEGMENT), &fixture);
    let (_wal, report, records) = open_and_replay(&sim_dir(), sim_options(&sim)).expect("open");
    assert!(report.damaged.is_empty() && report.truncated_bytes == 0);
    let expected: Vec<(Lsn, Vec<u8>)> = RECORDS
        .iter()
        .enumerate()
        .map(|(index, bytes)| (Lsn::new(index as u64 + 1), bytes.to_vec()))
        .collect();
    assert_eq!(records, expected);
}
