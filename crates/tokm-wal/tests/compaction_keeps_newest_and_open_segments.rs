//! Compaction deletes only sealed segments wholly before the given LSN, keeps the newest N and
//! never the open segment; the rest of the log still replays.
mod common;

use common::{open_and_replay, payload, segment_names, sim_dir, sim_options};
use tokm_storage::Lsn;
use tokm_storage::testkit::SimStorage;
use tokm_wal::{Durability, Wal, WalOptions};

#[test]
fn compaction_keeps_newest_and_open_segments() {
    let sim = SimStorage::new();
    let dir = sim_dir();
    let options = WalOptions {
        segment_records_max: 2,
        ..sim_options(&sim)
    };
    let (wal, _) = Wal::open(&dir, options.clone()).expect("open");
    for index in 0..10 {
        wal.append(&payload(index), Durability::Sync)
            .expect("append");
    }
    // Segments hold LSNs 1-2, 3-4, 5-6, 7-8, 9-10 (open).
    assert_eq!(segment_names(&sim, &dir).len(), 5);
    // Records 1..=4 are covered by a snapshot at LSN 5: segments 1-2 and 3-4 may go.
    let removed = wal.compact(Lsn::new(5), 1).expect("compact");
    assert_eq!(
        removed,
        vec!["00000000000000000001.wal", "00000000000000000003.wal"]
    );
    // Nothing before LSN 5 is left to remove; LSN 6 still lives in segment 5-6.
    assert!(wal.compact(Lsn::new(6), 1).expect("compact").is_empty());
    // keep_newest protects the newest segments even when the snapshot covers them.
    let removed = wal.compact(Lsn::new(100), 2).expect("compact");
    assert_eq!(removed, vec!["00000000000000000005.wal"]);
    // keep_newest 0 still never removes the open segment.
    let removed = wal.compact(Lsn::new(100), 0).expect("compact");
    assert_eq!(removed, vec!["00000000000000000007.wal"]);
    assert_eq!(segment_names(&sim, &dir), vec!["00000000000000000009.wal"]);
    wal.close().expect("close");

    let (wal, report, records) = open_and_replay(&dir, options).expect("reopen");
    assert_eq!(report.records_count, 2);
    assert_eq!(records.first().map(|(lsn, _)| *lsn), Some(Lsn::new(9)));
    assert_eq!(
        wal.append(b"more", Durability::Sync).expect("append"),
        Lsn::new(11)
    );
}

#[test]
fn lsns_continue_after_everything_but_an_empty_segment_was_compacted() {
    let sim = SimStorage::new();
    let dir = sim_dir();
    let options = WalOptions {
        segment_records_max: 2,
        ..sim_options(&sim)
    };
    let (wal, _) = Wal::open(&dir, options.clone()).expect("open");
    for index in 0..4 {
        wal.append(&payload(index), Durability::Sync)
            .expect("append");
    }
    wal.close().expect("close");
    // Reopen: a new, empty segment starting at LSN 5; compact everything before it.
    let (wal, _) = Wal::open(&dir, options.clone()).expect("reopen");
    wal.compact(Lsn::new(5), 0).expect("compact");
    assert_eq!(segment_names(&sim, &dir), vec!["00000000000000000005.wal"]);
    drop(wal);
    let (wal, report) = Wal::open(&dir, options).expect("reopen");
    assert_eq!(report.records_count, 0);
    assert_eq!(
        wal.append(b"x", Durability::Sync).expect("append"),
        Lsn::new(5),
        "no LSN reuse"
    );
}
