//! A segment rotates when the next record would pass the byte limit, when it holds the record
//! limit, or when it is older than the age limit by the injected clock.
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{open_and_replay, segment_names, sim_dir, sim_options};
use tokm_domain::{ManualClock, Timestamp};
use tokm_storage::testkit::SimStorage;
use tokm_wal::{Durability, Wal, WalOptions};

#[test]
fn segments_rotate_by_record_count() {
    let sim = SimStorage::new();
    let (wal, _) = Wal::open(
        &sim_dir(),
        WalOptions {
            segment_records_max: 3,
            ..sim_options(&sim)
        },
    )
    .expect("open");
    for _ in 0..7 {
        wal.append(b"r", Durability::Batch).expect("append");
    }
    wal.sync().expect("sync");
    assert_eq!(
        segment_names(&sim, &sim_dir()),
        vec![
            "00000000000000000001.wal",
            "00000000000000000004.wal",
            "00000000000000000007.wal"
        ]
    );
}

#[test]
fn segments_rotate_before_passing_the_byte_limit() {
    let sim = SimStorage::new();
    // Header 120 bytes + frames of 20 + 100 bytes: two frames fit in 400 bytes, three do not.
    let options = WalOptions {
        segment_bytes_max: 400,
        ..sim_options(&sim)
    };
    let (wal, _) = Wal::open(&sim_dir(), options.clone()).expect("open");
    for _ in 0..5 {
        wal.append(&[7u8; 100], Durability::Sync).expect("append");
    }
    // One record larger than a whole segment still gets written, alone.
    wal.append(&[9u8; 1000], Durability::Sync)
        .expect("large append");
    wal.close().expect("close");
    let names = segment_names(&sim, &sim_dir());
    assert_eq!(names.len(), 4, "{names:?}");
    for name in &names[..2] {
        assert!(sim.file_bytes(&sim_dir().join(name)).expect("bytes").len() <= 400);
    }
    let (_wal, report, _) = open_and_replay(&sim_dir(), options).expect("reopen");
    assert_eq!(report.records_count, 6);
}

#[test]
fn segments_rotate_by_age_on_the_injected_clock() {
    let sim = SimStorage::new();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000)));
    let options = WalOptions {
        clock: clock.clone(),
        segment_age_max: Duration::from_secs(3600),
        ..sim_options(&sim)
    };
    let (wal, _) = Wal::open(&sim_dir(), options).expect("open");
    wal.append(b"a", Durability::Sync).expect("append");
    clock.advance(Duration::from_millis(3_599_999));
    wal.append(b"b", Durability::Sync).expect("append");
    assert_eq!(segment_names(&sim, &sim_dir()).len(), 1);
    clock.advance(Duration::from_millis(1));
    wal.append(b"c", Durability::Sync).expect("append");
    assert_eq!(
        segment_names(&sim, &sim_dir()),
        vec!["00000000000000000001.wal", "00000000000000000003.wal"]
    );
}
