//! Appended records come back, in order, across segment rotations and reopens.
mod common;

use std::ops::ControlFlow;

use common::{open_and_replay, payload, segment_names, sim_dir, sim_options};
use tokm_storage::Lsn;
use tokm_storage::testkit::SimStorage;
use tokm_wal::{Durability, Wal, WalOptions};

#[test]
fn records_round_trip_across_rotation_and_reopen() {
    let sim = SimStorage::new();
    let dir = sim_dir();
    let options = WalOptions {
        segment_records_max: 4,
        ..sim_options(&sim)
    };
    let (wal, report) = Wal::open(&dir, options.clone()).expect("open");
    assert_eq!(report.records_count, 0);
    for index in 0..10 {
        let lsn = wal
            .append(&payload(index), Durability::Sync)
            .expect("append");
        assert_eq!(lsn, Lsn::new(index as u64 + 1));
    }
    let range = wal
        .append_batch(&[&payload(10), &payload(11)], Durability::Batch)
        .expect("batch");
    assert_eq!((range.first, range.last), (Lsn::new(11), Lsn::new(12)));
    wal.close().expect("close");
    assert_eq!(segment_names(&sim, &dir).len(), 3, "4 + 4 + 4 records");

    let (wal, report, records) = open_and_replay(&dir, options.clone()).expect("reopen");
    assert_eq!(report.records_count, 12);
    assert_eq!(report.last_lsn, Lsn::new(12));
    assert!(report.damaged.is_empty() && report.truncated_bytes == 0);
    let expected: Vec<(Lsn, Vec<u8>)> = (0..12)
        .map(|index| (Lsn::new(index as u64 + 1), payload(index)))
        .collect();
    assert_eq!(records, expected);

    // Replay from a snapshot LSN delivers only later records; a callback can stop early.
    let mut after_seven = Vec::new();
    wal.replay(Lsn::new(7), |lsn, _| {
        after_seven.push(lsn.get());
        ControlFlow::Continue(())
    })
    .expect("replay");
    assert_eq!(after_seven, vec![8, 9, 10, 11, 12]);
    let summary = wal
        .replay(Lsn::ZERO, |_, _| ControlFlow::Break(()))
        .expect("replay");
    assert_eq!(summary.records_count, 1);

    // The restarted writer continues the LSN sequence in a new segment.
    assert_eq!(
        wal.append(b"after restart", Durability::Sync)
            .expect("append"),
        Lsn::new(13)
    );
    drop(wal);
    let (_wal, _report, records) = open_and_replay(&dir, options).expect("reopen");
    assert_eq!(
        records.last(),
        Some(&(Lsn::new(13), b"after restart".to_vec()))
    );
}
