//! A full disk while creating the next segment fails the writer closed and removes the
//! half-created segment; a reopen removes one a crash left and goes on from the last durable
//! record.
mod common;

use common::{open_and_replay, payload, sim_dir, sim_options};
use tokm_storage::testkit::{Fault, SimStorage};
use tokm_storage::{Lsn, Storage};
use tokm_wal::{Durability, Wal, WalOptions};

#[test]
fn enospc_during_rotation_fails_closed() {
    let sim = SimStorage::new();
    let dir = sim_dir();
    let options = WalOptions {
        segment_records_max: 3,
        ..sim_options(&sim)
    };
    let (wal, _) = Wal::open(&dir, options.clone()).expect("open");
    for index in 0..3 {
        wal.append(&payload(index), Durability::Sync)
            .expect("append");
    }
    // The fourth append rotates: sync the full segment, then write the new header (fails).
    sim.fail_nth_write(1, Fault::Enospc);
    let error = wal
        .append(&payload(3), Durability::Sync)
        .expect_err("rotation fails");
    assert_eq!(error.code(), "TM-WAL-5002");
    assert!(
        !sim.list(&dir)
            .expect("list")
            .iter()
            .any(|name| name.ends_with(".wal.tmp")),
        "the failed creation removes the half-created segment's temp file"
    );
    assert_eq!(
        wal.append(&payload(3), Durability::Batch)
            .expect_err("closed")
            .code(),
        "TM-WAL-5002"
    );
    drop(wal);
    // A crash in the middle of the creation leaves the temp file behind; the reopen removes it.
    sim.put_file(&dir.join("00000000000000000004.wal.tmp"), b"half a header");

    let (wal, report, records) = open_and_replay(&dir, options).expect("reopen");
    assert_eq!(report.records_count, 3);
    assert_eq!(records.len(), 3);
    assert!(
        !sim.list(&dir)
            .expect("list")
            .iter()
            .any(|name| name.ends_with(".tmp"))
    );
    assert_eq!(
        wal.append(&payload(3), Durability::Sync).expect("append"),
        Lsn::new(4)
    );
}
