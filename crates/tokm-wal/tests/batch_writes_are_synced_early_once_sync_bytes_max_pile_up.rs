//! In `Batch` mode the background flusher does not wait for `sync_interval` once
//! `sync_bytes_max` bytes are written but unsynced: it syncs them, so a later rotation (which
//! appenders wait for) has little left to sync, and a power cut loses less.

mod common;

use std::time::Duration;

use common::{open_and_replay, sim_dir, sim_options};
use tokm_storage::Lsn;
use tokm_storage::testkit::{CrashCut, SimStorage};
use tokm_wal::{Durability, Wal, WalOptions};

const RECORD: [u8; 300] = [0x5a; 300];
const RECORD_COUNT: usize = 1_000;

#[test]
fn batch_writes_are_synced_early_once_sync_bytes_max_pile_up() {
    let sim = SimStorage::new();
    // The interval alone would not sync within the test; 64 KiB of the ~300 KiB written will.
    let options = WalOptions {
        sync_bytes_max: 64 * 1024,
        ..sim_options(&sim)
    };
    let (wal, _) = Wal::open(&sim_dir(), options).expect("open");
    let syncs_at_open = sim.sync_calls();
    for _ in 0..RECORD_COUNT {
        wal.append(&RECORD, Durability::Batch).expect("append");
    }
    // The flusher runs on its own thread: wait for its effect, with a deadline far beyond the
    // few milliseconds it takes (the interval, an hour, cannot be what syncs).
    assert!(
        wal.wait_until_durable(Lsn::new(1), Duration::from_secs(30))
            .expect("no failure"),
        "no early sync after {RECORD_COUNT} unsynced records"
    );
    assert!(sim.sync_calls() > syncs_at_open);

    // What the early syncs covered survives a power cut that drops everything unsynced.
    let durable = wal.durable_lsn();
    sim.crash(CrashCut::DropUnsynced);
    drop(wal);
    let (_wal, report, records) = open_and_replay(&sim_dir(), sim_options(&sim)).expect("reopen");
    assert!(report.records_count >= durable.get());
    assert_eq!(records.len() as u64, report.records_count);
}

#[test]
fn without_enough_unsynced_bytes_batch_writes_wait_for_the_interval() {
    let sim = SimStorage::new();
    let (wal, _) = Wal::open(&sim_dir(), sim_options(&sim)).expect("open");
    for _ in 0..RECORD_COUNT {
        wal.append(&RECORD, Durability::Batch).expect("append");
    }
    wal.flush().expect("flush");
    assert_eq!(wal.durable_lsn(), Lsn::ZERO, "nothing asked for a sync");
}
