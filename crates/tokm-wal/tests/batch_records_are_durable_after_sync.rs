//! `Batch` appends return before the disk has them: a power cut before a sync loses them, a
//! process crash after a flush does not, and `sync` makes them durable.
mod common;

use common::{open_and_replay, sim_dir, sim_options};
use tokm_storage::Lsn;
use tokm_storage::testkit::{CrashCut, SimStorage};
use tokm_wal::{Durability, Wal};

fn run(after_appends: impl FnOnce(&Wal), cut: CrashCut) -> u64 {
    let sim = SimStorage::new();
    let (wal, _) = Wal::open(&sim_dir(), sim_options(&sim)).expect("open");
    wal.append(b"durable", Durability::Sync).expect("append");
    for _ in 0..5 {
        wal.append(b"batched", Durability::Batch).expect("append");
    }
    after_appends(&wal);
    sim.crash(cut);
    drop(wal);
    let (_wal, report, _) = open_and_replay(&sim_dir(), sim_options(&sim)).expect("reopen");
    report.records_count
}

#[test]
fn batch_records_are_lost_by_a_power_cut_before_sync() {
    assert_eq!(run(|_| {}, CrashCut::DropUnsynced), 1);
    assert_eq!(
        run(|wal| wal.flush().expect("flush"), CrashCut::DropUnsynced),
        1
    );
}

#[test]
fn flushed_batch_records_survive_a_process_crash() {
    assert_eq!(
        run(|_| {}, CrashCut::KeepUnsynced),
        1,
        "still buffered in the process"
    );
    assert_eq!(
        run(|wal| wal.flush().expect("flush"), CrashCut::KeepUnsynced),
        6
    );
}

#[test]
fn synced_batch_records_survive_a_power_cut() {
    let count = run(
        |wal| {
            wal.sync().expect("sync");
            assert_eq!(wal.durable_lsn(), Lsn::new(6));
        },
        CrashCut::DropUnsynced,
    );
    assert_eq!(count, 6);
}
