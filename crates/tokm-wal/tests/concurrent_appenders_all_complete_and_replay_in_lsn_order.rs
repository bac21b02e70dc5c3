//! Many threads appending in both durability modes, with rotations and syncs in between, all
//! complete; every LSN is handed out once and the log replays exactly what was acknowledged.
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{open_and_replay, sim_dir, sim_options};
use tokm_storage::Lsn;
use tokm_storage::testkit::SimStorage;
use tokm_wal::{Durability, Wal, WalOptions};

const THREADS: usize = 8;
const APPENDS_PER_THREAD: usize = 300;

#[test]
fn concurrent_appenders_all_complete_and_replay_in_lsn_order() {
    let sim = SimStorage::new();
    let options = WalOptions {
        segment_records_max: 97,
        group_commit_records_max: 7,
        ..sim_options(&sim)
    };
    let (wal, _) = Wal::open(&sim_dir(), options.clone()).expect("open");
    let wal = Arc::new(wal);
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                let mut appended = Vec::with_capacity(APPENDS_PER_THREAD);
                for sequence in 0..APPENDS_PER_THREAD {
                    let payload = format!("{thread}:{sequence}").into_bytes();
                    let durability = if sequence % 3 == 0 {
                        Durability::Batch
                    } else {
                        Durability::Sync
                    };
                    let lsn = wal.append(&payload, durability).expect("append");
                    if durability == Durability::Sync {
                        assert!(wal.durable_lsn() >= lsn, "acknowledged before durable");
                    }
                    if sequence % 50 == 0 {
                        wal.sync().expect("sync");
                    }
                    appended.push((lsn, payload));
                }
                appended
            })
        })
        .collect();
    let mut expected = BTreeMap::new();
    for thread in threads {
        for (lsn, payload) in thread.join().expect("appender thread") {
            assert!(
                expected.insert(lsn, payload).is_none(),
                "LSN {lsn} handed out twice"
            );
        }
    }
    let total = (THREADS * APPENDS_PER_THREAD) as u64;
    assert_eq!(expected.keys().next_back(), Some(&Lsn::new(total)));
    Arc::into_inner(wal)
        .expect("sole owner")
        .close()
        .expect("close");

    let (_wal, report, records) = open_and_replay(&sim_dir(), options).expect("reopen");
    assert_eq!(report.records_count, total);
    assert_eq!(records, expected.into_iter().collect::<Vec<_>>());
}
