//! After an fsync fails, the append waiting on it gets an error, every later append is refused,
//! and a reopen recovers everything acknowledged before.
mod common;

use common::{open_and_replay, payload, sim_dir, sim_options};
use tokm_storage::Lsn;
use tokm_storage::testkit::{Fault, SimStorage};
use tokm_wal::{Durability, Wal};

#[test]
fn writer_fails_closed_after_fsync_error() {
    let sim = SimStorage::new();
    let dir = sim_dir();
    let (wal, _) = Wal::open(&dir, sim_options(&sim)).expect("open");
    for index in 0..3 {
        wal.append(&payload(index), Durability::Sync)
            .expect("append");
    }
    sim.fail_nth_sync(1, Fault::Eio);
    let error = wal
        .append(&payload(3), Durability::Sync)
        .expect_err("fsync fails");
    assert_eq!(error.code(), "TM-WAL-5002");
    assert_eq!(
        wal.durable_lsn(),
        Lsn::new(3),
        "nothing unsynced is reported durable"
    );
    // The storage works again, but the writer must not trust the file: it stays closed.
    for durability in [Durability::Sync, Durability::Batch] {
        let error = wal.append(&payload(4), durability).expect_err("refused");
        assert_eq!(error.code(), "TM-WAL-5002");
    }
    assert_eq!(wal.sync().expect_err("sync refused").code(), "TM-WAL-5002");
    drop(wal);

    let (_wal, report, records) = open_and_replay(&dir, sim_options(&sim)).expect("reopen");
    // Record 4 was written before the failed fsync; whether it counts is unknown to the caller,
    // which was told it failed. Records 1..=3 must be there.
    assert!(report.records_count >= 3);
    assert_eq!(
        &records[..3],
        &(0..3)
            .map(|i| (Lsn::new(i as u64 + 1), payload(i)))
            .collect::<Vec<_>>()[..]
    );
}

#[test]
fn failed_write_fails_every_waiter_of_the_group() {
    let sim = SimStorage::new();
    let dir = sim_dir();
    let (wal, _) = Wal::open(&dir, sim_options(&sim)).expect("open");
    wal.append_batch(&[b"a", b"b"], Durability::Batch)
        .expect("buffered");
    sim.fail_nth_write(1, Fault::Enospc);
    let error = wal
        .append(b"c", Durability::Sync)
        .expect_err("the group's write fails");
    assert!(matches!(
        error,
        tokm_wal::AppendError::WriterFailed { cause: std::io::ErrorKind::StorageFull, durable_lsn } if durable_lsn == Lsn::ZERO
    ));
    assert_eq!(wal.flush().expect_err("closed").code(), "TM-WAL-5002");
}
