//! Appenders that arrive while an fsync is in flight have their records written meanwhile and
//! then share a single fsync.
mod common;

use std::sync::Arc;

use common::{FileHook, Interposed, SyncGate, sim_dir};
use tokm_storage::Lsn;
use tokm_storage::testkit::SimStorage;
use tokm_wal::{Durability, Wal, WalOptions};

#[test]
fn appenders_arriving_during_an_fsync_share_the_next_one() {
    const FOLLOWERS: u64 = 6;
    let sim = SimStorage::new();
    let gate = Arc::new(SyncGate::default());
    let storage = Interposed {
        inner: sim.clone(),
        hook: Arc::clone(&gate) as Arc<dyn FileHook>,
    };
    let options = WalOptions {
        storage: Arc::new(storage),
        sync_interval: std::time::Duration::from_secs(3600),
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(&sim_dir(), options).expect("open");
    let wal = Arc::new(wal);

    gate.set_closed(true);
    let leader = {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || {
            wal.append(b"leader", Durability::Sync)
                .expect("leader append")
        })
    };
    gate.wait_for_held(1);
    let followers: Vec<_> = (0..FOLLOWERS)
        .map(|_| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || wal.append(b"follower", Durability::Sync).expect("append"))
        })
        .collect();
    // Followers' records are written while the leader's fsync is held; spin (yielding) until
    // the file holds all of them. Header 120 bytes, frames 20 bytes plus payload.
    let segment = sim_dir().join("00000000000000000001.wal");
    let full_len = 120 + (20 + 6) + FOLLOWERS as usize * (20 + 8);
    while sim.file_bytes(&segment).map_or(0, |bytes| bytes.len()) < full_len {
        std::thread::yield_now();
    }
    let syncs_before = sim.sync_calls();
    gate.set_closed(false);
    assert_eq!(leader.join().expect("leader"), Lsn::new(1));
    for follower in followers {
        follower.join().expect("follower");
    }
    assert_eq!(
        sim.sync_calls() - syncs_before,
        2,
        "the leader's fsync plus one fsync shared by all followers"
    );
    assert_eq!(wal.durable_lsn(), Lsn::new(1 + FOLLOWERS));
}
