//! `WalReader` is a dry run: it reports what recovery would do and replays, but leaves torn
//! tails and damage on disk.
mod common;

use std::ops::ControlFlow;

use common::{payload, segment_names, sim_dir, sim_options};
use tokm_storage::Lsn;
use tokm_storage::testkit::SimStorage;
use tokm_wal::{Durability, Wal, WalReader};

#[test]
fn reader_reports_without_changing_anything() {
    let sim = SimStorage::new();
    let dir = sim_dir();
    let (wal, _) = Wal::open(&dir, sim_options(&sim)).expect("open");
    for index in 0..4 {
        wal.append(&payload(index), Durability::Sync)
            .expect("append");
    }
    wal.close().expect("close");
    let name = segment_names(&sim, &dir).pop().expect("segment");
    let mut bytes = sim.file_bytes(&dir.join(&name)).expect("bytes");
    bytes.truncate(bytes.len() - 3);
    sim.put_file(&dir.join(&name), &bytes);

    let (reader, report) = WalReader::open(&dir, &sim_options(&sim)).expect("reader");
    assert_eq!((report.records_count, report.last_lsn), (3, Lsn::new(3)));
    assert_eq!(report.truncated_bytes, (20 + payload(3).len() - 3) as u64);
    let mut lsns = Vec::new();
    let summary = reader
        .replay(Lsn::new(1), |lsn, _| {
            lsns.push(lsn.get());
            ControlFlow::Continue(())
        })
        .expect("replay");
    assert_eq!(lsns, vec![2, 3]);
    assert_eq!(summary.last_lsn, Lsn::new(3));
    assert_eq!(
        sim.file_bytes(&dir.join(&name)),
        Some(bytes),
        "the torn tail is still there"
    );
}
