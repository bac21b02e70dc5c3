//! Rotation does not stall appenders: while the full segment's final sync hangs, batch appends
//! go on into the next segment (held in memory), the next segment's file does not exist yet,
//! and a sync-mode append is acknowledged only after that sync finishes.
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{FileHook, Interposed, SyncGate, open_and_replay, segment_names, sim_dir};
use tokm_storage::Lsn;
use tokm_storage::testkit::SimStorage;
use tokm_wal::{Durability, Wal, WalOptions};

#[test]
fn appends_go_on_while_a_full_segment_syncs() {
    let sim = SimStorage::new();
    let gate = Arc::new(SyncGate::default());
    let storage = Interposed {
        inner: sim.clone(),
        hook: Arc::clone(&gate) as Arc<dyn FileHook>,
    };
    let options = WalOptions {
        storage: Arc::new(storage),
        segment_records_max: 4,
        sync_interval: Duration::from_secs(3600),
        sync_bytes_max: u64::MAX,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(&sim_dir(), options).expect("open");
    let wal = Arc::new(wal);
    for index in 0..4u8 {
        wal.append(&[index], Durability::Sync).expect("append");
    }

    // The fifth record switches to the next segment; the flusher, woken by the switch, starts
    // the seal round, whose sync of the full segment the gate holds.
    gate.set_closed(true);
    assert_eq!(
        wal.append(&[4], Durability::Batch).expect("append"),
        Lsn::new(5)
    );
    gate.wait_for_held(1);
    // These would hang here if appenders waited for the seal round.
    for index in 5..7u8 {
        wal.append(&[index], Durability::Batch).expect("append");
    }
    let sync_appender = {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || wal.append(&[7], Durability::Sync).expect("sync append"))
    };
    while wal.last_lsn() < Lsn::new(8) {
        std::thread::yield_now();
    }
    assert_eq!(gate.held(), 1, "only the seal round's sync is in flight");
    assert!(
        !sync_appender.is_finished(),
        "a sync append is acknowledged only once every older segment is synced"
    );
    assert_eq!(wal.durable_lsn(), Lsn::new(4));
    assert_eq!(
        segment_names(&sim, &sim_dir()),
        vec!["00000000000000000001.wal"],
        "the next segment's file exists only once the full one is synced"
    );

    gate.set_closed(false);
    assert_eq!(sync_appender.join().expect("sync appender"), Lsn::new(8));
    assert!(wal.durable_lsn() >= Lsn::new(8));
    assert_eq!(
        segment_names(&sim, &sim_dir()),
        vec!["00000000000000000001.wal", "00000000000000000005.wal"]
    );
    let Ok(wal) = Arc::try_unwrap(wal) else {
        panic!("the appender thread has ended");
    };
    wal.close().expect("close");
    let (_wal, report, records) =
        open_and_replay(&sim_dir(), common::sim_options(&sim)).expect("reopen");
    assert_eq!(report.records_count, 8);
    assert_eq!(
        records,
        (0..8u8)
            .map(|index| (Lsn::new(u64::from(index) + 1), vec![index]))
            .collect::<Vec<_>>()
    );
}
